// The node agent (`zos node run`): identity, registration, the engine, primitives and the relay API wired
// together, plus the periodic duties (uptime, usage reports, billing, reconciliation) and the contract watch.
// It opens no listening port: the API is reached through the relay it dials out to.
//
//   start → key → ledger → capacity → twin + node on the ledger → engine (re-provision everything active)
//         → supervisor → relay peer with the API → reconcile with the ledger → watch contract events → timers
import { existsSync, readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { errorMessage } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import { openLedger, type OpenLedgerOptions } from '../ledger/index.js'
import type { Ledger, LedgerEvent } from '../ledger/types.js'
import { connect, ledgerDirectory, type Peer } from '../rmb/index.js'
import { relayUrl } from '../rmb/directory.js'
import type { BackoffOptions } from '../rmb/backoff.js'
import { apiHandlers } from './api.js'
import { LedgerChainView } from './chain.js'
import { Engine } from './engine/engine.js'
import type { NodeCapacity } from './engine/capacity.js'
import { DeploymentStore } from './engine/store.js'
import { exec } from '../core/exec.js'
import { loadOrCreateKey } from './identity.js'
import { SILENT_LOGGER, type NodeLogger } from './log.js'
import { createPrimitives } from './primitives/index.js'
import { discoverCapacity, machineUptime, register, type CapacityOverrides } from './registrar.js'
import { Reporter } from './reporter.js'
import { RuncRuntime } from './runtime/runc.js'
import { Supervisor } from './runtime/supervisor.js'
import { FlistManager } from './storage/flists.js'
import { NodePaths, nodeTag } from './storage/paths.js'

export interface NodeIntervals {
  /** Uptime report period (default 40 min, as Zero-OS). */
  uptimeMs: number
  /** Periodic usage report of every contract (default 1 h). */
  reportMs: number
  /** Billing trigger (default 1 h). */
  billMs: number
  /** Reconciliation with the ledger (default 1 h). */
  reconcileMs: number
  /** Ledger event poll period (default 1 s). */
  pollMs: number
  /** Container liveness checks (default 1 s). */
  superviseMs: number
  /** Registration refresh: twin and node records brought up to date (default 24 h, as Zero-OS). */
  registerMs: number
}

export const DEFAULT_INTERVALS: NodeIntervals = {
  uptimeMs: 40 * 60_000,
  reportMs: 60 * 60_000,
  billMs: 60 * 60_000,
  reconcileMs: 60 * 60_000,
  pollMs: 1000,
  superviseMs: 1000,
  registerMs: 24 * 60 * 60_000,
}

export interface NodeAgentOptions {
  farmId: number
  /** How to reach the ledger (address book dir or data, RPC URL); the key is the node's own. */
  ledger: Omit<OpenLedgerOptions, 'privateKey' | 'keyFile'>
  /** Relay URLs the node dials and publishes on its twin. */
  relays: string[]
  stateDir: string
  /** Store of flist chunks. */
  store?: string
  capacity?: CapacityOverrides
  /** Trusted flist publisher keys; empty accepts any (signed or not). */
  trust?: string[]
  cacheBytes?: number
  intervals?: Partial<NodeIntervals>
  /** Container restart backoff (default 1 s doubling to 60 s). */
  restartBackoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number }
  relayBackoff?: BackoffOptions
  /** Time a stopping container gets between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number
  log?: NodeLogger
}

export interface NodeAgent {
  readonly nodeId: number
  readonly twinId: number
  readonly farmId: number
  readonly key: KeyPair
  readonly tag: string
  readonly paths: NodePaths
  readonly capacity: NodeCapacity
  readonly engine: Engine
  readonly peer: Peer
  readonly ledger: Ledger
  readonly supervisor: Supervisor
  readonly reporter: Reporter
  /** Runs a reconciliation with the ledger now. */
  reconcile(): Promise<void>
  /** Stops serving; workloads keep running (a restart finds them again). */
  stop(): Promise<void>
}

/** The zos version (package.json). */
export function zosVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      try {
        const v = (JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string })
        if (v.name === 'zos' && v.version) return v.version
      } catch {
        // keep looking
      }
    }
    dir = dirname(dir)
  }
  return 'unknown'
}

