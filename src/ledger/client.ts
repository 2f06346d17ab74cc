// EvmLedger: the Ledger interface (types.ts) over the Solidity contracts, through viem. Inputs are checked
// here before anything is sent, so a malformed call fails with INVALID_ARGUMENT naming the field, and the
// contracts' own checks come back as coded ZosErrors (errors.ts).
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak256, toBytes } from 'viem'
import { zerr } from '../core/errors.js'
import { ABI_HASH, billingAbi, councilAbi, farmsAbi, gridContractsAbi, nodesAbi, pricingAbi, twinsAbi, zosTokenAbi } from './abi.js'
import { Chain, type DecodedLog } from './chain.js'
import {
  CONTRACT_STATES,
  DISCOUNT_LEVELS,
  POWERS,
  big,
  billingRecordOf,
  contractOf,
  farmOf,
  nodeOf,
  num,
  parseCidr,
  parseIpv4,
  policyOf,
  publicIpOf,
  quoteOf,
  releaseOf,
  resourcesArg,
  solutionProviderOf,
  twinOf,
} from './convert.js'
import { decodeAction, encodeAction } from './council-actions.js'
import { toZosError } from './errors.js'
import { queryEvents, watchEvents } from './events.js'
import type {
  Address,
  AddressBookData,
  BillingApi,
  ChainInfo,
  ContractsApi,
  CouncilApi,
  EventsApi,
  FarmsApi,
  Hex,
  Ledger,
  Node,
  NodeInput,
  NodesApi,
  PricingApi,
  Proposal,
  ProposalOutcome,
  PublicConfig,
  TokenApi,
  TwinsApi,
} from './types.js'

export interface EvmLedgerOptions {
  addressBook: AddressBookData
  /** Overrides the address book's rpcUrl. */
  rpcUrl?: string
  /** The caller's secp256k1 key; without it the ledger is read-only. */
  privateKey?: Hex
  receiptPollMs?: number
}

const MAX_U32 = 2 ** 32 - 1

function id(v: number, field: string): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_U32) throw zerr('INVALID_ARGUMENT', `${field} must be a positive integer id, got ${v}`)
  return v
}

function id64(v: number, field: string): bigint {
  if (!Number.isSafeInteger(v) || v < 1) throw zerr('INVALID_ARGUMENT', `${field} must be a positive integer id, got ${v}`)
  return BigInt(v)
}

function optId64(v: number | undefined, field: string): bigint {
  return v === undefined || v === 0 ? 0n : id64(v, field)
}

function u32(v: number, field: string): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_U32) throw zerr('INVALID_ARGUMENT', `${field} must be an integer 0..${MAX_U32}, got ${v}`)
  return v
}

function u64(v: number, field: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0) throw zerr('INVALID_ARGUMENT', `${field} must be a non-negative integer, got ${v}`)
  return BigInt(v)
}

function hash32(v: string, field: string): Hex {
  if (!/^0x[0-9a-fA-F]{64}$/.test(v)) throw zerr('INVALID_ARGUMENT', `${field} must be 32 bytes of 0x-prefixed hex, got ${v}`)
  return v.toLowerCase() as Hex
}

function bytesHex(v: string | undefined, field: string, max: number): Hex {
  if (v === undefined || v === '' || v === '0x') return '0x'
  if (!/^0x([0-9a-fA-F]{2})*$/.test(v)) throw zerr('INVALID_ARGUMENT', `${field} must be 0x-prefixed hex bytes`)
  if ((v.length - 2) / 2 > max) throw zerr('INVALID_ARGUMENT', `${field} is longer than ${max} bytes`)
  return v as Hex
}

function addr(v: string, field: string): Address {
  if (!/^0x[0-9a-fA-F]{40}$/.test(v)) throw zerr('INVALID_ARGUMENT', `${field} must be a 0x-prefixed 20-byte address, got ${v}`)
  return v as Address
}

