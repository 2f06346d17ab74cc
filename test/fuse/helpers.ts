// Helpers shared by the FUSE tests: run commands without blocking the event loop (the filesystem under test is
// served by this same process), start the mount-child fixture, and register unmounts.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { extname, join } from 'node:path'
import { mkdtemp, chmod, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import type { TestContext } from 'node:test'
import { listMounts, type FuseMount } from '../../src/fuse/index.js'

export interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs a command asynchronously; `timeoutMs` kills it (SIGKILL) if it hangs. */
export function sh(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    child.stdin.on('error', () => {}) // the command may exit without reading its input
    child.stdin.end(opts.input ?? '')
  })
}

/** Like sh, but fails unless the command exits 0; returns stdout. */
export async function ok(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr}`)
  return r.stdout
}

/**
 * A temp dir (mode 0755, so other users can reach mounts inside) whose mounts are unmounted at the end of the test,
 * before the dir is removed: call the returned `track(m)` for each mount.
 */
export async function fuseDir(t: TestContext): Promise<{ dir: string; track: (m: FuseMount) => FuseMount }> {
  const dir = await mkdtemp(join(tmpdir(), 'zos-fuse-'))
  await chmod(dir, 0o755)
  const mounts: FuseMount[] = []
  t.after(async () => {
    await Promise.allSettled(mounts.map((m) => m.unmount()))
    // Anything still mounted under the dir is a leak (e.g. a child's mount): detach it, then fail loudly.
    const left = listMounts().filter((m) => m.mountpoint.startsWith(`${dir}/`))
    for (const m of left.reverse()) await sh('umount', ['-l', m.mountpoint])
    await rm(dir, { recursive: true, force: true })
    if (left.length > 0) throw new Error(`mounts left behind: ${left.map((m) => `${m.mountpoint} (${m.source})`).join(', ')}`)
  })
  return { dir, track: (m) => { mounts.push(m); return m } }
}

/** Spawns test/fuse/mount-child (the .ts under tsx, the compiled .js under dist). */
export function spawnChild(mode: 'hold' | 'signals' | 'try' | 'abandon', mountpoint: string, prefix: string[] = []): ChildProcess {
  const ext = extname(fileURLToPath(import.meta.url))
  const script = fileURLToPath(new URL(`./mount-child${ext}`, import.meta.url))
  const nodeArgs = ext === '.ts' ? ['--import', 'tsx', script] : [script]
  const argv = [...prefix, process.execPath, ...nodeArgs, mode, mountpoint]
  return spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** The first JSON line the child prints, and everything it wrote to stderr so far. */
export function childLine(child: ChildProcess, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => reject(new Error(`child printed nothing in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs)
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d })
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const nl = out.indexOf('\n')
      if (nl >= 0) {
        clearTimeout(timer)
        try { resolve(JSON.parse(out.slice(0, nl)) as Record<string, unknown>) } catch (e) { reject(e) }
      }
    })
    child.on('exit', (code) => {
      if (!out.includes('\n')) { clearTimeout(timer); reject(new Error(`child exited ${code} before printing; stderr: ${err}`)) }
    })
  })
}

/** Waits for a child to exit; returns its exit code or signal. */
export function waitExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
}
