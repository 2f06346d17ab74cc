// A Deployment (pkg/gridtypes/deployment.go): the signed unit a user asks a node to run. This module parses
// and validates one (schema, names, cross references, limits), computes its challenge hash (keccak256 over the
// Zero-OS field stream), signs it, checks its signatures against a signature requirement (multisig weights,
// required signers), and works out what an update changes. It imports no node code, so clients use it too.
import { keccak_256 } from '@noble/hashes/sha3.js'
import { z } from 'zod'
import { zerr } from '../../core/errors.js'
import type { KeyPair } from '../../core/keys.js'
import { addCapacity, capacity, type Capacity } from './capacity.js'
import { ChallengeWriter } from './challenge.js'
import { capacityOfData, challengeOfData, parseWorkloadData } from './registry.js'
import { recoverSigner, signHash } from './signature.js'
import { MAX_TEXT, ResultSchema, typeOrder, WorkloadNameSchema, type WorkloadType } from './workload.js'
import type { ZmachineData } from './zmachine.js'
import type { ZlogsData } from './zlogs.js'

export const MAX_WORKLOADS = 64
export const MAX_SIGNERS = 16
export const SIGNATURE_TYPE = 'secp256k1'

const uint = z.number().int().nonnegative().safe()
const twinIdSchema = z.number().int().min(1).max(2 ** 32 - 1)

export const SignatureRequestSchema = z
  .object({ twin_id: twinIdSchema, required: z.boolean().default(false), weight: z.number().int().min(1).max(1000) })
  .strict()

export const SignatureSchema = z
  .object({
    twin_id: twinIdSchema,
    signature: z.string().regex(/^(0x)?[0-9a-fA-F]{130}$/, 'a signature is 65 bytes of hex (r ‖ s ‖ v)'),
    signature_type: z.literal(SIGNATURE_TYPE, { errorMap: () => ({ message: `signature_type must be "${SIGNATURE_TYPE}"` }) }).default(SIGNATURE_TYPE),
  })
  .strict()

export const SignatureRequirementSchema = z
  .object({
    requests: z.array(SignatureRequestSchema).min(1, 'at least one signature request').max(MAX_SIGNERS),
    weight_required: z.number().int().min(1).max(16_000),
    signatures: z.array(SignatureSchema).max(MAX_SIGNERS).default([]),
    signature_style: z.literal('', { errorMap: () => ({ message: 'signature_style must be empty (EIP-191 is the only style)' }) }).default(''),
  })
  .strict()

export const DeploymentWorkloadSchema = z
  .object({
    version: uint,
    name: WorkloadNameSchema,
    type: z.string().min(1).max(64),
    data: z.unknown(),
    metadata: z.string().max(MAX_TEXT).default(''),
    description: z.string().max(MAX_TEXT).default(''),
    result: ResultSchema.optional(),
  })
  .strict()

export const DeploymentSchema = z
  .object({
    version: uint,
    twin_id: twinIdSchema,
    contract_id: uint,
    metadata: z.string().max(MAX_TEXT).default(''),
    description: z.string().max(MAX_TEXT).default(''),
    expiration: uint.default(0),
    signature_requirement: SignatureRequirementSchema,
    workloads: z.array(DeploymentWorkloadSchema).min(1, 'a deployment needs at least one workload').max(MAX_WORKLOADS),
  })
  .strict()

export type SignatureRequest = z.infer<typeof SignatureRequestSchema>
export type Signature = z.infer<typeof SignatureSchema>
export type SignatureRequirement = z.infer<typeof SignatureRequirementSchema>
export type DeploymentWorkload = z.infer<typeof DeploymentWorkloadSchema> & { type: WorkloadType }
export type Deployment = Omit<z.infer<typeof DeploymentSchema>, 'workloads'> & { workloads: DeploymentWorkload[] }

function fieldError(issue: z.ZodIssue, root: string): never {
  const path = [root, ...issue.path].join('.')
  throw zerr('INVALID_ARGUMENT', `${path}: ${issue.message}`, { field: path })
}

/**
 * Parses and validates a deployment: the schema, every workload's data by its type (normalised: defaults
 * filled in, which is what gets hashed), unique names, references between workloads, workload versions.
 * Throws INVALID_ARGUMENT naming the field.
 */