function amount(v: bigint, field: string): bigint {
  if (typeof v !== 'bigint' || v <= 0n) throw zerr('INVALID_ARGUMENT', `${field} must be a positive amount`)
  return v
}

function micro(deg: number | undefined, field: string, limit: number): number {
  const d = deg ?? 0
  if (!Number.isFinite(d) || Math.abs(d) > limit) throw zerr('INVALID_ARGUMENT', `${field} must be a number of degrees within ±${limit}`)
  return Math.round(d * 1e6)
}

function findLog(logs: DecodedLog[], name: string): DecodedLog | undefined {
  return logs.find((l) => l.eventName === name)
}

function mustLog(logs: DecodedLog[], name: string, action: string): DecodedLog {
  const l = findLog(logs, name)
  if (!l) throw zerr('INTERNAL', `${action}: the transaction succeeded but emitted no ${name} event`)
  return l
}

export class EvmLedger implements Ledger {
  readonly account: Address | null
  readonly addressBook: AddressBookData
  readonly chain: Chain
  private readonly closers = new Set<() => void>()
  private closed = false

  constructor(opts: EvmLedgerOptions) {
    this.addressBook = opts.addressBook
    this.chain = new Chain({
      rpcUrl: opts.rpcUrl ?? opts.addressBook.rpcUrl,
      chainId: opts.addressBook.chainId,
      gasFree: opts.addressBook.gasFree,
      privateKey: opts.privateKey,
      receiptPollMs: opts.receiptPollMs,
    })
    this.account = this.chain.account?.address ?? null
    const c = opts.addressBook.contracts
    this.chain.register(c.token, zosTokenAbi)
    this.chain.register(c.council, councilAbi)
    this.chain.register(c.twins, twinsAbi)
    this.chain.register(c.farms, farmsAbi)
    this.chain.register(c.nodes, nodesAbi)
    this.chain.register(c.pricing, pricingAbi)
    this.chain.register(c.gridContracts, gridContractsAbi)
    this.chain.register(c.billing, billingAbi)
  }

  /** Checks that the endpoint is the chain of the address book and carries this build's contracts. */
  async verify(): Promise<void> {
    const book = this.addressBook
    if (book.abiHash !== ABI_HASH) {
      throw zerr(
        'LEDGER_MISMATCH',
        `the ledger of this address book was deployed from contracts with ABI hash ${book.abiHash.slice(0, 12)}…, this zos build expects ${ABI_HASH.slice(0, 12)}…: use a matching zos, or redeploy (zos ledger up --reset)`,
      )
    }
    const chainId = await this.chain.rpc('connect', (c) => c.getChainId())
    if (chainId !== book.chainId) {
      throw zerr('LEDGER_MISMATCH', `${this.chain.rpcUrl} is chain ${chainId}, the address book is for chain ${book.chainId}: pass the matching --rpc or --ledger`)
    }
    const code = await this.chain.rpc('connect', (c) => c.getCode({ address: book.contracts.gridContracts }))
    if (!code || code === '0x') {
      throw zerr('LEDGER_MISMATCH', `no ledger contracts at ${book.contracts.gridContracts} on ${this.chain.rpcUrl}: the chain was reset; redeploy with \`zos ledger up --reset\``)
    }
  }

  private get c(): AddressBookData['contracts'] {
    return this.addressBook.contracts
  }

  private me(action: string): Address {
    if (!this.account) throw zerr('INVALID_ARGUMENT', `${action} needs a key: pass --key FILE (create one with \`zos key new\`)`)
    return this.account
  }

