// The embedded ledger behind `zos ledger up`: anvil on loopback (an internal port, --no-mining) with its state
// in DATA/state.json (dumped every few seconds and at exit), the miner proxy (miner-proxy.ts) on the public
// port, the contracts deployed on first start, the address book in DATA/addressbook.json and the development
// accounts' keys in DATA/keys/. A restart loads the state and keeps the address book; nothing is redeployed.
//
// The process that calls startLedger supervises anvil and records both pids in DATA/ledger.pid.json. With
// `detached`, a daemon process (daemon.ts) is the supervisor, so the ledger outlives the command that started it;
// `stopDetachedLedger` stops it by its recorded pid.
import { spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { privateKeyToAccount } from 'viem/accounts'
import { keyFromPrivate, saveKey } from '../core/keys.js'
import { ZosError, zerr } from '../core/errors.js'
import { ABI_HASH } from './abi.js'
import { addressBookPath, readAddressBook, writeAddressBook } from './addressbook.js'
import { DEV_CHAIN_ID, isOurAnvil, startAnvil } from './anvil.js'
import { EvmLedger } from './client.js'
import { DEV_ROLES, deployGrid, devPrivateKey } from './deploy.js'
import { startMinerProxy, type MinerProxy } from './miner-proxy.js'
import type { Address, AddressBookData } from './types.js'

export interface LedgerServerOptions {
  dataDir: string
  /** Public JSON-RPC port on `host`; 0 picks a free one (default 8545). */
  port?: number
  host?: string
  /** Seconds between state dumps (default 2). */
  stateInterval?: number
  /** Run under a daemon process that outlives the caller (`zos ledger down` stops it). */
  detached?: boolean
  /** Delete the state and address book first (a new, empty ledger). */
  reset?: boolean
  /** Council threshold of the development council (accounts 1..3; default 2). */
  councilThreshold?: number
  gracePeriodSeconds?: number
}

export interface LedgerServer {
  /** The public JSON-RPC URL (the miner proxy). */
  readonly url: string
  /** The supervising process: this one, or the daemon when detached. */
  readonly pid: number
  readonly anvilPid: number
  readonly dataDir: string
  readonly addressBook: AddressBookData
  readonly addressBookFile: string
  /** True when this start deployed the contracts (first start or --reset). */
  readonly deployed: boolean
  /** Stops the ledger (anvil dumps its state first). Idempotent. */
  stop(): Promise<void>
  /** Resolves when anvil (or, detached, the daemon) has exited. */
  readonly exited: Promise<unknown>
}

export const STATE_FILE = 'state.json'
export const PID_FILE = 'ledger.pid.json'

/** DATA/ledger.pid.json: who supervises the ledger of a data dir. */
export interface PidRecord {
  /** Supervisor (the `zos ledger up` process or the daemon). */
  pid: number
  anvilPid: number
  url: string
  stateFile: string
  deployed: boolean
  startedAt: string
}

export function stateFileOf(dataDir: string): string {
  return join(dataDir, STATE_FILE)
}

export async function readPidRecord(dataDir: string): Promise<PidRecord | null> {
  try {
    const rec = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as PidRecord
    return Number.isInteger(rec.pid) && rec.pid > 0 && Number.isInteger(rec.anvilPid) ? rec : null
  } catch {
    return null
  }
}

/** True when `pid` is a live node process (the supervisor kind), judged from /proc where it exists. */
export function isLiveSupervisor(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  if (process.platform !== 'linux') return true
  try {
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? ''
    return basename(argv0).startsWith(basename(process.execPath)) || basename(argv0).startsWith('node')
  } catch {
    return false
  }
}

async function waitGone(alive: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) return true
    await sleep(50)
  }
  return !alive()
}

/** Stops an anvil left behind by a supervisor that died (it still writes our state file). */
async function reapOrphan(rec: PidRecord): Promise<void> {
  if (!isOurAnvil(rec.anvilPid, rec.stateFile)) return
  process.kill(rec.anvilPid, 'SIGTERM')
  if (!(await waitGone(() => isOurAnvil(rec.anvilPid, rec.stateFile), 15_000))) process.kill(rec.anvilPid, 'SIGKILL')
}

