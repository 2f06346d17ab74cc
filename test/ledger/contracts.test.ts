// Node, name and rent contracts on a real anvil: creation rules, ownership (only the owner twin updates or
// cancels), unique hashes and names, public IPs reserved and released, rented and dedicated nodes, usage
// reports only from the hosting node, typed events.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { ZosError } from '../../src/core/errors.js'
import type { LedgerEvent } from '../../src/ledger/index.js'
import { GIB, farmWithNode, nextHash, startTestLedger, userWithTwin, type TestLedger } from './helpers.js'

let t: TestLedger
before(async () => {
  t = await startTestLedger()
})
after(async () => {
  await t?.stop()
})

function code(c: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(ZosError.is(err), `expected a ZosError, got ${String(err)}`)
    assert.equal(err.code, c, err.message)
    if (pattern) assert.match(err.message, pattern)
    return true
  }
}

test('contracts - node contract: create, unique hash per node, update and cancel by the owner only, IPs reserved and freed', async () => {
  const { farmer, node, farmId, nodeId } = await farmWithNode(t, { name: 'ip-farm', ips: 3 })
  const user = await userWithTwin(t)
  const stranger = await userWithTwin(t)
  const hash = nextHash()
  const c = await user.contracts.createNode({ nodeId, deploymentHash: hash, deploymentData: '0x7b7d', publicIps: 2 })
  assert.equal(c.kind, 'node')
  assert.equal(c.state, 'Created')
  assert.equal(c.twinId, (await user.twins.mine()).id)
  assert.equal(c.nodeId, nodeId)
  assert.equal(c.farmId, farmId)
  assert.equal(c.deploymentHash, hash)
  assert.equal(c.deploymentData, '0x7b7d')
  assert.equal(c.publicIps, 2)
  assert.equal(await stranger.contracts.byNodeHash(nodeId, hash), c.id)

  const ips = await user.contracts.ips(c.id)
  assert.equal(ips.length, 2)
  for (const ip of ips) assert.equal(ip.contractId, c.id)
  let farm = await farmer.farms.get(farmId)
  assert.equal(farm.freeIps, 1)
  // a reserved IP cannot be removed by the farmer
  await assert.rejects(farmer.farms.removeIp(farmId, ips[0]!.ip), code('INVALID_STATE', /reserved/))
  await assert.rejects(user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 2 }), code('NO_IPS_FREE', /1 free public IPs, 2 requested/))
  await assert.rejects(stranger.contracts.createNode({ nodeId, deploymentHash: hash }), code('EXISTS', /deployment hash/))

  await assert.rejects(stranger.contracts.update(c.id, { deploymentHash: nextHash() }), code('NOT_OWNER'))
  await assert.rejects(stranger.contracts.cancel(c.id), code('NOT_OWNER'))
  await assert.rejects(node.contracts.cancel(c.id), code('NOT_OWNER'))
  const newHash = nextHash()
  const updated = await user.contracts.update(c.id, { deploymentHash: newHash })
  assert.equal(updated.deploymentHash, newHash)
  assert.equal(await user.contracts.byNodeHash(nodeId, hash), null, 'the old hash is free again')
  assert.equal(await user.contracts.byNodeHash(nodeId, newHash), c.id)

  const cancelled = await user.contracts.cancel(c.id)
  assert.equal(cancelled.state, 'Deleted')
  assert.equal(cancelled.cause, 'CanceledByUser')
  assert.ok(cancelled.deletedAt > 0)
  farm = await farmer.farms.get(farmId)
  assert.equal(farm.freeIps, 3, 'IPs are released on cancel')
  assert.ok(farm.publicIps.every((p) => p.contractId === 0))
  await assert.rejects(user.contracts.cancel(c.id), code('INVALID_STATE', /already deleted/))
  await assert.rejects(user.contracts.update(c.id, { deploymentHash: nextHash() }), code('INVALID_STATE'))
  assert.equal(await user.contracts.byNodeHash(nodeId, newHash), null)
  // the hash can be used again once the contract is deleted
  const again = await user.contracts.createNode({ nodeId, deploymentHash: newHash })
  assert.notEqual(again.id, c.id)
  await assert.rejects(user.contracts.get(99_999), code('NOT_FOUND', /contract 99999/))
  // listing by twin and by node includes the deleted contract
  const mine = await user.contracts.list({ twinId: c.twinId })
  assert.deepEqual(mine.map((x) => [x.id, x.state]), [[c.id, 'Deleted'], [again.id, 'Created']])
  assert.ok((await user.contracts.list({ nodeId })).some((x) => x.id === again.id))
})

