// The "ready" handshake of a mount served by a child process (`zos flist mount --daemon`, the node's mount
// helper): the parent passes a pipe as fd 3 and waits for the line `ready`, written once the mount serves and its
// flist passed every check. Seeing the mount in the mount table is not enough: it appears while the checks still
// run (they overlap with mount(8)), and a flist that fails them is unmounted again.
import type { ChildProcess } from 'node:child_process'
import { closeSync, writeSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { withMallocTunables } from '../core/malloc.js'
import { deferExtraCaCerts } from '../core/tls.js'

/** Set in the child's environment; the pipe is its fd 3. */
export const READY_FD_ENV = 'ZOS_MOUNT_READY_FD'

/**
 * Spawn options' `stdio` and `env` for a child that reports readiness: a mount's serving process, with malloc
 * tuned for its Buffers (core/malloc.ts) and extra CA certificates read only if it talks TLS (core/tls.ts).
 */
export function readyPipeOptions(out: number): { stdio: ['ignore', number, number, 'pipe']; env: NodeJS.ProcessEnv } {
  return { stdio: ['ignore', out, out, 'pipe'], env: { ...deferExtraCaCerts(withMallocTunables()), [READY_FD_ENV]: '3' } }
}

/** Waits for the child's `ready` line; 'exited' when it ends first, 'timeout' after `timeoutMs`. */
export async function awaitReady(child: ChildProcess, timeoutMs = 30_000): Promise<'ready' | 'exited' | 'timeout'> {
  const pipe = child.stdio[3] as Readable
  // A child started early (cli/mount-daemon.ts) may have ended before anyone listened for its exit.
  const ended = child.exitCode !== null || child.signalCode !== null
  const outcome = await new Promise<'ready' | 'exited' | 'timeout'>((resolve) => {
    let said = ''
    const timer = setTimeout(() => resolve('timeout'), timeoutMs)
    const done = (o: 'ready' | 'exited' | 'timeout'): void => {
      clearTimeout(timer)
      resolve(o)
    }
    pipe.setEncoding('utf8')
    pipe.on('data', (d: string) => {
      said += d
      if (said.includes('ready\n')) done('ready')
    })
    pipe.on('error', () => {})
    if (ended) setImmediate(() => done('exited'))
    child.on('exit', () => done('exited'))
    child.on('error', () => done('exited'))
  })
  pipe.destroy()
  return outcome
}

/** In the child: tells a waiting parent (if any) that the mount serves; once, then the pipe is closed. */
export function reportReady(): void {
  if (process.env[READY_FD_ENV] !== '3') return
  delete process.env[READY_FD_ENV]
  try {
    writeSync(3, 'ready\n')
    closeSync(3)
  } catch {
    // the parent stopped waiting
  }
}