export async function startLedger(opts: LedgerServerOptions): Promise<LedgerServer> {
  if (opts.detached) return startDetached(opts)
  const dataDir = opts.dataDir
  const stateFile = stateFileOf(dataDir)
  await mkdir(dataDir, { recursive: true })
  const running = await readPidRecord(dataDir)
  if (running && running.pid !== process.pid && isLiveSupervisor(running.pid)) {
    throw zerr('EXISTS', `a ledger is already running for ${dataDir} at ${running.url} (pid ${running.pid}); stop it first (\`zos ledger down --data ${dataDir}\` or Ctrl-C)`)
  }
  if (running) await reapOrphan(running)
  if (opts.reset) {
    for (const f of [STATE_FILE, 'addressbook.json', PID_FILE]) await rm(join(dataDir, f), { force: true })
  }
  const stateInterval = opts.stateInterval ?? 2
  const anvil = await startAnvil({
    host: '127.0.0.1',
    port: 0,
    stateFile,
    stateInterval,
    chainId: DEV_CHAIN_ID,
    logFile: join(dataDir, 'anvil.log'),
    mining: 'manual',
  })
  let proxy: MinerProxy | undefined
  try {
    proxy = await startMinerProxy({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8545, upstream: anvil.url })
    const { book, deployed } = await ensureDeployed(proxy.url, opts, stateFile, stateInterval)
    const file = await writeAddressBook(dataDir, book)
    const rec: PidRecord = { pid: process.pid, anvilPid: anvil.pid, url: proxy.url, stateFile, deployed, startedAt: new Date().toISOString() }
    await writeFile(join(dataDir, PID_FILE), JSON.stringify(rec, null, 2) + '\n')
    let stopping: Promise<void> | undefined
    const px = proxy
    return {
      url: proxy.url,
      pid: process.pid,
      anvilPid: anvil.pid,
      dataDir,
      addressBook: book,
      addressBookFile: file,
      deployed,
      exited: anvil.exited,
      stop: () => {
        stopping ??= (async () => {
          await px.close()
          await anvil.stop()
          const now = await readPidRecord(dataDir)
          if (now?.pid === process.pid && now.anvilPid === anvil.pid) await unlink(join(dataDir, PID_FILE)).catch(() => undefined)
        })()
        return stopping
      },
    }
  } catch (err) {
    await proxy?.close()
    await anvil.stop()
    throw err
  }
}

async function ensureDeployed(
  url: string,
  opts: LedgerServerOptions,
  stateFile: string,
  stateInterval: number,
): Promise<{ book: AddressBookData; deployed: boolean }> {
  let existing: AddressBookData | null = null
  try {
    existing = await readAddressBook(opts.dataDir)
  } catch (err) {
    if (!(ZosError.is(err) && err.code === 'NOT_FOUND')) throw err
  }
  if (existing) {
    const book = { ...existing, rpcUrl: url }
    if (book.abiHash !== ABI_HASH) {
      throw zerr(
        'LEDGER_MISMATCH',
        `the ledger in ${opts.dataDir} was deployed from other contracts than this zos build; start a new one with \`zos ledger up --reset\` (its state is lost)`,
      )
    }
    try {
      await new EvmLedger({ addressBook: book }).verify()
    } catch (err) {
      if (ZosError.is(err) && err.code === 'LEDGER_MISMATCH') {
        throw zerr(
          'LEDGER_MISMATCH',
          `${addressBookPath(opts.dataDir)} names contracts that ${stateFile} does not hold (state lost or replaced); start a new ledger with \`zos ledger up --reset\``,
        )
      }
      throw err
    }
    return { book, deployed: false }
  }
  const dev = (i: number): Address => privateKeyToAccount(devPrivateKey(i)).address
  const deployedAt = Date.now()
  const book = await deployGrid({
    rpcUrl: url,
    deployerKey: devPrivateKey(DEV_ROLES.deployer),
    network: 'dev',
    council: { members: DEV_ROLES.council.map(dev), threshold: opts.councilThreshold ?? 2 },
    foundation: dev(DEV_ROLES.foundation),
    sales: dev(DEV_ROLES.sales),
    stakingPool: dev(DEV_ROLES.stakingPool),
    faucet: true,
    gasFree: true,
    gracePeriodSeconds: opts.gracePeriodSeconds,
  })
  await writeDevKeys(opts.dataDir)
  await waitForDump(stateFile, deployedAt, (stateInterval + 5) * 1000)
  return { book, deployed: true }
}

/** The development accounts' keys (public knowledge: anvil's mnemonic), for `--key DATA/keys/council-1.json`. */
async function writeDevKeys(dataDir: string): Promise<void> {
  const dir = join(dataDir, 'keys')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const names: [string, number][] = [
    ['deployer', DEV_ROLES.deployer],
    ...DEV_ROLES.council.map((i, k): [string, number] => [`council-${k + 1}`, i]),
    ['foundation', DEV_ROLES.foundation],
    ['sales', DEV_ROLES.sales],
    ['staking-pool', DEV_ROLES.stakingPool],
  ]
  for (const [name, index] of names) {
    const key = keyFromPrivate(Buffer.from(devPrivateKey(index).slice(2), 'hex'))
    await saveKey(join(dir, `${name}.json`), key, { overwrite: true })
  }
}

