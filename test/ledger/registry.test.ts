// Twins, farms and nodes on a real anvil: creation, permissions (only the farm's twin edits the farm, only a
// node's own twin updates it), unique names, IP validation, council-only calls, clear errors.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { ZosError } from '../../src/core/errors.js'
import { GIB, TOKEN, farmWithNode, startTestLedger, userWithTwin, type TestLedger } from './helpers.js'

let t: TestLedger
before(async () => {
  t = await startTestLedger()
})
after(async () => {
  await t?.stop()
})

function code(c: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(ZosError.is(err), `expected a ZosError, got ${String(err)}`)
    assert.equal(err.code, c, err.message)
    return true
  }
}

test('registry - twin: create, read by id and account, update; one twin per account; validated relay and pk', async () => {
  const l = await t.client()
  await assert.rejects(l.twins.mine(), code('NO_TWIN'))
  const twin = await l.twins.create({ relay: 'relay.grid.tf_relay2.grid.tf' })
  assert.equal(twin.account, l.account)
  assert.equal(twin.relay, 'relay.grid.tf_relay2.grid.tf')
  assert.match(twin.pk, /^0x0[23][0-9a-f]{64}$/, 'pk defaults to the compressed public key of the key')
  assert.deepEqual(await l.twins.get(twin.id), twin)
  assert.deepEqual(await l.twins.byAccount(l.account!), twin)
  await assert.rejects(l.twins.create({ relay: 'x' }), code('EXISTS'))
  const updated = await l.twins.update({ relay: 'ws://127.0.0.1:8080', pk: '0x' })
  assert.equal(updated.relay, 'ws://127.0.0.1:8080')
  assert.equal(updated.pk, '0x')
  await assert.rejects(l.twins.update({ relay: 'has space' }), (err: unknown) => code('INVALID_ARGUMENT')(err) && /relay/.test((err as Error).message))
  await assert.rejects(l.twins.update({ relay: 'ok', pk: '0x1234' }), code('INVALID_ARGUMENT'))
  await assert.rejects(l.twins.get(99_999), (err: unknown) => code('NOT_FOUND')(err) && /twin 99999/.test((err as Error).message))
  assert.equal(await l.twins.byAccount('0x000000000000000000000000000000000000dEaD'), null)
})

test('registry - farm: create with IPs, unique name (case-insensitive), only the farmer edits it', async () => {
  const farmer = await userWithTwin(t)
  const other = await userWithTwin(t)
  const farm = await farmer.farms.create({ name: 'Alpha-Farm', publicIps: [{ ip: '185.69.166.10/24', gateway: '185.69.166.1' }] })
  assert.equal(farm.name, 'Alpha-Farm')
  assert.equal(farm.twinId, (await farmer.twins.mine()).id)
  assert.equal(farm.pricingPolicyId, 1)
  assert.equal(farm.certification, 'NotCertified')
  assert.deepEqual(farm.publicIps, [{ ip: '185.69.166.10/24', gateway: '185.69.166.1', contractId: 0 }])
  assert.equal(farm.freeIps, 1)
  assert.equal(await other.farms.idByName('alpha-farm'), farm.id)

  await assert.rejects(other.farms.create({ name: 'alpha-FARM' }), code('NAME_TAKEN'))
  await assert.rejects(other.farms.create({ name: 'no spaces allowed' }), code('INVALID_ARGUMENT'))
  await assert.rejects(other.farms.rename(farm.id, 'stolen'), code('NOT_OWNER'))
  await assert.rejects(other.farms.addIp(farm.id, { ip: '185.69.166.11/24', gateway: '185.69.166.1' }), code('NOT_OWNER'))

  let f = await farmer.farms.addIp(farm.id, { ip: '185.69.166.11/24', gateway: '185.69.166.1' })
  assert.equal(f.publicIps.length, 2)
  assert.equal(f.freeIps, 2)
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '185.69.166.11/24', gateway: '185.69.166.1' }), code('EXISTS'))
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '185.69.166.12/24', gateway: '10.0.0.1' }), (err: unknown) => code('INVALID_ARGUMENT')(err) && /gateway/.test((err as Error).message))
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '185.69.166.255/24', gateway: '185.69.166.1' }), code('INVALID_ARGUMENT'))
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '224.0.0.5/24', gateway: '224.0.0.1' }), code('INVALID_ARGUMENT'))
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '300.1.1.1/24', gateway: '185.69.166.1' }), code('INVALID_ARGUMENT'))
  f = await farmer.farms.removeIp(farm.id, '185.69.166.10')
  assert.deepEqual(f.publicIps.map((p) => p.ip), ['185.69.166.11/24'])
  await assert.rejects(farmer.farms.removeIp(farm.id, '185.69.166.10'), code('NOT_FOUND'))

  f = await farmer.farms.rename(farm.id, 'beta_farm')
  assert.equal(f.name, 'beta_farm')
  assert.equal(await farmer.farms.idByName('Alpha-Farm'), null, 'the old name is free again')
  assert.equal(await farmer.farms.idByName('BETA_FARM'), farm.id)
  // council-only calls made directly by the farmer are refused
  const { farmsAbi } = await import('../../src/ledger/abi.js')
  const chain = (farmer as unknown as { chain: import('../../src/ledger/chain.js').Chain }).chain
  await assert.rejects(chain.write(farmer.addressBook.contracts.farms, farmsAbi, 'setFarmCertification', [farm.id, 1]), code('UNAUTHORIZED'))
})

