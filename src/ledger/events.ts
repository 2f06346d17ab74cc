// Typed event streams: decoded logs of the ledger's contracts turned into LedgerEvent values, queried by
// block range or watched by polling eth_getLogs from a cursor (works on any JSON-RPC endpoint, and after a
// ledger restart, since anvil persists blocks with its state).
import { setTimeout as sleep } from 'node:timers/promises'
import type { Chain, DecodedLog } from './chain.js'
import {
  CONTRACT_KINDS,
  DELETE_CAUSES,
  DISCOUNT_LEVELS,
  FARM_CERTIFICATIONS,
  NODE_CERTIFICATIONS,
  POWERS,
  big,
  formatIpv4,
  num,
  publicConfigOf,
  resourcesOf,
} from './convert.js'
import type { Address, Hex, LedgerEvent, LedgerEventType, WatchOptions } from './types.js'

/** Largest block span of one eth_getLogs request. */
const MAX_SPAN = 5_000n

const s = (v: unknown): string => (typeof v === 'string' ? v : '')
const a = (v: unknown): Address => s(v) as Address
const h = (v: unknown): Hex => (s(v) || '0x') as Hex
const e = <T>(names: readonly T[], v: unknown): T => names[num(v)] ?? names[0]!

/** The LedgerEvent of a decoded log, or null for events outside the typed set (Approval, BillerSet...). */
export function toLedgerEvent(log: DecodedLog): LedgerEvent | null {
  const x = log.args
  const meta = { block: Number(log.blockNumber), tx: log.transactionHash, logIndex: log.logIndex }
  switch (log.eventName) {
    case 'TwinStored':
    case 'TwinUpdated':
      return { ...meta, type: log.eventName, twinId: num(x.twinId), account: a(x.account), relay: s(x.relay), pk: h(x.pk) }
    case 'FarmStored':
      return { ...meta, type: 'FarmStored', farmId: num(x.farmId), name: s(x.name), twinId: num(x.twinId), pricingPolicyId: num(x.pricingPolicyId) }
    case 'FarmUpdated':
      return { ...meta, type: 'FarmUpdated', farmId: num(x.farmId), name: s(x.name) }
    case 'FarmPublicIpAdded':
      return { ...meta, type: 'FarmPublicIpAdded', farmId: num(x.farmId), ip: `${formatIpv4(num(x.ip))}/${num(x.prefix)}`, gateway: formatIpv4(num(x.gateway)) }
    case 'FarmPublicIpRemoved':
      return { ...meta, type: 'FarmPublicIpRemoved', farmId: num(x.farmId), ip: formatIpv4(num(x.ip)) }
    case 'FarmCertificationSet':
      return { ...meta, type: 'FarmCertificationSet', farmId: num(x.farmId), certification: e(FARM_CERTIFICATIONS, x.certification) }
    case 'FarmDedicatedSet':
      return { ...meta, type: 'FarmDedicatedSet', farmId: num(x.farmId), dedicated: x.dedicated === true }
    case 'FarmPricingPolicySet':
      return { ...meta, type: 'FarmPricingPolicySet', farmId: num(x.farmId), pricingPolicyId: num(x.pricingPolicyId) }
    case 'IpsReserved':
    case 'IpsFreed':
      return {
        ...meta,
        type: log.eventName,
        farmId: num(x.farmId),
        contractId: num(x.contractId),
        ips: (Array.isArray(x.ips) ? (x.ips as unknown[]) : []).map((ip) => formatIpv4(num(ip))),
      }
    case 'NodeStored':
      return { ...meta, type: 'NodeStored', nodeId: num(x.nodeId), farmId: num(x.farmId), twinId: num(x.twinId), resources: resourcesOf(x.resources) }
    case 'NodeUpdated':
      return { ...meta, type: 'NodeUpdated', nodeId: num(x.nodeId), farmId: num(x.farmId), resources: resourcesOf(x.resources) }
    case 'NodeDeleted':
      return { ...meta, type: 'NodeDeleted', nodeId: num(x.nodeId), farmId: num(x.farmId) }
    case 'NodePublicConfigStored':
      return { ...meta, type: 'NodePublicConfigStored', nodeId: num(x.nodeId), config: publicConfigOf(x.config) }
    case 'NodeCertificationSet':
      return { ...meta, type: 'NodeCertificationSet', nodeId: num(x.nodeId), certification: e(NODE_CERTIFICATIONS, x.certification) }
    case 'NodeUptimeReported':
      return { ...meta, type: 'NodeUptimeReported', nodeId: num(x.nodeId), timestamp: num(x.timestamp), uptime: num(x.uptime) }
    case 'PowerTargetChanged':
      return { ...meta, type: 'PowerTargetChanged', nodeId: num(x.nodeId), target: e(POWERS, x.target) }
    case 'PowerStateChanged':
      return { ...meta, type: 'PowerStateChanged', nodeId: num(x.nodeId), state: e(POWERS, x.state) }
    case 'NodeExtraFeeSet':
      return { ...meta, type: 'NodeExtraFeeSet', nodeId: num(x.nodeId), extraFeeMusd: num(x.extraFeeMusd) }
    case 'ContractCreated':
      return {
        ...meta,
        type: 'ContractCreated',
        contractId: num(x.contractId),
        twinId: num(x.twinId),
        nodeId: num(x.nodeId),
        kind: e(CONTRACT_KINDS, x.kind),
        deploymentHash: h(x.deploymentHash),
        publicIps: num(x.publicIps),
        name: s(x.name),
      }
    case 'ContractUpdated':
      return { ...meta, type: 'ContractUpdated', contractId: num(x.contractId), twinId: num(x.twinId), nodeId: num(x.nodeId), deploymentHash: h(x.deploymentHash) }
    case 'ContractCanceled':
      return {
        ...meta,
        type: 'ContractCanceled',
        contractId: num(x.contractId),
        twinId: num(x.twinId),
        nodeId: num(x.nodeId),
        kind: e(CONTRACT_KINDS, x.kind),
        cause: e(DELETE_CAUSES, x.cause),
      }
    case 'ContractGracePeriodStarted':
      return {
        ...meta,
        type: 'ContractGracePeriodStarted',
        contractId: num(x.contractId),
        twinId: num(x.twinId),
        nodeId: num(x.nodeId),
        kind: e(CONTRACT_KINDS, x.kind),
        startedAt: num(x.startedAt),
      }
    case 'ContractGracePeriodEnded':
      return { ...meta, type: 'ContractGracePeriodEnded', contractId: num(x.contractId), twinId: num(x.twinId), nodeId: num(x.nodeId), kind: e(CONTRACT_KINDS, x.kind) }
    case 'ContractBilled':
      return {
        ...meta,
        type: 'ContractBilled',
        contractId: num(x.contractId),
        timestamp: num(x.timestamp),
        discountLevel: e(DISCOUNT_LEVELS, x.discountLevel),
        amountBilled: big(x.amountBilled),
        amountPaid: big(x.amountPaid),
        owed: big(x.owed),
      }
    case 'PayoutDistributed':
      return {
        ...meta,
        type: 'PayoutDistributed',
        contractId: num(x.contractId),
        farmer: big(x.farmer),
        foundation: big(x.foundation),
        staking: big(x.staking),
        sales: big(x.sales),
        providers: big(x.providers),
        burned: big(x.burned),
      }
    case 'UsedResourcesUpdated':
      return { ...meta, type: 'UsedResourcesUpdated', contractId: num(x.contractId), nodeId: num(x.nodeId), used: resourcesOf(x.used) }
    case 'NruReportReceived':
      return {
        ...meta,
        type: 'NruReportReceived',
        contractId: num(x.contractId),
        nodeId: num(x.nodeId),
        timestamp: num(x.timestamp),
        window: num(x.window),
        nru: num(x.nru),
      }
    case 'PricingPolicyStored':
      return { ...meta, type: 'PricingPolicyStored', policyId: num(x.policyId) }
    case 'TokenPriceSet':
      return { ...meta, type: 'TokenPriceSet', priceMusd: num(x.priceMusd), minPriceMusd: num(x.minPriceMusd), maxPriceMusd: num(x.maxPriceMusd) }
    case 'GracePeriodSet':
      return { ...meta, type: 'GracePeriodSet', seconds: num(x.seconds_) }
    case 'SplitSet':
      return { ...meta, type: 'SplitSet' }
    case 'SolutionProviderCreated':
      return { ...meta, type: 'SolutionProviderCreated', id: num(x.id) }
    case 'SolutionProviderApproved':
      return { ...meta, type: 'SolutionProviderApproved', id: num(x.id), approved: x.approved === true }
    case 'MemberAdded':
    case 'MemberRemoved':
      return { ...meta, type: log.eventName, member: a(x.member) }
    case 'ThresholdChanged':
      return { ...meta, type: 'ThresholdChanged', threshold: num(x.threshold) }
    case 'ProposalCreated':
      return { ...meta, type: 'ProposalCreated', proposalId: num(x.id), proposer: a(x.proposer), target: a(x.target), description: s(x.description) }
    case 'ProposalApproved':
      return { ...meta, type: 'ProposalApproved', proposalId: num(x.id), member: a(x.member), approvals: num(x.approvals) }
    case 'ProposalExecuted':
      return { ...meta, type: 'ProposalExecuted', proposalId: num(x.id) }
    case 'ProposalExecutionFailed':
      return { ...meta, type: 'ProposalExecutionFailed', proposalId: num(x.id), reason: s(x.reason) }
    case 'ReleaseApproved':
      return {
        ...meta,
        type: 'ReleaseApproved',
        network: s(x.network),
        version: s(x.version),
        flistHash: h(x.flistHash),
        safeToUpgrade: x.safeToUpgrade === true,
        testFarms: (Array.isArray(x.testFarms) ? (x.testFarms as unknown[]) : []).map(num),
        proposalId: num(x.proposalId),
      }
    case 'Transfer':
      return { ...meta, type: 'Transfer', from: a(x.from), to: a(x.to), value: big(x.value) }
    case 'FaucetMinted':
      return { ...meta, type: 'FaucetMinted', to: a(x.to), value: big(x.value) }
    default:
      return null
  }
}

