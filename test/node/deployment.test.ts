// Deployment types: parsing and validation, the challenge stream byte by byte, keccak256 hash, EIP-191
// signatures (also against viem, i.e. what a wallet produces), multisig weights, and update plans.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { privateKeyToAccount } from 'viem/accounts'
import { generateKey } from '../../src/core/keys.js'
import {
  challengeBytes,
  challengeHash,
  deploymentHash,
  parseDeployment,
  planUpgrade,
  recoverSigner,
  signDeployment,
  verifyDeploymentSignatures,
  capacityOf,
  capacityOfData,
  challengeOfData,
  ChallengeWriter,
  parseWorkloadData,
  WORKLOAD_TYPES,
  type Deployment,
  type WorkloadType,
} from '../../src/node/types/index.js'

const MIB = 2 ** 20
const GIB = 2 ** 30

function raw(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 0,
    twin_id: 7,
    contract_id: 0,
    metadata: 'meta',
    description: 'desc',
    signature_requirement: { requests: [{ twin_id: 7, required: false, weight: 1 }], weight_required: 1 },
    workloads: [
      { version: 0, name: 'data', type: 'volume', data: { size: 64 * MIB } },
      {
        version: 0,
        name: 'vm',
        type: 'zmachine',
        data: {
          flist: 'https://hub/x.fl',
          size: 0,
          compute_capacity: { cpu: 2, memory: 256 * MIB },
          mounts: [{ name: 'data', mountpoint: '/data' }],
          entrypoint: '/bin/sh -c "echo hi"',
          env: { B: '2', A: '1' },
        },
      },
    ],
    ...overrides,
  }
}

function code(c: string): (err: unknown) => boolean {
  return (err: unknown) => {
    const e = err as { code?: string; message?: string }
    assert.equal(e.code, c, e.message)
    return true
  }
}

test('deployment - the challenge stream follows the Zero-OS field order, byte by byte', () => {
  const d = parseDeployment(raw())
  const expected =
    '0' + '7' + 'meta' + 'desc' + '0' + // version, twin, metadata, description, expiration
    '0' + 'data' + 'volume' + '' + '' + String(64 * MIB) + // volume workload
    '0' + 'vm' + 'zmachine' + '' + '' + // zmachine header
    'https://hub/x.fl' + '' + 'false' + '0' + '2' + String(256 * MIB) + 'data' + '/data' + '/bin/sh -c "echo hi"' + 'A=1' + 'B=2' +
    '7' + 'false' + '1' + // request
    '1' + '' // weight_required, style
  assert.equal(challengeBytes(d).toString('utf8'), expected)
  assert.deepEqual(challengeHash(d), Buffer.from(keccak_256(Buffer.from(expected))))
  assert.match(deploymentHash(d), /^0x[0-9a-f]{64}$/)
})

test('deployment - the hash covers every field but contract_id and signatures', () => {
  const base = deploymentHash(parseDeployment(raw()))
  assert.equal(deploymentHash(parseDeployment(raw({ contract_id: 99 }))), base)
  assert.notEqual(deploymentHash(parseDeployment(raw({ metadata: 'other' }))), base)
  assert.notEqual(deploymentHash(parseDeployment(raw({ version: 1 }))), base)
  const r = raw()
  ;(r.workloads as { data: { size: number } }[])[0]!.data.size = 65 * MIB
  assert.notEqual(deploymentHash(parseDeployment(r)), base)
  const key = generateKey()
  assert.equal(deploymentHash(signDeployment(parseDeployment(raw()), key, 7)), base)
})

test('deployment - parse refuses bad input naming the field', () => {
  assert.throws(() => parseDeployment({ ...raw(), twin_id: 0 }), (e: unknown) => code('INVALID_ARGUMENT')(e) && /deployment\.twin_id/.test((e as Error).message))
  assert.throws(() => parseDeployment(raw({ workloads: [] })), /at least one workload/)
  const dup = raw()
  ;(dup.workloads as { name: string }[])[1]!.name = 'data'
  assert.throws(() => parseDeployment(dup), /used twice/)
  assert.throws(() => parseDeployment(raw({ workloads: [{ version: 0, name: 'x', type: 'teleport', data: {} }] })), /unknown workload type "teleport"/)
  assert.throws(() => parseDeployment(raw({ workloads: [{ version: 0, name: 'bad-name', type: 'volume', data: { size: 64 * MIB } }] })), /workloads\.0\.name/)
  assert.throws(() => parseDeployment(raw({ workloads: [{ version: 0, name: 'v', type: 'volume', data: { size: 1 } }] })), /workloads\[0\]\.data\.size: size must be at least/)
  const noVol = raw()
  ;(noVol.workloads as unknown[]).shift()
  assert.throws(() => parseDeployment(noVol), /"data" is not a volume, zmount or qsfs workload/)
  const lowMem = raw()
  ;(lowMem.workloads as { data: { compute_capacity: { memory: number } } }[])[1]!.data.compute_capacity.memory = MIB
  assert.throws(() => parseDeployment(lowMem), /compute_capacity\.memory: memory must be at least 64 MiB/)
  assert.throws(() => parseDeployment(raw({ signature_requirement: { requests: [{ twin_id: 8, weight: 1 }], weight_required: 1 } })), /owner twin 7 must be one of the requests/)
  assert.throws(() => parseDeployment(raw({ signature_requirement: { requests: [{ twin_id: 7, weight: 1 }], weight_required: 2 } })), /less than weight_required 2/)
  assert.throws(() => parseDeployment(raw({ extra: 1 })), /Unrecognized key/)
  const wlVersion = raw()
  ;(wlVersion.workloads as { version: number }[])[0]!.version = 3
  assert.throws(() => parseDeployment(wlVersion), /above the deployment version/)
})

