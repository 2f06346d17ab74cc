// Stops everything one node runs and unmounts everything it mounted, touching only what lives under its state
// dir: its runc root's containers, mounts below the state dir, loop devices backed by files there, flist mount
// helpers whose pid files are there, and its /zos-<tag> cgroups. Data (images, the database, the key) stays.
// Used by `zos node teardown` (decommissioning, simulating a reboot) and by tests to leave nothing behind.
import { readFile, readdir, rm, rmdir } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { exec } from '../../core/exec.js'
import { RuncRuntime } from '../runtime/runc.js'
import { lazyUnmount, mountsUnder } from './mounts.js'
import type { NodePaths } from './paths.js'

export interface TeardownReport {
  containers: string[]
  mounts: string[]
  loops: string[]
  helpers: number[]
}

export async function teardownNode(paths: NodePaths, tag?: string): Promise<TeardownReport> {
  const report: TeardownReport = { containers: [], mounts: [], loops: [], helpers: [] }
  const runtime = new RuncRuntime(paths.runcRoot)
  for (const c of await runtime.list()) {
    await runtime.delete(c.id, true).catch(() => undefined)
    report.containers.push(c.id)
  }
  for (const m of await mountsUnder(paths.root)) {
    const r = await exec('umount', [m.mountpoint])
    if (r.code !== 0) await lazyUnmount(m.mountpoint)
    report.mounts.push(m.mountpoint)
  }
  const loops = await exec('losetup', ['--list', '--json', '-O', 'NAME,BACK-FILE'])
  if (loops.code === 0 && loops.stdout.trim()) {
    const parsed = JSON.parse(loops.stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] }
    for (const l of parsed.loopdevices ?? []) {
      const back = (l['back-file'] ?? '').replace(/ \(deleted\)$/, '')
      if (back.startsWith(paths.root + '/')) {
        await exec('losetup', ['-d', l.name])
        report.loops.push(l.name)
      }
    }
  }
  const runDir = join(paths.root, 'flists', 'run')
  for (const name of await readdir(runDir).catch(() => [] as string[])) {
    if (!name.endsWith('.pid')) continue
    const pid = Number(await readFile(join(runDir, name), 'utf8').catch(() => ''))
    if (!Number.isInteger(pid) || pid <= 1) continue
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmd.includes('mount-helper') && cmd.includes(paths.root)) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // gone
      }
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(20)
      report.helpers.push(pid)
    }
    await rm(join(runDir, name), { force: true })
  }
  // Mounts are gone: holders of flist mounts are stale.
  await rm(join(paths.root, 'flists', 'refs'), { recursive: true, force: true })
  if (tag) {
    for (const c of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      const parent = join('/sys/fs/cgroup', c, `zos-${tag}`)
      for (const child of await readdir(parent, { withFileTypes: true }).catch(() => [])) if (child.isDirectory()) await rmdir(join(parent, child.name)).catch(() => undefined)
      await rmdir(parent).catch(() => undefined)
    }
  }
  return report
}
