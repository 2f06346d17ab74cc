// The engine on a real SQLite store with test-only primitives (they record calls; no runc, no mounts) and a
// fake ledger view: verification and every refusal (nothing stored), admission, type order, results, the
// changes history, durability of the job queue across a "crash", re-provisioning at start, updates, pause,
// resume, cancel and reconciliation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { generateKey, type KeyPair } from '../../src/core/keys.js'
import { zerr } from '../../src/core/errors.js'
import { Engine, type ChainView, type ContractView } from '../../src/node/engine/engine.js'
import { DeploymentStore } from '../../src/node/engine/store.js'
import { unsupported, type Primitive, type PrimitiveRegistry } from '../../src/node/primitives/primitive.js'
import { SILENT_LOGGER } from '../../src/node/log.js'
import { capacity, deploymentHash, parseDeployment, signDeployment, type Deployment, type WorkloadType } from '../../src/node/types/index.js'
import { tempDir } from '../helpers/tmp.js'

const MIB = 2 ** 20
const GIB = 2 ** 30
const NODE = 3

class FakeChain implements ChainView {
  contracts = new Map<number, ContractView>()
  accounts = new Map<number, string>()
  async contract(id: number): Promise<ContractView> {
    const c = this.contracts.get(id)
    if (!c) throw zerr('NOT_FOUND', `no contract ${id}`)
    return c
  }
  async accountOf(twin: number): Promise<string> {
    const a = this.accounts.get(twin)
    if (!a) throw zerr('NOT_FOUND', `no twin ${twin}`)
    return a
  }
}

interface Recorder {
  calls: string[]
  existing: Set<string>
  failing: Set<string>
}

function recording(rec: Recorder, type: WorkloadType, opts: { update?: boolean; pause?: boolean } = {}): Primitive {
  const p: Primitive = {
    async provision(ctx) {
      rec.calls.push(`provision ${ctx.workload.name}`)
      if (rec.failing.has(ctx.workload.name)) throw zerr('RUNTIME_FAILED', `${ctx.workload.name} broke`)
      const existed = rec.existing.has(ctx.id)
      rec.existing.add(ctx.id)
      return { data: { id: ctx.id, type }, existed }
    },
    async deprovision(ctx) {
      rec.calls.push(`deprovision ${ctx.workload.name}`)
      rec.existing.delete(ctx.id)
    },
  }
  if (opts.update) p.update = async (ctx) => (rec.calls.push(`update ${ctx.workload.name}`), { data: { id: ctx.id, type, updated: true } })
  if (opts.pause) {
    p.pause = async (ctx) => void rec.calls.push(`pause ${ctx.workload.name}`)
    p.resume = async (ctx) => void rec.calls.push(`resume ${ctx.workload.name}`)
  }
  return p
}

function registry(rec: Recorder): PrimitiveRegistry {
  return {
    zmount: recording(rec, 'zmount'),
    volume: recording(rec, 'volume', { update: true }),
    qsfs: unsupported('qsfs'),
    network: unsupported('network'),
    ip: unsupported('ip'),
    zmachine: recording(rec, 'zmachine', { update: true, pause: true }),
    zlogs: unsupported('zlogs'),
    zdb: unsupported('zdb'),
    'gateway-name-proxy': unsupported('gateway-name-proxy'),
    'gateway-fqdn-proxy': unsupported('gateway-fqdn-proxy'),
  }
}

interface World {
  dir: string
  chain: FakeChain
  rec: Recorder
  key: KeyPair
  store: DeploymentStore
  engine: Engine
  open(): Engine
  contract(d: Deployment, over?: Partial<ContractView>): Deployment
}

