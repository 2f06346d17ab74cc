// Council actions: each CouncilAction is a call of one contract that only the council may make. This module
// turns an action into (target, calldata) for Council.propose, and a proposal's calldata back into an action.
import { decodeFunctionData, encodeFunctionData, type Abi } from 'viem'
import { zerr } from '../core/errors.js'
import { councilAbi, farmsAbi, gridContractsAbi, nodesAbi, pricingAbi } from './abi.js'
import { FARM_CERTIFICATIONS, NODE_CERTIFICATIONS, num, policyOf } from './convert.js'
import type { Address, AddressBookData, CouncilAction, Hex, PricingPolicyInput } from './types.js'

const U64 = 2n ** 64n - 1n

function uint(v: number, field: string, max = 2 ** 32 - 1): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw zerr('INVALID_ARGUMENT', `${field} must be an integer 0..${max}, got ${v}`)
  return v
}

function u64(v: number, field: string): bigint {
  if (!Number.isSafeInteger(v) || v < 0 || BigInt(v) > U64) throw zerr('INVALID_ARGUMENT', `${field} must be a non-negative integer, got ${v}`)
  return BigInt(v)
}

export function policyArg(p: PricingPolicyInput): {
  name: string
  su: bigint
  cu: bigint
  nu: bigint
  ipu: bigint
  uniqueName: bigint
  domainName: bigint
  foundationAccount: Address
  certifiedSalesAccount: Address
  dedicatedDiscountPct: number
} {
  return {
    name: p.name,
    su: u64(p.su, 'su'),
    cu: u64(p.cu, 'cu'),
    nu: u64(p.nu, 'nu'),
    ipu: u64(p.ipu, 'ipu'),
    uniqueName: u64(p.uniqueName, 'uniqueName'),
    domainName: u64(p.domainName, 'domainName'),
    foundationAccount: p.foundationAccount,
    certifiedSalesAccount: p.certifiedSalesAccount,
    dedicatedDiscountPct: uint(p.dedicatedDiscountPct, 'dedicatedDiscountPct', 100),
  }
}

/** The (contract, calldata) the council will call for `action`. */
export function encodeAction(book: AddressBookData, action: CouncilAction): { target: Address; data: Hex } {
  const c = book.contracts
  switch (action.type) {
    case 'setRelease':
      return {
        target: c.council,
        data: encodeFunctionData({
          abi: councilAbi,
          functionName: 'setRelease',
          args: [action.network, action.version, action.flistHash, action.safeToUpgrade, action.testFarms.map((f) => uint(f, 'testFarms'))],
        }),
      }
    case 'addMember':
      return { target: c.council, data: encodeFunctionData({ abi: councilAbi, functionName: 'addMember', args: [action.member] }) }
    case 'removeMember':
      return { target: c.council, data: encodeFunctionData({ abi: councilAbi, functionName: 'removeMember', args: [action.member] }) }
    case 'setThreshold':
      return { target: c.council, data: encodeFunctionData({ abi: councilAbi, functionName: 'setThreshold', args: [uint(action.threshold, 'threshold')] }) }
    case 'createPricingPolicy':
      return { target: c.pricing, data: encodeFunctionData({ abi: pricingAbi, functionName: 'createPricingPolicy', args: [policyArg(action.policy)] }) }
    case 'updatePricingPolicy':
      return {
        target: c.pricing,
        data: encodeFunctionData({ abi: pricingAbi, functionName: 'updatePricingPolicy', args: [uint(action.policyId, 'policyId'), policyArg(action.policy)] }),
      }
    case 'setTokenPrice':
      return {
        target: c.pricing,
        data: encodeFunctionData({
          abi: pricingAbi,
          functionName: 'setTokenPrice',
          args: [u64(action.priceMusd, 'priceMusd'), u64(action.minMusd, 'minMusd'), u64(action.maxMusd, 'maxMusd')],
        }),
      }
    case 'setGracePeriod':
      return { target: c.pricing, data: encodeFunctionData({ abi: pricingAbi, functionName: 'setGracePeriod', args: [u64(action.seconds, 'seconds')] }) }
    case 'setSplit':
      return {
        target: c.pricing,
        data: encodeFunctionData({
          abi: pricingAbi,
          functionName: 'setSplit',
          args: [
            {
              foundationPct: uint(action.foundationPct, 'foundationPct', 100),
              stakingPct: uint(action.stakingPct, 'stakingPct', 100),
              salesPct: uint(action.salesPct, 'salesPct', 100),
            },
            action.stakingPool,
          ],
        }),
      }
    case 'setFarmCertification':
      return {
        target: c.farms,
        data: encodeFunctionData({
          abi: farmsAbi,
          functionName: 'setFarmCertification',
          args: [uint(action.farmId, 'farmId'), FARM_CERTIFICATIONS.indexOf(action.certification)],
        }),
      }
    case 'setFarmDedicated':
      return { target: c.farms, data: encodeFunctionData({ abi: farmsAbi, functionName: 'setFarmDedicated', args: [uint(action.farmId, 'farmId'), action.dedicated] }) }
    case 'setFarmPricingPolicy':
      return {
        target: c.farms,
        data: encodeFunctionData({ abi: farmsAbi, functionName: 'setFarmPricingPolicy', args: [uint(action.farmId, 'farmId'), uint(action.policyId, 'policyId')] }),
      }
    case 'setNodeCertification':
      return {
        target: c.nodes,
        data: encodeFunctionData({
          abi: nodesAbi,
          functionName: 'setNodeCertification',
          args: [uint(action.nodeId, 'nodeId'), NODE_CERTIFICATIONS.indexOf(action.certification)],
        }),
      }
    case 'cancelContract':
      return {
        target: c.gridContracts,
        data: encodeFunctionData({ abi: gridContractsAbi, functionName: 'cancelContractByCouncil', args: [u64(action.contractId, 'contractId')] }),
      }
    case 'approveSolutionProvider':
      return {
        target: c.pricing,
        data: encodeFunctionData({ abi: pricingAbi, functionName: 'approveSolutionProvider', args: [u64(action.id, 'id'), action.approved] }),
      }
  }
}

