// The embedded EVM: anvil from the npm package @foundry-rs/anvil (its platform package carries the binary).
// It listens on loopback, keeps the chain in memory and persists it with `--state FILE` (loaded at start,
// dumped at exit) and `--state-interval` (periodic dumps, so a crash loses at most that many seconds).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs'
import { readFile, rename, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { zerr } from '../core/errors.js'

export const DEV_CHAIN_ID = 31337

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
  'win32-x64': '@foundry-rs/anvil-win32-amd64',
}

/** Path of the anvil binary shipped in the platform package of @foundry-rs/anvil. */
export function anvilBinary(): string {
  const key = `${process.platform}-${process.arch}`
  const pkg = PLATFORM_PACKAGES[key]
  if (!pkg) throw zerr('UNSUPPORTED', `@foundry-rs/anvil has no binary for ${key}`)
  const require = createRequire(import.meta.url)
  let pkgJson: string
  try {
    pkgJson = require.resolve(`${pkg}/package.json`)
  } catch (err) {
    throw zerr('NOT_FOUND', `the anvil binary package ${pkg} is not installed: run \`npm install\` in the zos checkout`, {}, err)
  }
  const bin = join(dirname(pkgJson), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil')
  if (!existsSync(bin)) throw zerr('NOT_FOUND', `${pkg} has no bin/anvil; reinstall it with \`npm install\``)
  return bin
}

export interface AnvilOptions {
  /** Loopback by default. */
  host?: string
  /** 0 lets anvil pick a free port. */
  port: number
  /** State file loaded at start (when present) and dumped at exit and every `stateInterval` seconds. */
  stateFile?: string
  stateInterval?: number
  chainId?: number
  /** anvil's stdout and stderr go here (the previous file is kept as LOG.1). */
  logFile: string
  /** Start in its own session, not killed with this process. */
  detached?: boolean
  /** 'instant' mines a block per transaction; 'manual' leaves mining to evm_mine (the miner proxy). */
  mining?: 'instant' | 'manual'
  /** How long to wait for "Listening on" (default 30 s). */
  startTimeoutMs?: number
}

export interface AnvilProcess {
  readonly pid: number
  readonly url: string
  readonly port: number
  readonly logFile: string
  /** SIGTERM (anvil dumps its state), SIGKILL after `timeoutMs` (default 15 s). Idempotent. */
  stop(timeoutMs?: number): Promise<void>
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>
}

export async function startAnvil(opts: AnvilOptions): Promise<AnvilProcess> {
  const bin = anvilBinary()
  const host = opts.host ?? '127.0.0.1'
  const args = [
    '--host', host,
    '--port', String(opts.port),
    '--chain-id', String(opts.chainId ?? DEV_CHAIN_ID),
    '--base-fee', '0',
    '--gas-price', '0',
    '--accounts', '10',
    '--color', 'never',
    // keep only the last 32 per-block states, in memory: anvil 1.7.1 otherwise keeps (and pages to disk) a copy
    // of the whole state per block, which slows every block as the ledger grows. 32, not 0: a call that resolved
    // "latest" just before a block was mined still finds its state. Logs and receipts are kept regardless.
    '--prune-history', '32',
  ]
  if (opts.mining === 'manual') args.push('--no-mining')
  if (opts.stateFile) {
    args.push('--state', opts.stateFile)
    args.push('--state-interval', String(opts.stateInterval ?? 2))
  }
  if (existsSync(opts.logFile)) await rename(opts.logFile, `${opts.logFile}.1`).catch(() => undefined)
  const fd = openSync(opts.logFile, 'a', 0o644)
  let child: ChildProcess
  try {
    child = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: opts.detached === true })
  } finally {
    closeSync(fd)
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code))
    child.once('error', () => resolve(-1))
  })
  if (opts.detached) child.unref()
  const pid = child.pid
  if (pid === undefined) throw zerr('INTERNAL', `could not start ${bin}: no pid`)
  let stopped: Promise<void> | undefined
  const stop = (timeoutMs = 15_000): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const done = await Promise.race([exited.then(() => true), sleep(timeoutMs, undefined, { ref: false }).then(() => false)])
      if (!done) {
        child.kill('SIGKILL')
        await exited
      }
    })()
    return stopped
  }
  let exitCode: number | null | undefined
  void exited.then((c) => {
    exitCode = c
  })
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000)
  for (;;) {
    const text = await readFile(opts.logFile, 'utf8').catch(() => '')
    const m = /Listening on ([\d.:a-fA-F[\]]+):(\d+)/.exec(text)
    if (m) {
      const port = Number(m[2])
      const urlHost = host.includes(':') ? `[${host}]` : host
      return { pid, url: `http://${urlHost}:${port}`, port, logFile: opts.logFile, stop, exited }
    }
    if (exitCode !== undefined) {
      throw zerr('LEDGER_UNAVAILABLE', `anvil exited (code ${exitCode}) before listening; its log ${opts.logFile} ends with:\n${tail(text)}`)
    }
    if (Date.now() > deadline) {
      await stop(2000)
      throw zerr('TIMEOUT', `anvil did not start listening within ${opts.startTimeoutMs ?? 30_000} ms; see ${opts.logFile}:\n${tail(text)}`)
    }
    await sleep(50)
  }
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/**
 * True when `pid` is alive and is the anvil started for `stateFile` (checked through /proc where it exists),
 * so a stale pid file never makes us signal an unrelated process.
 */
export function isOurAnvil(pid: number, stateFile: string): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  if (process.platform !== 'linux') return true
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    return (cmd[0] ?? '').endsWith('anvil') && cmd.includes(stateFile)
  } catch {
    return false
  }
}

/** Size of the state file, or 0 when anvil has not dumped yet. */
export async function stateSize(stateFile: string): Promise<number> {
  return stat(stateFile).then((s) => s.size, () => 0)
}