  async chainInfo(): Promise<ChainInfo> {
    const block = await this.chain.rpc('chainInfo', (c) => c.getBlock({ blockTag: 'latest' }))
    return { chainId: this.addressBook.chainId, blockNumber: Number(block.number), timestamp: Number(block.timestamp), rpcUrl: this.chain.rpcUrl }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const stop of this.closers) stop()
    this.closers.clear()
  }

  // ---- twins ----

  readonly twins: TwinsApi = {
    create: async ({ relay, pk }) => {
      const key = pk ?? this.ownPublicKey()
      const r = await this.chain.write(this.c.twins, twinsAbi, 'createTwin', [relay, bytesHex(key, 'pk', 128)], 'createTwin')
      return this.twins.get(num(mustLog(r.logs, 'TwinStored', 'createTwin').args.twinId))
    },
    update: async ({ relay, pk }) => {
      const key = pk ?? this.ownPublicKey()
      await this.chain.write(this.c.twins, twinsAbi, 'updateTwin', [relay, bytesHex(key, 'pk', 128)], 'updateTwin')
      return this.twins.mine()
    },
    get: async (twinId) => twinOf(await this.chain.read(this.c.twins, twinsAbi, 'getTwin', [id(twinId, 'twinId')])),
    byAccount: async (account) => {
      const tid = num(await this.chain.read(this.c.twins, twinsAbi, 'twinIdOf', [addr(account, 'account')]))
      return tid === 0 ? null : this.twins.get(tid)
    },
    mine: async () => {
      const account = this.me('twin')
      const t = await this.twins.byAccount(account)
      if (!t) throw zerr('NO_TWIN', `account ${account} has no twin: create one with \`zos twin create\``)
      return t
    },
    count: async () => num(await this.chain.read(this.c.twins, twinsAbi, 'twinCount', [])),
  }

  private ownPublicKey(): Hex {
    const account = this.chain.account
    if (!account) throw zerr('INVALID_ARGUMENT', 'creating a twin needs a key: pass --key FILE')
    const raw = Buffer.from(account.publicKey.slice(2), 'hex')
    return `0x${Buffer.from(secp256k1.Point.fromBytes(raw).toBytes(true)).toString('hex')}` as Hex
  }

  // ---- farms ----

  readonly farms: FarmsApi = {
    create: async ({ name, publicIps = [] }) => {
      if (publicIps.length > 256) throw zerr('INVALID_ARGUMENT', `a farm holds at most 256 public IPs, got ${publicIps.length}`)
      const ips = publicIps.map((p, i) => {
        const { ip, prefix } = parseCidr(p.ip, `publicIps[${i}].ip`)
        return { ip, prefix, gateway: parseIpv4(p.gateway, `publicIps[${i}].gateway`) }
      })
      const r = await this.chain.write(this.c.farms, farmsAbi, 'createFarm', [name, ips], 'createFarm')
      return this.farms.get(num(mustLog(r.logs, 'FarmStored', 'createFarm').args.farmId))
    },
    rename: async (farmId, name) => {
      await this.chain.write(this.c.farms, farmsAbi, 'updateFarm', [id(farmId, 'farmId'), name], 'updateFarm')
      return this.farms.get(farmId)
    },
    addIp: async (farmId, p) => {
      const { ip, prefix } = parseCidr(p.ip, 'ip')
      await this.chain.write(this.c.farms, farmsAbi, 'addFarmIp', [id(farmId, 'farmId'), { ip, prefix, gateway: parseIpv4(p.gateway, 'gateway') }], 'addFarmIp')
      return this.farms.get(farmId)
    },
    removeIp: async (farmId, ip) => {
      const plain = ip.includes('/') ? ip.slice(0, ip.indexOf('/')) : ip
      await this.chain.write(this.c.farms, farmsAbi, 'removeFarmIp', [id(farmId, 'farmId'), parseIpv4(plain, 'ip')], 'removeFarmIp')
      return this.farms.get(farmId)
    },
    get: async (farmId) => {
      const fid = id(farmId, 'farmId')
      const [farm, ips] = await Promise.all([
        this.chain.read(this.c.farms, farmsAbi, 'getFarm', [fid]),
        this.chain.read(this.c.farms, farmsAbi, 'getFarmIps', [fid]),
      ])
      return farmOf(farm, ips as unknown[])
    },
    idByName: async (name) => {
      const key = keccakFolded(name)
      const fid = num(await this.chain.read(this.c.farms, farmsAbi, 'farmIdByNameKey', [key]))
      return fid === 0 ? null : fid
    },
    count: async () => num(await this.chain.read(this.c.farms, farmsAbi, 'farmCount', [])),
    list: async ({ first = 1, count = 100 } = {}) => {
      const total = await this.farms.count()
      const ids: number[] = []
      for (let i = id(first, 'first'); i <= total && ids.length < Math.min(count, 100); i++) ids.push(i)
      return Promise.all(ids.map((f) => this.farms.get(f)))
    },
  }

  // ---- nodes ----

  private nodeInputArg(input: NodeInput) {
    const loc = input.location ?? {}
    return {
      farmId: id(input.farmId, 'farmId'),
      resources: resourcesArg(input.resources),
      location: {
        city: loc.city ?? '',
        country: loc.country ?? '',
        latitude: micro(loc.latitude, 'location.latitude', 90),
        longitude: micro(loc.longitude, 'location.longitude', 180),
      },
      serial: input.serial ?? '',
      secureBoot: input.secureBoot ?? false,
      virtualized: input.virtualized ?? false,
    }
  }

  readonly nodes: NodesApi = {
    create: async (input) => {
      const r = await this.chain.write(this.c.nodes, nodesAbi, 'createNode', [this.nodeInputArg(input)], 'createNode')
      return this.nodes.get(num(mustLog(r.logs, 'NodeStored', 'createNode').args.nodeId))
    },
    update: async (input) => {
      await this.chain.write(this.c.nodes, nodesAbi, 'updateNode', [this.nodeInputArg(input)], 'updateNode')
      return this.nodes.mine()
    },
    setPublicConfig: async (nodeId, config) => {
      const empty: PublicConfig = { ip4: '', gw4: '', ip6: '', gw6: '', domain: '' }
      await this.chain.write(this.c.nodes, nodesAbi, 'setPublicConfig', [id(nodeId, 'nodeId'), config ?? empty], 'setPublicConfig')
      return this.nodes.get(nodeId)
    },
    setPowerTarget: async (nodeId, target) => {
      await this.chain.write(this.c.nodes, nodesAbi, 'setPowerTarget', [id(nodeId, 'nodeId'), powerArg(target)], 'setPowerTarget')
      return this.nodes.get(nodeId)
    },
    setPowerState: async (state) => {
      await this.chain.write(this.c.nodes, nodesAbi, 'setPowerState', [powerArg(state)], 'setPowerState')
      return this.nodes.mine()
    },
    reportUptime: async (uptime, timestamp) => {
      const ts = timestamp ?? (await this.chainInfo()).timestamp
      await this.chain.write(this.c.nodes, nodesAbi, 'reportUptime', [u64(uptime, 'uptime'), u64(ts, 'timestamp')], 'reportUptime')
    },
    setExtraFee: async (nodeId, fee) => {
      await this.chain.write(this.c.nodes, nodesAbi, 'setExtraFee', [id(nodeId, 'nodeId'), u64(fee, 'extraFeeMusd')], 'setExtraFee')
      return this.nodes.get(nodeId)
    },
    delete: async (nodeId) => {
      await this.chain.write(this.c.nodes, nodesAbi, 'deleteNode', [id(nodeId, 'nodeId')], 'deleteNode')
    },
    get: async (nodeId) => nodeOf(await this.chain.read(this.c.nodes, nodesAbi, 'getNode', [id(nodeId, 'nodeId')])),
    byTwin: async (twinId) => {
      const nid = num(await this.chain.read(this.c.nodes, nodesAbi, 'nodeIdByTwin', [id(twinId, 'twinId')]))
      return nid === 0 ? null : this.nodes.get(nid)
    },
    mine: async () => {
      const twin = await this.twins.mine()
      const node = await this.nodes.byTwin(twin.id)
      if (!node) throw zerr('UNAUTHORIZED', `twin ${twin.id} is not a node: register it with \`zos node register\``)
      return node
    },
    count: async () => num(await this.chain.read(this.c.nodes, nodesAbi, 'nodeCount', [])),
    list: async ({ farmId, first, count = 100 } = {}) => {
      const n = Math.min(u32(count, 'count'), 100)
      if (farmId !== undefined) {
        const ids = (await this.chain.read(this.c.nodes, nodesAbi, 'getFarmNodeIds', [id(farmId, 'farmId'), u32(first ?? 0, 'first'), n])) as readonly number[]
        const nodes = await Promise.all([...new Set(ids)].map((x) => this.chain.read(this.c.nodes, nodesAbi, 'getNode', [x])))
        return nodes.map(nodeOf).filter((x) => !x.deleted && x.farmId === farmId)
      }
      const list = (await this.chain.read(this.c.nodes, nodesAbi, 'getNodes', [u32(first ?? 1, 'first'), n])) as readonly unknown[]
      return list.map(nodeOf).filter((x: Node) => !x.deleted)
    },
  }

  // ---- contracts ----

  readonly contracts: ContractsApi = {
    createNode: async ({ nodeId, deploymentHash, deploymentData, publicIps = 0, solutionProviderId }) => {
      const r = await this.chain.write(
        this.c.gridContracts,
        gridContractsAbi,
        'createNodeContract',
        [id(nodeId, 'nodeId'), hash32(deploymentHash, 'deploymentHash'), bytesHex(deploymentData, 'deploymentData', 512), u32(publicIps, 'publicIps'), optId64(solutionProviderId, 'solutionProviderId')],
        'createNodeContract',
      )
      return this.contracts.get(num(mustLog(r.logs, 'ContractCreated', 'createNodeContract').args.contractId))
    },
    createName: async (name) => {
      const r = await this.chain.write(this.c.gridContracts, gridContractsAbi, 'createNameContract', [name], 'createNameContract')
      return this.contracts.get(num(mustLog(r.logs, 'ContractCreated', 'createNameContract').args.contractId))
    },
    createRent: async ({ nodeId, solutionProviderId }) => {
      const r = await this.chain.write(
        this.c.gridContracts,
        gridContractsAbi,
        'createRentContract',
        [id(nodeId, 'nodeId'), optId64(solutionProviderId, 'solutionProviderId')],
        'createRentContract',
      )
      return this.contracts.get(num(mustLog(r.logs, 'ContractCreated', 'createRentContract').args.contractId))
    },
    update: async (contractId, { deploymentHash, deploymentData }) => {
      await this.chain.write(
        this.c.gridContracts,
        gridContractsAbi,
        'updateNodeContract',
        [id64(contractId, 'contractId'), hash32(deploymentHash, 'deploymentHash'), bytesHex(deploymentData, 'deploymentData', 512)],
        'updateNodeContract',
      )
      return this.contracts.get(contractId)
    },
    cancel: async (contractId) => {
      await this.chain.write(this.c.gridContracts, gridContractsAbi, 'cancelContract', [id64(contractId, 'contractId')], 'cancelContract')
      return this.contracts.get(contractId)
    },
    get: async (contractId) => contractOf(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'getContract', [id64(contractId, 'contractId')])),
    effectiveState: async (contractId) =>
      CONTRACT_STATES[num(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'effectiveState', [id64(contractId, 'contractId')]))] ?? 'Created',
    ips: async (contractId) => {
      const c = await this.contracts.get(contractId)
      if (c.kind !== 'node' || c.farmId === 0) return []
      const list = (await this.chain.read(this.c.farms, farmsAbi, 'ipsOfContract', [c.farmId, BigInt(c.id)])) as readonly unknown[]
      return list.map(publicIpOf)
    },
    list: async (ref = {}) => {
      const count = Math.min(u32(ref.count ?? 100, 'count'), 100)
      let ids: number[]
      if (ref.twinId !== undefined) {
        ids = ((await this.chain.read(this.c.gridContracts, gridContractsAbi, 'getTwinContractIds', [id(ref.twinId, 'twinId'), u32(ref.first ?? 0, 'first'), count])) as readonly bigint[]).map(Number)
      } else if (ref.nodeId !== undefined) {
        ids = ((await this.chain.read(this.c.gridContracts, gridContractsAbi, 'getNodeContractIds', [id(ref.nodeId, 'nodeId'), u32(ref.first ?? 0, 'first'), count])) as readonly bigint[]).map(Number)
      } else {
        const total = await this.contracts.count()
        ids = []
        for (let i = Math.max(1, ref.first ?? 1); i <= total && ids.length < count; i++) ids.push(i)
      }
      return Promise.all(ids.map((x) => this.contracts.get(x)))
    },
    byNodeHash: async (nodeId, deploymentHash) => {
      const cid = num(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'contractIdByNodeHash', [id(nodeId, 'nodeId'), hash32(deploymentHash, 'deploymentHash')]))
      return cid === 0 ? null : cid
    },
    byName: async (name) => {
      const cid = num(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'contractIdByName', [name]))
      return cid === 0 ? null : cid
    },
    rentOf: async (nodeId) => {
      const cid = num(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'rentContractOf', [id(nodeId, 'nodeId')]))
      return cid === 0 ? null : cid
    },
    count: async () => num(await this.chain.read(this.c.gridContracts, gridContractsAbi, 'contractCount', [])),
  }

  // ---- billing ----

  readonly billing: BillingApi = {
    reportResources: async (reports) => {
      if (reports.length === 0) return
      if (reports.length > 64) throw zerr('INVALID_ARGUMENT', `at most 64 reports per call, got ${reports.length}`)
      const arg = reports.map((r, i) => ({ contractId: id64(r.contractId, `reports[${i}].contractId`), used: resourcesArg(r.used) }))
      await this.chain.write(this.c.billing, billingAbi, 'reportContractResources', [arg], 'reportContractResources')
    },
    reportNru: async (reports) => {
      if (reports.length === 0) return
      if (reports.length > 64) throw zerr('INVALID_ARGUMENT', `at most 64 reports per call, got ${reports.length}`)
      const arg = reports.map((r, i) => ({
        contractId: id64(r.contractId, `reports[${i}].contractId`),
        timestamp: u64(r.timestamp, `reports[${i}].timestamp`),
        window: u64(r.window, `reports[${i}].window`),
        nru: u64(r.nru, `reports[${i}].nru`),
      }))
      await this.chain.write(this.c.billing, billingAbi, 'addNruReports', [arg], 'addNruReports')
    },
    bill: async (contractId) => {
      const r = await this.chain.write(this.c.billing, billingAbi, 'bill', [id64(contractId, 'contractId')], 'bill')
      const billed = findLog(r.logs, 'ContractBilled')?.args
      const payout = findLog(r.logs, 'PayoutDistributed')?.args
      const c = await this.contracts.get(contractId)
      return {
        contractId,
        billed: big(billed?.amountBilled),
        paid: big(billed?.amountPaid),
        owed: billed ? big(billed.owed) : (await this.billing.record(contractId)).owed,
        discountLevel: DISCOUNT_LEVELS[num(billed?.discountLevel)] ?? 'None',
        payout: payout
          ? {
              farmer: big(payout.farmer),
              foundation: big(payout.foundation),
              staking: big(payout.staking),
              sales: big(payout.sales),
              providers: big(payout.providers),
              burned: big(payout.burned),
            }
          : null,
        state: c.state,
        cause: c.cause,
      }
    },
    billMany: async (contractIds) => {
      if (contractIds.length > 64) throw zerr('INVALID_ARGUMENT', `at most 64 contracts per call, got ${contractIds.length}`)
      if (contractIds.length === 0) return
      await this.chain.write(this.c.billing, billingAbi, 'billMany', [contractIds.map((x, i) => id64(x, `contractIds[${i}]`))], 'billMany')
    },
    record: async (contractId) => billingRecordOf(await this.chain.read(this.c.billing, billingAbi, 'getRecord', [id64(contractId, 'contractId')])),
    quote: async (contractId) => quoteOf(await this.chain.read(this.c.billing, billingAbi, 'quote', [id64(contractId, 'contractId')])),
  }

  // ---- token ----

  readonly token: TokenApi = {
    balanceOf: async (account) => big(await this.chain.read(this.c.token, zosTokenAbi, 'balanceOf', [addr(account, 'account')])),
    balance: async () => this.token.balanceOf(this.me('balance')),
    transfer: async (to, value) => {
      await this.chain.write(this.c.token, zosTokenAbi, 'transfer', [addr(to, 'to'), amount(value, 'amount')], 'transfer')
    },
    faucet: async (value, to) => {
      await this.chain.write(this.c.token, zosTokenAbi, 'faucet', [addr(to ?? this.me('faucet'), 'to'), amount(value, 'amount')], 'faucet')
    },
    totalSupply: async () => big(await this.chain.read(this.c.token, zosTokenAbi, 'totalSupply', [])),
  }

  // ---- pricing ----

  readonly pricing: PricingApi = {
    policy: async (policyId) => policyOf(await this.chain.read(this.c.pricing, pricingAbi, 'getPolicy', [id(policyId, 'policyId')])),
    policyCount: async () => num(await this.chain.read(this.c.pricing, pricingAbi, 'policyCount', [])),
    economics: async () => {
      const p = this.c.pricing
      const [price, min, max, eff, grace, split, pool] = await Promise.all([
        this.chain.read(p, pricingAbi, 'tokenPriceMusd', []),
        this.chain.read(p, pricingAbi, 'minPriceMusd', []),
        this.chain.read(p, pricingAbi, 'maxPriceMusd', []),
        this.chain.read(p, pricingAbi, 'effectivePriceMusd', []),
        this.chain.read(p, pricingAbi, 'gracePeriod', []),
        this.chain.read(p, pricingAbi, 'split', []),
        this.chain.read(p, pricingAbi, 'stakingPoolAccount', []),
      ])
      const sp = split as readonly unknown[]
      return {
        tokenPriceMusd: num(price),
        minPriceMusd: num(min),
        maxPriceMusd: num(max),
        effectivePriceMusd: num(eff),
        gracePeriodSeconds: num(grace),
        foundationPct: num(sp[0]),
        stakingPct: num(sp[1]),
        salesPct: num(sp[2]),
        stakingPoolAccount: pool as Address,
      }
    },
    createSolutionProvider: async ({ description, link, providers }) => {
      const list = providers.map((p, i) => ({ who: addr(p.who, `providers[${i}].who`), take: u32(p.take, `providers[${i}].take`) }))
      if (list.some((p) => p.take > 100)) throw zerr('INVALID_ARGUMENT', 'a provider take is a percentage 0..100')
      const r = await this.chain.write(this.c.pricing, pricingAbi, 'createSolutionProvider', [description, link, list], 'createSolutionProvider')
      return this.pricing.solutionProvider(num(mustLog(r.logs, 'SolutionProviderCreated', 'createSolutionProvider').args.id))
    },
    solutionProvider: async (spId) => solutionProviderOf(await this.chain.read(this.c.pricing, pricingAbi, 'getSolutionProvider', [id64(spId, 'id')])),
  }

  // ---- council ----

  private outcome(logs: DecodedLog[], proposalId: number, action: string): Promise<ProposalOutcome> {
    const failed = findLog(logs, 'ProposalExecutionFailed')
    const executed = findLog(logs, 'ProposalExecuted') !== undefined
    return this.council.proposal(proposalId).then((proposal) => ({
      proposal,
      executed,
      failure: failed ? describeFailure(String(failed.args.reason ?? '0x'), action, this.chain.rpcUrl) : null,
    }))
  }

  readonly council: CouncilApi = {
    info: async () => {
      const [members, threshold, count] = await Promise.all([
        this.chain.read(this.c.council, councilAbi, 'getMembers', []),
        this.chain.read(this.c.council, councilAbi, 'threshold', []),
        this.chain.read(this.c.council, councilAbi, 'proposalCount', []),
      ])
      return { address: this.c.council, members: [...(members as readonly Address[])], threshold: num(threshold), proposalCount: num(count) }
    },
    propose: async (action, description = '') => {
      const { target, data } = encodeAction(this.addressBook, action)
      const r = await this.chain.write(this.c.council, councilAbi, 'propose', [target, data, description], 'propose')
      return this.outcome(r.logs, num(mustLog(r.logs, 'ProposalCreated', 'propose').args.id), action.type)
    },
    approve: async (proposalId) => {
      const r = await this.chain.write(this.c.council, councilAbi, 'approve', [id64(proposalId, 'proposalId')], 'approve')
      return this.outcome(r.logs, proposalId, `proposal ${proposalId}`)
    },
    execute: async (proposalId) => {
      const r = await this.chain.write(this.c.council, councilAbi, 'execute', [id64(proposalId, 'proposalId')], 'execute')
      return this.outcome(r.logs, proposalId, `proposal ${proposalId}`)
    },
    proposal: async (proposalId) => {
      const p = (await this.chain.read(this.c.council, councilAbi, 'getProposal', [id64(proposalId, 'proposalId')])) as Record<string, unknown>
      const target = String(p.target) as Address
      const data = String(p.data) as Hex
      const out: Proposal = {
        id: num(p.id),
        proposer: String(p.proposer) as Address,
        action: decodeAction(this.addressBook, target, data),
        target,
        data,
        description: String(p.description ?? ''),
        createdAt: num(p.createdAt),
        expiresAt: num(p.expiresAt),
        approvals: num(p.approvals),
        executed: p.executed === true,
      }
      return out
    },
    release: async (network) => releaseOf(network, await this.chain.read(this.c.council, councilAbi, 'getRelease', [network])),
  }

  // ---- events ----

  readonly events: EventsApi = {
    query: async ({ fromBlock, toBlock, types } = {}) => {
      const head = await this.chain.rpc('blockNumber', (c) => c.getBlockNumber({ cacheTime: 0 }))
      return queryEvents(this.chain, BigInt(fromBlock ?? this.addressBook.deployBlock), toBlock === undefined ? head : BigInt(toBlock), types)
    },
    watch: (onEvent, opts) => {
      if (this.closed) throw zerr('INVALID_ARGUMENT', 'the ledger is closed')
      const stop = watchEvents(this.chain, onEvent, opts)
      const closer = (): void => {
        stop()
        this.closers.delete(closer)
      }
      this.closers.add(closer)
      return closer
    },
  }
}

function powerArg(p: string): number {
  const i = POWERS.indexOf(p as (typeof POWERS)[number])
  if (i < 0) throw zerr('INVALID_ARGUMENT', `power must be Up or Down, got ${p}`)
  return i
}

/** The message of a failed council action: its revert data decoded like any other revert. */
function describeFailure(reason: string, action: string, rpcUrl: string): string {
  const e = toZosError({ data: reason }, action, rpcUrl)
  return `${e.code}: ${e.message}`
}

/** keccak256 of the ASCII-lowercased name: the key farms are registered under (Text.foldedKey). */
function keccakFolded(name: string): Hex {
  return keccak256(toBytes(name.replace(/[A-Z]/g, (ch) => ch.toLowerCase())))
}
