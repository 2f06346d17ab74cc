// The one place that speaks JSON-RPC: reads (eth_call), writes (estimate → sign locally → send raw →
// receipt) with a local nonce counter so several writes of one key can be in flight, and log queries.
// Every failure leaves as a ZosError (errors.ts).
import { setTimeout as sleep } from 'node:timers/promises'
import {
  createPublicClient,
  decodeEventLog,
  defineChain,
  encodeFunctionData,
  formatTransactionReceipt,
  http,
  type Abi,
  type ContractFunctionArgs,
  type ContractFunctionName,
  type EncodeFunctionDataParameters,
  type Log,
  type PublicClient,
  type TransactionReceipt,
} from 'viem'
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts'
import { zerr } from '../core/errors.js'
import { toZosError } from './errors.js'
import type { Address, Hex } from './types.js'

export interface ChainOptions {
  rpcUrl: string
  chainId: number
  /** Development chain with zero gas price. */
  gasFree: boolean
  privateKey?: Hex
  /** Receipt poll interval ceiling in ms (default 50; polls start after 1 ms and double up to it). */
  receiptPollMs?: number
  /** How long to wait for a receipt (default 60 s). */
  receiptTimeoutMs?: number
}

export interface DecodedLog {
  address: Address
  eventName: string
  args: Record<string, unknown>
  blockNumber: bigint
  transactionHash: Hex
  logIndex: number
}

export interface WriteResult {
  hash: Hex
  blockNumber: bigint
  gasUsed: bigint
  logs: DecodedLog[]
}

const NONCE_CLASH = /nonce too low|already known|replacement transaction underpriced/i

function errorText(err: unknown): string {
  const parts: string[] = []
  let cur: unknown = err
  for (let i = 0; i < 8 && cur instanceof Error; i++) {
    parts.push(cur.message)
    cur = cur.cause
  }
  return parts.join(' ')
}

/** Gas limit of every transaction on a gas-free (development) chain; under the 30 M block gas limit. */
const GAS_FREE_LIMIT = 20_000_000n

type WriteFn<abi extends Abi> = ContractFunctionName<abi, 'nonpayable' | 'payable'>
type ReadFn<abi extends Abi> = ContractFunctionName<abi, 'pure' | 'view'>

export class Chain {
  readonly client: PublicClient
  readonly account: PrivateKeyAccount | null
  readonly rpcUrl: string
  readonly chainId: number
  private readonly gasFree: boolean
  private readonly receiptPollMs: number
  private readonly receiptTimeoutMs: number
  private nonce: number | undefined
  private nonceInit: Promise<number> | undefined
  /** address (lowercase) → ABI, to decode logs */
  private readonly abis = new Map<string, Abi>()

