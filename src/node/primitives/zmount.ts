// zmount: a sparse disk image of the requested size (grow-only updates). A zmachine container that mounts it
// gets it formatted ext4 on first use and mounted through a loop device (see zmachine.ts).
import { rm } from 'node:fs/promises'
import { zerr } from '../../core/errors.js'
import type { ZmountData, ZmountResult } from '../types/zmount.js'
import { createSparse, fileSize, growImage, releaseImage } from '../storage/loop.js'
import type { Primitive, ProvisionOutcome, WorkloadContext } from './primitive.js'
import type { NodeServices } from './services.js'

export class ZmountPrimitive implements Primitive {
  constructor(private readonly s: NodeServices) {}

  async provision(ctx: WorkloadContext): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as ZmountData
    const image = this.s.paths.disk(ctx.id)
    const size = await fileSize(image)
    if (size !== undefined && size !== d.size) {
      // Re-provisioning after an update that could not finish: bring it to the wanted size.
      if (size > d.size) throw zerr('INVALID_ARGUMENT', `disk ${ctx.workload.name} has ${size} bytes, more than the ${d.size} asked; disks cannot shrink`)
      await growImage(image, d.size, this.s.paths.diskMount(ctx.id))
    }
    const created = await createSparse(image, d.size)
    const data: ZmountResult = { volume_id: ctx.id }
    return { data, existed: !created }
  }

  async update(ctx: WorkloadContext): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as ZmountData
    await growImage(this.s.paths.disk(ctx.id), d.size, this.s.paths.diskMount(ctx.id))
    return { data: { volume_id: ctx.id } satisfies ZmountResult }
  }

  async deprovision(ctx: WorkloadContext): Promise<void> {
    await releaseImage(this.s.paths.disk(ctx.id), this.s.paths.diskMount(ctx.id), { remove: true })
    await rm(this.s.paths.disk(ctx.id), { force: true })
  }
}