export function parseDeployment(raw: unknown): Deployment {
  const r = DeploymentSchema.safeParse(raw)
  if (!r.success) fieldError(r.error.issues[0]!, 'deployment')
  const d = r.data
  const byName = new Map<string, WorkloadType>()
  const workloads: DeploymentWorkload[] = d.workloads.map((wl, i) => {
    const where = `deployment.workloads[${i}]`
    if (byName.has(wl.name)) throw zerr('INVALID_ARGUMENT', `${where}.name: workload name "${wl.name}" is used twice`, { field: `${where}.name` })
    const data = parseWorkloadData(wl.type, wl.data, where)
    const type = wl.type as WorkloadType
    byName.set(wl.name, type)
    if (wl.version > d.version) throw zerr('INVALID_ARGUMENT', `${where}.version: workload version ${wl.version} is above the deployment version ${d.version}`, { field: `${where}.version` })
    return { ...wl, type, data }
  })
  for (const [i, wl] of workloads.entries()) {
    const where = `deployment.workloads[${i}].data`
    if (wl.type === 'zmachine') {
      const z = wl.data as ZmachineData
      for (const m of z.mounts) {
        const t = byName.get(m.name)
        if (t !== 'volume' && t !== 'zmount' && t !== 'qsfs') throw zerr('INVALID_ARGUMENT', `${where}.mounts: "${m.name}" is not a volume, zmount or qsfs workload of this deployment`, { field: `${where}.mounts` })
      }
      if (z.network.public_ip !== '' && byName.get(z.network.public_ip) !== 'ip') throw zerr('INVALID_ARGUMENT', `${where}.network.public_ip: "${z.network.public_ip}" is not an ip workload of this deployment`, { field: `${where}.network.public_ip` })
    }
    if (wl.type === 'zlogs') {
      const l = wl.data as ZlogsData
      if (byName.get(l.zmachine) !== 'zmachine') throw zerr('INVALID_ARGUMENT', `${where}.zmachine: "${l.zmachine}" is not a zmachine workload of this deployment`, { field: `${where}.zmachine` })
    }
  }
  const publicIps = new Map<string, string>()
  for (const wl of workloads) {
    if (wl.type !== 'zmachine') continue
    const ip = (wl.data as ZmachineData).network.public_ip
    if (ip === '') continue
    if (publicIps.has(ip)) throw zerr('INVALID_ARGUMENT', `deployment: ip workload "${ip}" is used by both ${publicIps.get(ip)} and ${wl.name}`, { field: 'deployment.workloads' })
    publicIps.set(ip, wl.name)
  }
  const sr = d.signature_requirement
  if (!sr.requests.some((q) => q.twin_id === d.twin_id)) {
    throw zerr('INVALID_ARGUMENT', `deployment.signature_requirement.requests: the owner twin ${d.twin_id} must be one of the requests`, { field: 'deployment.signature_requirement.requests' })
  }
  const seen = new Set<number>()
  for (const q of sr.requests) {
    if (seen.has(q.twin_id)) throw zerr('INVALID_ARGUMENT', `deployment.signature_requirement.requests: twin ${q.twin_id} is listed twice`, { field: 'deployment.signature_requirement.requests' })
    seen.add(q.twin_id)
  }
  const total = sr.requests.reduce((a, q) => a + q.weight, 0)
  if (total < sr.weight_required) {
    throw zerr('INVALID_ARGUMENT', `deployment.signature_requirement: the requests weigh ${total} in all, less than weight_required ${sr.weight_required}`, { field: 'deployment.signature_requirement.weight_required' })
  }
  return { ...d, workloads }
}

/** The challenge stream (Zero-OS field order; contract_id is not part of it). */
export function challengeBytes(d: Deployment): Buffer {
  const w = new ChallengeWriter()
  w.int(d.version).int(d.twin_id).str(d.metadata).str(d.description).int(d.expiration)
  for (const wl of d.workloads) {
    w.int(wl.version).str(wl.name).str(wl.type).str(wl.metadata).str(wl.description)
    challengeOfData(wl.type, w, wl.data)
  }
  const sr = d.signature_requirement
  for (const q of sr.requests) w.int(q.twin_id).bool(q.required).int(q.weight)
  w.int(sr.weight_required).str(sr.signature_style)
  return w.bytes()
}

/** keccak256 of the challenge stream: the hash the owner signs and the node contract carries. */
export function challengeHash(d: Deployment): Buffer {
  return Buffer.from(keccak_256(challengeBytes(d)))
}

/** The challenge hash as the ledger stores it: 0x + 64 hex digits. */
export function deploymentHash(d: Deployment): `0x${string}` {
  return `0x${challengeHash(d).toString('hex')}`
}

/** Returns `d` signed by `key` as `twinId` (an earlier signature of that twin is replaced). */
export function signDeployment(d: Deployment, key: KeyPair, twinId: number): Deployment {
  const signature = signHash(key, challengeHash(d))
  const others = d.signature_requirement.signatures.filter((s) => s.twin_id !== twinId)
  return { ...d, signature_requirement: { ...d.signature_requirement, signatures: [...others, { twin_id: twinId, signature, signature_type: SIGNATURE_TYPE }] } }
}

/**
 * Checks the signatures against the requirement: each comes from a twin among the requests and verifies
 * against that twin's ledger account (`accountOf`); a twin signs at most once; every required twin (the owner
 * always is) signed; the weights of the signers reach weight_required. SIGNATURE_INVALID otherwise.
 */
