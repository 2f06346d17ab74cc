// `zos farm create|show|list|rename|add-ip|remove-ip`: farms and their public IPv4 addresses.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { Farm } from '../ledger/types.js'
import { emit } from './output.js'
import { kv, parseId, table, when, withLedger, withLedgerOptions } from './ledger-common.js'

function show(f: Farm): string {
  const head = kv([
    ['farm', f.id],
    ['name', f.name],
    ['twin', f.twinId],
    ['pricing policy', f.pricingPolicyId],
    ['certification', f.certification],
    ['dedicated', f.dedicated ? 'yes (nodes are rented whole)' : 'no'],
    ['public IPs', `${f.publicIps.length} (${f.freeIps} free)`],
    ['created', when(f.createdAt)],
  ])
  if (f.publicIps.length === 0) return head
  return `${head}\n\n${table(['IP', 'GATEWAY', 'CONTRACT'], f.publicIps.map((p) => [p.ip, p.gateway, p.contractId || 'free']))}`
}

/** "185.69.166.10/24=185.69.166.1" → { ip, gateway }. */
function parseIpArg(text: string): { ip: string; gateway: string } {
  const [ip, gateway] = text.split('=')
  if (!ip || !gateway) throw zerr('INVALID_ARGUMENT', `--ip must be IP/PREFIX=GATEWAY, e.g. 185.69.166.10/24=185.69.166.1, got "${text}"`)
  return { ip, gateway }
}

async function farmIdOf(l: import('../ledger/types.js').Ledger, ref: string): Promise<number> {
  if (/^\d+$/.test(ref)) return parseId(ref, 'farm id')
  const id = await l.farms.idByName(ref)
  if (id === null) throw zerr('NOT_FOUND', `no farm named "${ref}"`)
  return id
}

export function registerFarm(program: Command): void {
  const farm = program.command('farm').description("farms: the farmer's nodes, public IPs and pricing")

  withLedgerOptions(
    farm
      .command('create')
      .description("create a farm owned by the key's twin")
      .argument('<name>', 'unique farm name: 3..40 chars of [A-Za-z0-9_-]')
      .option('--ip <ip=gw>', 'a public IP as IP/PREFIX=GATEWAY (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[]),
    { key: 'required' },
  ).action(async (name: string, opts: { ip: string[] }, cmd: Command) => {
    const publicIps = opts.ip.map(parseIpArg)
    emit(cmd, await withLedger(cmd, true, (l) => l.farms.create({ name, publicIps })), show)
  })

  withLedgerOptions(farm.command('show').description('show a farm and its public IPs').argument('<farm>', 'farm id or name')).action(
    async (ref: string, _o: unknown, cmd: Command) => {
      emit(cmd, await withLedger(cmd, false, async (l) => l.farms.get(await farmIdOf(l, ref))), show)
    },
  )

  withLedgerOptions(farm.command('list').description('list farms (first 100 from --first)').option('--first <id>', 'first farm id', '1')).action(
    async (opts: { first: string }, cmd: Command) => {
      const farms = await withLedger(cmd, false, (l) => l.farms.list({ first: parseId(opts.first, '--first') }))
      emit(cmd, farms, (fs) =>
        table(['ID', 'NAME', 'TWIN', 'POLICY', 'CERT', 'IPS FREE'], fs.map((f) => [f.id, f.name, f.twinId, f.pricingPolicyId, f.certification, `${f.freeIps}/${f.publicIps.length}`])),
      )
    },
  )

  withLedgerOptions(farm.command('rename').description('rename a farm (farmer only)').argument('<farm>', 'farm id or name').argument('<name>', 'new name'), {
    key: 'required',
  }).action(async (ref: string, name: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, true, async (l) => l.farms.rename(await farmIdOf(l, ref), name)), show)
  })

  withLedgerOptions(
    farm
      .command('add-ip')
      .description('add a public IP to a farm (farmer only)')
      .argument('<farm>', 'farm id or name')
      .argument('<ip>', 'IP/PREFIX, e.g. 185.69.166.10/24')
      .argument('<gateway>', 'gateway in the same subnet, e.g. 185.69.166.1'),
    { key: 'required' },
  ).action(async (ref: string, ip: string, gateway: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, true, async (l) => l.farms.addIp(await farmIdOf(l, ref), { ip, gateway })), show)
  })

  withLedgerOptions(
    farm.command('remove-ip').description('remove a free public IP from a farm (farmer only)').argument('<farm>', 'farm id or name').argument('<ip>', 'the IP (prefix optional)'),
    { key: 'required' },
  ).action(async (ref: string, ip: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, true, async (l) => l.farms.removeIp(await farmIdOf(l, ref), ip)), show)
  })
}
