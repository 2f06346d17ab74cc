// The Ledger interface: everything the rest of zos (node agent, relay, client, CLI, explorer) may ask of the
// chain, typed and documented method by method. Nothing else in the project talks to the chain: the only
// implementation, EvmLedger (client.ts), calls the Solidity contracts of contracts/ through viem.
//
// Conventions: ids of twins, farms, nodes, contracts, policies and proposals are numbers; token amounts are
// bigint base units (7 decimals, see TOKEN_DECIMALS); times are unix seconds of the chain; resources are bytes
// (hru, sru, mru) and logical cores (cru). Every failure is a ZosError with a stable code (NOT_FOUND,
// NOT_OWNER, NO_TWIN, UNAUTHORIZED, NAME_TAKEN, NO_IPS_FREE, INSUFFICIENT_FUNDS, INVALID_STATE, EXISTS,
// INVALID_ARGUMENT, LEDGER_UNAVAILABLE, LEDGER_REVERT, LEDGER_MISMATCH).

export type Address = `0x${string}`
export type Hex = `0x${string}`

export const TOKEN_DECIMALS = 7
export const TOKEN_SYMBOL = 'ZGT'

export interface Resources {
  hru: number
  sru: number
  cru: number
  mru: number
}

export interface Twin {
  id: number
  account: Address
  /** Relay addresses joined with '_' (hosts, host:port or ws:// URLs). */
  relay: string
  /** secp256k1 public key peers encrypt to (33 or 65 bytes; '0x' when unset). */
  pk: Hex
  createdAt: number
  updatedAt: number
}

export type FarmCertification = 'NotCertified' | 'Gold'

export interface PublicIp {
  /** "a.b.c.d/nn" */
  ip: string
  /** "a.b.c.d" */
  gateway: string
  /** Node contract holding it; 0 when free. */
  contractId: number
}

export interface Farm {
  id: number
  name: string
  twinId: number
  pricingPolicyId: number
  certification: FarmCertification
  /** Nodes of a dedicated farm can only be rented whole. */
  dedicated: boolean
  publicIps: PublicIp[]
  freeIps: number
  createdAt: number
}

export interface Location {
  city: string
  country: string
  /** Degrees (stored on chain as micro-degrees). */
  latitude: number
  longitude: number
}

export interface PublicConfig {
  ip4: string
  gw4: string
  ip6: string
  gw6: string
  domain: string
}

export type NodeCertification = 'Diy' | 'Certified'
export type Power = 'Up' | 'Down'

export interface NodeInput {
  farmId: number
  resources: Resources
  location?: Partial<Location>
  serial?: string
  secureBoot?: boolean
  virtualized?: boolean
}

export interface Node {
  id: number
  farmId: number
  twinId: number
  resources: Resources
  location: Location
  serial: string
  secureBoot: boolean
  virtualized: boolean
  certification: NodeCertification
  powerTarget: Power
  powerState: Power
  publicConfig: PublicConfig | null
  /** Farmer's monthly fee for renting the node, mUSD (0 = none; > 0 makes the node rent-only). */
  extraFeeMusd: number
  createdAt: number
  updatedAt: number
  powerChangedAt: number
  lastUptimeReport: number
  uptime: number
  deleted: boolean
}

export type ContractKind = 'node' | 'name' | 'rent'
export type ContractState = 'Created' | 'GracePeriod' | 'Deleted'
export type DeleteCause = 'None' | 'CanceledByUser' | 'OutOfFunds' | 'CanceledByCouncil'

export interface GridContract {
  id: number
  twinId: number
  kind: ContractKind
  state: ContractState
  cause: DeleteCause
  /** Node of a node or rent contract (0 for a name contract). */
  nodeId: number
  farmId: number
  /** Node contracts: the hash of the deployment the node must check (keccak256 of its challenge). */
  deploymentHash: Hex
  deploymentData: Hex
  publicIps: number
  /** Name contracts: the gateway name. */
  name: string
  solutionProviderId: number
  /** Node contracts created on a rented node: the rent contract. */
  rentContractId: number
  createdAt: number
  updatedAt: number
  graceStartedAt: number
  deletedAt: number
}

export interface BillingRecord {
  used: Resources
  lastAccrual: number
  lastBilled: number
  /** Accrued, unbilled cost in units USD × 1e9 × 3600 (1 mUSD = 10 000 units). */
  accrued: bigint
  accruedExtra: bigint
  /** Billed but unpaid tokens. */
  owed: bigint
  owedExtra: bigint
  totalPaid: bigint
}