async function world(t: import('node:test').TestContext, total = { cru: 4, mru: 8 * GIB, sru: 100 * GIB, hru: 0, ipv4u: 0 }): Promise<World> {
  const dir = await tempDir(t)
  const chain = new FakeChain()
  const key = generateKey()
  chain.accounts.set(7, key.address)
  const rec: Recorder = { calls: [], existing: new Set(), failing: new Set() }
  let nextContract = 1
  const w: World = {
    dir,
    chain,
    rec,
    key,
    store: undefined as unknown as DeploymentStore,
    engine: undefined as unknown as Engine,
    open() {
      w.store = new DeploymentStore(join(dir, 'node.db'))
      w.engine = new Engine({
        nodeId: NODE,
        store: w.store,
        primitives: registry(rec),
        chain,
        capacity: () => ({ total, reserved: capacity({ mru: GIB }) }),
        log: SILENT_LOGGER,
        retryDelayMs: 10,
      })
      return w.engine
    },
    contract(d, over = {}) {
      const id = d.contract_id || nextContract++
      const withId = { ...d, contract_id: id }
      chain.contracts.set(id, { id, twinId: d.twin_id, nodeId: NODE, kind: 'node', state: 'Created', deploymentHash: deploymentHash(withId), ...over })
      return withId
    },
  }
  w.open()
  t.after(async () => {
    await w.engine.stop()
    w.store.close()
  })
  return w
}

function deployment(over: Record<string, unknown> = {}, workloads?: unknown[]): Deployment {
  return parseDeployment({
    version: 0,
    twin_id: 7,
    contract_id: 0,
    signature_requirement: { requests: [{ twin_id: 7, weight: 1 }], weight_required: 1 },
    workloads: workloads ?? [
      { version: 0, name: 'vm', type: 'zmachine', data: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 1, memory: 256 * MIB }, mounts: [{ name: 'data', mountpoint: '/data' }] } },
      { version: 0, name: 'data', type: 'volume', data: { size: 64 * MIB } },
      { version: 0, name: 'disk', type: 'zmount', data: { size: 32 * MIB } },
    ],
    ...over,
  })
}

test('engine - deploy: verified, stored, provisioned in type order, results and history', async (t) => {
  const w = await world(t)
  w.engine.start()
  const d = signDeployment(w.contract(deployment()), w.key, 7)
  const accepted = await w.engine.deploy(7, d)
  assert.ok(accepted.workloads.every((wl) => wl.result?.state === 'init' || wl.result?.state === 'ok'))
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['provision disk', 'provision data', 'provision vm'])
  const got = w.engine.get(7, d.contract_id)
  assert.deepEqual(got.workloads.map((x) => [x.name, x.result?.state]), [['vm', 'ok'], ['data', 'ok'], ['disk', 'ok']])
  assert.deepEqual(got.workloads[0]!.result?.data, { id: `7-${d.contract_id}-vm`, type: 'zmachine' })
  const changes = w.engine.changes(7, d.contract_id)
  assert.deepEqual(changes.map((c) => `${c.name}:${c.result.state}`), ['vm:init', 'data:init', 'disk:init', 'disk:ok', 'data:ok', 'vm:ok'])
  assert.equal(w.engine.list(7).length, 1)
  assert.equal(w.engine.list(8).length, 0)
  assert.throws(() => w.engine.get(8, d.contract_id), /no deployment of contract/)
  const stats = w.engine.statistics()
  assert.equal(stats.used.mru, 256 * MIB)
  assert.equal(stats.used.sru, 64 * MIB + 32 * MIB + GIB)
  assert.deepEqual(stats.users, { deployments: 1, workloads: 3, twins: 1, last_deployment_timestamp: stats.users.last_deployment_timestamp })
  assert.deepEqual(w.engine.usage(d.contract_id), { cru: 1, mru: 256 * MIB, sru: 64 * MIB + 32 * MIB + GIB, hru: 0, ipv4u: 0 })
})

