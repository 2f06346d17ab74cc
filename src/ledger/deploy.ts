// Deploys the ledger contracts to any EVM JSON-RPC endpoint, wires them together and returns the address book.
// The embedded ledger (server.ts) uses it on first start with anvil's well-known development accounts.
import { createWalletClient, getContractAddress, http, defineChain, createPublicClient, type Abi } from 'viem'
import { mnemonicToAccount, privateKeyToAccount } from 'viem/accounts'
import { zerr } from '../core/errors.js'
import { ABI_HASH } from './abi.js'
import { loadArtifacts, type ContractName } from './artifacts.js'
import { policyArg } from './council-actions.js'
import { toZosError } from './errors.js'
import type { Address, AddressBookData, Hex, PricingPolicyInput } from './types.js'

/** anvil's default mnemonic: its accounts are public knowledge, for development ledgers only. */
export const DEV_MNEMONIC = 'test test test test test test test test test test test junk'

/** Private key of anvil development account `index` (0..9). */
export function devPrivateKey(index: number): Hex {
  const account = mnemonicToAccount(DEV_MNEMONIC, { addressIndex: index })
  const key = account.getHdKey().privateKey
  if (!key) throw zerr('INTERNAL', `cannot derive development key ${index}`)
  return `0x${Buffer.from(key).toString('hex')}` as Hex
}

/** Roles of the development accounts on a ledger started by `zos ledger up`. */
export const DEV_ROLES = { deployer: 0, council: [1, 2, 3], foundation: 4, sales: 5, stakingPool: 6 } as const

export interface DeployOptions {
  rpcUrl: string
  deployerKey: Hex
  network: string
  council: { members: Address[]; threshold: number }
  foundation: Address
  sales: Address
  stakingPool: Address
  /** Enables the token faucet on this chain id (development networks only). */
  faucet: boolean
  gasFree: boolean
  tokenPriceMusd?: number
  minPriceMusd?: number
  maxPriceMusd?: number
  gracePeriodSeconds?: number
  /** Pricing policy 1; TFChain's development defaults when not given. */
  policy?: Partial<PricingPolicyInput>
}

/** TFChain development chain-spec defaults (units USD per hour; 1 mUSD = 10 000 units). */
export const DEFAULT_POLICY = { name: 'default', su: 50_000, cu: 100_000, nu: 15_000, ipu: 40_000, uniqueName: 2_500, domainName: 5_000, dedicatedDiscountPct: 50 } as const

export const DEFAULT_GRACE_PERIOD = 14 * 24 * 3600

export async function deployGrid(opts: DeployOptions): Promise<AddressBookData> {
  const artifacts = await loadArtifacts()
  if (artifacts.abiHash !== ABI_HASH) {
    throw zerr('LEDGER_MISMATCH', 'contracts/*.sol changed since src/ledger/abi.ts was generated: run `zos ledger compile --abi-out src/ledger/abi.ts` and rebuild')
  }
  const account = privateKeyToAccount(opts.deployerKey)
  const transport = http(opts.rpcUrl, { retryCount: 0 })
  const probe = createPublicClient({ transport })
  const chainId = await probe.getChainId().catch((err: unknown) => {
    throw toZosError(err, 'deploy', opts.rpcUrl)
  })
  const chain = defineChain({ id: chainId, name: opts.network, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [opts.rpcUrl] } } })
  const pub = createPublicClient({ chain, transport })
  const wallet = createWalletClient({ account, chain, transport })
  const fees = opts.gasFree ? { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n } : {}
  const wait = async (hash: Hex, what: string): Promise<bigint> => {
    const r = await pub.waitForTransactionReceipt({ hash, pollingInterval: 20, timeout: 120_000 })
    if (r.status !== 'success') throw zerr('LEDGER_REVERT', `deploy: ${what} reverted (tx ${hash})`)
    return r.blockNumber
  }
  const startNonce = await pub.getTransactionCount({ address: account.address, blockTag: 'pending' })
  const order: ContractName[] = ['ZosToken', 'Council', 'Twins', 'Farms', 'Nodes', 'Pricing', 'GridContracts', 'Billing']
  const addresses = {} as Record<ContractName, Address>
  order.forEach((name, i) => {
    addresses[name] = getContractAddress({ from: account.address, nonce: BigInt(startNonce + i) })
  })
  const ctorArgs: Record<ContractName, readonly unknown[]> = {
    ZosToken: [opts.faucet ? BigInt(chainId) : 0n],
    Council: [opts.council.members, opts.council.threshold],
    Twins: [],
    Farms: [],
    Nodes: [],
    Pricing: [],
    GridContracts: [],
    Billing: [],
  }
  let firstBlock = 0n
  try {
    for (const [i, name] of order.entries()) {
      const c = artifacts.contracts[name]
      const hash = await wallet.deployContract({ abi: c.abi as Abi, bytecode: c.bytecode, args: ctorArgs[name], nonce: startNonce + i, ...fees })
      const block = await wait(hash, `deploying ${name}`)
      if (i === 0) firstBlock = block
    }
    const a = addresses
    const policy = policyArg({ ...DEFAULT_POLICY, foundationAccount: opts.foundation, certifiedSalesAccount: opts.sales, ...opts.policy })
    const calls: { name: ContractName; fn: string; args: readonly unknown[] }[] = [
      {
        name: 'Pricing',
        fn: 'init',
        args: [
          a.Council,
          policy,
          BigInt(opts.tokenPriceMusd ?? 50),
          BigInt(opts.minPriceMusd ?? 10),
          BigInt(opts.maxPriceMusd ?? 1000),
          opts.stakingPool,
          BigInt(opts.gracePeriodSeconds ?? DEFAULT_GRACE_PERIOD),
        ],
      },
      { name: 'Farms', fn: 'init', args: [a.Council, a.Twins, a.Pricing, a.GridContracts] },
      { name: 'Nodes', fn: 'init', args: [a.Council, a.Twins, a.Farms, a.GridContracts] },
      { name: 'GridContracts', fn: 'init', args: [a.Council, a.Twins, a.Farms, a.Nodes, a.Pricing, a.Billing] },
      { name: 'Billing', fn: 'init', args: [a.Council, a.Twins, a.Farms, a.Nodes, a.Pricing, a.ZosToken, a.GridContracts] },
      { name: 'ZosToken', fn: 'setBiller', args: [a.Billing] },
    ]
    for (const call of calls) {
      const hash = await wallet.writeContract({
        address: a[call.name],
        abi: artifacts.contracts[call.name].abi as Abi,
        functionName: call.fn,
        args: call.args,
        ...fees,
      })
      await wait(hash, `${call.name}.${call.fn}`)
    }
  } catch (err) {
    throw toZosError(err, 'deploy', opts.rpcUrl)
  }
  return {
    version: 1,
    network: opts.network,
    chainId,
    rpcUrl: opts.rpcUrl,
    gasFree: opts.gasFree,
    abiHash: artifacts.abiHash,
    sourceHash: artifacts.sourceHash,
    deployedAt: new Date().toISOString(),
    deployBlock: Number(firstBlock),
    deployer: account.address,
    contracts: {
      token: addresses.ZosToken,
      council: addresses.Council,
      twins: addresses.Twins,
      farms: addresses.Farms,
      nodes: addresses.Nodes,
      pricing: addresses.Pricing,
      gridContracts: addresses.GridContracts,
      billing: addresses.Billing,
    },
  }
}
