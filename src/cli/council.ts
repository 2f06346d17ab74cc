// `zos council info|propose|approve|execute|show|release`: the M-of-N council that approves zos releases,
// pricing and certification. Each `propose <action>` is one privileged call; it runs when enough members approve.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { CouncilAction, Proposal, ProposalOutcome, Release } from '../ledger/types.js'
import { emit } from './output.js'
import { kv, parseAddress, parseHash, parseId, parseUint, when, withLedger, withLedgerOptions } from './ledger-common.js'

function describeAction(a: CouncilAction | null): string {
  if (!a) return 'unknown call'
  const { type, ...rest } = a
  return `${type} ${JSON.stringify(rest)}`
}

function proposalRows(p: Proposal): [string, unknown][] {
  return [
    ['proposal', p.id],
    ['action', describeAction(p.action)],
    ['description', p.description],
    ['proposer', p.proposer],
    ['approvals', p.approvals],
    ['executed', p.executed ? 'yes' : 'no'],
    ['created', when(p.createdAt)],
    ['expires', when(p.expiresAt)],
  ]
}

function showProposal(p: Proposal): string {
  return kv(proposalRows(p))
}

function showOutcome(o: ProposalOutcome): string {
  const status = o.executed ? 'executed' : o.failure ? `reached the threshold but failed: ${o.failure} (retry with zos council execute ${o.proposal.id})` : 'waiting for more approvals'
  return kv([...proposalRows(o.proposal), ['status', status]])
}

function showRelease(r: Release | null): string {
  if (!r) return 'no release approved for this network'
  return kv([
    ['network', r.network],
    ['version', r.version],
    ['flist hash', r.flistHash],
    ['safe to upgrade', r.safeToUpgrade ? 'yes' : 'no'],
    ['test farms', r.testFarms.join(', ')],
    ['approved', `${when(r.approvedAt)} by proposal ${r.proposalId}`],
  ])
}

function cert<T extends string>(text: string, allowed: readonly T[], what: string): T {
  const found = allowed.find((a) => a.toLowerCase() === text.toLowerCase())
  if (!found) throw zerr('INVALID_ARGUMENT', `${what} must be one of ${allowed.join(', ')}, got "${text}"`)
  return found
}

