// Converts what the contracts return (viem-decoded tuples: bigint for uint64+, numbers for small ints, enum
// ordinals) into the plain types of types.ts, and parses/prints IPv4 addresses stored as uint32.
import { zerr } from '../core/errors.js'
import type {
  Address,
  BillingRecord,
  BillQuote,
  ContractKind,
  ContractState,
  DeleteCause,
  DiscountLevel,
  Farm,
  FarmCertification,
  GridContract,
  Hex,
  Location,
  Node,
  NodeCertification,
  Power,
  PricingPolicy,
  PublicConfig,
  PublicIp,
  Release,
  Resources,
  SolutionProvider,
  Twin,
} from './types.js'

export const CONTRACT_KINDS: readonly ContractKind[] = ['node', 'name', 'rent']
export const CONTRACT_STATES: readonly ContractState[] = ['Created', 'GracePeriod', 'Deleted']
export const DELETE_CAUSES: readonly DeleteCause[] = ['None', 'CanceledByUser', 'OutOfFunds', 'CanceledByCouncil']
export const POWERS: readonly Power[] = ['Up', 'Down']
export const NODE_CERTIFICATIONS: readonly NodeCertification[] = ['Diy', 'Certified']
export const FARM_CERTIFICATIONS: readonly FarmCertification[] = ['NotCertified', 'Gold']
export const DISCOUNT_LEVELS: readonly DiscountLevel[] = ['None', 'Default', 'Bronze', 'Silver', 'Gold']

type Rec = Record<string, unknown>

function rec(v: unknown): Rec {
  return v !== null && typeof v === 'object' ? (v as Rec) : {}
}

/** A uint/int field as a number (ids, times, resources: all far below 2^53). */
export function num(v: unknown): number {
  if (typeof v === 'bigint') return Number(v)
  if (typeof v === 'number') return v
  return 0
}

export function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number') return BigInt(v)
  return 0n
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

function hex(v: unknown): Hex {
  return typeof v === 'string' && v.startsWith('0x') ? (v as Hex) : '0x'
}

function enumOf<T>(names: readonly T[], v: unknown): T {
  return names[num(v)] ?? names[0]!
}

// ---- IPv4 ----

/** "a.b.c.d" → uint32; INVALID_ARGUMENT naming `field` otherwise. */
export function parseIpv4(text: string, field = 'ip'): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim())
  const parts = m ? m.slice(1).map(Number) : []
  if (!m || parts.some((p) => p > 255)) throw zerr('INVALID_ARGUMENT', `${field} "${text}" is not an IPv4 address (a.b.c.d)`)
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!
}

/** "a.b.c.d/nn" → { ip, prefix }. */
export function parseCidr(text: string, field = 'ip'): { ip: number; prefix: number } {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text.trim())
  if (!m) throw zerr('INVALID_ARGUMENT', `${field} "${text}" must be an IPv4 address with prefix length, e.g. 185.69.166.10/24`)
  const prefix = Number(m[2])
  if (prefix > 32) throw zerr('INVALID_ARGUMENT', `${field} "${text}": prefix length ${prefix} is over 32`)
  return { ip: parseIpv4(m[1]!, field), prefix }
}

export function formatIpv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.')
}

// ---- records ----

export function resourcesOf(v: unknown): Resources {
  const r = rec(v)
  return { hru: num(r.hru), sru: num(r.sru), cru: num(r.cru), mru: num(r.mru) }
}

export function resourcesArg(r: Resources): { hru: bigint; sru: bigint; cru: bigint; mru: bigint } {
  for (const k of ['hru', 'sru', 'cru', 'mru'] as const) {
    const v = r[k]
    if (!Number.isSafeInteger(v) || v < 0) throw zerr('INVALID_ARGUMENT', `resources.${k} must be a non-negative integer, got ${v}`)
  }
  return { hru: BigInt(r.hru), sru: BigInt(r.sru), cru: BigInt(r.cru), mru: BigInt(r.mru) }
}

export function twinOf(v: unknown): Twin {
  const t = rec(v)
  return {
    id: num(t.id),
    account: str(t.account) as Address,
    relay: str(t.relay),
    pk: hex(t.pk),
    createdAt: num(t.createdAt),
    updatedAt: num(t.updatedAt),
  }
}

export function publicIpOf(v: unknown): PublicIp {
  const p = rec(v)
  return { ip: `${formatIpv4(num(p.ip))}/${num(p.prefix)}`, gateway: formatIpv4(num(p.gateway)), contractId: num(p.contractId) }
}

export function farmOf(v: unknown, ips: readonly unknown[]): Farm {
  const f = rec(v)
  return {
    id: num(f.id),
    name: str(f.name),
    twinId: num(f.twinId),
    pricingPolicyId: num(f.pricingPolicyId),
    certification: enumOf(FARM_CERTIFICATIONS, f.certification),
    dedicated: f.dedicated === true,
    publicIps: ips.map(publicIpOf),
    freeIps: num(f.freeIps),
    createdAt: num(f.createdAt),
  }
}

