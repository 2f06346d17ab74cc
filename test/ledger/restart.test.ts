// Restarting the embedded ledger keeps everything: a clean stop (anvil dumps its state at exit), a crash
// (SIGKILL: what was dumped by the periodic --state-interval survives), and a detached ledger stopped by pid.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { openLedger, startLedger, stopDetachedLedger, type Hex } from '../../src/ledger/index.js'
import { isOurAnvil } from '../../src/ledger/anvil.js'
import { isLiveSupervisor, stateFileOf } from '../../src/ledger/server.js'
import { tempDir } from '../helpers/tmp.js'
import { GIB, TOKEN, newKey } from './helpers.js'

test('restart - a stopped and restarted ledger keeps twins, farms, nodes, contracts, balances and events', async (t) => {
  const dir = await tempDir(t)
  let srv = await startLedger({ dataDir: dir, port: 0 })
  t.after(() => srv.stop())
  assert.equal(srv.deployed, true)
  const userKey: Hex = newKey()
  const nodeKey: Hex = newKey()
  let user = await openLedger({ ledgerDir: dir, privateKey: userKey })
  let node = await openLedger({ ledgerDir: dir, privateKey: nodeKey })
  await user.token.faucet(100n * TOKEN)
  const twin = await user.twins.create({ relay: 'relay.test' })
  const farm = await user.farms.create({ name: 'restart-farm', publicIps: [{ ip: '185.20.0.10/24', gateway: '185.20.0.1' }] })
  await node.twins.create({ relay: 'relay.test' })
  const n = await node.nodes.create({ farmId: farm.id, resources: { cru: 4, mru: 8 * GIB, sru: 500 * GIB, hru: 0 } })
  const c = await user.contracts.createNode({ nodeId: n.id, deploymentHash: `0x${'11'.repeat(32)}`, publicIps: 1 })
  const name = await user.contracts.createName('restart-gw')
  await node.billing.reportResources([{ contractId: c.id, used: { cru: 2, mru: 4 * GIB, sru: 200 * GIB, hru: 0 } }])
  const billed = await user.billing.bill(c.id)
  const balance = await user.token.balance()
  const eventsBefore = await user.events.query({})
  const bookBefore = srv.addressBook
  await user.close()
  await node.close()
  await srv.stop()

  srv = await startLedger({ dataDir: dir, port: 0 })
  assert.equal(srv.deployed, false, 'a restart does not redeploy')
  assert.deepEqual(srv.addressBook.contracts, bookBefore.contracts)
  user = await openLedger({ ledgerDir: dir, privateKey: userKey })
  node = await openLedger({ ledgerDir: dir, privateKey: nodeKey })
  t.after(() => user.close())
  t.after(() => node.close())
  assert.equal(user.addressBook.rpcUrl, srv.url, 'the address book follows the new URL')
  assert.deepEqual(await user.twins.mine(), twin)
  assert.deepEqual((await user.farms.get(farm.id)).publicIps, [{ ip: '185.20.0.10/24', gateway: '185.20.0.1', contractId: c.id }])
  assert.equal((await node.nodes.mine()).id, n.id)
  const again = await user.contracts.get(c.id)
  assert.equal(again.state, 'Created')
  assert.equal(again.deploymentHash, `0x${'11'.repeat(32)}`)
  assert.equal((await user.contracts.get(name.id)).name, 'restart-gw')
  assert.equal((await user.billing.record(c.id)).totalPaid, billed.paid)
  assert.equal(await user.token.balance(), balance)
  const eventsAfter = await user.events.query({ toBlock: eventsBefore.at(-1)!.block })
  assert.deepEqual(eventsAfter, eventsBefore, 'history (blocks and logs) survives the restart')
  // and it keeps working: the same key sends again (nonces continue), ids continue
  const next = await user.contracts.createNode({ nodeId: n.id, deploymentHash: `0x${'22'.repeat(32)}` })
  assert.equal(next.id, name.id + 1)
  assert.equal((await user.contracts.cancel(c.id)).state, 'Deleted')
})

test('restart - after a crash (SIGKILL) the ledger restarts from the last periodic state dump', async (t) => {
  const dir = await tempDir(t)
  let srv = await startLedger({ dataDir: dir, port: 0, stateInterval: 1 })
  t.after(() => srv.stop())
  const key: Hex = newKey()
  let l = await openLedger({ ledgerDir: dir, privateKey: key })
  await l.token.faucet(5n * TOKEN)
  const twin = await l.twins.create({ relay: 'crash.test' })
  await l.close()
  const before = (await readFile(stateFileOf(dir))).length
  await sleep(2500) // more than the 1 s state interval: the twin is in a dump
  assert.ok((await readFile(stateFileOf(dir))).length > before, 'anvil dumped its state since')
  process.kill(srv.anvilPid, 'SIGKILL') // the EVM process dies without dumping
  await srv.exited
  await srv.stop()
  srv = await startLedger({ dataDir: dir, port: 0 })
  l = await openLedger({ ledgerDir: dir, privateKey: key })
  t.after(() => l.close())
  assert.deepEqual(await l.twins.mine(), twin)
  assert.equal(await l.token.balance(), 5n * TOKEN)
})

test('restart - a detached ledger records its pids and is stopped by them; a second start is refused meanwhile', async (t) => {
  const dir = await tempDir(t)
  const srv = await startLedger({ dataDir: dir, port: 0, detached: true })
  t.after(async () => {
    await stopDetachedLedger(dir)
  })
  assert.notEqual(srv.pid, process.pid, 'a daemon supervises the detached ledger')
  const rec = JSON.parse(await readFile(join(dir, 'ledger.pid.json'), 'utf8')) as { pid: number; anvilPid: number; url: string }
  assert.equal(rec.pid, srv.pid)
  assert.equal(rec.anvilPid, srv.anvilPid)
  assert.equal(rec.url, srv.url)
  assert.ok(isLiveSupervisor(srv.pid))
  assert.ok(isOurAnvil(srv.anvilPid, stateFileOf(dir)))
  const l = await openLedger({ ledgerDir: dir, privateKey: newKey() })
  await l.token.faucet(TOKEN)
  assert.equal(await l.token.balance(), TOKEN, 'transactions are mined under the daemon')
  await l.close()
  await assert.rejects(startLedger({ dataDir: dir, port: 0 }), (err: unknown) => /already running/.test((err as Error).message))
  assert.equal(await stopDetachedLedger(dir), true)
  assert.equal(isLiveSupervisor(srv.pid), false)
  assert.equal(isOurAnvil(srv.anvilPid, stateFileOf(dir)), false)
  assert.equal(await stopDetachedLedger(dir), false, 'nothing left to stop')
  await assert.rejects(readFile(join(dir, 'ledger.pid.json')))
  // the state survived the daemon
  const again = await startLedger({ dataDir: dir, port: 0 })
  t.after(() => again.stop())
  assert.equal(again.deployed, false)
})
