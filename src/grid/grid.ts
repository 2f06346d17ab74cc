// A whole grid on one machine: the embedded ledger, a relay and a hub on a private bridge, and N node agents,
// each in its own network namespace with its own address on that bridge; a farm, a funded user twin, and a demo
// image on the hub. `up` is idempotent (it starts what is not running and creates what does not exist), `down`
// stops exactly what `up` started (by pid and start time), tears down the nodes' workloads, mounts and
// namespaces, and keeps the state unless asked to purge it, so the next `up` brings the same grid back with
// its deployments.
import { availableParallelism, totalmem } from 'node:os'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, statfs } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { zerr } from '../core/errors.js'
import { generateKey, loadKey, saveKey, type KeyPair } from '../core/keys.js'
import { exec } from '../core/exec.js'
import { bridgeIp, bridgeName, checkNetworking, ensureBridge, ensureNodeNet, netnsList, nodeNet, pickSubnet, removeBridge, removeNodeNet } from './net.js'
import { isAlive, spawnZos, stopProc, waitReady, withGridLock, type ProcRecord } from './procs.js'
import { gridIdOf, readRun, readSpec, removeRun, writeRun, writeSpec, type GridNodeSpec, type GridRun, type GridSpec } from './state.js'
import { clearCurrentGrid, setCurrentGrid } from './context.js'
import { DEMO_NAME, publishDemo } from './demo.js'

const GIB = 2 ** 30
/** Tokens (7 decimals) the faucet gives the farmer and the user at creation. */
const FARMER_TOKENS = 1_000n * 10n ** 7n
const USER_TOKENS = 10_000n * 10n ** 7n

export interface UpOptions {
  dir: string
  /** Nodes wanted (default 3, or as many as the grid already has). A grid only grows. */
  nodes?: number
  /** Bound of each node's chunk cache (default 512 MiB). */
  cacheBytes?: number
  /** Called with a line for each step. */
  onStep?: (text: string) => void
}

export interface ServiceStatus {
  url: string
  pid?: number
  running: boolean
  log: string
}

export interface NodeStatus {
  index: number
  nodeId?: number
  twinId?: number
  ip: string
  netns: string
  state: string
  pid?: number
  running: boolean
  log: string
}

export interface GridStatus {
  dir: string
  id: string
  bridge: string
  subnet: string
  ledger: ServiceStatus
  relay: ServiceStatus
  hub: ServiceStatus
  nodes: NodeStatus[]
  farmId: number
  user: { twin: number; key: string; address: string }
  demo?: string
  /** True when every service and node is running. */
  up: boolean
}

const logsDir = (dir: string): string => join(dir, 'logs')
const ledgerDir = (dir: string): string => join(dir, 'ledger')
const relayUrl = (s: GridSpec): string => `ws://${s.hostIp}:${s.ports.relay}`
const hubUrl = (s: GridSpec): string => `http://${s.hostIp}:${s.ports.hub}`

async function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolvePort(port))
    })
  })
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(url.replace(/^ws/, 'http') + '/healthz', { signal: AbortSignal.timeout(1500) })
    await res.arrayBuffer()
    return res.ok
  } catch {
    return false
  }
}

async function keyAt(file: string): Promise<KeyPair> {
  if (existsSync(file)) return loadKey(file)
  const key = generateKey()
  await saveKey(file, key)
  return key
}

/** What each node offers: all cores, an even share of memory and of the free disk under DIR. */
async function nodeCapacity(dir: string, nodes: number): Promise<GridSpec['capacity']> {
  const fs = await statfs(dir)
  const freeDisk = fs.bavail * fs.bsize
  const mru = Math.max(1, Math.floor(totalmem() / nodes / GIB)) * GIB
  const sru = Math.max(2, Math.min(100, Math.floor(freeDisk / nodes / GIB))) * GIB
  return { cru: availableParallelism(), mru, sru }
}

/** Starts the ledger (detached, its own supervisor) unless it already runs; returns its JSON-RPC URL. */
async function ensureLedger(dir: string, host: string, port: number): Promise<string> {
  const { readPidRecord, isLiveSupervisor, startLedger } = await import('../ledger/server.js')
  const rec = await readPidRecord(ledgerDir(dir))
  if (rec && isLiveSupervisor(rec.pid)) return rec.url
  const srv = await startLedger({ dataDir: ledgerDir(dir), host, port, detached: true })
  return srv.url
}