test('deployment - capacity adds the workloads up (root size 0 takes the default)', () => {
  const c = capacityOf(parseDeployment(raw()).workloads)
  assert.deepEqual(c, { cru: 2, mru: 256 * MIB, sru: 64 * MIB + 1024 * MIB, hru: 0, ipv4u: 0 })
})

test('signature - sign then verify; a wallet (viem signMessage raw) signature verifies too', async () => {
  const key = generateKey()
  const d = signDeployment(parseDeployment(raw()), key, 7)
  await verifyDeploymentSignatures(d, async () => key.address)
  const account = privateKeyToAccount(`0x${key.privateKey.toString('hex')}`)
  const walletSig = await account.signMessage({ message: { raw: challengeHash(d) } })
  assert.equal(walletSig, d.signature_requirement.signatures[0]!.signature)
  assert.equal(recoverSigner(challengeHash(d), walletSig), key.address)
})

test('signature - forged, tampered, missing and malformed signatures are refused', async () => {
  const key = generateKey()
  const other = generateKey()
  const d = parseDeployment(raw())
  // signed by a key that is not the twin's account
  await assert.rejects(verifyDeploymentSignatures(signDeployment(d, other, 7), async () => key.address), code('SIGNATURE_INVALID'))
  // changed after signing
  const signed = signDeployment(d, key, 7)
  const tampered: Deployment = { ...signed, metadata: 'changed' }
  await assert.rejects(verifyDeploymentSignatures(tampered, async () => key.address), /does not verify/)
  // no signature at all
  await assert.rejects(verifyDeploymentSignatures(d, async () => key.address), /required signer and did not sign/)
  // garbage
  const garbage: Deployment = { ...d, signature_requirement: { ...d.signature_requirement, signatures: [{ twin_id: 7, signature: '0x' + '11'.repeat(65), signature_type: 'secp256k1' }] } }
  await assert.rejects(verifyDeploymentSignatures(garbage, async () => key.address), code('SIGNATURE_INVALID'))
  // high-s form of a valid signature
  const sig = Buffer.from(signed.signature_requirement.signatures[0]!.signature.slice(2), 'hex')
  const n = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141')
  const s = BigInt('0x' + sig.subarray(32, 64).toString('hex'))
  const highS = Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex')
  const flipped = Buffer.concat([sig.subarray(0, 32), highS, Buffer.of(sig[64]! ^ 1)])
  assert.equal(recoverSigner(challengeHash(d), '0x' + flipped.toString('hex')), null)
})

test('signature - multisig: weights and required signers', async () => {
  const keys = new Map([[7, generateKey()], [8, generateKey()], [9, generateKey()]])
  const accountOf = async (t: number): Promise<string> => keys.get(t)!.address
  const d = parseDeployment(
    raw({
      signature_requirement: {
        requests: [
          { twin_id: 7, required: false, weight: 1 },
          { twin_id: 8, required: true, weight: 1 },
          { twin_id: 9, required: false, weight: 2 },
        ],
        weight_required: 3,
      },
    }),
  )
  const by = (d0: Deployment, ...twins: number[]): Deployment => twins.reduce((acc, t) => signDeployment(acc, keys.get(t)!, t), d0)
  await verifyDeploymentSignatures(by(d, 7, 8, 9), accountOf) // 4 >= 3
  await verifyDeploymentSignatures(by(d, 7, 8, 9, 9), accountOf) // re-signing replaces
  await assert.rejects(verifyDeploymentSignatures(by(d, 7, 8), accountOf), /weigh 2, less than the 3 required/)
  await assert.rejects(verifyDeploymentSignatures(by(d, 7, 9), accountOf), /twin 8 is a required signer/)
  await assert.rejects(verifyDeploymentSignatures(by(d, 8, 9), accountOf), /twin 7 is a required signer/) // the owner always is
  const stranger = generateKey()
  keys.set(10, stranger)
  await assert.rejects(verifyDeploymentSignatures(by(d, 7, 8, 9, 10), accountOf), /not one of its signature requests/)
  const twice: Deployment = by(d, 7, 8, 9)
  twice.signature_requirement.signatures.push(twice.signature_requirement.signatures[0]!)
  await assert.rejects(verifyDeploymentSignatures(twice, accountOf), /signed the deployment twice/)
})