export type DiscountLevel = 'None' | 'Default' | 'Bronze' | 'Silver' | 'Gold'

export interface BillQuote {
  /** Undiscounted tokens of the accrued cost. */
  due: bigint
  discountLevel: DiscountLevel
  /** Discounted tokens of the accrued cost. */
  amount: bigint
  /** Farmer's extra fee (rent contracts), never discounted. */
  extra: bigint
  /** Unpaid from earlier bills. */
  owed: bigint
}

export interface Payout {
  farmer: bigint
  foundation: bigint
  staking: bigint
  sales: bigint
  providers: bigint
  burned: bigint
}

export interface BillResult {
  contractId: number
  /** Tokens billed by this call (discounted cost + extra fee); 0 when nothing accrued. */
  billed: bigint
  paid: bigint
  owed: bigint
  discountLevel: DiscountLevel
  payout: Payout | null
  /** State after the bill. */
  state: ContractState
  cause: DeleteCause
}

export interface PricingPolicyInput {
  name: string
  /** Units USD (1 mUSD = 10 000) per unit per hour; nu per GB. */
  su: number
  cu: number
  nu: number
  ipu: number
  uniqueName: number
  domainName: number
  foundationAccount: Address
  certifiedSalesAccount: Address
  dedicatedDiscountPct: number
}

export interface PricingPolicy extends PricingPolicyInput {
  id: number
}

export interface Economics {
  tokenPriceMusd: number
  minPriceMusd: number
  maxPriceMusd: number
  /** The price billing uses: tokenPriceMusd clamped to [min, max]. */
  effectivePriceMusd: number
  gracePeriodSeconds: number
  foundationPct: number
  stakingPct: number
  salesPct: number
  stakingPoolAccount: Address
}

export interface SolutionProvider {
  id: number
  description: string
  link: string
  providers: { who: Address; take: number }[]
  approved: boolean
}

export interface Release {
  network: string
  version: string
  /** Root hash of the signed zos flist. */
  flistHash: Hex
  safeToUpgrade: boolean
  testFarms: number[]
  approvedAt: number
  proposalId: number
}

/** Privileged calls the council can vote on. */
export type CouncilAction =
  | { type: 'setRelease'; network: string; version: string; flistHash: Hex; safeToUpgrade: boolean; testFarms: number[] }
  | { type: 'addMember'; member: Address }
  | { type: 'removeMember'; member: Address }
  | { type: 'setThreshold'; threshold: number }
  | { type: 'createPricingPolicy'; policy: PricingPolicyInput }
  | { type: 'updatePricingPolicy'; policyId: number; policy: PricingPolicyInput }
  | { type: 'setTokenPrice'; priceMusd: number; minMusd: number; maxMusd: number }
  | { type: 'setGracePeriod'; seconds: number }
  | { type: 'setSplit'; foundationPct: number; stakingPct: number; salesPct: number; stakingPool: Address }
  | { type: 'setFarmCertification'; farmId: number; certification: FarmCertification }
  | { type: 'setFarmDedicated'; farmId: number; dedicated: boolean }
  | { type: 'setFarmPricingPolicy'; farmId: number; policyId: number }
  | { type: 'setNodeCertification'; nodeId: number; certification: NodeCertification }
  | { type: 'cancelContract'; contractId: number }
  | { type: 'approveSolutionProvider'; id: number; approved: boolean }

export interface Proposal {
  id: number
  proposer: Address
  /** The decoded call, or null when it is not one of CouncilAction. */
  action: CouncilAction | null
  target: Address
  data: Hex
  description: string
  createdAt: number
  expiresAt: number
  /** Approvals recorded (members removed since included). */
  approvals: number
  executed: boolean
}

export interface ProposalOutcome {
  proposal: Proposal
  /** True when this call reached the threshold and the action ran. */
  executed: boolean
  /** Set when the threshold was reached but the action reverted (retry with executeProposal). */
  failure: string | null
}

export interface CouncilInfo {
  address: Address
  members: Address[]
  threshold: number
  proposalCount: number
}

export interface ChainInfo {
  chainId: number
  blockNumber: number
  timestamp: number
  rpcUrl: string
}

export interface ContractRef {
  twinId?: number
  nodeId?: number
  /** Index to start from in the twin's or node's contract list. */
  first?: number
  count?: number
}