test('registry - farm: at most 256 public IPs, all added in one transaction (bounded, O(1) uniqueness)', async () => {
  const farmer = await userWithTwin(t)
  const publicIps = Array.from({ length: 256 }, (_, i) => ({ ip: `185.40.1.${i}/16`, gateway: '185.40.0.1' }))
  const farm = await farmer.farms.create({ name: 'big-farm', publicIps })
  assert.equal(farm.publicIps.length, 256)
  assert.equal(farm.freeIps, 256)
  await assert.rejects(farmer.farms.addIp(farm.id, { ip: '185.40.2.1/16', gateway: '185.40.0.1' }), code('INVALID_STATE'))
  await assert.rejects(farmer.farms.create({ name: 'too-big', publicIps: [...publicIps, { ip: '185.40.2.1/16', gateway: '185.40.0.1' }] }), code('INVALID_ARGUMENT'))
  const f = await farmer.farms.removeIp(farm.id, '185.40.1.0')
  assert.equal(f.publicIps.length, 255)
  assert.equal((await farmer.farms.addIp(farm.id, { ip: '185.40.1.0/16', gateway: '185.40.0.1' })).publicIps.length, 256, 'a removed IP can be added again')
})

test('registry - node: registered by its own twin, updated only by it; farmer sets public config, power target and fee', async () => {
  const { farmer, node, farmId, nodeId } = await farmWithNode(t, { name: 'node-farm' })
  const n = await node.nodes.get(nodeId)
  assert.equal(n.farmId, farmId)
  assert.equal(n.twinId, (await node.twins.mine()).id)
  assert.deepEqual(n.resources, { cru: 4, mru: 8 * GIB, sru: 500 * GIB, hru: 0 })
  assert.equal(n.certification, 'Diy')
  assert.equal(n.powerState, 'Up')
  assert.equal(n.publicConfig, null)
  assert.deepEqual((await node.nodes.mine()).id, nodeId)
  assert.deepEqual((await farmer.nodes.byTwin(n.twinId))?.id, nodeId)
  assert.ok((await farmer.nodes.list({ farmId })).some((x) => x.id === nodeId))

  await assert.rejects(node.nodes.create({ farmId, resources: n.resources }), code('EXISTS'))
  await assert.rejects(farmer.nodes.create({ farmId: 9999, resources: n.resources }), code('NOT_FOUND'))
  await assert.rejects(
    (await userWithTwin(t, 0n)).nodes.create({ farmId, resources: { cru: 0, mru: GIB, sru: 0, hru: 0 } }),
    (err: unknown) => code('INVALID_ARGUMENT')(err) && /cru/.test((err as Error).message),
  )
  const updated = await node.nodes.update({ farmId, resources: { cru: 8, mru: 16 * GIB, sru: 1000 * GIB, hru: 0 }, location: { city: 'New York', country: 'US', latitude: 40.7, longitude: -74 } })
  assert.equal(updated.resources.cru, 8)
  assert.deepEqual(updated.location, { city: 'New York', country: 'US', latitude: 40.7, longitude: -74 })
  // the farmer's twin is not the node
  await assert.rejects(farmer.nodes.update({ farmId, resources: updated.resources }), code('UNAUTHORIZED'))
  await assert.rejects(farmer.billing.reportResources([{ contractId: 1, used: updated.resources }]), (err: unknown) => ZosError.is(err))

  const cfg = { ip4: '185.69.166.20/24', gw4: '185.69.166.1', ip6: '', gw6: '', domain: 'gw1.grid.test' }
  await assert.rejects(node.nodes.setPublicConfig(nodeId, cfg), code('NOT_OWNER'))
  assert.deepEqual((await farmer.nodes.setPublicConfig(nodeId, cfg)).publicConfig, cfg)
  assert.equal((await farmer.nodes.setPublicConfig(nodeId, null)).publicConfig, null)

  assert.equal((await farmer.nodes.setPowerTarget(nodeId, 'Down')).powerTarget, 'Down')
  await assert.rejects(node.nodes.setPowerTarget(nodeId, 'Up'), code('NOT_OWNER'))
  assert.equal((await node.nodes.setPowerState('Down')).powerState, 'Down')
  assert.equal((await node.nodes.setPowerState('Up')).powerState, 'Up')

  const now = (await node.chainInfo()).timestamp
  await node.nodes.reportUptime(3600, now)
  const after = await node.nodes.get(nodeId)
  assert.equal(after.uptime, 3600)
  assert.ok(after.lastUptimeReport >= now)
  await assert.rejects(node.nodes.reportUptime(10, now - 3600), (err: unknown) => code('INVALID_ARGUMENT')(err) && /timestampHint/.test((err as Error).message))
  await assert.rejects(farmer.nodes.reportUptime(10), code('UNAUTHORIZED'))

  assert.equal((await farmer.nodes.setExtraFee(nodeId, 1000)).extraFeeMusd, 1000)
  await farmer.nodes.delete(nodeId)
  assert.equal((await farmer.nodes.get(nodeId)).deleted, true)
  assert.ok(!(await farmer.nodes.list({ farmId })).some((x) => x.id === nodeId), 'deleted nodes are not listed')
  await assert.rejects(farmer.nodes.setPowerTarget(nodeId, 'Up'), code('NOT_FOUND'))
  // the twin may register again after the farmer removed its node
  const again = await node.nodes.create({ farmId, resources: updated.resources })
  assert.notEqual(again.id, nodeId)
})