/** The action a proposal's calldata performs, or null when it is not a known action. */
export function decodeAction(book: AddressBookData, target: Address, data: Hex): CouncilAction | null {
  const c = book.contracts
  const abis: [Address, Abi][] = [
    [c.council, councilAbi],
    [c.pricing, pricingAbi],
    [c.farms, farmsAbi],
    [c.nodes, nodesAbi],
    [c.gridContracts, gridContractsAbi],
  ]
  const abi = abis.find(([addr]) => addr.toLowerCase() === target.toLowerCase())?.[1]
  if (!abi) return null
  let d: { functionName: string; args?: readonly unknown[] }
  try {
    d = decodeFunctionData({ abi, data })
  } catch {
    return null
  }
  const x = d.args ?? []
  const policyInput = (v: unknown): PricingPolicyInput => {
    const { id: _id, ...rest } = policyOf(v)
    return rest
  }
  switch (d.functionName) {
    case 'setRelease':
      return {
        type: 'setRelease',
        network: String(x[0]),
        version: String(x[1]),
        flistHash: x[2] as Hex,
        safeToUpgrade: x[3] === true,
        testFarms: (x[4] as readonly unknown[]).map(num),
      }
    case 'addMember':
      return { type: 'addMember', member: x[0] as Address }
    case 'removeMember':
      return { type: 'removeMember', member: x[0] as Address }
    case 'setThreshold':
      return { type: 'setThreshold', threshold: num(x[0]) }
    case 'createPricingPolicy':
      return { type: 'createPricingPolicy', policy: policyInput(x[0]) }
    case 'updatePricingPolicy':
      return { type: 'updatePricingPolicy', policyId: num(x[0]), policy: policyInput(x[1]) }
    case 'setTokenPrice':
      return { type: 'setTokenPrice', priceMusd: num(x[0]), minMusd: num(x[1]), maxMusd: num(x[2]) }
    case 'setGracePeriod':
      return { type: 'setGracePeriod', seconds: num(x[0]) }
    case 'setSplit': {
      const sp = (x[0] ?? {}) as Record<string, unknown>
      return { type: 'setSplit', foundationPct: num(sp.foundationPct), stakingPct: num(sp.stakingPct), salesPct: num(sp.salesPct), stakingPool: x[1] as Address }
    }
    case 'setFarmCertification':
      return { type: 'setFarmCertification', farmId: num(x[0]), certification: FARM_CERTIFICATIONS[num(x[1])] ?? 'NotCertified' }
    case 'setFarmDedicated':
      return { type: 'setFarmDedicated', farmId: num(x[0]), dedicated: x[1] === true }
    case 'setFarmPricingPolicy':
      return { type: 'setFarmPricingPolicy', farmId: num(x[0]), policyId: num(x[1]) }
    case 'setNodeCertification':
      return { type: 'setNodeCertification', nodeId: num(x[0]), certification: NODE_CERTIFICATIONS[num(x[1])] ?? 'Diy' }
    case 'cancelContractByCouncil':
      return { type: 'cancelContract', contractId: num(x[0]) }
    case 'approveSolutionProvider':
      return { type: 'approveSolutionProvider', id: num(x[0]), approved: x[1] === true }
    default:
      return null
  }
}