export async function verifyDeploymentSignatures(d: Deployment, accountOf: (twinId: number) => Promise<string>): Promise<void> {
  const sr = d.signature_requirement
  const hash = challengeHash(d)
  const requests = new Map(sr.requests.map((q) => [q.twin_id, q]))
  const signed = new Set<number>()
  let weight = 0
  for (const s of sr.signatures) {
    const q = requests.get(s.twin_id)
    if (!q) throw zerr('SIGNATURE_INVALID', `twin ${s.twin_id} signed the deployment but is not one of its signature requests`, { twin: s.twin_id })
    if (signed.has(s.twin_id)) throw zerr('SIGNATURE_INVALID', `twin ${s.twin_id} signed the deployment twice`, { twin: s.twin_id })
    const signer = recoverSigner(hash, s.signature)
    const account = await accountOf(s.twin_id)
    if (signer === null || signer.toLowerCase() !== account.toLowerCase()) {
      throw zerr('SIGNATURE_INVALID', `the signature of twin ${s.twin_id} does not verify against its account ${account} (wrong key, or the deployment changed after signing)`, { twin: s.twin_id })
    }
    signed.add(s.twin_id)
    weight += q.weight
  }
  for (const q of sr.requests) {
    if ((q.required || q.twin_id === d.twin_id) && !signed.has(q.twin_id)) {
      throw zerr('SIGNATURE_INVALID', `twin ${q.twin_id} is a required signer and did not sign`, { twin: q.twin_id })
    }
  }
  if (weight < sr.weight_required) {
    throw zerr('SIGNATURE_INVALID', `the signers weigh ${weight}, less than the ${sr.weight_required} required`, { weight, required: sr.weight_required })
  }
}

/** Capacity of a set of workloads (by type and data). */
export function capacityOf(workloads: readonly Pick<DeploymentWorkload, 'type' | 'data'>[]): Capacity {
  return workloads.reduce((acc, wl) => addCapacity(acc, capacityOfData(wl.type, wl.data)), capacity())
}

export function sortByTypeOrder<T extends { type: WorkloadType }>(wls: readonly T[]): T[] {
  return [...wls].sort((a, b) => typeOrder(a.type) - typeOrder(b.type))
}

export interface UpgradePlan {
  add: DeploymentWorkload[]
  update: { from: DeploymentWorkload; to: DeploymentWorkload }[]
  remove: DeploymentWorkload[]
  unchanged: DeploymentWorkload[]
}

function sameContent(a: DeploymentWorkload, b: DeploymentWorkload): boolean {
  const ca = new ChallengeWriter()
  const cb = new ChallengeWriter()
  for (const [w, wl] of [[ca, a], [cb, b]] as const) {
    w.int(wl.version).str(wl.name).str(wl.type).str(wl.metadata).str(wl.description)
    challengeOfData(wl.type, w, wl.data)
  }
  return ca.bytes().equals(cb.bytes())
}

/**
 * What an update changes (pkg/gridtypes/deployment.go Upgrade): the version must be the old one + 1 and the
 * twin and contract unchanged; a workload with a new name and the new version is added; an existing name with
 * the new version is updated (same type only); an existing name with an older version must be unchanged;
 * a missing name is removed. INVALID_ARGUMENT otherwise.
 */
export function planUpgrade(current: Deployment, next: Deployment): UpgradePlan {
  if (next.twin_id !== current.twin_id) throw zerr('INVALID_ARGUMENT', `deployment.twin_id: an update cannot change the owner (${current.twin_id} → ${next.twin_id})`, { field: 'deployment.twin_id' })
  if (next.contract_id !== current.contract_id) throw zerr('INVALID_ARGUMENT', `deployment.contract_id: an update cannot change the contract (${current.contract_id} → ${next.contract_id})`, { field: 'deployment.contract_id' })
  if (next.version !== current.version + 1) {
    throw zerr('INVALID_ARGUMENT', `deployment.version: an update must have version ${current.version + 1} (the current one + 1), got ${next.version}`, { field: 'deployment.version', expected: current.version + 1 })
  }
  const old = new Map(current.workloads.map((w) => [w.name, w]))
  const plan: UpgradePlan = { add: [], update: [], remove: [], unchanged: [] }
  for (const wl of next.workloads) {
    const before = old.get(wl.name)
    if (!before) {
      if (wl.version !== next.version) throw zerr('INVALID_ARGUMENT', `workload ${wl.name} is new, so its version must be ${next.version}, got ${wl.version}`, { field: 'deployment.workloads', workload: wl.name })
      plan.add.push(wl)
      continue
    }
    old.delete(wl.name)
    if (before.type !== wl.type) throw zerr('INVALID_ARGUMENT', `workload ${wl.name}: its type cannot change (${before.type} → ${wl.type}); remove it and add a new one`, { field: 'deployment.workloads', workload: wl.name })
    if (wl.version === next.version) plan.update.push({ from: before, to: wl })
    else if (sameContent(before, { ...wl, result: undefined })) plan.unchanged.push(wl)
    else throw zerr('INVALID_ARGUMENT', `workload ${wl.name} changed, so its version must be ${next.version}, got ${wl.version}`, { field: 'deployment.workloads', workload: wl.name })
  }
  plan.remove = [...old.values()]
  return plan
}