test('contracts - a node in standby takes no node contract; a dedicated node needs a rent first', async () => {
  const { farmer, node, nodeId } = await farmWithNode(t, { name: 'standby-farm' })
  const user = await userWithTwin(t)
  await node.nodes.setPowerState('Down')
  await assert.rejects(user.contracts.createNode({ nodeId, deploymentHash: nextHash() }), code('INVALID_STATE', /powered down/))
  await node.nodes.setPowerState('Up')
  await farmer.nodes.setExtraFee(nodeId, 100)
  await assert.rejects(user.contracts.createNode({ nodeId, deploymentHash: nextHash() }), code('INVALID_STATE', /dedicated/))
})

test('contracts - name contract: unique names, validated, freed on cancel', async () => {
  const a = await userWithTwin(t)
  const b = await userWithTwin(t)
  const c = await a.contracts.createName('my-gateway')
  assert.equal(c.kind, 'name')
  assert.equal(c.name, 'my-gateway')
  assert.equal(await b.contracts.byName('my-gateway'), c.id)
  await assert.rejects(b.contracts.createName('my-gateway'), code('NAME_TAKEN', /my-gateway/))
  await assert.rejects(b.contracts.createName('UPPER'), code('INVALID_ARGUMENT', /name/))
  await assert.rejects(b.contracts.createName('ab'), code('INVALID_ARGUMENT'))
  await assert.rejects(b.contracts.cancel(c.id), code('NOT_OWNER'))
  await a.contracts.cancel(c.id)
  assert.equal(await b.contracts.byName('my-gateway'), null)
  const taken = await b.contracts.createName('my-gateway')
  assert.equal(taken.twinId, (await b.twins.mine()).id)
  // a twin without tokens cannot reserve a name (one hour must be covered)
  const poor = await userWithTwin(t, 0n)
  await assert.rejects(poor.contracts.createName('poor-name'), code('INSUFFICIENT_FUNDS', /needs 0\.005 ZGT, the balance is 0 ZGT/))
})

test('contracts - rent contract: whole node for one twin; only the renter deploys; cancel needs an empty node', async () => {
  const { farmer, node, nodeId } = await farmWithNode(t, { name: 'rent-farm', ips: 1 })
  const renter = await userWithTwin(t)
  const other = await userWithTwin(t)
  const busy = await other.contracts.createNode({ nodeId, deploymentHash: nextHash() })
  await assert.rejects(renter.contracts.createRent({ nodeId }), code('INVALID_STATE', /active node contracts/))
  await other.contracts.cancel(busy.id)

  const rent = await renter.contracts.createRent({ nodeId })
  assert.equal(rent.kind, 'rent')
  assert.equal(await other.contracts.rentOf(nodeId), rent.id)
  await assert.rejects(other.contracts.createRent({ nodeId }), code('INVALID_STATE', /already rented/))
  await assert.rejects(other.contracts.createNode({ nodeId, deploymentHash: nextHash() }), code('INVALID_STATE', /rented by another twin/))
  const onRent = await renter.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 1 })
  assert.equal(onRent.rentContractId, rent.id)
  await assert.rejects(farmer.nodes.setPowerTarget(nodeId, 'Down'), code('INVALID_STATE', /active contracts/))
  await assert.rejects(farmer.nodes.setExtraFee(nodeId, 10), code('INVALID_STATE'))
  await assert.rejects(renter.contracts.cancel(rent.id), code('INVALID_STATE', /cancel them first/))
  await renter.contracts.cancel(onRent.id)
  const gone = await renter.contracts.cancel(rent.id)
  assert.equal(gone.state, 'Deleted')
  assert.equal(await other.contracts.rentOf(nodeId), null)
  void node
})

