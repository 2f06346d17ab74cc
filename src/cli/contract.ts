// `zos contract create node|name|rent, list, show, update, cancel, bill`: IT contracts and their billing.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { BillingRecord, BillQuote, GridContract, Ledger, PublicIp } from '../ledger/types.js'
import { emit } from './output.js'
import { kv, parseHash, parseId, parseUint, table, when, withLedger, withLedgerOptions } from './ledger-common.js'

interface ContractView extends GridContract {
  effectiveState: string
  ips: PublicIp[]
  billing: BillingRecord
  quote: BillQuote
}

async function view(l: Ledger, id: number): Promise<ContractView> {
  const c = await l.contracts.get(id)
  const [effectiveState, ips, billing, quote] = await Promise.all([l.contracts.effectiveState(id), l.contracts.ips(id), l.billing.record(id), l.billing.quote(id)])
  return { ...c, effectiveState, ips, billing, quote }
}

function what(c: GridContract): string {
  if (c.kind === 'name') return `name ${c.name}`
  if (c.kind === 'rent') return `node ${c.nodeId} (whole)`
  return `node ${c.nodeId}`
}

function show(tokens: (v: bigint) => string): (c: ContractView) => string {
  return (c) =>
    kv([
      ['contract', c.id],
      ['kind', c.kind],
      ['state', c.state === c.effectiveState ? c.state : `${c.state} (effectively ${c.effectiveState}: its rent contract is)`],
      ['cause', c.state === 'Deleted' ? c.cause : ''],
      ['twin', c.twinId],
      ['for', what(c)],
      ['deployment', c.kind === 'node' ? c.deploymentHash : ''],
      ['data', c.deploymentData === '0x' ? '' : c.deploymentData],
      ['public IPs', c.kind === 'node' ? (c.ips.length ? c.ips.map((p) => `${p.ip} gw ${p.gateway}`).join(', ') : c.publicIps) : ''],
      ['rent contract', c.rentContractId || ''],
      ['solution provider', c.solutionProviderId || ''],
      ['created', when(c.createdAt)],
      ['grace since', when(c.graceStartedAt)],
      ['deleted', when(c.deletedAt)],
      ['paid', tokens(c.billing.totalPaid)],
      ['owed', tokens(c.billing.owed)],
      ['due now', c.state === 'Deleted' ? '' : `${tokens(c.quote.amount + c.quote.extra)} (discount ${c.quote.discountLevel})`],
      ['last billed', when(c.billing.lastBilled)],
    ])
}

