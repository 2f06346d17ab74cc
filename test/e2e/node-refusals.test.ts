// End to end, every refusal of issue 6 through the real relay to a real node agent, each with its reason and
// with nothing changed on the node: forged signature, hash mismatch, contract of another node or twin, deleted
// contract, sender not the owner, version skip, over capacity, malformed payloads; and workload errors that do
// not stop the node: unknown flist, tampered flist chunk (the node keeps serving the others).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { containerDeployment } from '../../src/client/build.js'
import { deploymentHash, parseDeployment, signDeployment, type Deployment } from '../../src/node/types/index.js'
import { busyboxFlist, cannotRun, tamperChunk } from '../node/helpers.js'
import { startGrid, type User } from './grid.js'

const MIB = 2 ** 20
const skip = await cannotRun()

test('e2e node - refusals change nothing; workload errors leave the node serving', { skip, timeout: 300_000 }, async (t) => {
  const grid = await startGrid(t)
  const node = await grid.startNode(join(grid.dir, 'node1'))
  const alice = await grid.user()
  const bob = await grid.user()
  const container = (u: User, over: Partial<Parameters<typeof containerDeployment>[0]> = {}): Deployment =>
    containerDeployment({ twinId: u.twinId, flist: grid.flist.fl, cpu: 1, memory: 64 * MIB, rootSize: 256 * MIB, entrypoint: '/bin/sh -c "echo up; while true; do sleep 1; done"', ...over })
  const send = (u: User, command: string, payload: unknown): Promise<unknown> => u.client.peer.request(node.twinId, command, payload, { timeout: 30_000 })
  const refused = async (p: Promise<unknown>, code: string, re: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      const err = e as { code?: string; message?: string }
      assert.equal(err.code, code, err.message)
      assert.match(err.message ?? '', re)
      return true
    })
  }
  const stored = async (): Promise<number> => ((await send(alice, 'zos.statistics.get', {})) as { users: { deployments: number } }).users.deployments

  // A good deployment first: it must keep running through everything below.
  const good = await alice.client.deploy(node.nodeId, container(alice, { description: 'good' }))
  assert.deepEqual(good.deployment.workloads.map((w) => w.result?.state), ['ok'])
  assert.equal(await stored(), 1)

  // Forged signature: signed by bob's key for alice's twin.
  {
    const d = signDeployment(container(alice), bob.key, alice.twinId)
    const c = await alice.ledger.contracts.createNode({ nodeId: node.nodeId, deploymentHash: deploymentHash(d) })
    await refused(send(alice, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'SIGNATURE_INVALID', /does not verify against its account/)
  }
  // Hash mismatch: the contract carries another deployment's hash.
  {
    const d = signDeployment(container(alice), alice.key, alice.twinId)
    const other = signDeployment(container(alice, { description: 'other' }), alice.key, alice.twinId)
    const c = await alice.ledger.contracts.createNode({ nodeId: node.nodeId, deploymentHash: deploymentHash(other) })
    await refused(send(alice, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'HASH_MISMATCH', /carries 0x/)
  }
  // A contract for another node.
  {
    const other = await grid.ledger.client()
    await other.twins.create({ relay: grid.relayUrl })
    const n2 = await other.nodes.create({ farmId: grid.farmId, resources: { cru: 2, mru: 4 * 2 ** 30, sru: 20 * 2 ** 30, hru: 0 } })
    const d = signDeployment(container(alice, { description: 'elsewhere' }), alice.key, alice.twinId)
    const c = await alice.ledger.contracts.createNode({ nodeId: n2.id, deploymentHash: deploymentHash(d) })
    await refused(send(alice, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'CONTRACT_INVALID', new RegExp(`is for node ${n2.id}, and this is node ${node.nodeId}`))
  }
  // A contract of another twin (bob's contract carrying alice's hash).
  {
    const d = signDeployment(container(alice, { description: 'borrowed' }), alice.key, alice.twinId)
    const c = await bob.ledger.contracts.createNode({ nodeId: node.nodeId, deploymentHash: deploymentHash(d) })
    await refused(send(alice, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'CONTRACT_INVALID', new RegExp(`belongs to twin ${bob.twinId}`))
    // and bob cannot send alice's deployment either: the sender must be the owner
    await refused(send(bob, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'UNAUTHORIZED', /only the owner may deploy/)
  }
  // A deleted contract.
  {
    const d = signDeployment(container(alice, { description: 'deleted' }), alice.key, alice.twinId)
    const c = await alice.ledger.contracts.createNode({ nodeId: node.nodeId, deploymentHash: deploymentHash(d) })
    await alice.ledger.contracts.cancel(c.id)
    await refused(send(alice, 'zos.deployment.deploy', { ...d, contract_id: c.id }), 'CONTRACT_INVALID', /is deleted/)
  }
  // A contract that does not exist.
  await refused(send(alice, 'zos.deployment.deploy', { ...signDeployment(container(alice), alice.key, alice.twinId), contract_id: 999_999 }), 'CONTRACT_INVALID', /does not exist on the ledger/)
  // Version skip on update (the contract carries the new hash, so only the version is wrong).
  {
    const cur = good.deployment
    const next = parseDeployment({ ...cur, version: 2, description: 'skipped', signature_requirement: { ...cur.signature_requirement, signatures: [] }, workloads: cur.workloads.map(({ result: _r, ...w }) => w) })
    const signed = signDeployment(next, alice.key, alice.twinId)
    await alice.ledger.contracts.update(good.contractId, { deploymentHash: deploymentHash(signed) })
    await refused(send(alice, 'zos.deployment.update', signed), 'INVALID_ARGUMENT', /must have version 1/)
    // the node still runs version 0
    assert.equal((await alice.client.get(good.contractId)).version, 0)
  }
  // Over capacity: the node offers 4 GiB, keeps 512 MiB for itself.
  {
    const live = async (): Promise<number> => (await alice.ledger.contracts.list({ twinId: alice.twinId })).filter((c) => c.state !== 'Deleted').length
    const before = await live()
    const big = container(alice, { memory: 4 * 2 ** 30, description: 'big' })
    await refused(alice.client.deploy(node.nodeId, big), 'CAPACITY_EXCEEDED', /not enough memory on this node: the deployment needs 4.00 GiB/)
    // the client cancelled the contract it had created for it
    assert.equal(await live(), before)
  }
  // Malformed payloads and the disabled delete.
  await refused(send(alice, 'zos.deployment.deploy', { twin_id: alice.twinId }), 'INVALID_ARGUMENT', /deployment\./)
  await refused(send(alice, 'zos.deployment.get', { contract_id: 'x' }), 'INVALID_ARGUMENT', /contract_id/)
  await refused(send(alice, 'zos.deployment.delete', {}), 'UNSUPPORTED', /cancelling their contract/)
  await refused(send(bob, 'zos.deployment.get', { contract_id: good.contractId }), 'NOT_FOUND', /no deployment of contract/)
  assert.equal(await stored(), 1, 'no refused deployment was stored')

  // Workload errors: an unknown flist, and a flist whose entrypoint has a tampered chunk.
  const unknown = await alice.client.deploy(node.nodeId, container(alice, { flist: join(grid.dir, 'missing.fl'), description: 'unknown flist' }))
  assert.equal(unknown.deployment.workloads[0]!.result?.state, 'error')
  assert.match(unknown.deployment.workloads[0]!.result?.message ?? '', /missing\.fl does not exist/)
  const bad = await busyboxFlist(grid.dir, { name: 'tampered', files: { 'start.sh': '#!/bin/sh\necho unique to the tampered flist\nsleep 100\n' } })
  await tamperChunk(bad, 'start.sh')
  const tampered = await alice.client.deploy(node.nodeId, container(alice, { flist: bad.fl, entrypoint: '/start.sh', description: 'tampered' }))
  assert.equal(tampered.deployment.workloads[0]!.result?.state, 'error')
  assert.match(tampered.deployment.workloads[0]!.result?.message ?? '', /cannot read \/start\.sh from flist .* does not match its hash/)
  // The node keeps serving: the good container still runs and answers, and a new deployment works.
  assert.deepEqual((await alice.client.get(good.contractId)).workloads.map((w) => w.result?.state), ['ok'])
  assert.match((await alice.client.logs(good.contractId, 'vm')).log, /up/)
  const again = await alice.client.deploy(node.nodeId, container(alice, { description: 'after' }))
  assert.deepEqual(again.deployment.workloads.map((w) => w.result?.state), ['ok'])
  const stats = (await send(alice, 'zos.statistics.get', {})) as { users: { deployments: number; workloads: number }; used: { mru: number } }
  assert.equal(stats.users.deployments, 4)
  assert.equal(stats.users.workloads, 2, 'errors hold no capacity')
  assert.equal(stats.used.mru, 128 * MIB)
  assert.deepEqual(await send(alice, 'zos.network.list_wg_ports', {}), [])
  assert.match(((await send(alice, 'zos.system.version', {})) as { zos: string }).zos, /^\d+\.\d+\.\d+/)
  // cancel everything: the node removes it all (the grid's teardown then finds nothing)
  for (const c of [good.contractId, unknown.contractId, tampered.contractId, again.contractId]) await alice.client.cancel(c)
})