test('contracts - usage is reported only by the node hosting the contract', async () => {
  const a = await farmWithNode(t, { name: 'usage-farm-a' })
  const b = await farmWithNode(t, { name: 'usage-farm-b' })
  const user = await userWithTwin(t)
  const c = await user.contracts.createNode({ nodeId: a.nodeId, deploymentHash: nextHash() })
  const used = { cru: 1, mru: 2 * GIB, sru: 10 * GIB, hru: 0 }
  await assert.rejects(b.node.billing.reportResources([{ contractId: c.id, used }]), code('NOT_OWNER', /hosted on this node/))
  await assert.rejects(user.billing.reportResources([{ contractId: c.id, used }]), code('UNAUTHORIZED', /node/))
  await assert.rejects(b.node.billing.reportNru([{ contractId: c.id, timestamp: 1, window: 3600, nru: 1000 }]), code('NOT_OWNER'))
  await a.node.billing.reportResources([{ contractId: c.id, used }])
  assert.deepEqual((await user.billing.record(c.id)).used, used)
  await assert.rejects(a.node.billing.reportResources(Array.from({ length: 65 }, () => ({ contractId: c.id, used }))), code('INVALID_ARGUMENT', /64/))
})

test('contracts - events: watch delivers typed contract events in order', async () => {
  const { nodeId } = await farmWithNode(t, { name: 'event-farm', ips: 1 })
  const user = await userWithTwin(t)
  const seen: LedgerEvent[] = []
  const stop = user.events.watch((ev) => void seen.push(ev), { pollMs: 20, types: ['ContractCreated', 'ContractUpdated', 'ContractCanceled', 'IpsReserved', 'IpsFreed'] })
  const c = await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 1 })
  const h2 = nextHash()
  await user.contracts.update(c.id, { deploymentHash: h2 })
  await user.contracts.cancel(c.id)
  const deadline = Date.now() + 10_000
  while (seen.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  stop()
  assert.deepEqual(seen.map((e) => e.type), ['ContractCreated', 'IpsReserved', 'ContractUpdated', 'IpsFreed', 'ContractCanceled'])
  const created = seen[0]!
  assert.ok(created.type === 'ContractCreated' && created.contractId === c.id && created.kind === 'node' && created.nodeId === nodeId)
  const updated = seen[2]!
  assert.ok(updated.type === 'ContractUpdated' && updated.deploymentHash === h2)
  const cancelled = seen[4]!
  assert.ok(cancelled.type === 'ContractCanceled' && cancelled.cause === 'CanceledByUser')
  const reserved = seen[1]!
  assert.ok(reserved.type === 'IpsReserved' && reserved.ips.length === 1 && /^185\.10\./.test(reserved.ips[0]!))
})

test('contracts - many transactions at once are all mined, even when they fill more than one block', async () => {
  const { nodeId } = await farmWithNode(t, { name: 'burst-farm' })
  const users = await Promise.all(Array.from({ length: 12 }, () => userWithTwin(t, 0n)))
  const before = await users[0]!.contracts.count()
  // 72 transactions in flight, each declaring a 20 M gas limit: a 30 M gas block holds about 40 of them
  const created = await Promise.all(users.flatMap((u) => Array.from({ length: 6 }, () => u.contracts.createNode({ nodeId, deploymentHash: nextHash() }))))
  assert.equal(new Set(created.map((c) => c.id)).size, 72)
  assert.equal((await users[0]!.contracts.count()) - before, 72)
  const ids = new Set(created.map((c) => c.id))
  const events = await users[0]!.events.query({ types: ['ContractCreated'] })
  const blocks = new Set(events.filter((e) => e.type === 'ContractCreated' && ids.has(e.contractId)).map((e) => e.block))
  assert.ok(blocks.size < 72, `transactions share blocks (${blocks.size} blocks for 72)`)
})