test('upgrade - version + 1, adds, updates, removes; skips and silent changes refused', () => {
  const cur = parseDeployment(raw({ contract_id: 5 }))
  const next = raw({ contract_id: 5, version: 1 })
  const wls = next.workloads as Record<string, unknown>[]
  ;(wls[1]!.data as { env: Record<string, string> }).env = { A: '9' }
  wls[1]!.version = 1
  wls.push({ version: 1, name: 'disk', type: 'zmount', data: { size: 32 * MIB } })
  const plan = planUpgrade(cur, parseDeployment(next))
  assert.deepEqual(plan.add.map((w) => w.name), ['disk'])
  assert.deepEqual(plan.update.map((u) => u.to.name), ['vm'])
  assert.deepEqual(plan.unchanged.map((w) => w.name), ['data'])
  assert.deepEqual(plan.remove, [])
  assert.throws(() => planUpgrade(cur, parseDeployment(raw({ contract_id: 5, version: 2 }))), /must have version 1/)
  assert.throws(() => planUpgrade(cur, parseDeployment(raw({ contract_id: 6, version: 1 }))), /cannot change the contract/)
  const silent = raw({ contract_id: 5, version: 1 })
  ;((silent.workloads as Record<string, unknown>[])[0]!.data as { size: number }).size = 128 * MIB
  assert.throws(() => planUpgrade(cur, parseDeployment(silent)), /workload data changed, so its version must be 1/)
  const removed = raw({ contract_id: 5, version: 1, workloads: [(raw().workloads as unknown[])[0]] })
  assert.deepEqual(planUpgrade(cur, parseDeployment(removed)).remove.map((w) => w.name), ['vm'])
  const retype = raw({ contract_id: 5, version: 1, workloads: [{ version: 1, name: 'data', type: 'zmount', data: { size: 64 * MIB } }] })
  assert.throws(() => planUpgrade(cur, parseDeployment(retype)), /type cannot change/)
})

test('types - every registered type parses, hashes and sizes its data; unknown fields are refused', () => {
  const samples: Record<WorkloadType, unknown> = {
    zmount: { size: 32 * MIB },
    volume: { size: 32 * MIB },
    qsfs: { cache: 64 * MIB, config: { minimal_shards: 2, expected_shards: 4 } },
    network: { ip_range: '10.1.0.0/16', subnet: '10.1.2.0/24', wireguard_private_key: 'k', wireguard_listen_port: 3000, peers: [{ subnet: '10.1.3.0/24', wireguard_public_key: 'p', allowed_ips: ['10.1.3.0/24'], endpoint: '1.2.3.4:3000' }] },
    ip: { v4: true },
    zmachine: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 1, memory: 64 * MIB } },
    zlogs: { zmachine: 'vm', output: 'ws://logs.example/x' },
    zdb: { size: GIB, mode: 'seq', password: 'pw', public: false },
    'gateway-name-proxy': { name: 'site', backends: ['http://10.1.2.3:80'] },
    'gateway-fqdn-proxy': { fqdn: 'site.example.org', backends: ['http://10.1.2.3:80'] },
  }
  const expectedCapacity: Record<WorkloadType, Partial<Record<'cru' | 'mru' | 'sru' | 'hru' | 'ipv4u', number>>> = {
    zmount: { sru: 32 * MIB },
    volume: { sru: 32 * MIB },
    qsfs: { cru: 1, mru: GIB, sru: 64 * MIB },
    network: {},
    ip: { ipv4u: 1 },
    zmachine: { cru: 1, mru: 64 * MIB, sru: GIB },
    zlogs: {},
    zdb: { hru: GIB },
    'gateway-name-proxy': {},
    'gateway-fqdn-proxy': {},
  }
  for (const type of WORKLOAD_TYPES) {
    const data = parseWorkloadData(type, samples[type], 'w')
    const w1 = new ChallengeWriter()
    const w2 = new ChallengeWriter()
    challengeOfData(type, w1, data)
    challengeOfData(type, w2, parseWorkloadData(type, structuredClone(samples[type]), 'w'))
    assert.ok(w1.bytes().length > 0, `${type} writes its fields`)
    assert.deepEqual(w1.bytes(), w2.bytes(), `${type} hashes deterministically`)
    assert.deepEqual(capacityOfData(type, data), { cru: 0, mru: 0, sru: 0, hru: 0, ipv4u: 0, ...expectedCapacity[type] }, type)
    assert.throws(() => parseWorkloadData(type, { ...(samples[type] as object), bogus: 1 }, 'w'), /Unrecognized key/, `${type} refuses unknown fields`)
  }
  assert.throws(() => parseWorkloadData('ip', { v4: false, v6: false }, 'w'), /needs v4 or v6/)
  assert.throws(() => parseWorkloadData('zlogs', { zmachine: 'vm', output: 'ftp://x' }, 'w'), /redis:\/\/, ws:\/\/ or wss:\/\//)
})
