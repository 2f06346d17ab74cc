// zmachine in container mode: the root is the flist mounted read-only plus an overlayfs upper directory on an
// ext4 image of the workload's root size; the process comes from the workload and the flist tags; memory and
// CPU are cgroup limits; the deployment's volumes and disks are bind-mounted; the console (stdout and stderr)
// goes to a log file the API serves; a supervisor restarts the container when it exits. Networking is a
// private network namespace with loopback only until network workloads exist (result ip fields are empty).
//
// Layout, under <state>/zmachines/<wid>/: config.json, runc.log, console.log[.1], flist.json (the resolved
// flist, so a restart needs no network), rootfs.img → rw/ (upper/, work/), rootfs/ (the overlay).
import { closeSync, openSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, rmdir, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { errorMessage, zerr } from '../../core/errors.js'
import { mountOverlay } from '../../flist/overlay.js'
import { rootSize, type ZmachineData, type ZmachineResult } from '../types/zmachine.js'
import type { DeploymentWorkload } from '../types/deployment.js'
import { workloadId } from '../types/workload.js'
import { findProgram, imageProcess, readThrough } from '../runtime/image-config.js'
import type { ContainerMount, ContainerSpec, ContainerState } from '../runtime/runtime.js'
import { ensureMountedImage, filesystemOf, formatExt4, growImage, releaseImage } from '../storage/loop.js'
import type { ResolvedFlist } from '../storage/flists.js'
import { findMount, lazyUnmount, mountsUnder, unmountAll } from '../storage/mounts.js'
import type { Primitive, ProvisionOutcome, WorkloadContext } from './primitive.js'
import { cgroupPath, containerId, type NodeServices } from './services.js'

const STOP_GRACE_MS = 10_000

export interface ZmachineLogs {
  /** The end of the console log (older rotated part first). */
  log: string
  /** True when older output was left out. */
  truncated: boolean
  container: { running: boolean; paused: boolean; pid: number; restarts: number; last_exit_at: number; last_error: string } | null
}

function resultOf(wid: string): ZmachineResult {
  return { id: wid, ip: '', planetary_ip: '', mycelium_ip: '', console_url: '' }
}

function unsupportedFeatures(d: ZmachineData): void {
  const why = 'networks are not supported on this node yet; deploy the zmachine without them'
  if (d.network.interfaces.length > 0) throw zerr('UNSUPPORTED', `network interfaces: ${why}`)
  if (d.network.public_ip !== '') throw zerr('UNSUPPORTED', `public_ip: ${why}`)
  if (d.network.planetary) throw zerr('UNSUPPORTED', `planetary: ${why}`)
  if (d.network.mycelium) throw zerr('UNSUPPORTED', `mycelium: ${why}`)
  if (d.gpu.length > 0) throw zerr('UNSUPPORTED', 'GPUs are not supported on this node')
  if (d.corex) throw zerr('UNSUPPORTED', 'corex is not supported for containers on this node')
}

export class ZmachinePrimitive implements Primitive {
  constructor(private readonly s: NodeServices) {}

  private dir(wid: string): string {
    return this.s.paths.zmachine(wid)
  }

  async provision(ctx: WorkloadContext): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as ZmachineData
    unsupportedFeatures(d)
    const wid = ctx.id
    const cid = containerId(this.s.tag, wid)
    const dir = this.dir(wid)
    const state = await this.s.runtime.state(cid)
    if (state && (state.status === 'running' || state.status === 'paused') && (await this.rootHealthy(wid))) {
      await this.s.supervisor.watch(state, this.watchOptions(ctx, wid))
      return { data: resultOf(wid), existed: true }
    }
    if (state) await this.s.runtime.delete(cid, true)
    const imageExisted = await stat(join(dir, 'rootfs.img')).then(() => true, () => false)
    try {
      const timings: Record<string, number> = {}
      const spec = await this.prepare(ctx, d, timings)
      const t1 = performance.now()
      const started = await this.run(spec, wid)
      timings.startMs = round(performance.now() - t1)
      ctx.log.info({ ...timings, pid: started.pid }, 'zmachine started')
      await this.s.supervisor.watch(started, this.watchOptions(ctx, wid, spec))
      return { data: resultOf(wid), existed: false }
    } catch (err) {
      // Leave nothing running or mounted; keep the root's data unless this provision created it.
      await this.teardown(ctx, { removeData: !imageExisted }).catch((e: unknown) => ctx.log.warn({ err: errorMessage(e) }, 'cleanup after a failed start failed'))
      throw err
    }
  }

  async update(ctx: WorkloadContext, previous: DeploymentWorkload): Promise<ProvisionOutcome> {
    const d = ctx.workload.data as ZmachineData
    const before = previous.data as ZmachineData
    if (d.flist !== before.flist) throw zerr('INVALID_ARGUMENT', `the flist of zmachine ${ctx.workload.name} cannot change (${before.flist} → ${d.flist}); deploy a new zmachine`)
    if (rootSize(d) < rootSize(before)) throw zerr('INVALID_ARGUMENT', `the root of zmachine ${ctx.workload.name} cannot shrink`)
    unsupportedFeatures(d)
    const wid = ctx.id
    await this.stopContainer(wid)
    const dir = this.dir(wid)
    if (rootSize(d) > rootSize(before)) {
      await unmountAll(join(dir, 'rootfs'))
      await growImage(join(dir, 'rootfs.img'), rootSize(d), join(dir, 'rw'))
    }
    // Disks it no longer mounts are let go.
    const kept = new Set(d.mounts.map((m) => m.name))
    for (const m of before.mounts) if (!kept.has(m.name)) await this.releaseMount(ctx, m.name)
    const spec = await this.prepare(ctx, d)
    const started = await this.run(spec, wid)
    await this.s.supervisor.watch(started, this.watchOptions(ctx, wid, spec))
    return { data: resultOf(wid) }
  }

  async deprovision(ctx: WorkloadContext): Promise<void> {
    await this.teardown(ctx, { removeData: true })
  }

  async pause(ctx: WorkloadContext): Promise<void> {
    const cid = containerId(this.s.tag, ctx.id)
    const st = await this.s.runtime.state(cid)
    if (!st || st.status === 'paused') return
    await this.s.runtime.pause(cid)
    this.s.supervisor.setPaused(cid, true)
  }

  async resume(ctx: WorkloadContext): Promise<void> {
    const cid = containerId(this.s.tag, ctx.id)
    const st = await this.s.runtime.state(cid)
    if (st?.status !== 'paused') return
    await this.s.runtime.resume(cid)
    this.s.supervisor.setPaused(cid, false)
  }

  /** The console log (at most `maxBytes` of its end) and the container's state. */
  async logs(wid: string, maxBytes = 64 * 1024): Promise<ZmachineLogs> {
    const file = join(this.dir(wid), 'console.log')
    const parts: Buffer[] = []
    for (const f of [`${file}.1`, file]) parts.push(await readFile(f).catch(() => Buffer.alloc(0)))
    const all = Buffer.concat(parts)
    const truncated = all.length > maxBytes
    const info = this.s.supervisor.info(containerId(this.s.tag, wid))
    return {
      log: all.subarray(Math.max(0, all.length - maxBytes)).toString('utf8'),
      truncated,
      container: info
        ? { running: info.running, paused: info.paused, pid: info.pid, restarts: info.restarts, last_exit_at: Math.floor(info.lastExitAt / 1000), last_error: info.lastError }
        : null,
    }
  }

  // ---- steps ----

  /** Resolves the flist (remembered in flist.json, so a restart does not need the network). */
  private async flistFor(wid: string, url: string): Promise<ResolvedFlist> {
    const file = join(this.dir(wid), 'flist.json')
    const saved = await readFile(file, 'utf8').then((t) => JSON.parse(t) as ResolvedFlist, () => undefined)
    if (saved && saved.url === url && (await stat(saved.file).then(() => true, () => false))) return saved
    const resolved = await this.s.flists.resolve(url)
    await mkdir(this.dir(wid), { recursive: true })
    await writeFile(file, JSON.stringify(resolved))
    return resolved
  }

  /** Mounts everything the container needs and returns its spec. */
  private async prepare(ctx: WorkloadContext, d: ZmachineData, timings: Record<string, number> = {}): Promise<ContainerSpec> {
    const wid = ctx.id
    const dir = this.dir(wid)
    let t = performance.now()
    const lap = (name: string): void => {
      const now = performance.now()
      timings[name] = round(now - t)
      t = now
    }
    await mkdir(dir, { recursive: true })
    const flist = await this.flistFor(wid, d.flist)
    lap('resolveMs')
    const lower = await this.s.flists.acquire(flist, wid)
    lap('flistMountMs')
    const rw = join(dir, 'rw')
    await ensureMountedImage(join(dir, 'rootfs.img'), rootSize(d), rw, 'zos-root')
    lap('rootfsMs')
    const rootfs = join(dir, 'rootfs')
    const top = await findMount(rootfs)
    if (top && top.fstype === 'overlay' && !top.superOptions.includes(`lowerdir=${lower}`)) await unmountAll(rootfs)
    if (top && top.fstype !== 'overlay') await unmountAll(rootfs)
    if (!(await findMount(rootfs))) await mountOverlay({ lower, upper: join(rw, 'upper'), work: join(rw, 'work'), target: rootfs })
    lap('overlayMs')
    const proc = await imageProcess(rootfs, flist.tags, d)
    await this.checkProgram(rootfs, proc.args[0]!, proc.env, flist)
    lap('checkMs')
    const mounts: ContainerMount[] = []
    for (const m of d.mounts) mounts.push({ source: await this.mountSource(ctx, m.name), destination: m.mountpoint })
    lap('volumesMs')
    return {
      id: containerId(this.s.tag, wid),
      bundle: dir,
      rootfs: 'rootfs',
      args: proc.args,
      env: proc.env,
      cwd: proc.cwd,
      uid: proc.uid,
      gid: proc.gid,
      hostname: ctx.workload.name,
      memory: d.compute_capacity.memory,
      cpu: d.compute_capacity.cpu,
      mounts,
      cgroupsPath: cgroupPath(this.s.tag, wid),
    }
  }

  /** Reads the program through the mount, so a missing or tampered chunk fails here with a clear message. */
  private async checkProgram(rootfs: string, argv0: string, env: string[], flist: ResolvedFlist): Promise<void> {
    const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? ''
    const host = await findProgram(rootfs, argv0, path)
    try {
      await readThrough(host)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EIO') {
        throw zerr('CHUNK_TAMPERED', `cannot read ${host.slice(rootfs.length)} from flist ${flist.url}: a chunk of it is missing from the store or does not match its hash (the mount log ${this.s.paths.flistRun(flist.root)}.log names it)`, { flist: flist.url })
      }
      throw zerr('RUNTIME_FAILED', `cannot read the entrypoint ${argv0}: ${errorMessage(err)}`)
    }
  }

  /** The host directory to bind-mount for a volume or zmount of the deployment. */
  private async mountSource(ctx: WorkloadContext, name: string): Promise<string> {
    const wl = ctx.deployment.workloads.find((w) => w.name === name)
    if (!wl) throw zerr('INVALID_ARGUMENT', `mount ${name}: no such workload in the deployment`)
    if (wl.result?.state !== 'ok') throw zerr('INVALID_STATE', `mount ${name}: the ${wl.type} is not ready (${wl.result?.state ?? 'init'}${wl.result?.message ? `: ${wl.result.message}` : ''})`)
    const wid = workloadId(ctx.twinId, ctx.contractId, name)
    if (wl.type === 'volume') {
      const dir = this.s.paths.volumeMount(wid)
      if (!(await findMount(dir))) throw zerr('INVALID_STATE', `mount ${name}: the volume is not mounted`)
      return dir
    }
    if (wl.type === 'zmount') {
      const image = this.s.paths.disk(wid)
      if ((await filesystemOf(image)) === '') await formatExt4(image, 'zos-disk')
      const dir = this.s.paths.diskMount(wid)
      const size = (wl.data as { size: number }).size
      await ensureMountedImage(image, size, dir, 'zos-disk')
      return dir
    }
    throw zerr('UNSUPPORTED', `mount ${name}: ${wl.type} workloads cannot be mounted on this node yet`)
  }

  private async releaseMount(ctx: WorkloadContext, name: string): Promise<void> {
    const wl = ctx.deployment.workloads.find((w) => w.name === name)
    if (wl?.type === 'zmount') {
      const wid = workloadId(ctx.twinId, ctx.contractId, name)
      await releaseImage(this.s.paths.disk(wid), this.s.paths.diskMount(wid), { remove: false })
    }
  }

  private async run(spec: ContainerSpec, wid: string): Promise<ContainerState> {
    const fd = openSync(join(this.dir(wid), 'console.log'), 'a', 0o600)
    try {
      return await this.s.runtime.run(spec, fd)
    } finally {
      closeSync(fd)
    }
  }

  private watchOptions(ctx: WorkloadContext, wid: string, spec?: ContainerSpec): { logFile: string; restart: () => Promise<ContainerState> } {
    return {
      logFile: join(this.dir(wid), 'console.log'),
      restart: async () => {
        // The mounts are still there unless something broke them: then prepare them again.
        const s = spec && (await this.rootHealthy(wid)) ? spec : await this.prepare(ctx, ctx.workload.data as ZmachineData)
        return this.run(s, wid)
      },
    }
  }

  /** The overlay is mounted and the flist below it still answers. */
  private async rootHealthy(wid: string): Promise<boolean> {
    const top = await findMount(join(this.dir(wid), 'rootfs'))
    if (!top || top.fstype !== 'overlay') return false
    const lower = /(?:^|,)lowerdir=([^,]+)/.exec(top.superOptions)?.[1]
    return lower !== undefined && (await this.s.flists.alive(lower))
  }

  /** Stops the container: SIGTERM, then SIGKILL after a grace period; deletes it (and its cgroup). */
  private async stopContainer(wid: string): Promise<void> {
    const cid = containerId(this.s.tag, wid)
    await this.s.supervisor.unwatch(cid)
    const st = await this.s.runtime.state(cid)
    if (!st) return
    if (st.status === 'paused') await this.s.runtime.resume(cid).catch(() => undefined)
    if (st.status === 'running' || st.status === 'paused') {
      await this.s.runtime.kill(cid, 'TERM')
      const deadline = Date.now() + (this.s.stopGraceMs ?? STOP_GRACE_MS)
      while (Date.now() < deadline) {
        const now = await this.s.runtime.state(cid)
        if (!now || now.status === 'stopped') break
        await sleep(100)
      }
    }
    await this.s.runtime.delete(cid, true)
  }

  private async teardown(ctx: WorkloadContext, opts: { removeData: boolean }): Promise<void> {
    const wid = ctx.id
    const dir = this.dir(wid)
    await this.stopContainer(wid)
    const rootfs = join(dir, 'rootfs')
    await unmountAll(rootfs).catch(async () => lazyUnmount(rootfs))
    await rmdir(rootfs).catch(() => undefined)
    await releaseImage(join(dir, 'rootfs.img'), join(dir, 'rw'), { remove: opts.removeData })
    const d = ctx.workload.data as ZmachineData
    for (const m of d.mounts) await this.releaseMount(ctx, m.name)
    const saved = await readFile(join(dir, 'flist.json'), 'utf8').then((t) => JSON.parse(t) as ResolvedFlist, () => undefined)
    if (saved) await this.s.flists.release(saved.root, wid)
    await removeCgroupParents(this.s.tag)
    if (opts.removeData) {
      const left = await mountsUnder(dir)
      if (left.length > 0) throw zerr('MOUNT_FAILED', `cannot remove ${dir}: ${left.map((m) => m.mountpoint).join(', ')} still mounted`)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}

/** Removes the node's /zos-<tag> cgroup directories once no container is left in them. */
async function removeCgroupParents(tag: string): Promise<void> {
  const controllers = await readdir('/sys/fs/cgroup').catch(() => [] as string[])
  for (const c of controllers) await rmdir(join('/sys/fs/cgroup', c, `zos-${tag}`)).catch(() => undefined)
}

