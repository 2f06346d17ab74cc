// The serving process of `zos flist mount --daemon`: this command again without --daemon, detached, its output in
// a log file and a pipe on fd 3 for its `ready` line (flist/ready.ts). Its own module, loading nothing else, so
// that cli/prestart.ts can start it before commander and the command modules load: the serving process's Node
// start-up (100-150 ms here) then overlaps the caller's, which comes off every cold start.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readyPipeOptions } from '../flist/ready.js'

export interface MountDaemon {
  child: ChildProcess
  logFile: string
}

/** Starts the serving process for this process's own `flist mount … --daemon` arguments. */
export function startMountDaemon(): MountDaemon {
  const logFile = join(tmpdir(), `zos-mount-${process.pid}.log`)
  const log = openSync(logFile, 'w')
  try {
    const args = process.argv.slice(1).filter((a) => a !== '--daemon')
    return { child: spawn(process.execPath, args, { detached: true, ...readyPipeOptions(log) }), logFile }
  } finally {
    closeSync(log)
  }
}

let early: MountDaemon | undefined

/**
 * Starts the serving process now, for a takeMountDaemon to come. Should the command turn out not to be a
 * daemon mount after all (commander refuses the arguments, --help, a guess gone wrong), the process is stopped
 * when this one exits, so that nothing mounts that the user did not ask for.
 */
export function prestartMountDaemon(): void {
  if (early) return
  early = startMountDaemon()
  const { child } = early
  process.once('exit', () => {
    if (early?.child === child && child.exitCode === null) child.kill('SIGTERM')
  })
}

/** The serving process prestartMountDaemon started, or a new one. */
export function takeMountDaemon(): MountDaemon {
  const d = early ?? startMountDaemon()
  early = undefined
  return d
}
