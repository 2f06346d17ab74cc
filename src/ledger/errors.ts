// Turns what the chain says into ZosErrors with stable codes. Every revert of our contracts is a custom error
// (contracts/Types.sol), decoded here with the errors of all ABIs; transport failures become LEDGER_UNAVAILABLE.
import { BaseError, decodeErrorResult, type Abi } from 'viem'
import { ZosError, errorMessage, zerr } from '../core/errors.js'
import { billingAbi, councilAbi, farmsAbi, gridContractsAbi, nodesAbi, pricingAbi, twinsAbi, zosTokenAbi } from './abi.js'
import { TOKEN_DECIMALS, TOKEN_SYMBOL } from './types.js'

/** The error items of every contract, deduplicated by signature: a custom error bubbles up unchanged. */
export const ERRORS_ABI: Abi = (() => {
  const seen = new Map<string, Abi[number]>()
  for (const abi of [twinsAbi, farmsAbi, nodesAbi, gridContractsAbi, billingAbi, pricingAbi, councilAbi, zosTokenAbi] as readonly Abi[]) {
    for (const item of abi) {
      if (item.type !== 'error') continue
      seen.set(`${item.name}(${item.inputs.map((i) => i.type).join(',')})`, item)
    }
  }
  return [...seen.values()]
})()

const ROLE_HELP: Record<string, string> = {
  council: 'only the council may do this: propose it with `zos council propose`',
  member: 'only a council member may propose or approve',
  node: 'only a node (a twin registered with `zos node register`) may do this',
  deployer: 'only the deployer may wire the contracts',
  contracts: 'only the contracts registry may call this',
  billing: 'only the billing contract may call this',
  faucet: 'the faucet works only on a development ledger (chain id 31337 by default)',
}

export function formatTokens(amount: bigint): string {
  const neg = amount < 0n
  const abs = neg ? -amount : amount
  const unit = 10n ** BigInt(TOKEN_DECIMALS)
  const whole = abs / unit
  const frac = (abs % unit).toString().padStart(TOKEN_DECIMALS, '0').replace(/0+$/, '')
  return `${neg ? '-' : ''}${whole}${frac ? '.' + frac : ''} ${TOKEN_SYMBOL}`
}

/** Maps a decoded custom error to a ZosError. */
export function fromCustomError(name: string, args: readonly unknown[], action: string): ZosError {
  const a = (i: number): string => String(args[i])
  const details = { action, error: name, args: args.map((x) => (typeof x === 'bigint' ? x.toString() : x)) }
  switch (name) {
    case 'NotFound':
      return zerr('NOT_FOUND', `${action}: no ${a(0)} ${a(1)} on the ledger`, details)
    case 'NotOwner':
      return zerr('NOT_OWNER', `${action}: your twin does not own ${a(0)} ${a(1)}`, details)
    case 'NoTwin':
      return zerr('NO_TWIN', `${action}: account ${a(0)} has no twin: create one with \`zos twin create\``, details)
    case 'Unauthorized':
      return zerr('UNAUTHORIZED', `${action}: ${ROLE_HELP[a(0)] ?? `needs the ${a(0)} role`}`, details)
    case 'NameTaken':
      return zerr('NAME_TAKEN', `${action}: the name "${a(0)}" is already registered; choose another`, details)
    case 'NoIpsFree':
      return zerr('NO_IPS_FREE', `${action}: farm ${a(0)} has ${a(2)} free public IPs, ${a(1)} requested`, details)
    case 'InsufficientFunds': {
      const need = typeof args[0] === 'bigint' ? formatTokens(args[0]) : a(0)
      const have = typeof args[1] === 'bigint' ? formatTokens(args[1]) : a(1)
      return zerr('INSUFFICIENT_FUNDS', `${action}: needs ${need}, the balance is ${have}; top up with \`zos token faucet\` (dev) or a transfer`, details)
    }
    case 'InvalidInput':
      return zerr('INVALID_ARGUMENT', `${action}: ${a(0)} ${a(1)}`, details)
    case 'AlreadyExists':
      return zerr('EXISTS', `${action}: a ${a(0)} already exists`, details)
    case 'InvalidState':
      return zerr('INVALID_STATE', `${action}: ${a(0)} ${a(1)} ${a(2)}`, details)
    default:
      return zerr('LEDGER_REVERT', `${action}: the ledger rejected the call with ${name}(${details.args.join(', ')})`, details)
  }
}

/** Revert data (0x…) found anywhere in a viem error's cause chain. */
export function revertDataOf(err: unknown): `0x${string}` | undefined {
  let cur: unknown = err
  for (let depth = 0; depth < 10 && cur !== null && typeof cur === 'object'; depth++) {
    const data = (cur as { data?: unknown }).data
    if (typeof data === 'string' && /^0x[0-9a-fA-F]*$/.test(data) && data.length >= 10) return data as `0x${string}`
    if (data && typeof data === 'object') {
      const inner = (data as { data?: unknown }).data
      if (typeof inner === 'string' && /^0x[0-9a-fA-F]*$/.test(inner) && inner.length >= 10) return inner as `0x${string}`
    }
    cur = (cur as { cause?: unknown }).cause
  }
  return undefined
}

const UNAVAILABLE = /ECONNREFUSED|ECONNRESET|fetch failed|socket hang up|HTTP request failed|network|ETIMEDOUT|EHOSTUNREACH/i

/**
 * The ZosError for anything a chain call threw. `action` names the call for the message
 * ("createNodeContract"); `rpcUrl` is named when the endpoint cannot be reached.
 */
export function toZosError(err: unknown, action: string, rpcUrl: string): ZosError {
  if (ZosError.is(err)) return err
  const data = revertDataOf(err)
  if (data) {
    try {
      const decoded = decodeErrorResult({ abi: ERRORS_ABI, data })
      return fromCustomError(decoded.errorName, (decoded.args ?? []) as readonly unknown[], action)
    } catch {
      // not one of ours (Panic, Error(string)): fall through to the message
    }
  }
  const text = err instanceof BaseError ? `${err.shortMessage} ${err.details ?? ''}` : errorMessage(err)
  if (/insufficient funds for gas/i.test(text)) {
    return zerr('INSUFFICIENT_FUNDS', `${action}: the account cannot pay gas on this network; fund it with the network's native coin`, { action }, err)
  }
  if (/nonce too (low|high)|replacement transaction underpriced/i.test(text)) {
    return zerr('LEDGER_REVERT', `${action}: the transaction nonce clashed with another sender of the same key; retry`, { action }, err)
  }
  if (UNAVAILABLE.test(text)) {
    return zerr('LEDGER_UNAVAILABLE', `${action}: cannot reach the ledger at ${rpcUrl}; start one with \`zos ledger up\` or pass --rpc URL`, { action, rpcUrl }, err)
  }
  if (/revert/i.test(text)) {
    return zerr('LEDGER_REVERT', `${action}: the ledger reverted the call: ${text.trim()}`, { action }, err)
  }
  return zerr('LEDGER_UNAVAILABLE', `${action}: the ledger at ${rpcUrl} failed: ${text.trim()}`, { action, rpcUrl }, err)
}
