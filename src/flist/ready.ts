// The "ready" handshake of a mount served by a child process (`zos flist mount --daemon`, the node's mount
// helper): the parent passes a pipe as fd 3 and waits for the line `ready`, written once the mount serves and its
// flist passed every check. Seeing the mount in the mount table is not enough: it appears while the checks still
// run (they overlap with mount(8)), and a flist that fails them is unmounted again.
import type { ChildProcess } from 'node:child_process'
import { closeSync, createReadStream, writeSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { ERROR_CODES, errorMessage, zerr, ZosError, type ErrorCode } from '../core/errors.js'
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

export interface ReadyOutcome {
  state: 'ready' | 'exited' | 'timeout'
  /** Why the child failed, when it said so before exiting (reportFailure). */
  failure?: ZosError
}

/** Waits for the child's `ready` line; 'exited' when it ends first, 'timeout' after `timeoutMs`. */
export async function awaitReady(child: ChildProcess, timeoutMs = 30_000): Promise<ReadyOutcome> {
  const pipe = child.stdio[3] as Readable
  // A child started early (cli/mount-daemon.ts) may have ended before anyone listened for its exit.
  const ended = child.exitCode !== null || child.signalCode !== null
  let said = ''
  const state = await new Promise<ReadyOutcome['state']>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs)
    const done = (o: ReadyOutcome['state']): void => {
      clearTimeout(timer)
      resolve(o)
    }
    pipe.setEncoding('utf8')
    pipe.on('data', (d: string) => {
      said += d
      if (said.includes('ready\n')) done('ready')
    })
    pipe.on('error', () => {})
    // The exit can come before the last words on the pipe: the pipe's end is what counts (or the exit, should
    // a grandchild still hold the pipe open).
    const exited = (): void => void setTimeout(() => done('exited'), 200).unref()
    pipe.on('close', () => {
      if (child.exitCode !== null || child.signalCode !== null) done('exited')
    })
    if (ended) setImmediate(exited)
    child.on('exit', exited)
    child.on('error', () => done('exited'))
  })
  pipe.destroy()
  if (state !== 'exited') return { state }
  const failed = said.split('\n').find((l) => l.startsWith('fail '))
  if (failed === undefined) return { state }
  try {
    parseVerdict(failed)
  } catch (err) {
    if (ZosError.is(err)) return { state, failure: err }
  }
  return { state }
}

/**
 * In the child: tells a waiting parent (if any) why it failed, before it exits: a verdict line for the CLI's
 * `--daemon`, or for the launcher (bin/zos) the command's whole output and exit code (`printed`).
 */
export function reportFailure(err: unknown, printed: { stdout: string; stderr: string; exitCode: number }): void {
  if (process.env[READY_FD_ENV] !== '3') return
  const launched = process.env[LAUNCHER_ENV] !== undefined
  answer(launched ? launcherAnswer(`fail ${printed.exitCode}`, printed.stdout, printed.stderr) : formatVerdict(ZosError.is(err) ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: errorMessage(err) }))
}

/**
 * In the child: tells a waiting parent (if any) that the mount serves; once, then the pipe is closed. For the
 * launcher, with the output the command prints (`stdout`).
 */
export function reportReady(stdout = ''): void {
  if (process.env[READY_FD_ENV] !== '3') return
  answer(process.env[LAUNCHER_ENV] !== undefined ? launcherAnswer('ok', stdout, '') : 'ready\n')
}

function answer(text: string): void {
  delete process.env[READY_FD_ENV]
  try {
    writeSync(3, text)
    closeSync(3)
  } catch {
    // the parent stopped waiting
  }
}

// The launcher (bin/zos) starts the serving process of `zos flist mount … --daemon` itself, sparing a second
// Node.js start on the workload's start path (about 100 ms of a cold start: docs/flist-mount.md). It sets
// LAUNCHER_ENV to the log file it gave the process, keeps --daemon in the arguments, and reads fd 3: a status
// line (`ok`, `fail EXIT_CODE`, or `redo` for a command that is not a daemon mount after all, which it then runs
// as usual), then what the command prints, a line each, `1` + text for stdout and `2` + text for stderr.
const LAUNCHER_ENV = 'ZOS_MOUNT_LAUNCHER'

function launcherAnswer(status: string, stdout: string, stderr: string): string {
  const lines = (text: string, stream: string): string[] => (text === '' ? [] : text.replace(/\n$/, '').split('\n').map((l) => stream + l))
  return [status, ...lines(stdout, '1'), ...lines(stderr, '2')].join('\n') + '\n'
}

/** In a process the launcher started for a command that is not a daemon mount: hands the command back. */
export function redoWithoutLauncher(): never {
  answer('redo\n')
  process.exit(0)
}

// The caller's verdict. `zos flist mount FILE … --daemon` opens FILE itself and hands the open file to its serving
// process as fd 4 (FLIST_FD_ENV), then runs the flist's checks on it while that process starts, and writes the
// outcome on the pipe at fd 5 (VERDICT_FD_ENV): `ok <root hex>` or `fail <{"code","message"} JSON>`, one line.
// The serving process mounts meanwhile and answers no request before an `ok` for the root its own file is sealed
// with; anything else (a failure, the caller gone before it said anything) fails the mount. Both processes read
// the same open file, so what was checked is what is served.

export const FLIST_FD_ENV = 'ZOS_MOUNT_FLIST_FD'
export const VERDICT_FD_ENV = 'ZOS_MOUNT_VERDICT_FD'

/** The verdict line for a check that passed with `root`, or failed with `err`. */
export function formatVerdict(outcome: { root: Buffer } | { code: string; message: string }): string {
  return 'root' in outcome ? `ok ${outcome.root.toString('hex')}\n` : `fail ${JSON.stringify({ code: outcome.code, message: outcome.message })}\n`
}

/** The root a verdict line vouches for; a ZosError for a failure or anything that is not a verdict. */
export function parseVerdict(text: string): Buffer {
  const line = text.split('\n')[0] ?? ''
  const ok = /^ok ([0-9a-f]{64})$/.exec(line)
  if (ok) return Buffer.from(ok[1]!, 'hex')
  if (line.startsWith('fail ')) {
    let failure: { code?: unknown; message?: unknown } = {}
    try {
      failure = JSON.parse(line.slice(5)) as typeof failure
    } catch {
      // reported as a malformed verdict below
    }
    if (typeof failure.message === 'string') {
      const code = typeof failure.code === 'string' && Object.hasOwn(ERROR_CODES, failure.code) ? (failure.code as ErrorCode) : 'FLIST_CORRUPT'
      return fail(code, failure.message)
    }
  }
  return fail('MOUNT_FAILED', line === '' ? 'the command that started this mount ended before it had checked the flist' : 'the check of the flist ended with a malformed verdict')
}

function fail(code: ErrorCode, message: string): never {
  throw zerr(code, message)
}

/** In the serving process: the caller's verdict from `fd`, once it has been written (or the pipe closed). */
export function readVerdict(fd: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let text = ''
    const stream = createReadStream('', { fd, encoding: 'utf8' })
    stream.on('data', (d) => (text += d))
    stream.on('error', reject)
    stream.on('end', () => {
      try {
        resolve(parseVerdict(text))
      } catch (err) {
        reject(err)
      }
    })
  })
}