test('engine - every refusal leaves the node unchanged', async (t) => {
  const w = await world(t, { cru: 2, mru: 2 * GIB, sru: 10 * GIB, hru: 0, ipv4u: 0 })
  const expectRefused = async (p: Promise<unknown>, code: string, re: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      const err = e as { code?: string; message?: string }
      assert.equal(err.code, code, err.message)
      assert.match(err.message ?? '', re)
      return true
    })
    assert.equal(w.store.list({ includeDeleted: true }).length, 0, 'nothing stored')
    assert.equal(w.store.jobs().length, 0, 'nothing queued')
  }
  const good = (): Deployment => w.contract(deployment())
  const other = generateKey()
  // sender is not the owner
  await expectRefused(w.engine.deploy(8, signDeployment(good(), w.key, 7)), 'UNAUTHORIZED', /only the owner may deploy/)
  // forged signature
  await expectRefused(w.engine.deploy(7, signDeployment(good(), other, 7)), 'SIGNATURE_INVALID', /does not verify/)
  // unsigned
  await expectRefused(w.engine.deploy(7, good()), 'SIGNATURE_INVALID', /did not sign/)
  // hash mismatch: the contract carries another hash
  const d1 = w.contract(deployment(), { deploymentHash: '0x' + '00'.repeat(32) })
  await expectRefused(w.engine.deploy(7, signDeployment(d1, w.key, 7)), 'HASH_MISMATCH', /carries 0x0000/)
  // contract of another node / another twin / deleted / in grace / missing / not a node contract
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(deployment(), { nodeId: 99 }), w.key, 7)), 'CONTRACT_INVALID', /is for node 99, and this is node 3/)
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(deployment(), { twinId: 9 }), w.key, 7)), 'CONTRACT_INVALID', /belongs to twin 9/)
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(deployment(), { state: 'Deleted' }), w.key, 7)), 'CONTRACT_INVALID', /is deleted/)
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(deployment(), { state: 'GracePeriod' }), w.key, 7)), 'CONTRACT_INVALID', /grace period/)
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(deployment(), { kind: 'rent' }), w.key, 7)), 'CONTRACT_INVALID', /not a node contract/)
  await expectRefused(w.engine.deploy(7, signDeployment({ ...deployment(), contract_id: 4242 }, w.key, 7)), 'CONTRACT_INVALID', /does not exist on the ledger/)
  await expectRefused(w.engine.deploy(7, signDeployment(deployment(), w.key, 7)), 'INVALID_ARGUMENT', /create the node contract/)
  // malformed
  await expectRefused(w.engine.deploy(7, { twin_id: 7 }), 'INVALID_ARGUMENT', /deployment\./)
  await expectRefused(w.engine.deploy(7, 'garbage'), 'INVALID_ARGUMENT', /deployment/)
  // over capacity: 2 GiB total - 1 GiB reserved
  const big = deployment({}, [{ version: 0, name: 'vm', type: 'zmachine', data: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 1, memory: 1536 * MIB } } }])
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(big), w.key, 7)), 'CAPACITY_EXCEEDED', /not enough memory on this node: the deployment needs 1.50 GiB, 1.00 GiB is free/)
  const cpus = deployment({}, [{ version: 0, name: 'vm', type: 'zmachine', data: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 3, memory: 256 * MIB } } }])
  await expectRefused(w.engine.deploy(7, signDeployment(w.contract(cpus), w.key, 7)), 'CAPACITY_EXCEEDED', /not enough CPU cores/)
  // a second deploy of the same contract
  const once = signDeployment(good(), w.key, 7)
  await w.engine.deploy(7, once)
  await assert.rejects(w.engine.deploy(7, once), /already has a deployment/)
})

test('engine - capacity already used counts against the next deployment', async (t) => {
  const w = await world(t, { cru: 4, mru: 2 * GIB, sru: 10 * GIB, hru: 0, ipv4u: 0 })
  const vm = (mem: number) => deployment({}, [{ version: 0, name: 'vm', type: 'zmachine', data: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 1, memory: mem } } }])
  await w.engine.deploy(7, signDeployment(w.contract(vm(768 * MIB)), w.key, 7))
  await assert.rejects(w.engine.deploy(7, signDeployment(w.contract(vm(512 * MIB)), w.key, 7)), /needs 512 MiB, 256 MiB is free/)
  await w.engine.deploy(7, signDeployment(w.contract(vm(256 * MIB)), w.key, 7))
})