async function ensureService(dir: string, name: 'relay' | 'hub', spec: GridSpec, run: GridRun): Promise<void> {
  const url = name === 'relay' ? relayUrl(spec) : hubUrl(spec)
  if (isAlive(run[name]) && (await healthy(url))) return
  await stopProc(run[name])
  const log = join(logsDir(dir), `${name}.log`)
  const common = ['--host', spec.hostIp, '--port', String(spec.ports[name]), '--ledger', ledgerDir(dir)]
  const args = name === 'relay' ? ['relay', 'serve', ...common] : ['hub', 'serve', ...common, '--data', join(dir, 'hub'), '--public-url', url]
  const rec = spawnZos(args, log)
  run[name] = rec
  await writeRun(dir, run)
  await waitReady(rec, `the ${name}`, async () => ((await healthy(url)) ? true : undefined), 30_000)
}

/** Creates the grid's identities on the ledger: a farmer with a farm, and a funded user twin. */
async function createIdentities(dir: string, relay: string): Promise<{ farmId: number; userTwin: number; farmerKey: string; userKey: string }> {
  const { openLedger } = await import('../ledger/index.js')
  const farmerKey = join(dir, 'keys', 'farmer.json')
  const userKey = join(dir, 'keys', 'user.json')
  await mkdir(join(dir, 'keys'), { recursive: true })
  const farmerPair = await keyAt(farmerKey)
  const userPair = await keyAt(userKey)
  const farmer = await openLedger({ ledgerDir: ledgerDir(dir), keyFile: farmerKey })
  const user = await openLedger({ ledgerDir: ledgerDir(dir), keyFile: userKey })
  try {
    await farmer.token.faucet(FARMER_TOKENS)
    // A first `up` interrupted after some of these steps finds what it made on the ledger and goes on.
    if (!(await farmer.twins.byAccount(farmerPair.address))) await farmer.twins.create({ relay })
    const farmName = `local-${gridIdOf(dir)}`
    const farmId = (await farmer.farms.idByName(farmName)) ?? (await farmer.farms.create({ name: farmName })).id
    await user.token.faucet(USER_TOKENS)
    const userTwin = (await user.twins.byAccount(userPair.address)) ?? (await user.twins.create({ relay }))
    return { farmId, userTwin: userTwin.id, farmerKey, userKey }
  } finally {
    await farmer.close()
    await user.close()
  }
}

function nodeArgs(dir: string, spec: GridSpec, stateDir: string, cacheBytes: number): string[] {
  return [
    'node', 'run',
    '--farm', String(spec.farmId),
    '--ledger', ledgerDir(dir),
    '--relay', relayUrl(spec),
    '--state', stateDir,
    '--store', hubUrl(spec),
    '--cru', String(spec.capacity.cru),
    '--mru', String(spec.capacity.mru),
    '--sru', String(spec.capacity.sru),
    '--cache-size', String(cacheBytes),
    '--stop-grace', '3',
    '--json',
  ]
}

/** Starts the node in its namespace unless it runs; waits until it serves and records its ids. */
async function ensureNode(dir: string, spec: GridSpec, run: GridRun, node: GridNodeSpec, cacheBytes: number): Promise<void> {
  const index = node.index
  await ensureNodeNet(spec.net, node)
  if (isAlive(run.nodes[String(index)])) return
  const out = join(logsDir(dir), `node${index}.out`)
  const rec = spawnZos(nodeArgs(dir, spec, node.state, cacheBytes), join(logsDir(dir), `node${index}.log`), ['nsenter', `--net=/run/netns/${node.netns}`, '--'], out)
  run.nodes[String(index)] = rec
  await writeRun(dir, run)
  const info = await waitReady(rec, `node ${index}`, async () => {
    const text = await readFile(out, 'utf8')
    try {
      return JSON.parse(text) as { node: number; twin: number }
    } catch {
      return undefined
    }
  }, 120_000)
  node.nodeId = info.node
  node.twinId = info.twin
}

