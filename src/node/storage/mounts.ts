// Mount table helpers over /proc/self/mountinfo (this process's mount namespace).
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { findMount, unmount, type MountEntry } from '../../flist/overlay.js'
import { exec } from '../../core/exec.js'

export { findMount, type MountEntry }

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
}

export async function mountTable(): Promise<MountEntry[]> {
  const out: MountEntry[] = []
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (dash < 0) continue
    out.push({ mountpoint: unescape(f[4] ?? ''), fstype: f[dash + 1] ?? '', source: unescape(f[dash + 2] ?? ''), superOptions: f[dash + 3] ?? '' })
  }
  return out
}

export async function isMounted(path: string): Promise<boolean> {
  return (await findMount(path)) !== undefined
}

/** Mounts at or below `dir`, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const root = resolve(dir)
  return (await mountTable()).filter((m) => m.mountpoint === root || m.mountpoint.startsWith(root + '/')).sort((a, b) => b.mountpoint.length - a.mountpoint.length)
}

/** Unmounts every mount stacked at `path` (no error when nothing is mounted there). */
export async function unmountAll(path: string): Promise<void> {
  for (let i = 0; i < 8 && (await findMount(path)); i++) await unmount(path)
}

/** Detaches a mount whose filesystem is gone (a FUSE server that died: ENOTCONN). */
export async function lazyUnmount(path: string): Promise<void> {
  await exec('umount', ['-l', resolve(path)])
}

export { unmount }