// ---- events ----

export interface EventMeta {
  block: number
  tx: Hex
  logIndex: number
}

export type LedgerEvent = EventMeta &
  (
    | { type: 'TwinStored' | 'TwinUpdated'; twinId: number; account: Address; relay: string; pk: Hex }
    | { type: 'FarmStored'; farmId: number; name: string; twinId: number; pricingPolicyId: number }
    | { type: 'FarmUpdated'; farmId: number; name: string }
    | { type: 'FarmPublicIpAdded'; farmId: number; ip: string; gateway: string }
    | { type: 'FarmPublicIpRemoved'; farmId: number; ip: string }
    | { type: 'FarmCertificationSet'; farmId: number; certification: FarmCertification }
    | { type: 'FarmDedicatedSet'; farmId: number; dedicated: boolean }
    | { type: 'FarmPricingPolicySet'; farmId: number; pricingPolicyId: number }
    | { type: 'IpsReserved' | 'IpsFreed'; farmId: number; contractId: number; ips: string[] }
    | { type: 'NodeStored'; nodeId: number; farmId: number; twinId: number; resources: Resources }
    | { type: 'NodeUpdated'; nodeId: number; farmId: number; resources: Resources }
    | { type: 'NodeDeleted'; nodeId: number; farmId: number }
    | { type: 'NodePublicConfigStored'; nodeId: number; config: PublicConfig | null }
    | { type: 'NodeCertificationSet'; nodeId: number; certification: NodeCertification }
    | { type: 'NodeUptimeReported'; nodeId: number; timestamp: number; uptime: number }
    | { type: 'PowerTargetChanged'; nodeId: number; target: Power }
    | { type: 'PowerStateChanged'; nodeId: number; state: Power }
    | { type: 'NodeExtraFeeSet'; nodeId: number; extraFeeMusd: number }
    | {
        type: 'ContractCreated'
        contractId: number
        twinId: number
        nodeId: number
        kind: ContractKind
        deploymentHash: Hex
        publicIps: number
        name: string
      }
    | { type: 'ContractUpdated'; contractId: number; twinId: number; nodeId: number; deploymentHash: Hex }
    | { type: 'ContractCanceled'; contractId: number; twinId: number; nodeId: number; kind: ContractKind; cause: DeleteCause }
    | { type: 'ContractGracePeriodStarted'; contractId: number; twinId: number; nodeId: number; kind: ContractKind; startedAt: number }
    | { type: 'ContractGracePeriodEnded'; contractId: number; twinId: number; nodeId: number; kind: ContractKind }
    | { type: 'ContractBilled'; contractId: number; timestamp: number; discountLevel: DiscountLevel; amountBilled: bigint; amountPaid: bigint; owed: bigint }
    | ({ type: 'PayoutDistributed'; contractId: number } & Payout)
    | { type: 'UsedResourcesUpdated'; contractId: number; nodeId: number; used: Resources }
    | { type: 'NruReportReceived'; contractId: number; nodeId: number; timestamp: number; window: number; nru: number }
    | { type: 'PricingPolicyStored'; policyId: number }
    | { type: 'TokenPriceSet'; priceMusd: number; minPriceMusd: number; maxPriceMusd: number }
    | { type: 'GracePeriodSet'; seconds: number }
    | { type: 'SplitSet' }
    | { type: 'SolutionProviderCreated'; id: number }
    | { type: 'SolutionProviderApproved'; id: number; approved: boolean }
    | { type: 'MemberAdded' | 'MemberRemoved'; member: Address }
    | { type: 'ThresholdChanged'; threshold: number }
    | { type: 'ProposalCreated'; proposalId: number; proposer: Address; target: Address; description: string }
    | { type: 'ProposalApproved'; proposalId: number; member: Address; approvals: number }
    | { type: 'ProposalExecuted'; proposalId: number }
    | { type: 'ProposalExecutionFailed'; proposalId: number; reason: string }
    | {
        type: 'ReleaseApproved'
        network: string
        version: string
        flistHash: Hex
        safeToUpgrade: boolean
        testFarms: number[]
        proposalId: number
      }
    | { type: 'Transfer'; from: Address; to: Address; value: bigint }
    | { type: 'FaucetMinted'; to: Address; value: bigint }
  )

export type LedgerEventType = LedgerEvent['type']
export type LedgerEventOf<T extends LedgerEventType> = Extract<LedgerEvent, { type: T }>