export async function gridUp(opts: UpOptions): Promise<GridStatus> {
  const dir = resolve(opts.dir)
  await checkNetworking()
  if (opts.nodes !== undefined && (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 50)) throw zerr('INVALID_ARGUMENT', `--nodes must be between 1 and 50, got ${opts.nodes}`)
  await mkdir(logsDir(dir), { recursive: true })
  return withGridLock(dir, () => up(dir, opts))
}

async function up(dir: string, opts: UpOptions): Promise<GridStatus> {
  const step = opts.onStep ?? (() => {})
  let spec = await readSpec(dir)
  const run = await readRun(dir)
  const wanted = opts.nodes ?? spec?.nodes.length ?? 3
  if (spec && wanted < spec.nodes.length) throw zerr('INVALID_ARGUMENT', `the grid in ${dir} has ${spec.nodes.length} nodes and cannot shrink; use --nodes ${spec.nodes.length} or more, or start over with \`zos grid down --purge\``)
  const cacheBytes = opts.cacheBytes ?? 512 * 2 ** 20

  const id = spec?.id ?? gridIdOf(dir)
  const net = spec?.net ?? { bridge: bridgeName(id), subnet: await pickSubnet(id) }
  const hostIp = bridgeIp(net)
  step(`network: bridge ${net.bridge} at ${hostIp}/24`)
  await ensureBridge(net)

  step('ledger: starting (anvil, contracts deployed on first start)')
  const ledgerUrl = await ensureLedger(dir, hostIp, spec?.ports.ledger ?? 0)
  const ports = spec?.ports ?? { ledger: Number(new URL(ledgerUrl).port), relay: await freePort(hostIp), hub: await freePort(hostIp) }

  // The relay must exist before the twins that name it, and the hub before the demo push.
  const endpoints = spec ?? ({ hostIp, ports } as GridSpec)
  step('relay and hub: starting')
  await Promise.all([ensureService(dir, 'relay', endpoints, run), ensureService(dir, 'hub', endpoints, run)])
  if (!spec) {
    step('identities: a farm and a funded user twin')
    const ids = await createIdentities(dir, relayUrl(endpoints))
    spec = {
      version: 1,
      id,
      dir,
      createdAt: new Date().toISOString(),
      net,
      hostIp,
      ports,
      ...ids,
      nodes: [],
      capacity: await nodeCapacity(dir, wanted),
    }
    await writeSpec(spec)
  }
  await setCurrentGrid(dir)

  if (!spec.demo) {
    step(`demo image: building and pushing hub://${DEMO_NAME}`)
    const pushed = await publishDemo(hubUrl(spec), await loadKey(spec.userKey))
    spec.demo = { ref: `hub://${DEMO_NAME}`, digest: pushed.digest }
    await writeSpec(spec)
  }

  for (let i = spec.nodes.length + 1; i <= wanted; i++) {
    const n = nodeNet(id, net, i)
    spec.nodes.push({ index: i, ...n, state: join(dir, 'nodes', `n${i}`) })
  }
  await writeSpec(spec)
  step(`nodes: starting ${spec.nodes.length} node agents, one network namespace each`)
  const results = await Promise.allSettled(spec.nodes.map((n) => ensureNode(dir, spec!, run, n, cacheBytes)))
  await writeSpec(spec)
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) throw failed.reason
  return gridStatus(dir)
}