export function registerCouncil(program: Command): void {
  const council = program.command('council').description('the M-of-N council: zos releases, pricing, certification')

  withLedgerOptions(council.command('info').description('members, threshold and number of proposals'), { key: 'none' }).action(async (_o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, false, (l) => l.council.info()), (i) =>
      kv([['council', i.address], ['threshold', `${i.threshold} of ${i.members.length}`], ['proposals', i.proposalCount], ...i.members.map((m, k): [string, unknown] => [`member ${k + 1}`, m])]),
    )
  })

  const propose = council.command('propose').description('propose a privileged action (the proposer approves it at once)')
  const action = (name: string, description: string, build: (args: string[], opts: Record<string, string | boolean | undefined>) => CouncilAction): Command => {
    const c = propose.command(name).description(description).option('--description <text>', 'why (stored with the proposal)', '')
    withLedgerOptions(c, { key: 'required' })
    return c
      .allowExcessArguments(false)
      .action(async (...params: unknown[]) => {
        const cmd = params[params.length - 1] as Command
        const opts = params[params.length - 2] as Record<string, string | boolean | undefined>
        const args = params.slice(0, -2) as string[]
        const a = build(args, opts)
        emit(cmd, await withLedger(cmd, true, (l) => l.council.propose(a, String(opts.description ?? ''))), showOutcome)
      })
  }

  action('release', 'approve the zos release of a network: version and root hash of its signed flist', (_a, o) => ({
    type: 'setRelease',
    network: String(o.network),
    version: String(o.zosVersion),
    flistHash: parseHash(String(o.flistHash), '--flist-hash'),
    safeToUpgrade: o.safeToUpgrade === true,
    testFarms: o.testFarms ? String(o.testFarms).split(',').filter(Boolean).map((f) => parseId(f.trim(), '--test-farms')) : [],
  }))
    .requiredOption('--network <name>', 'network (e.g. dev, test, main)')
    .requiredOption('--zos-version <version>', 'zos version (e.g. 1.2.3)')
    .requiredOption('--flist-hash <hex>', 'root hash of the signed zos flist')
    .option('--safe-to-upgrade', 'nodes may switch on their own')
    .option('--test-farms <ids>', 'comma-separated farms that get it first')

  action('farm-certification', 'certify a farm (Gold) or withdraw it (NotCertified)', (_a, o) => ({
    type: 'setFarmCertification',
    farmId: parseId(String(o.farm), '--farm'),
    certification: cert(String(o.certification), ['NotCertified', 'Gold'] as const, '--certification'),
  }))
    .requiredOption('--farm <id>', 'farm id')
    .requiredOption('--certification <level>', 'Gold or NotCertified')

  action('node-certification', 'certify a node (Certified, +25 % price) or not (Diy)', (_a, o) => ({
    type: 'setNodeCertification',
    nodeId: parseId(String(o.node), '--node'),
    certification: cert(String(o.certification), ['Diy', 'Certified'] as const, '--certification'),
  }))
    .requiredOption('--node <id>', 'node id')
    .requiredOption('--certification <level>', 'Certified or Diy')

  action('dedicated-farm', 'make a farm dedicated (its nodes are rented whole) or not', (_a, o) => ({
    type: 'setFarmDedicated',
    farmId: parseId(String(o.farm), '--farm'),
    dedicated: o.off !== true,
  }))
    .requiredOption('--farm <id>', 'farm id')
    .option('--off', 'make it not dedicated')

  action('farm-policy', 'attach a pricing policy to a farm', (_a, o) => ({
    type: 'setFarmPricingPolicy',
    farmId: parseId(String(o.farm), '--farm'),
    policyId: parseId(String(o.policy), '--policy'),
  }))
    .requiredOption('--farm <id>', 'farm id')
    .requiredOption('--policy <id>', 'pricing policy id')

  action('pricing-policy', 'create a pricing policy (prices in units USD per hour; 1 mUSD = 10 000 units)', (_a, o) => ({
    type: 'createPricingPolicy',
    policy: {
      name: String(o.name),
      su: parseUint(String(o.su), '--su'),
      cu: parseUint(String(o.cu), '--cu'),
      nu: parseUint(String(o.nu), '--nu'),
      ipu: parseUint(String(o.ipu), '--ipu'),
      uniqueName: parseUint(String(o.uniqueName), '--unique-name'),
      domainName: parseUint(String(o.domainName), '--domain-name'),
      foundationAccount: parseAddress(String(o.foundation), '--foundation'),
      certifiedSalesAccount: parseAddress(String(o.sales), '--sales'),
      dedicatedDiscountPct: parseUint(String(o.dedicatedDiscount), '--dedicated-discount'),
    },
  }))
    .requiredOption('--name <name>', 'policy name')
    .requiredOption('--foundation <address>', 'foundation account')
    .requiredOption('--sales <address>', 'certified sales account')
    .option('--su <units>', 'per SU per hour', '50000')
    .option('--cu <units>', 'per CU per hour', '100000')
    .option('--nu <units>', 'per GB of public traffic', '15000')
    .option('--ipu <units>', 'per public IP per hour', '40000')
    .option('--unique-name <units>', 'per gateway name per hour', '2500')
    .option('--domain-name <units>', 'per domain per hour', '5000')
    .option('--dedicated-discount <pct>', 'rent discount in percent', '50')

  action('token-price', 'set the token price (mUSD) billing converts with, and its clamp', (_a, o) => ({
    type: 'setTokenPrice',
    priceMusd: parseUint(String(o.price), '--price'),
    minMusd: parseUint(String(o.min), '--min'),
    maxMusd: parseUint(String(o.max), '--max'),
  }))
    .requiredOption('--price <mUSD>', 'price of one token in mUSD')
    .option('--min <mUSD>', 'lowest price billing uses', '10')
    .option('--max <mUSD>', 'highest price billing uses', '1000')

  action('grace-period', 'set the grace period of unpaid contracts', (_a, o) => ({ type: 'setGracePeriod', seconds: parseUint(String(o.seconds), '--seconds') })).requiredOption(
    '--seconds <n>',
    'seconds (TFChain: 14 days = 1209600)',
  )

  action('add-member', 'add a council member', (a) => ({ type: 'addMember', member: parseAddress(a[0] ?? '', 'member') })).argument('<address>', 'member account')
  action('remove-member', 'remove a council member', (a) => ({ type: 'removeMember', member: parseAddress(a[0] ?? '', 'member') })).argument('<address>', 'member account')
  action('threshold', 'change how many approvals an action needs', (a) => ({ type: 'setThreshold', threshold: parseUint(a[0] ?? '', 'threshold') })).argument('<n>', 'approvals')
  action('cancel-contract', 'cancel a contract by collective decision', (a) => ({ type: 'cancelContract', contractId: parseId(a[0] ?? '', 'contract id') })).argument('<id>', 'contract id')
  action('solution-provider', 'approve (or --reject) a solution provider', (a, o) => ({
    type: 'approveSolutionProvider',
    id: parseId(a[0] ?? '', 'solution provider id'),
    approved: o.reject !== true,
  }))
    .argument('<id>', 'solution provider id')
    .option('--reject', 'withdraw the approval')

  withLedgerOptions(council.command('approve').description('approve a proposal; its action runs at the threshold').argument('<id>', 'proposal id'), { key: 'required' }).action(
    async (idText: string, _o: unknown, cmd: Command) => {
      emit(cmd, await withLedger(cmd, true, (l) => l.council.approve(parseId(idText, 'proposal id'))), showOutcome)
    },
  )

  withLedgerOptions(council.command('execute').description('retry a proposal that reached the threshold but whose action failed').argument('<id>', 'proposal id'), {
    key: 'required',
  }).action(async (idText: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, true, (l) => l.council.execute(parseId(idText, 'proposal id'))), showOutcome)
  })

  withLedgerOptions(council.command('show').description('show a proposal').argument('<id>', 'proposal id'), { key: 'none' }).action(async (idText: string, _o: unknown, cmd: Command) => {
    emit(cmd, await withLedger(cmd, false, (l) => l.council.proposal(parseId(idText, 'proposal id'))), showProposal)
  })

  withLedgerOptions(council.command('release').description('show the approved zos release of a network').option('--network <name>', 'network (default: the ledger\'s)'), {
    key: 'none',
  }).action(async (opts: { network?: string }, cmd: Command) => {
    emit(cmd, await withLedger(cmd, false, (l) => l.council.release(opts.network ?? l.addressBook.network)), showRelease)
  })
}