export interface WatchOptions {
  /** First block to report (default: the next block). */
  fromBlock?: number
  /** Only these event types (default: all). */
  types?: readonly LedgerEventType[]
  /** Poll interval in ms (default 500). */
  pollMs?: number
  /** Called when a poll fails; the watch keeps going (default: ignore). */
  onError?: (err: unknown) => void
}

// ---- the interface ----

export interface TwinsApi {
  /** Creates the caller's twin (one per account). `pk` defaults to the caller key's compressed public key. */
  create(opts: { relay: string; pk?: Hex }): Promise<Twin>
  /** Replaces the caller twin's relay and encryption key. */
  update(opts: { relay: string; pk?: Hex }): Promise<Twin>
  get(twinId: number): Promise<Twin>
  /** The twin of `account`, or null. */
  byAccount(account: Address): Promise<Twin | null>
  /** The caller's twin; NO_TWIN when it has none. */
  mine(): Promise<Twin>
  count(): Promise<number>
}

export interface FarmsApi {
  /** Creates a farm owned by the caller's twin, with optional public IPs ("a.b.c.d/nn" + gateway). */
  create(opts: { name: string; publicIps?: { ip: string; gateway: string }[] }): Promise<Farm>
  /** Renames a farm (farmer only). */
  rename(farmId: number, name: string): Promise<Farm>
  /** Adds a public IP (farmer only). */
  addIp(farmId: number, ip: { ip: string; gateway: string }): Promise<Farm>
  /** Removes a free public IP (farmer only). */
  removeIp(farmId: number, ip: string): Promise<Farm>
  get(farmId: number): Promise<Farm>
  /** Farm id registered under `name` (case-insensitive), or null. */
  idByName(name: string): Promise<number | null>
  count(): Promise<number>
  /** Farms with ids first..first+count-1 (count <= 100). */
  list(opts?: { first?: number; count?: number }): Promise<Farm[]>
}

export interface NodesApi {
  /** Registers the caller's twin as a node of `input.farmId` (one node per twin). */
  create(input: NodeInput): Promise<Node>
  /** Updates the caller's node (capacity, location, serial, farm). */
  update(input: NodeInput): Promise<Node>
  /** Farmer sets (or, with null, clears) the node's public config. */
  setPublicConfig(nodeId: number, config: PublicConfig | null): Promise<Node>
  /** Farmer asks the node to power up or down (Down refused while it carries contracts). */
  setPowerTarget(nodeId: number, target: Power): Promise<Node>
  /** The node reports it went up or down. */
  setPowerState(state: Power): Promise<Node>
  /** The node reports its uptime (seconds since boot); `timestamp` defaults to now. */
  reportUptime(uptime: number, timestamp?: number): Promise<void>
  /** Farmer sets the monthly fee (mUSD) for renting the node; only while the node is empty. */
  setExtraFee(nodeId: number, extraFeeMusd: number): Promise<Node>
  /** Farmer removes an empty node. */
  delete(nodeId: number): Promise<void>
  get(nodeId: number): Promise<Node>
  /** The node registered by `twinId`, or null. */
  byTwin(twinId: number): Promise<Node | null>
  /** The caller's node; UNAUTHORIZED when the caller's twin is not a node. */
  mine(): Promise<Node>
  count(): Promise<number>
  /** Nodes by id (first..first+count-1, count <= 100), or the nodes of one farm; deleted nodes are left out. */
  list(opts?: { farmId?: number; first?: number; count?: number }): Promise<Node[]>
}

export interface ContractsApi {
  /** Creates a node contract for a deployment; reserves `publicIps` IPs from the node's farm. */
  createNode(opts: { nodeId: number; deploymentHash: Hex; deploymentData?: Hex; publicIps?: number; solutionProviderId?: number }): Promise<GridContract>
  /** Reserves a unique gateway name. */
  createName(name: string): Promise<GridContract>
  /** Rents a whole node. */
  createRent(opts: { nodeId: number; solutionProviderId?: number }): Promise<GridContract>
  /** Changes the deployment of a node contract (owner only, not in grace period). */
  update(contractId: number, opts: { deploymentHash: Hex; deploymentData?: Hex }): Promise<GridContract>
  /** Bills a last time and deletes (owner only). */
  cancel(contractId: number): Promise<GridContract>
  get(contractId: number): Promise<GridContract>
  /** State as the node must treat it (a node contract on a rent in grace is in grace). */
  effectiveState(contractId: number): Promise<ContractState>
  /** Public IPs a node contract holds. */
  ips(contractId: number): Promise<PublicIp[]>
  /** Contracts of a twin or a node (deleted included), or all by id when neither is given. */
  list(ref?: ContractRef): Promise<GridContract[]>
  /** Live node contract carrying `deploymentHash` on the node, or null. */
  byNodeHash(nodeId: number, deploymentHash: Hex): Promise<number | null>
  /** Live name contract of `name`, or null. */
  byName(name: string): Promise<number | null>
  /** Live rent contract of the node, or null. */
  rentOf(nodeId: number): Promise<number | null>
  count(): Promise<number>
}

