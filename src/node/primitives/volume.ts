// volume: a size-limited filesystem (an ext4 image of the requested size, loop-mounted under the node's state
// dir) that zmachines bind-mount. Data survives agent restarts and re-provisioning; only deprovisioning
// deletes it. Updates grow it online.
import type { VolumeData, VolumeResult } from '../types/volume.js'
import { ensureMountedImage, growImage, releaseImage } from '../storage/loop.js'
import type { Primitive, ProvisionOutcome, WorkloadContext } from './primitive.js'
import type { NodeServices } from './services.js'

export class VolumePrimitive implements Primitive {
  constructor(private readonly s: NodeServices) {}

  async provision(ctx: WorkloadContext): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as VolumeData
    const { existed } = await ensureMountedImage(this.s.paths.volumeImage(ctx.id), d.size, this.s.paths.volumeMount(ctx.id), `zos-vol`)
    const data: VolumeResult = { id: ctx.id }
    return { data, existed }
  }

  async update(ctx: WorkloadContext): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as VolumeData
    await ensureMountedImage(this.s.paths.volumeImage(ctx.id), d.size, this.s.paths.volumeMount(ctx.id), 'zos-vol')
    await growImage(this.s.paths.volumeImage(ctx.id), d.size, this.s.paths.volumeMount(ctx.id))
    return { data: { id: ctx.id } satisfies VolumeResult }
  }

  async deprovision(ctx: WorkloadContext): Promise<void> {
    await releaseImage(this.s.paths.volumeImage(ctx.id), this.s.paths.volumeMount(ctx.id), { remove: true })
  }
}
