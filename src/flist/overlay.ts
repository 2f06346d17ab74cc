// Writable roots: an overlayfs whose lower layer is a read-only flist mount and whose upper and work
// directories live on local disk, as a node does for each workload. Writes land in `upper`; the flist is
// never modified and can be shared by any number of roots.
import { spawn } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { zerr } from '../core/errors.js'
import { FLIST_SUBTYPE } from './mount-options.js'

export interface OverlayPaths {
  lower: string
  upper: string
  work: string
  target: string
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', (err) => done({ code: -1, stderr: err.message }))
    child.on('close', (code) => done({ code: code ?? -1, stderr: stderr.trim() }))
  })
}

function checkOptionPath(p: string, what: string): void {
  // overlayfs takes its directories inside a comma-separated option string.
  if (/[,:\\\n]/.test(p)) throw zerr('INVALID_ARGUMENT', `the ${what} directory ${p} contains a character overlayfs cannot take (, : \\ or newline)`)
}

export async function mountOverlay(paths: OverlayPaths): Promise<void> {
  const p = { lower: resolve(paths.lower), upper: resolve(paths.upper), work: resolve(paths.work), target: resolve(paths.target) }
  for (const [k, v] of Object.entries(p)) checkOptionPath(v, k)
  await mkdir(p.upper, { recursive: true })
  await mkdir(p.work, { recursive: true })
  await mkdir(p.target, { recursive: true })
  const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${p.lower},upperdir=${p.upper},workdir=${p.work}`, p.target])
  if (r.code !== 0) throw zerr('PERMISSION', `cannot mount the overlay on ${p.target}: ${r.stderr || 'mount failed'} (needs root)`)
}

export interface MountEntry {
  mountpoint: string
  fstype: string
  source: string
  superOptions: string
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
}

/** The topmost mount at `path` in this mount namespace, with its filesystem options. */
export async function findMount(path: string): Promise<MountEntry | undefined> {
  const target = resolve(path)
  let found: MountEntry | undefined
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (dash < 0) continue
    const entry = { mountpoint: unescape(f[4] ?? ''), fstype: f[dash + 1] ?? '', source: unescape(f[dash + 2] ?? ''), superOptions: f[dash + 3] ?? '' }
    if (entry.mountpoint === target) found = entry
  }
  return found
}

export async function unmount(path: string): Promise<void> {
  const r = await run('umount', [resolve(path)])
  if (r.code === 0) return
  // Busy (a process still has files open): detach now, the kernel finishes when they close.
  const lazy = await run('umount', ['-l', resolve(path)])
  if (lazy.code !== 0) throw zerr('PERMISSION', `cannot unmount ${path}: ${r.stderr || lazy.stderr}`)
}

/**
 * Unmounts a root made by mountFlist (+ mountOverlay): the overlay first, then the flist mount below it, which
 * ends the FUSE session of whichever process serves it.
 */
export async function unmountRoot(path: string): Promise<{ unmounted: string[] }> {
  const top = await findMount(path)
  if (!top) throw zerr('NOT_FOUND', `nothing is mounted at ${path}`)
  const unmounted: string[] = []
  if (top.fstype === 'overlay') {
    const lower = /(?:^|,)lowerdir=([^,]+)/.exec(top.superOptions)?.[1]
    await unmount(top.mountpoint)
    unmounted.push(top.mountpoint)
    const below = lower ? await findMount(lower) : undefined
    if (below && below.fstype === `fuse.${FLIST_SUBTYPE}`) {
      await unmount(below.mountpoint)
      unmounted.push(below.mountpoint)
    }
    return { unmounted }
  }
  if (!top.fstype.startsWith('fuse.')) throw zerr('INVALID_ARGUMENT', `${path} is a ${top.fstype} mount, not an flist or an overlay on one`)
  await unmount(top.mountpoint)
  unmounted.push(top.mountpoint)
  return { unmounted }
}