/** Waits until anvil has dumped its state after `since`, so the address book never names undumped contracts. */
async function waitForDump(stateFile: string, since: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const m = await stat(stateFile).then((s) => s.mtimeMs, () => 0)
    if (m > since) return
    await sleep(100)
  }
  throw zerr('TIMEOUT', `anvil did not write its state file ${stateFile} within ${timeoutMs} ms after the deploy`)
}

// ---- detached: a daemon supervises ----

/** Node flags that load TypeScript (tsx) or other loaders, passed on to the daemon; test-runner flags are not. */
function loaderArgs(): string[] {
  const out: string[] = []
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (['--import', '--require', '-r', '--loader', '--experimental-loader'].includes(a) && argv[i + 1]) out.push(a, argv[++i]!)
    else if (/^--(import|require|loader|experimental-loader)=/.test(a)) out.push(a)
  }
  return out
}

async function startDetached(opts: LedgerServerOptions): Promise<LedgerServer> {
  const dataDir = opts.dataDir
  await mkdir(dataDir, { recursive: true })
  const running = await readPidRecord(dataDir)
  if (running && isLiveSupervisor(running.pid)) {
    throw zerr('EXISTS', `a ledger is already running for ${dataDir} at ${running.url} (pid ${running.pid}); stop it with \`zos ledger down --data ${dataDir}\``)
  }
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js'
  const daemon = fileURLToPath(new URL(`./daemon.${ext}`, import.meta.url))
  const logFile = join(dataDir, 'ledger.log')
  const fd = openSync(logFile, 'a', 0o644)
  const { detached: _d, ...rest } = opts
  let child
  try {
    child = spawn(process.execPath, [...loaderArgs(), daemon, JSON.stringify(rest)], { detached: true, stdio: ['ignore', fd, fd] })
  } finally {
    closeSync(fd)
  }
  const pid = child.pid
  if (pid === undefined) throw zerr('INTERNAL', 'could not start the ledger daemon: no pid')
  let exitCode: number | null | undefined
  child.once('exit', (code) => {
    exitCode = code
  })
  child.unref()
  const deadline = Date.now() + 120_000 // a first start on a clean checkout compiles the contracts
  for (;;) {
    const rec = await readPidRecord(dataDir)
    if (rec && rec.pid === pid) {
      const book = await readAddressBook(dataDir)
      const exited = (async () => {
        while (isLiveSupervisor(pid)) await sleep(500, undefined, { ref: false })
      })()
      return {
        url: rec.url,
        pid,
        anvilPid: rec.anvilPid,
        dataDir,
        addressBook: book,
        addressBookFile: addressBookPath(dataDir),
        deployed: rec.deployed,
        exited,
        stop: async () => {
          await stopDetachedLedger(dataDir)
        },
      }
    }
    if (exitCode !== undefined) {
      const log = await readFile(logFile, 'utf8').catch(() => '')
      throw zerr('LEDGER_UNAVAILABLE', `the ledger daemon exited (code ${exitCode}) before it was up; ${logFile} ends with:\n${log.trimEnd().split('\n').slice(-10).join('\n')}`)
    }
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGTERM')
      throw zerr('TIMEOUT', `the ledger daemon did not come up within 120 s; see ${logFile}`)
    }
    await sleep(100)
  }
}

/** Stops the ledger of `dataDir` by its recorded pids; false when none is running. */
export async function stopDetachedLedger(dataDir: string, timeoutMs = 20_000): Promise<boolean> {
  const rec = await readPidRecord(dataDir)
  if (!rec) return false
  let stopped = false
  if (rec.pid !== process.pid && isLiveSupervisor(rec.pid)) {
    process.kill(rec.pid, 'SIGTERM')
    if (!(await waitGone(() => isLiveSupervisor(rec.pid), timeoutMs))) process.kill(rec.pid, 'SIGKILL')
    stopped = true
  }
  if (isOurAnvil(rec.anvilPid, rec.stateFile)) {
    await reapOrphan(rec)
    stopped = true
  }
  const now = await readPidRecord(dataDir)
  if (now && now.pid === rec.pid) await unlink(join(dataDir, PID_FILE)).catch(() => undefined)
  return stopped
}