test('registry - council-certified node and farm, a malformed call gets a coded error not a raw revert', async () => {
  const { farmId, nodeId, farmer } = await farmWithNode(t, { name: 'cert-farm' })
  const m1 = await t.councilMember(1)
  const m2 = await t.councilMember(2)
  const p = await m1.council.propose({ type: 'setNodeCertification', nodeId, certification: 'Certified' }, 'certify')
  assert.equal(p.executed, false)
  assert.equal((await m2.council.approve(p.proposal.id)).executed, true)
  assert.equal((await farmer.nodes.get(nodeId)).certification, 'Certified')
  const q = await m1.council.propose({ type: 'setFarmCertification', farmId, certification: 'Gold' })
  await m2.council.approve(q.proposal.id)
  assert.equal((await farmer.farms.get(farmId)).certification, 'Gold')

  // client-side validation names the field, before anything is sent
  await assert.rejects(farmer.farms.get(0), (err: unknown) => code('INVALID_ARGUMENT')(err) && /farmId/.test((err as Error).message))
  await assert.rejects(farmer.contracts.createNode({ nodeId, deploymentHash: '0x1234' as `0x${string}` }), code('INVALID_ARGUMENT'))
  await assert.rejects(farmer.token.transfer(m1.account!, 10n ** 15n * TOKEN), code('INSUFFICIENT_FUNDS'))
  // a read-only ledger cannot write
  const ro = await import('../../src/ledger/index.js').then((m) => m.openLedger({ ledgerDir: t.dir }))
  await assert.rejects(ro.twins.create({ relay: 'x' }), (err: unknown) => code('INVALID_ARGUMENT')(err) && /--key/.test((err as Error).message))
  await ro.close()
})

test('registry - two clients of one key: a nonce another client used is resynchronised and retried', async () => {
  const key = (await import('./helpers.js')).newKey()
  const a = await t.client(key)
  const b = await t.client(key)
  await a.token.faucet(TOKEN) // a: nonce 0
  await b.token.faucet(TOKEN) // b reads the pending nonce: 1
  await a.token.faucet(TOKEN) // a still counts 1: clash, resync, retry with 2
  await b.twins.create({ relay: 'shared' })
  assert.equal(await a.token.balance(), 3n * TOKEN)
  assert.equal((await a.twins.mine()).relay, 'shared')
})