export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const log = opts.log ?? SILENT_LOGGER
  const iv: NodeIntervals = { ...DEFAULT_INTERVALS, ...opts.intervals }
  const relays = opts.relays.map(relayUrl)
  if (relays.length === 0) throw new Error('a node needs at least one relay')
  const paths = new NodePaths(opts.stateDir)
  await mkdir(paths.root, { recursive: true, mode: 0o700 })
  const { key, created } = await loadOrCreateKey(paths.keyFile)
  const tag = nodeTag(key.address)
  log.info({ address: key.address, created, state: paths.root }, created ? 'node key created' : 'node key loaded')

  const ledger = await openLedger({ ...opts.ledger, privateKey: `0x${key.privateKey.toString('hex')}` })
  const closers: (() => Promise<void> | void)[] = [() => ledger.close()]
  const cleanup = async (): Promise<void> => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined)
  }
  try {
    let capacity = await discoverCapacity(paths.root, opts.capacity, opts.cacheBytes)
    const { twin, node } = await register(ledger, key, { farmId: opts.farmId, relays, total: capacity.total })
    log.info({ node: node.id, twin: twin.id, farm: node.farmId, total: capacity.total, reserved: capacity.reserved }, 'node registered')

    const runtime = new RuncRuntime(paths.runcRoot)
    const supervisor = new Supervisor({ runtime, log: log.child({ svc: 'supervisor' }), intervalMs: iv.superviseMs, ...(opts.restartBackoff ? { backoff: opts.restartBackoff } : {}) })
    const flists = new FlistManager({ paths, log: log.child({ svc: 'flist' }), ...(opts.store ? { store: opts.store } : {}), ...(opts.trust ? { trust: opts.trust } : {}), ...(opts.cacheBytes ? { cacheBytes: opts.cacheBytes } : {}) })
    const primitives = createPrimitives({ paths, tag, flists, runtime, supervisor, log, ...(opts.stopGraceMs !== undefined ? { stopGraceMs: opts.stopGraceMs } : {}) })
    const store = new DeploymentStore(paths.database)
    closers.push(() => store.close())
    const chain = new LedgerChainView(ledger)
    let reporter: Reporter | undefined
    const engine = new Engine({
      nodeId: node.id,
      store,
      primitives: primitives.registry,
      chain,
      capacity: () => capacity,
      log: log.child({ svc: 'engine' }),
      onChange: (contractId) => reporter?.changed(contractId),
    })
    reporter = new Reporter({ ledger, engine, log: log.child({ svc: 'reporter' }) })
    const rep = reporter
    closers.push(() => rep.stop())
    engine.start()
    closers.push(() => engine.stop())
    supervisor.start()
    closers.push(() => supervisor.stop())

    const runcVersion = (await exec('runc', ['--version'])).stdout.split('\n')[0] ?? ''
    const peer = await connect({
      twinId: twin.id,
      key,
      directory: ledgerDirectory(ledger),
      relays,
      handlers: apiHandlers({ engine, zmachine: primitives.zmachine, version: zosVersion(), runcVersion }),
      ...(opts.relayBackoff ? { backoff: opts.relayBackoff } : {}),
      log: log.child({ svc: 'rmb' }),
    })
    closers.push(() => peer.close())

    const reconcile = async (): Promise<void> => {
      try {
        const r = await engine.reconcile((id) => chain.stateOf(id))
        if (r.cancelled.length + r.paused.length + r.resumed.length > 0) log.info(r, 'reconciled with the ledger')
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'reconciliation failed; will try again')
      }
    }
    await reconcile()

    const onEvent = async (ev: LedgerEvent): Promise<void> => {
      if (!('nodeId' in ev) || ev.nodeId !== node.id || !('contractId' in ev)) return
      if (ev.type === 'ContractCanceled') {
        if (ev.kind === 'node') engine.cancel(ev.contractId, `contract cancelled (${ev.cause})`)
        else await reconcile()
      } else if (ev.type === 'ContractGracePeriodStarted') {
        if (ev.kind === 'node') engine.pause(ev.contractId)
        else await reconcile()
      } else if (ev.type === 'ContractGracePeriodEnded') {
        if (ev.kind === 'node') engine.resume(ev.contractId)
        else await reconcile()
      }
    }
    const unwatch = ledger.events.watch(onEvent, {
      types: ['ContractCanceled', 'ContractGracePeriodStarted', 'ContractGracePeriodEnded'],
      pollMs: iv.pollMs,
      onError: (err) => log.warn({ err: errorMessage(err) }, 'ledger event watch failed; retrying'),
    })
    closers.push(unwatch)

    const timers: NodeJS.Timeout[] = []
    const every = (ms: number, what: string, fn: () => Promise<unknown>): void => {
      const t = setInterval(() => {
        fn().catch((err: unknown) => log.warn({ err: errorMessage(err) }, `${what} failed`))
      }, ms)
      t.unref()
      timers.push(t)
    }
    const uptime = async (): Promise<void> => {
      await ledger.nodes.reportUptime(machineUptime())
    }
    await uptime().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'uptime report failed'))
    every(iv.uptimeMs, 'uptime report', uptime)
    every(iv.reportMs, 'usage report', () => rep.reportAll())
    every(iv.billMs, 'billing', () => rep.billAll())
    every(iv.reconcileMs, 'reconciliation', reconcile)
    every(iv.registerMs, 'registration refresh', async () => {
      const fresh = await discoverCapacity(paths.root, opts.capacity, opts.cacheBytes)
      await register(ledger, key, { farmId: opts.farmId, relays, total: fresh.total })
      capacity = fresh
    })
    closers.push(() => timers.forEach(clearInterval))
    // Usage at start, for every active contract (Zero-OS reports all at boot).
    void rep.reportAll()
    closers.push(() => rep.flush())

    log.info({ node: node.id, twin: twin.id, relays }, 'node serving through the relay')
    let stopping: Promise<void> | undefined
    return {
      nodeId: node.id,
      twinId: twin.id,
      farmId: node.farmId,
      key,
      tag,
      paths,
      get capacity() {
        return capacity
      },
      engine,
      peer,
      ledger,
      supervisor,
      reporter: rep,
      reconcile,
      stop() {
        stopping ??= cleanup()
        return stopping
      },
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}
