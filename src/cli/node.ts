// `zos node list|show|register|public-config|power`: nodes on the ledger. (`zos node run`, the node agent,
// is registered here too by the node subsystem.)
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { Node } from '../ledger/types.js'
import { emit } from './output.js'
import { gib, kv, parseBytes, parseId, parseUint, table, when, withLedger, withLedgerOptions } from './ledger-common.js'
import { registerNodeAgent } from './node-agent.js'

function show(n: Node): string {
  const pc = n.publicConfig
  return kv([
    ['node', n.id],
    ['farm', n.farmId],
    ['twin', n.twinId],
    ['cru', `${n.resources.cru} cores`],
    ['mru', gib(n.resources.mru)],
    ['sru', gib(n.resources.sru)],
    ['hru', gib(n.resources.hru)],
    ['location', [n.location.city, n.location.country].filter(Boolean).join(', ') + ` (${n.location.latitude}, ${n.location.longitude})`],
    ['serial', n.serial],
    ['certification', n.certification],
    ['power', `state ${n.powerState}, target ${n.powerTarget}, since ${when(n.powerChangedAt)}`],
    ['public config', pc ? `${pc.ip4} gw ${pc.gw4}${pc.ip6 ? `, ${pc.ip6} gw ${pc.gw6}` : ''}${pc.domain ? `, domain ${pc.domain}` : ''}` : ''],
    ['rent fee', n.extraFeeMusd ? `${n.extraFeeMusd} mUSD/month (rent only)` : ''],
    ['uptime', n.lastUptimeReport ? `${n.uptime} s, reported ${when(n.lastUptimeReport)}` : 'never reported'],
    ['created', when(n.createdAt)],
    ['deleted', n.deleted ? 'yes' : ''],
  ])
}

function parseDegrees(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (!Number.isFinite(v)) throw zerr('INVALID_ARGUMENT', `${what} must be a number of degrees, got "${text}"`)
  return v
}

export function registerNode(program: Command): Command {
  const node = program.command('node').description('nodes: capacity registered on the ledger')

  withLedgerOptions(
    node
      .command('list')
      .description('list nodes (deleted ones left out), all by id or those of one farm')
      .option('--farm <id>', 'only the nodes of this farm')
      .option('--first <n>', 'first node id (or index in the farm)', ''),
  ).action(async (opts: { farm?: string; first: string }, cmd: Command) => {
    const nodes = await withLedger(cmd, false, (l) =>
      l.nodes.list({
        farmId: opts.farm === undefined ? undefined : parseId(opts.farm, '--farm'),
        first: opts.first === '' ? undefined : parseUint(opts.first, '--first'),
      }),
    )
    emit(cmd, nodes, (ns) =>
      table(
        ['ID', 'FARM', 'TWIN', 'CRU', 'MRU', 'SRU', 'HRU', 'POWER', 'CERT', 'LOCATION'],
        ns.map((n) => [n.id, n.farmId, n.twinId, n.resources.cru, gib(n.resources.mru), gib(n.resources.sru), gib(n.resources.hru), n.powerState, n.certification, n.location.city || n.location.country]),
      ),
    )
  })

  withLedgerOptions(node.command('show').description('show a node').argument('<id>', 'node id')).action(async (idText: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, false, (l) => l.nodes.get(parseId(idText, 'node id'))), show)
  })

  withLedgerOptions(
    node
      .command('register')
      .description("register the key's twin as a node of a farm (what the node agent does at first boot)")
      .requiredOption('--farm <id>', 'farm id')
      .requiredOption('--cru <cores>', 'logical CPU cores')
      .requiredOption('--mru <size>', 'memory, e.g. 16G')
      .requiredOption('--sru <size>', 'SSD storage, e.g. 500G')
      .option('--hru <size>', 'HDD storage', '0')
      .option('--city <name>', 'city')
      .option('--country <name>', 'country')
      .option('--lat <degrees>', 'latitude')
      .option('--lon <degrees>', 'longitude')
      .option('--serial <text>', 'serial number'),
    { key: 'required' },
  ).action(
    async (
      opts: { farm: string; cru: string; mru: string; sru: string; hru: string; city?: string; country?: string; lat?: string; lon?: string; serial?: string },
      cmd: Command,
    ) => {
      const n = await withLedger(cmd, true, (l) =>
        l.nodes.create({
          farmId: parseId(opts.farm, '--farm'),
          resources: { cru: parseUint(opts.cru, '--cru'), mru: parseBytes(opts.mru, '--mru'), sru: parseBytes(opts.sru, '--sru'), hru: parseBytes(opts.hru, '--hru') },
          location: { city: opts.city, country: opts.country, latitude: parseDegrees(opts.lat, '--lat'), longitude: parseDegrees(opts.lon, '--lon') },
          serial: opts.serial,
        }),
      )
      emit(cmd, n, show)
    },
  )

  withLedgerOptions(
    node
      .command('public-config')
      .description('set (or --clear) the public config of a node: what makes it an access node or gateway (farmer only)')
      .argument('<id>', 'node id')
      .option('--ip4 <cidr>', 'public IPv4 with prefix, e.g. 185.69.166.20/24')
      .option('--gw4 <ip>', 'IPv4 gateway')
      .option('--ip6 <cidr>', 'public IPv6 with prefix')
      .option('--gw6 <ip>', 'IPv6 gateway')
      .option('--domain <name>', 'domain served by the gateway')
      .option('--clear', 'remove the public config'),
    { key: 'required' },
  ).action(async (idText: string, opts: { ip4?: string; gw4?: string; ip6?: string; gw6?: string; domain?: string; clear?: boolean }, cmd: Command) => {
    const config = opts.clear ? null : { ip4: opts.ip4 ?? '', gw4: opts.gw4 ?? '', ip6: opts.ip6 ?? '', gw6: opts.gw6 ?? '', domain: opts.domain ?? '' }
    if (config && (!config.ip4 || !config.gw4)) throw zerr('INVALID_ARGUMENT', 'a public config needs --ip4 and --gw4 (or pass --clear)')
    emit(cmd, await withLedger(cmd, true, (l) => l.nodes.setPublicConfig(parseId(idText, 'node id'), config)), show)
  })

  withLedgerOptions(
    node.command('power').description('set the power target of a node: up or down (farmer only; down needs an empty node)').argument('<id>', 'node id').argument('<target>', 'up or down'),
    { key: 'required' },
  ).action(async (idText: string, target: string, _o: unknown, cmd: Command) => {
    const t = target.toLowerCase()
    if (t !== 'up' && t !== 'down') throw zerr('INVALID_ARGUMENT', `power target must be up or down, got "${target}"`)
    emit(cmd, await withLedger(cmd, true, (l) => l.nodes.setPowerTarget(parseId(idText, 'node id'), t === 'up' ? 'Up' : 'Down')), show)
  })

  registerNodeAgent(node)
  return node
}
