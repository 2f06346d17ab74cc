// The serving process of `zos flist mount --daemon`: this command again without --daemon, detached, its output in
// a log file and a pipe on fd 3 for its `ready` line (flist/ready.ts). Its own module, loading nothing else, so
// that cli/prestart.ts can start it before commander and the command modules load: the serving process's Node
// start-up (100-150 ms here) then overlaps the caller's, which comes off every cold start.
// A local flist file is also opened here and handed to the serving process (fd 4); this process then runs the
// flist's checks on it (150-190 ms for a 5,000-file image) while the other one starts, and sends the verdict on
// a pipe (fd 5; protocol in flist/ready.ts). The checks were the largest step of the serving process's start,
// and this process only waits meanwhile.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, fstatSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { errorMessage, ZosError } from '../core/errors.js'
import { FLIST_FD_ENV, formatVerdict, readyPipeOptions, VERDICT_FD_ENV } from '../flist/ready.js'

export interface MountDaemon {
  child: ChildProcess
  logFile: string
}

/** An open regular file at `path`, or undefined (a hub:// reference, a missing file: the serving process says so). */
function openFlist(path: string | undefined): number | undefined {
  if (path === undefined) return undefined
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    if (fstatSync(fd).isFile()) return fd
  } catch {
    // not a local file
  }
  if (fd !== undefined) closeSync(fd)
  return undefined
}

/**
 * Starts the serving process for this process's own `flist mount … --daemon` arguments. With `check`, the flist
 * file it names is handed over open and checked here (see checkForDaemon).
 */
export function startMountDaemon(check?: { flist: string }): MountDaemon & { checking?: { fd: number; path: string; verdict: Writable } } {
  const logFile = join(tmpdir(), `zos-mount-${process.pid}.log`)
  const log = openSync(logFile, 'w')
  const fd = openFlist(check?.flist)
  try {
    const args = process.argv.slice(1).filter((a) => a !== '--daemon')
    const { stdio, env } = readyPipeOptions(log)
    if (fd === undefined) return { child: spawn(process.execPath, args, { detached: true, stdio, env }), logFile }
    const child = spawn(process.execPath, args, { detached: true, stdio: [...stdio, fd, 'pipe'], env: { ...env, [FLIST_FD_ENV]: '4', [VERDICT_FD_ENV]: '5' } })
    return { child, logFile, checking: { fd, path: check!.flist, verdict: (child.stdio as unknown as Writable[])[5]! } }
  } finally {
    closeSync(log)
  }
}

/** Runs the flist's checks on the file handed to the serving process and sends it the verdict. */
async function checkForDaemon(checking: { fd: number; path: string; verdict: Writable }): Promise<void> {
  const { fd, path, verdict } = checking
  const here = `/proc/self/fd/${fd}`
  let line: string
  try {
    const { FlistReader } = await import('../flist/reader.js')
    const reader = FlistReader.open(here, { name: path })
    line = formatVerdict({ root: reader.root })
    reader.close()
  } catch (err) {
    line = formatVerdict({ code: ZosError.is(err) ? err.code : 'FLIST_CORRUPT', message: errorMessage(err) })
  } finally {
    closeSync(fd)
  }
  verdict.on('error', () => {}) // the serving process is gone: its exit says why
  verdict.end(line)
}

let early: MountDaemon | undefined

/**
 * Starts the serving process now, for a takeMountDaemon to come, and (given `check`) checks the flist for it.
 * Should the command turn out not to be a daemon mount after all (commander refuses the arguments, --help, a
 * guess gone wrong), the process is stopped when this one exits, so that nothing mounts that the user did not
 * ask for, and its log (which only repeats this command's own error) is removed.
 */
export async function prestartMountDaemon(check?: { flist: string }): Promise<void> {
  if (early) return
  const started = startMountDaemon(check)
  early = started
  const { child, logFile } = started
  process.once('exit', () => {
    if (early?.child !== child) return
    if (child.exitCode === null) child.kill('SIGTERM')
    rmSync(logFile, { force: true })
  })
  if (started.checking) await checkForDaemon(started.checking)
}

/** The serving process prestartMountDaemon started, or a new one (which checks the flist itself). */
export function takeMountDaemon(): MountDaemon {
  const d = early ?? startMountDaemon()
  early = undefined
  return d
}