/** Events of the ledger's contracts in [fromBlock, toBlock], in chain order. */
export async function queryEvents(
  chain: Chain,
  fromBlock: bigint,
  toBlock: bigint,
  types?: readonly LedgerEventType[],
): Promise<LedgerEvent[]> {
  const out: LedgerEvent[] = []
  const wanted = types ? new Set<string>(types) : null
  for (let from = fromBlock; from <= toBlock; from += MAX_SPAN) {
    const to = from + MAX_SPAN - 1n < toBlock ? from + MAX_SPAN - 1n : toBlock
    const logs = await chain.rpc('getLogs', (c) => c.getLogs({ address: chain.addresses(), fromBlock: from, toBlock: to }))
    for (const d of chain.decodeLogs(logs)) {
      const ev = toLedgerEvent(d)
      if (ev && (!wanted || wanted.has(ev.type))) out.push(ev)
    }
  }
  return out
}

/**
 * Polls for new blocks and delivers their events in order; a handler's promise is awaited before the next
 * event. Returns the function that stops the watch.
 */
export function watchEvents(chain: Chain, onEvent: (ev: LedgerEvent) => void | Promise<void>, opts: WatchOptions = {}): () => void {
  let stopped = false
  const pollMs = opts.pollMs ?? 500
  const loop = async (): Promise<void> => {
    let next: bigint | undefined = opts.fromBlock !== undefined ? BigInt(opts.fromBlock) : undefined
    while (!stopped) {
      try {
        const head = await chain.rpc('blockNumber', (c) => c.getBlockNumber({ cacheTime: 0 }))
        next ??= head + 1n
        if (head >= next) {
          const events = await queryEvents(chain, next, head, opts.types)
          for (const ev of events) {
            if (stopped) return
            try {
              await onEvent(ev)
            } catch (err) {
              opts.onError?.(err) // a failing handler does not stop the stream or replay the event
            }
          }
          next = head + 1n
        }
      } catch (err) {
        opts.onError?.(err)
      }
      if (!stopped) await sleep(pollMs)
    }
  }
  void loop()
  return () => {
    stopped = true
  }
}