export function registerContract(program: Command): void {
  const contract = program.command('contract').description('IT contracts: node (a deployment), name (a gateway name), rent (a whole node)')
  const create = contract.command('create').description('create a contract owned by the key\'s twin')

  withLedgerOptions(
    create
      .command('node')
      .description('a node contract carrying the hash of a deployment')
      .requiredOption('--node <id>', 'node to deploy on')
      .requiredOption('--hash <hex>', 'deployment hash (0x + 64 hex)')
      .option('--data <hex>', 'deployment data (0x hex, at most 512 bytes)')
      .option('--public-ips <n>', 'public IPs to reserve from the farm', '0')
      .option('--solution-provider <id>', 'approved solution provider id'),
    { key: 'required' },
  ).action(async (opts: { node: string; hash: string; data?: string; publicIps: string; solutionProvider?: string }, cmd: Command) => {
    if (opts.data !== undefined && !/^0x([0-9a-fA-F]{2})*$/.test(opts.data)) throw zerr('INVALID_ARGUMENT', '--data must be 0x-prefixed hex bytes')
    const { formatTokens } = await import('../ledger/errors.js')
    const c = await withLedger(cmd, true, async (l) => {
      const created = await l.contracts.createNode({
        nodeId: parseId(opts.node, '--node'),
        deploymentHash: parseHash(opts.hash, '--hash'),
        deploymentData: opts.data as `0x${string}` | undefined,
        publicIps: parseUint(opts.publicIps, '--public-ips'),
        solutionProviderId: opts.solutionProvider === undefined ? undefined : parseId(opts.solutionProvider, '--solution-provider'),
      })
      return view(l, created.id)
    })
    emit(cmd, c, show(formatTokens))
  })

  withLedgerOptions(create.command('name').description('a name contract reserving a gateway name').argument('<name>', '3..64 chars of [a-z0-9_-]'), { key: 'required' }).action(
    async (name: string, _o: unknown, cmd: Command) => {
      const { formatTokens } = await import('../ledger/errors.js')
      emit(cmd, await withLedger(cmd, true, async (l) => view(l, (await l.contracts.createName(name)).id)), show(formatTokens))
    },
  )

  withLedgerOptions(
    create.command('rent').description('a rent contract for a whole node').requiredOption('--node <id>', 'node to rent').option('--solution-provider <id>', 'approved solution provider id'),
    { key: 'required' },
  ).action(async (opts: { node: string; solutionProvider?: string }, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const c = await withLedger(cmd, true, async (l) => {
      const created = await l.contracts.createRent({
        nodeId: parseId(opts.node, '--node'),
        solutionProviderId: opts.solutionProvider === undefined ? undefined : parseId(opts.solutionProvider, '--solution-provider'),
      })
      return view(l, created.id)
    })
    emit(cmd, c, show(formatTokens))
  })

  withLedgerOptions(
    contract
      .command('list')
      .description("list contracts: the key's twin's by default, or of --twin, --node, or --all by id (100 at a time)")
      .option('--twin <id>', 'contracts of this twin')
      .option('--node <id>', 'contracts on this node')
      .option('--all', 'all contracts by id')
      .option('--first <n>', 'first index (or id with --all)', '0'),
  ).action(async (opts: { twin?: string; node?: string; all?: boolean; first: string }, cmd: Command) => {
    const list = await withLedger(cmd, opts.twin === undefined && opts.node === undefined && !opts.all, async (l) => {
      const first = parseUint(opts.first, '--first')
      if (opts.all) return l.contracts.list({ first: Math.max(1, first) })
      if (opts.node !== undefined) return l.contracts.list({ nodeId: parseId(opts.node, '--node'), first })
      const twinId = opts.twin !== undefined ? parseId(opts.twin, '--twin') : (await l.twins.mine()).id
      return l.contracts.list({ twinId, first })
    })
    emit(cmd, list, (cs) =>
      table(
        ['ID', 'KIND', 'STATE', 'TWIN', 'FOR', 'IPS', 'DEPLOYMENT'],
        cs.map((c) => [c.id, c.kind, c.state === 'Deleted' ? `Deleted(${c.cause})` : c.state, c.twinId, what(c), c.kind === 'node' ? c.publicIps : '', c.kind === 'node' ? c.deploymentHash.slice(0, 18) + '…' : '']),
      ),
    )
  })

  withLedgerOptions(contract.command('show').description('show a contract with its billing').argument('<id>', 'contract id')).action(async (idText: string, _o: unknown, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    emit(cmd, await withLedger(cmd, false, (l) => view(l, parseId(idText, 'contract id'))), show(formatTokens))
  })

  withLedgerOptions(
    contract
      .command('update')
      .description('change the deployment a node contract carries (owner only, not in grace period)')
      .argument('<id>', 'contract id')
      .requiredOption('--hash <hex>', 'new deployment hash')
      .option('--data <hex>', 'new deployment data'),
    { key: 'required' },
  ).action(async (idText: string, opts: { hash: string; data?: string }, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const c = await withLedger(cmd, true, async (l) => {
      const id = parseId(idText, 'contract id')
      await l.contracts.update(id, { deploymentHash: parseHash(opts.hash, '--hash'), deploymentData: opts.data as `0x${string}` | undefined })
      return view(l, id)
    })
    emit(cmd, c, show(formatTokens))
  })

  withLedgerOptions(contract.command('cancel').description('bill a contract a last time and delete it (owner only)').argument('<id>', 'contract id'), { key: 'required' }).action(
    async (idText: string, _o: unknown, cmd: Command) => {
      const { formatTokens } = await import('../ledger/errors.js')
      const c = await withLedger(cmd, true, async (l) => {
        const id = parseId(idText, 'contract id')
        await l.contracts.cancel(id)
        return view(l, id)
      })
      emit(cmd, c, show(formatTokens))
    },
  )

  withLedgerOptions(
    contract.command('bill').description('bill contracts up to now (anyone may): collects what is due, enters or leaves the grace period').argument('<ids...>', 'contract ids'),
    { key: 'required' },
  ).action(async (ids: string[], _o: unknown, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const results = await withLedger(cmd, true, async (l) => {
      const out = []
      for (const idText of ids) out.push(await l.billing.bill(parseId(idText, 'contract id')))
      return out
    })
    emit(cmd, results, (rs) =>
      table(
        ['CONTRACT', 'BILLED', 'PAID', 'OWED', 'DISCOUNT', 'STATE'],
        rs.map((r) => [r.contractId, formatTokens(r.billed), formatTokens(r.paid), formatTokens(r.owed), r.discountLevel, r.state === 'Deleted' ? `Deleted(${r.cause})` : r.state]),
      ),
    )
  })
}