test('engine - a failing workload is an error result; the others are provisioned', async (t) => {
  const w = await world(t)
  w.engine.start()
  w.rec.failing.add('data')
  const d = signDeployment(w.contract(deployment({}, [
    { version: 0, name: 'data', type: 'volume', data: { size: 64 * MIB } },
    { version: 0, name: 'disk', type: 'zmount', data: { size: 32 * MIB } },
    { version: 0, name: 'net', type: 'network', data: { ip_range: '10.1.0.0/16', subnet: '10.1.1.0/24', wireguard_private_key: 'k', wireguard_listen_port: 1 } },
  ])), w.key, 7)
  await w.engine.deploy(7, d)
  await w.engine.idle()
  const got = w.engine.get(7, d.contract_id).workloads
  assert.equal(got.find((x) => x.name === 'data')!.result?.state, 'error')
  assert.match(got.find((x) => x.name === 'data')!.result?.message ?? '', /data broke/)
  assert.equal(got.find((x) => x.name === 'disk')!.result?.state, 'ok')
  assert.equal(got.find((x) => x.name === 'net')!.result?.state, 'error')
  assert.match(got.find((x) => x.name === 'net')!.result?.message ?? '', /network workloads are not supported on this node yet/)
  // errors hold no capacity
  assert.equal(w.engine.usedCapacity().sru, 32 * MIB)
  // At the next start failed workloads are tried again: the same failure records nothing new, a fixed one is ok.
  const before = w.engine.changes(7, d.contract_id).length
  await w.engine.stop()
  w.store.close()
  w.open().start()
  await w.engine.idle()
  assert.equal(w.engine.changes(7, d.contract_id).length, before)
  await w.engine.stop()
  w.store.close()
  w.rec.failing.delete('data')
  w.open().start()
  await w.engine.idle()
  assert.equal(w.engine.get(7, d.contract_id).workloads.find((x) => x.name === 'data')!.result?.state, 'ok')
  assert.equal(w.engine.changes(7, d.contract_id).length, before + 1)
})

test('engine - the job queue is durable: a job accepted before a crash runs after the restart', async (t) => {
  const w = await world(t)
  const d = signDeployment(w.contract(deployment()), w.key, 7)
  await w.engine.deploy(7, d) // worker not started: "crash" before provisioning
  assert.equal(w.store.jobs().length, 1)
  w.store.close()
  w.open().start({ reprovision: false })
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['provision disk', 'provision data', 'provision vm'])
  assert.ok(w.engine.get(7, d.contract_id).workloads.every((x) => x.result?.state === 'ok'))
  assert.equal(w.store.jobs().length, 0)
})

test('engine - start re-provisions active deployments; what exists records nothing new', async (t) => {
  const w = await world(t)
  w.engine.start()
  const d = signDeployment(w.contract(deployment()), w.key, 7)
  await w.engine.deploy(7, d)
  await w.engine.idle()
  const before = w.engine.changes(7, d.contract_id).length
  await w.engine.stop()
  w.store.close()
  w.rec.calls.length = 0
  w.open().start()
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['provision disk', 'provision data', 'provision vm'])
  assert.equal(w.engine.changes(7, d.contract_id).length, before, 'no new transactions')
  // after a "reboot" nothing exists any more: provisioned again and recorded
  await w.engine.stop()
  w.store.close()
  w.rec.existing.clear()
  w.open().start()
  await w.engine.idle()
  assert.equal(w.engine.changes(7, d.contract_id).length, before + 3)
})

