// `zos node run` (the node agent) and `zos node teardown`, added to the `zos node` group (node.ts).
//   zos node run --farm ID --relay URL [--ledger DIR|URL] [--rpc URL] [--state DIR] [--store URL] [...]
//   zos node teardown [--state DIR]     stop this node's containers and unmount everything it mounted
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import { emit, untilStopped } from './output.js'
import { parseBytes, parseId, parseUint } from './ledger-common.js'

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

function defaultState(): string {
  return join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'node')
}

interface RunOptions {
  farm: string
  ledger?: string
  rpc?: string
  relay: string[]
  state?: string
  store?: string
  cru?: string
  mru?: string
  sru?: string
  hru?: string
  trust: string[]
  cacheSize: string
  uptimeInterval?: string
  reportInterval?: string
  billInterval?: string
  reconcileInterval?: string
  stopGrace: string
  logLevel: string
}

function seconds(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (!Number.isFinite(v) || v < 1) throw zerr('INVALID_ARGUMENT', `${what} must be a number of seconds >= 1, got "${text}"`)
  return Math.round(v * 1000)
}

export function registerNodeAgent(node: Command): void {
  node
    .command('run')
    .description('run the node agent: register the node, serve its API through the relay, provision workloads')
    .requiredOption('--farm <id>', 'farm the node belongs to')
    .option('--relay <url>', 'relay to dial and publish on the node twin (repeatable)', collect, [])
    .option('--ledger <dir|url>', 'ledger address book directory (default $ZOS_HOME/ledger), or its JSON-RPC URL')
    .option('--rpc <url>', 'ledger JSON-RPC URL (default: the address book\'s)')
    .option('--state <dir>', 'state directory: key, database, disks, mounts (default $ZOS_HOME/node)')
    .option('--store <url>', 'store of flist chunks (dir:// or http(s)://); default $ZOS_STORE')
    .option('--cru <cores>', 'CPU cores to offer (default: all)')
    .option('--mru <size>', 'memory to offer, e.g. 8G (default: all)')
    .option('--sru <size>', 'SSD storage to offer (default: the size of the state dir\'s filesystem)')
    .option('--hru <size>', 'HDD storage to offer', '0')
    .option('--trust <key>', 'accept only flists signed by this key (repeatable)', collect, [])
    .option('--cache-size <size>', 'bound of the flist chunk cache', '2G')
    .option('--uptime-interval <s>', 'seconds between uptime reports (default 2400)')
    .option('--report-interval <s>', 'seconds between usage reports of all contracts (default 3600)')
    .option('--bill-interval <s>', 'seconds between billing runs (default 3600)')
    .option('--reconcile-interval <s>', 'seconds between reconciliations with the ledger (default 3600)')
    .option('--stop-grace <s>', 'seconds a stopping container gets between SIGTERM and SIGKILL', '10')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: RunOptions, cmd: Command) => {
      const farmId = parseId(opts.farm, '--farm')
      if (opts.relay.length === 0) throw zerr('INVALID_ARGUMENT', 'give at least one --relay URL (the node serves its API only through a relay)')
      if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(opts.logLevel)) throw zerr('INVALID_ARGUMENT', '--log-level must be one of fatal, error, warn, info, debug, silent')
      if (process.getuid?.() !== 0) throw zerr('PERMISSION', 'the node agent needs root (FUSE mounts, loop devices, runc)')
      const [{ pino }, { startNodeAgent }, { defaultLedgerDir }] = await Promise.all([import('pino'), import('../node/agent.js'), import('../ledger/index.js')])
      const log = pino({ level: opts.logLevel, base: { svc: 'node' } }, pino.destination(2))
      const ledgerIsUrl = opts.ledger !== undefined && /^https?:\/\//.test(opts.ledger)
      const store = opts.store ?? process.env.ZOS_STORE
      const agent = await startNodeAgent({
        farmId,
        ledger: { ledgerDir: ledgerIsUrl ? defaultLedgerDir() : (opts.ledger ?? defaultLedgerDir()), ...(ledgerIsUrl ? { rpcUrl: opts.ledger } : opts.rpc ? { rpcUrl: opts.rpc } : {}) },
        relays: opts.relay,
        stateDir: opts.state ?? defaultState(),
        ...(store ? { store } : {}),
        capacity: {
          ...(opts.cru ? { cru: parseUint(opts.cru, '--cru') } : {}),
          ...(opts.mru ? { mru: parseBytes(opts.mru, '--mru') } : {}),
          ...(opts.sru ? { sru: parseBytes(opts.sru, '--sru') } : {}),
          hru: parseBytes(opts.hru ?? '0', '--hru'),
        },
        trust: opts.trust,
        cacheBytes: parseBytes(opts.cacheSize, '--cache-size'),
        intervals: {
          ...(seconds(opts.uptimeInterval, '--uptime-interval') ? { uptimeMs: seconds(opts.uptimeInterval, '--uptime-interval') } : {}),
          ...(seconds(opts.reportInterval, '--report-interval') ? { reportMs: seconds(opts.reportInterval, '--report-interval') } : {}),
          ...(seconds(opts.billInterval, '--bill-interval') ? { billMs: seconds(opts.billInterval, '--bill-interval') } : {}),
          ...(seconds(opts.reconcileInterval, '--reconcile-interval') ? { reconcileMs: seconds(opts.reconcileInterval, '--reconcile-interval') } : {}),
        },
        stopGraceMs: seconds(opts.stopGrace, '--stop-grace') ?? 10_000,
        log,
      })
      emit(cmd, { node: agent.nodeId, twin: agent.twinId, farm: agent.farmId, address: agent.key.address, state: agent.paths.root, relays: opts.relay, pid: process.pid }, (r) => `node ${r.node} (twin ${r.twin}, farm ${r.farm}) serving through ${r.relays.join(', ')}; state in ${r.state}`)
      await untilStopped()
      log.info({}, 'stopping (workloads keep running)')
      await agent.stop()
      log.flush()
    })

  node
    .command('teardown')
    .description("stop this node's containers and unmount its flists, volumes and disks (data is kept; the next `node run` brings them back)")
    .option('--state <dir>', 'the node\'s state directory (default $ZOS_HOME/node)')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { state?: string }, cmd: Command) => {
      const [{ NodePaths, nodeTag }, { teardownNode }, { loadKey }] = await Promise.all([import('../node/storage/paths.js'), import('../node/storage/teardown.js'), import('../core/keys.js')])
      const paths = new NodePaths(opts.state ?? defaultState())
      const key = await loadKey(paths.keyFile).catch(() => undefined)
      const report = await teardownNode(paths, key ? nodeTag(key.address) : undefined)
      emit(cmd, report, (r) => `stopped ${r.containers.length} containers, unmounted ${r.mounts.length} mounts, detached ${r.loops.length} loop devices, stopped ${r.helpers.length} mount helpers`)
    })
}