export async function gridStatus(dirArg: string): Promise<GridStatus> {
  const dir = resolve(dirArg)
  const spec = await readSpec(dir)
  if (!spec) throw zerr('NOT_FOUND', `no grid in ${dir}: start one with \`zos grid up --data ${dirArg}\``)
  const run = await readRun(dir)
  const { readPidRecord, isLiveSupervisor } = await import('../ledger/server.js')
  const ledgerRec = await readPidRecord(ledgerDir(dir))
  const service = async (url: string, rec: ProcRecord | undefined, log: string): Promise<ServiceStatus> => ({
    url,
    ...(rec ? { pid: rec.pid } : {}),
    running: isAlive(rec) && (await healthy(url)),
    log,
  })
  const ledgerRunning = ledgerRec !== null && isLiveSupervisor(ledgerRec.pid)
  const ledger: ServiceStatus = { url: `http://${spec.hostIp}:${spec.ports.ledger}`, ...(ledgerRec ? { pid: ledgerRec.pid } : {}), running: ledgerRunning, log: join(ledgerDir(dir), 'ledger.log') }
  const relay = await service(relayUrl(spec), run.relay, join(logsDir(dir), 'relay.log'))
  const hub = await service(hubUrl(spec), run.hub, join(logsDir(dir), 'hub.log'))
  const nodes = spec.nodes.map((n): NodeStatus => {
    const rec = run.nodes[String(n.index)]
    return {
      index: n.index,
      ...(n.nodeId !== undefined ? { nodeId: n.nodeId } : {}),
      ...(n.twinId !== undefined ? { twinId: n.twinId } : {}),
      ip: n.ip,
      netns: n.netns,
      state: n.state,
      ...(rec ? { pid: rec.pid } : {}),
      running: isAlive(rec),
      log: join(logsDir(dir), `node${n.index}.log`),
    }
  })
  const user = await loadKey(spec.userKey)
  return {
    dir,
    id: spec.id,
    bridge: spec.net.bridge,
    subnet: `${spec.net.subnet}/24`,
    ledger,
    relay,
    hub,
    nodes,
    farmId: spec.farmId,
    user: { twin: spec.userTwin, key: spec.userKey, address: user.address },
    ...(spec.demo ? { demo: spec.demo.ref } : {}),
    up: ledger.running && relay.running && hub.running && nodes.every((n) => n.running),
  }
}

export interface DownReport {
  dir: string
  stopped: string[]
  mounts: string[]
  namespaces: string[]
  purged: boolean
}

export async function gridDown(dirArg: string, opts: { purge?: boolean; onStep?: (text: string) => void } = {}): Promise<DownReport> {
  const dir = resolve(dirArg)
  const spec = await readSpec(dir)
  if (!spec) throw zerr('NOT_FOUND', `no grid in ${dir} (no grid.json): nothing to stop`)
  await checkNetworking()
  const report = await withGridLock(dir, () => down(dir, spec, opts))
  if (opts.purge) {
    opts.onStep?.(`purging ${dir}`)
    await clearCurrentGrid(dir)
    await rm(dir, { recursive: true, force: true })
    report.purged = true
  }
  return report
}

async function down(dir: string, spec: GridSpec, opts: { onStep?: (text: string) => void }): Promise<DownReport> {
  const step = opts.onStep ?? (() => {})
  const run = await readRun(dir)
  const report: DownReport = { dir, stopped: [], mounts: [], namespaces: [], purged: false }

  step('nodes: stopping the agents')
  await Promise.all(spec.nodes.map(async (n) => {
    if (await stopProc(run.nodes[String(n.index)])) report.stopped.push(`node ${n.index}`)
  }))
  step('nodes: stopping workloads and unmounting')
  const [{ NodePaths, nodeTag }, { teardownNode }] = await Promise.all([import('../node/storage/paths.js'), import('../node/storage/teardown.js')])
  for (const n of spec.nodes) {
    const paths = new NodePaths(n.state)
    const key = await loadKey(paths.keyFile).catch(() => undefined)
    const r = await teardownNode(paths, key ? nodeTag(key.address) : undefined)
    report.mounts.push(...r.mounts)
  }
  step('relay and hub: stopping')
  for (const name of ['hub', 'relay'] as const) if (await stopProc(run[name])) report.stopped.push(name)
  step('ledger: stopping (its state is kept)')
  const { stopDetachedLedger } = await import('../ledger/server.js')
  if (await stopDetachedLedger(ledgerDir(dir))) report.stopped.push('ledger')
  await removeRun(dir)

  step('network: removing namespaces and the bridge')
  const present = await netnsList()
  for (const n of spec.nodes) {
    if (present.includes(n.netns)) report.namespaces.push(n.netns)
    await removeNodeNet(n)
  }
  await removeBridge(spec.net)

  // Anything still mounted below DIR (a mount whose helper died) is detached rather than left behind.
  const { mountsUnder, lazyUnmount } = await import('../node/storage/mounts.js')
  for (const m of await mountsUnder(dir)) {
    if ((await exec('umount', [m.mountpoint])).code !== 0) await lazyUnmount(m.mountpoint)
    report.mounts.push(m.mountpoint)
  }
  return report
}