  constructor(opts: ChainOptions) {
    this.rpcUrl = opts.rpcUrl
    this.chainId = opts.chainId
    this.gasFree = opts.gasFree
    this.receiptPollMs = opts.receiptPollMs ?? 50
    this.receiptTimeoutMs = opts.receiptTimeoutMs ?? 60_000
    const chain = defineChain({
      id: opts.chainId,
      name: `zos-${opts.chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [opts.rpcUrl] } },
    })
    this.client = createPublicClient({ chain, transport: http(opts.rpcUrl, { retryCount: 0, timeout: 30_000, batch: { batchSize: 64, wait: 0 } }) }) as PublicClient
    this.account = opts.privateKey ? privateKeyToAccount(opts.privateKey) : null
  }

  /** Registers the ABI of a deployed contract, for decoding its logs. */
  register(address: Address, abi: Abi): void {
    this.abis.set(address.toLowerCase(), abi)
  }

  addresses(): Address[] {
    return [...this.abis.keys()] as Address[]
  }

  /** Runs a read, mapping failures to ZosErrors named after `action`. */
  async read<const abi extends Abi, fn extends ReadFn<abi>>(
    address: Address,
    abi: abi,
    functionName: fn,
    args: ContractFunctionArgs<abi, 'pure' | 'view', fn>,
    action: string = functionName,
  ): Promise<unknown> {
    try {
      return await this.client.readContract({ address, abi, functionName, args } as unknown as Parameters<PublicClient['readContract']>[0])
    } catch (err) {
      throw toZosError(err, action, this.rpcUrl)
    }
  }

  /** Runs any RPC-level call with the same error mapping. */
  async rpc<T>(action: string, fn: (client: PublicClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client)
    } catch (err) {
      throw toZosError(err, action, this.rpcUrl)
    }
  }

  /** Sends a transaction calling `functionName` and waits for its receipt; a revert becomes a ZosError. */
  async write<const abi extends Abi, fn extends WriteFn<abi>>(
    address: Address,
    abi: abi,
    functionName: fn,
    args: ContractFunctionArgs<abi, 'nonpayable' | 'payable', fn>,
    action: string = functionName,
  ): Promise<WriteResult> {
    const account = this.account
    if (!account) throw zerr('INVALID_ARGUMENT', `${action} needs a key: pass --key FILE (create one with \`zos key new\`)`)
    const data = encodeFunctionData({ abi, functionName, args } as unknown as EncodeFunctionDataParameters)
    let gas: bigint
    if (this.gasFree) {
      // Gas costs nothing here: skip the estimate (a second execution of the call on the node) and give a
      // generous limit; a call that fails is mined as reverted and explained with eth_call below.
      gas = GAS_FREE_LIMIT
    } else {
      try {
        gas = ((await this.client.estimateGas({ account: account.address, to: address, data })) * 5n) / 4n + 20_000n
      } catch (err) {
        throw await this.explain(err, action, address, data)
      }
    }
    const fees = this.gasFree
      ? { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n }
      : await this.rpc(action, (c) => c.estimateFeesPerGas())
    const send = async (): Promise<Hex> => {
      const raw = await account.signTransaction({
        type: 'eip1559',
        chainId: this.chainId,
        nonce: await this.takeNonce(action),
        to: address,
        data,
        gas,
        maxFeePerGas: fees.maxFeePerGas,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      })
      return this.client.request({ method: 'eth_sendRawTransaction', params: [raw] })
    }
    let hash: Hex
    try {
      hash = await send()
    } catch (err) {
      this.nonce = undefined // resynchronise from the chain
      // another sender of the same key (a second zos process) used our nonce: retry once with a fresh one
      if (!NONCE_CLASH.test(errorText(err))) throw toZosError(err, action, this.rpcUrl)
      try {
        hash = await send()
      } catch (again) {
        this.nonce = undefined
        throw toZosError(again, action, this.rpcUrl)
      }
    }
    const receipt = await this.receipt(hash, action)
    if (receipt.status !== 'success') throw await this.explain(new Error(`transaction ${hash} reverted`), action, address, data)
    return { hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, logs: this.decodeLogs(receipt.logs) }
  }

  /** Decodes logs of registered contracts; others are skipped. */
  decodeLogs(logs: readonly Log[]): DecodedLog[] {
    const out: DecodedLog[] = []
    for (const log of logs) {
      const abi = this.abis.get(log.address.toLowerCase())
      if (!abi) continue
      try {
        const d = decodeEventLog({ abi, data: log.data, topics: log.topics })
        out.push({
          address: log.address,
          eventName: d.eventName ?? '',
          args: (d.args ?? {}) as Record<string, unknown>,
          blockNumber: log.blockNumber ?? 0n,
          transactionHash: log.transactionHash ?? '0x',
          logIndex: log.logIndex ?? 0,
        })
      } catch {
        // an event this build does not know: skip it
      }
    }
    return out
  }

  private async takeNonce(action: string): Promise<number> {
    if (this.nonce === undefined) {
      this.nonceInit ??= this.rpc(action, (c) => c.getTransactionCount({ address: this.account!.address, blockTag: 'pending' })).finally(() => {
        this.nonceInit = undefined
      })
      const fetched = await this.nonceInit
      this.nonce ??= fetched
    }
    return this.nonce++
  }

  private async receipt(hash: Hex, action: string): Promise<TransactionReceipt> {
    const deadline = Date.now() + this.receiptTimeoutMs
    let wait = 1
    for (;;) {
      const r = await this.rpc(action, (c) => c.request({ method: 'eth_getTransactionReceipt', params: [hash] }))
      if (r) return formatTransactionReceipt(r)
      if (Date.now() > deadline) throw zerr('TIMEOUT', `${action}: no receipt for ${hash} after ${this.receiptTimeoutMs} ms; the ledger may not be mining`)
      await sleep(wait)
      wait = Math.min(wait * 2, this.receiptPollMs)
    }
  }

  /** Re-runs a failed call as eth_call to get its revert reason, and maps it. */
  private async explain(err: unknown, action: string, to: Address, data: Hex): Promise<Error> {
    const first = toZosError(err, action, this.rpcUrl)
    if (first.code !== 'LEDGER_REVERT' && first.code !== 'LEDGER_UNAVAILABLE') return first
    if (first.code === 'LEDGER_UNAVAILABLE' && /cannot reach/.test(first.message)) return first
    try {
      await this.client.call({ account: this.account?.address, to, data })
    } catch (again) {
      return toZosError(again, action, this.rpcUrl)
    }
    return first
  }
}