test('engine - update: version + 1, removes first, adds, updates; unsupported update is "unchanged"', async (t) => {
  const w = await world(t)
  w.engine.start()
  const d0 = signDeployment(w.contract(deployment()), w.key, 7)
  await w.engine.deploy(7, d0)
  await w.engine.idle()
  w.rec.calls.length = 0
  const next = parseDeployment({
    ...d0,
    version: 1,
    signature_requirement: { ...d0.signature_requirement, signatures: [] },
    workloads: [
      { version: 1, name: 'vm', type: 'zmachine', data: { flist: '/x.fl', size: 0, compute_capacity: { cpu: 2, memory: 256 * MIB }, mounts: [{ name: 'data', mountpoint: '/data' }] } },
      { version: 0, name: 'data', type: 'volume', data: { size: 64 * MIB } },
      { version: 1, name: 'more', type: 'volume', data: { size: 16 * MIB } },
      { version: 1, name: 'disk2', type: 'zmount', data: { size: 16 * MIB } },
    ],
  })
  // a version skip is refused
  await assert.rejects(w.engine.update(7, signDeployment({ ...next, version: 2 }, w.key, 7)), /must have version 1/)
  // the contract still carries the old hash
  await assert.rejects(w.engine.update(7, signDeployment(next, w.key, 7)), (e: unknown) => (e as { code: string }).code === 'HASH_MISMATCH')
  const signed = signDeployment(w.contract(next), w.key, 7)
  await w.engine.update(7, signed)
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['deprovision disk', 'provision disk2', 'provision more', 'update vm'])
  const got = w.engine.get(7, d0.contract_id)
  assert.equal(got.version, 1)
  assert.deepEqual(Object.fromEntries(got.workloads.map((x) => [x.name, x.result?.state])), { vm: 'ok', data: 'ok', more: 'ok', disk2: 'ok' })
  assert.deepEqual(got.workloads[0]!.result?.data, { id: `7-${d0.contract_id}-vm`, type: 'zmachine', updated: true })
  const history = w.engine.changes(7, d0.contract_id)
  assert.ok(history.some((c) => c.name === 'disk' && c.result.state === 'deleted'))
  // zmount has no update: the result says so, the workload keeps its data
  const d2 = parseDeployment({ ...signed, version: 2, signature_requirement: { ...signed.signature_requirement, signatures: [] }, workloads: signed.workloads.map((x) => (x.name === 'disk2' ? { ...x, version: 2, data: { size: 32 * MIB } } : x)) })
  await w.engine.update(7, signDeployment(w.contract(d2), w.key, 7))
  await w.engine.idle()
  const disk2 = w.engine.get(7, d0.contract_id).workloads.find((x) => x.name === 'disk2')!
  assert.equal(disk2.result?.state, 'unchanged')
  assert.match(disk2.result?.message ?? '', /cannot be updated/)
})

test('engine - pause, resume, cancel (reverse order) and reconciliation with the ledger', async (t) => {
  const w = await world(t)
  w.engine.start()
  const d = signDeployment(w.contract(deployment()), w.key, 7)
  await w.engine.deploy(7, d)
  await w.engine.idle()
  w.rec.calls.length = 0
  w.engine.pause(d.contract_id)
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['pause vm'])
  const paused = w.engine.get(7, d.contract_id).workloads
  assert.deepEqual(paused.map((x) => x.result?.state), ['paused', 'paused', 'paused'])
  // reconcile: the contract is Created again → resume
  const states = new Map<number, 'Created' | 'GracePeriod' | 'Deleted' | null>([[d.contract_id, 'Created']])
  const r1 = await w.engine.reconcile(async (id) => states.get(id) ?? null)
  assert.deepEqual(r1.resumed, [d.contract_id])
  await w.engine.idle()
  assert.deepEqual(w.engine.get(7, d.contract_id).workloads.map((x) => x.result?.state), ['ok', 'ok', 'ok'])
  w.rec.calls.length = 0
  states.set(d.contract_id, 'Deleted')
  const r2 = await w.engine.reconcile(async (id) => states.get(id) ?? null)
  assert.deepEqual(r2.cancelled, [d.contract_id])
  await w.engine.idle()
  assert.deepEqual(w.rec.calls, ['deprovision vm', 'deprovision data', 'deprovision disk'])
  assert.equal(w.engine.list(7).length, 0)
  assert.deepEqual(w.engine.get(7, d.contract_id).workloads.map((x) => x.result?.state), ['deleted', 'deleted', 'deleted'])
  assert.deepEqual(w.engine.usedCapacity(), capacity())
  await assert.rejects(w.engine.update(7, signDeployment({ ...d, version: 1 }, w.key, 7)), /was deleted/)
})