function locationOf(v: unknown): Location {
  const l = rec(v)
  return { city: str(l.city), country: str(l.country), latitude: num(l.latitude) / 1e6, longitude: num(l.longitude) / 1e6 }
}

export function publicConfigOf(v: unknown): PublicConfig | null {
  const p = rec(v)
  const c = { ip4: str(p.ip4), gw4: str(p.gw4), ip6: str(p.ip6), gw6: str(p.gw6), domain: str(p.domain) }
  return c.ip4 === '' && c.ip6 === '' && c.domain === '' ? null : c
}

export function nodeOf(v: unknown): Node {
  const n = rec(v)
  return {
    id: num(n.id),
    farmId: num(n.farmId),
    twinId: num(n.twinId),
    resources: resourcesOf(n.resources),
    location: locationOf(n.location),
    serial: str(n.serial),
    secureBoot: n.secureBoot === true,
    virtualized: n.virtualized === true,
    certification: enumOf(NODE_CERTIFICATIONS, n.certification),
    powerTarget: enumOf(POWERS, n.powerTarget),
    powerState: enumOf(POWERS, n.powerState),
    publicConfig: publicConfigOf(n.publicConfig),
    extraFeeMusd: num(n.extraFeeMusd),
    createdAt: num(n.createdAt),
    updatedAt: num(n.updatedAt),
    powerChangedAt: num(n.powerChangedAt),
    lastUptimeReport: num(n.lastUptimeReport),
    uptime: num(n.uptime),
    deleted: n.deleted === true,
  }
}

export function contractOf(v: unknown): GridContract {
  const c = rec(v)
  return {
    id: num(c.id),
    twinId: num(c.twinId),
    kind: enumOf(CONTRACT_KINDS, c.kind),
    state: enumOf(CONTRACT_STATES, c.state),
    cause: enumOf(DELETE_CAUSES, c.cause),
    nodeId: num(c.nodeId),
    farmId: num(c.farmId),
    deploymentHash: hex(c.deploymentHash),
    deploymentData: hex(c.deploymentData),
    publicIps: num(c.publicIps),
    name: str(c.name),
    solutionProviderId: num(c.solutionProviderId),
    rentContractId: num(c.rentContractId),
    createdAt: num(c.createdAt),
    updatedAt: num(c.updatedAt),
    graceStartedAt: num(c.graceStartedAt),
    deletedAt: num(c.deletedAt),
  }
}

export function billingRecordOf(v: unknown): BillingRecord {
  const r = rec(v)
  return {
    used: resourcesOf(r.used),
    lastAccrual: num(r.lastAccrual),
    lastBilled: num(r.lastBilled),
    accrued: big(r.accrued),
    accruedExtra: big(r.accruedExtra),
    owed: big(r.owed),
    owedExtra: big(r.owedExtra),
    totalPaid: big(r.totalPaid),
  }
}

export function quoteOf(v: unknown): BillQuote {
  const q = rec(v)
  return { due: big(q.due), discountLevel: enumOf(DISCOUNT_LEVELS, q.discountLevel), amount: big(q.amount), extra: big(q.extra), owed: big(q.owed) }
}

export function policyOf(v: unknown): PricingPolicy {
  const p = rec(v)
  return {
    id: num(p.id),
    name: str(p.name),
    su: num(p.su),
    cu: num(p.cu),
    nu: num(p.nu),
    ipu: num(p.ipu),
    uniqueName: num(p.uniqueName),
    domainName: num(p.domainName),
    foundationAccount: str(p.foundationAccount) as Address,
    certifiedSalesAccount: str(p.certifiedSalesAccount) as Address,
    dedicatedDiscountPct: num(p.dedicatedDiscountPct),
  }
}

export function solutionProviderOf(v: unknown): SolutionProvider {
  const s = rec(v)
  const list = Array.isArray(s.providers) ? (s.providers as unknown[]) : []
  return {
    id: num(s.id),
    description: str(s.description),
    link: str(s.link),
    providers: list.map((p) => ({ who: str(rec(p).who) as Address, take: num(rec(p).take) })),
    approved: s.approved === true,
  }
}

export function releaseOf(network: string, v: unknown): Release | null {
  const r = rec(v)
  if (num(r.approvedAt) === 0) return null
  return {
    network,
    version: str(r.version),
    flistHash: hex(r.flistHash),
    safeToUpgrade: r.safeToUpgrade === true,
    testFarms: (Array.isArray(r.testFarms) ? (r.testFarms as unknown[]) : []).map(num),
    approvedAt: num(r.approvedAt),
    proposalId: num(r.proposalId),
  }
}