export interface BillingApi {
  /** Node: resources in use per contract it hosts (batches of <= 64). */
  reportResources(reports: { contractId: number; used: Resources }[]): Promise<void>
  /** Node: public network bytes per contract it hosts (batches of <= 64). */
  reportNru(reports: { contractId: number; timestamp: number; window: number; nru: number }[]): Promise<void>
  /** Bills a contract up to now (anyone). */
  bill(contractId: number): Promise<BillResult>
  /** Bills up to 64 contracts in one transaction; deleted ones are skipped. */
  billMany(contractIds: number[]): Promise<void>
  record(contractId: number): Promise<BillingRecord>
  /** What a bill now would compute. */
  quote(contractId: number): Promise<BillQuote>
}

export interface TokenApi {
  balanceOf(account: Address): Promise<bigint>
  /** The caller's balance. */
  balance(): Promise<bigint>
  transfer(to: Address, amount: bigint): Promise<void>
  /** Mints test tokens (development ledger only; at most 1,000,000 tokens a call). */
  faucet(amount: bigint, to?: Address): Promise<void>
  totalSupply(): Promise<bigint>
}

export interface PricingApi {
  policy(policyId: number): Promise<PricingPolicy>
  policyCount(): Promise<number>
  economics(): Promise<Economics>
  createSolutionProvider(opts: { description: string; link: string; providers: { who: Address; take: number }[] }): Promise<SolutionProvider>
  solutionProvider(id: number): Promise<SolutionProvider>
}

export interface CouncilApi {
  info(): Promise<CouncilInfo>
  /** Member proposes an action (its own approval counts); runs at once when the threshold is 1. */
  propose(action: CouncilAction, description?: string): Promise<ProposalOutcome>
  /** Member approves; the action runs when the threshold is reached. */
  approve(proposalId: number): Promise<ProposalOutcome>
  /** Member retries a proposal whose action failed after reaching the threshold. */
  execute(proposalId: number): Promise<ProposalOutcome>
  proposal(proposalId: number): Promise<Proposal>
  /** The approved zos release of a network, or null. */
  release(network: string): Promise<Release | null>
}

export interface EventsApi {
  /** Events of the ledger's contracts in [fromBlock, toBlock] (default: all blocks). */
  query(opts?: { fromBlock?: number; toBlock?: number; types?: readonly LedgerEventType[] }): Promise<LedgerEvent[]>
  /** Calls `onEvent` for each new event, in order, until the returned function is called. */
  watch(onEvent: (ev: LedgerEvent) => void | Promise<void>, opts?: WatchOptions): () => void
}

export interface Ledger {
  /** The caller's account, or null for a read-only ledger (no key). */
  readonly account: Address | null
  readonly addressBook: AddressBookData
  readonly twins: TwinsApi
  readonly farms: FarmsApi
  readonly nodes: NodesApi
  readonly contracts: ContractsApi
  readonly billing: BillingApi
  readonly token: TokenApi
  readonly pricing: PricingApi
  readonly council: CouncilApi
  readonly events: EventsApi
  chainInfo(): Promise<ChainInfo>
  /** Stops watches; the ledger cannot be used afterwards. */
  close(): Promise<void>
}

export interface AddressBookData {
  version: 1
  network: string
  chainId: number
  rpcUrl: string
  /** Development chain with zero gas price: accounts need no ether. */
  gasFree: boolean
  abiHash: string
  sourceHash: string
  deployedAt: string
  deployBlock: number
  deployer: Address
  contracts: {
    token: Address
    council: Address
    twins: Address
    farms: Address
    nodes: Address
    pricing: Address
    gridContracts: Address
    billing: Address
  }
}
