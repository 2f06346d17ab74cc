// The grid's daemons (relay, hub, node agents) run as detached `zos` processes that outlive `zos grid up`. Each
// is recorded by pid *and* kernel start time, so `zos grid down` stops exactly the processes the grid started,
// never an unrelated process that reused a pid.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { open, readFile, rm } from 'node:fs/promises'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { zerr } from '../core/errors.js'

export interface ProcRecord {
  pid: number
  /** Field 22 of /proc/PID/stat: clock ticks after boot when the process started. */
  startTime: number
  /** Where its stdout and stderr go. */
  log: string
}

const ext = extname(fileURLToPath(import.meta.url))
/** The zos CLI entry point of this build (src/*.ts under tsx, dist/*.js compiled). */
export const CLI_ENTRY = fileURLToPath(new URL(`../cli/main${ext}`, import.meta.url))
const NODE_ARGS = ext === '.ts' ? ['--import', 'tsx'] : []

/** Fields 3.. of /proc/PID/stat (state first), or undefined when there is no such process. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** Field 22 of /proc/PID/stat: clock ticks after boot when the process started. */
export function startTimeOf(pid: number): number | undefined {
  const f = statFields(pid)
  return f ? Number(f[19]) : undefined
}

/** The process is alive and is the one recorded (not a pid reused since, nor a zombie). */
export function isAlive(rec: ProcRecord | undefined): rec is ProcRecord {
  if (!rec) return false
  const f = statFields(rec.pid)
  return f !== undefined && Number(f[19]) === rec.startTime && f[0] !== 'Z'
}

/**
 * Starts `zos ARGS` detached, stderr appended to `log` (and stdout too, unless `out` names a file of its own);
 * `prefix` runs it under another command first (nsenter).
 */
export function spawnZos(args: readonly string[], log: string, prefix: readonly string[] = [], out?: string): ProcRecord {
  const fd = openSync(log, 'a')
  const outFd = out ? openSync(out, 'w') : fd
  try {
    const argv = [...prefix, process.execPath, ...NODE_ARGS, CLI_ENTRY, ...args]
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', outFd, fd], env: { ...process.env, ZOS_GRID_CHILD: '1' } })
    if (child.pid === undefined) throw zerr('INTERNAL', `could not start ${argv.join(' ')}`)
    child.unref()
    const startTime = startTimeOf(child.pid)
    if (startTime === undefined) throw zerr('RUNTIME_FAILED', `zos ${args[0]} ${args[1] ?? ''} exited at once; see ${log}`)
    return { pid: child.pid, startTime, log }
  } finally {
    closeSync(fd)
    if (outFd !== fd) closeSync(outFd)
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. True when it was running. */
export async function stopProc(rec: ProcRecord | undefined, graceMs = 20_000): Promise<boolean> {
  if (!isAlive(rec)) return false
  process.kill(rec.pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (isAlive(rec)) {
    if (Date.now() > deadline) {
      process.kill(rec.pid, 'SIGKILL')
      while (isAlive(rec)) await sleep(20)
      break
    }
    await sleep(50)
  }
  return true
}

/** Polls `ready` until it yields a value; fails early (quoting the log) when the process dies. */
export async function waitReady<T>(rec: ProcRecord, what: string, ready: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  const log = rec.log
  for (;;) {
    const v = await ready().catch(() => undefined)
    if (v !== undefined) return v
    if (!isAlive(rec)) throw zerr('RUNTIME_FAILED', `${what} exited while starting: ${await tail(log)}`)
    if (Date.now() > deadline) throw zerr('TIMEOUT', `${what} did not come up in ${Math.round(timeoutMs / 1000)} s: ${await tail(log)}`)
    await sleep(100)
  }
}

export async function tail(file: string, bytes = 1500): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.slice(-bytes).trim() || `(nothing in ${file})`
}

/**
 * Runs `fn` holding DIR/.lock, so two `zos grid up|down` on one grid never interleave. A lock whose holder is
 * gone (a killed run) is taken over.
 */
export async function withGridLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const file = `${dir}/.lock`
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(file, 'wx')
      await fh.writeFile(JSON.stringify({ pid: process.pid, startTime: startTimeOf(process.pid) ?? 0, log: '' }))
      await fh.close()
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      const holder = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as ProcRecord
      if (isAlive(holder)) throw zerr('EXISTS', `another \`zos grid\` command (pid ${holder.pid}) is working on ${dir}; wait for it to finish`)
      await rm(file, { force: true })
    }
  }
  try {
    return await fn()
  } finally {
    await rm(file, { force: true })
  }
}
