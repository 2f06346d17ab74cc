// Any EVM JSON-RPC endpoint plus an address book works like the embedded ledger: here a plain anvil (instant
// mining, gas paid in ether, no faucet) with the contracts deployed by deployGrid, used through the gas-paying
// path of the client (estimateGas before sending, reverts decoded from the estimate).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { privateKeyToAccount } from 'viem/accounts'
import { ZosError } from '../../src/core/errors.js'
import { startAnvil, type AnvilProcess } from '../../src/ledger/anvil.js'
import { deployGrid, devPrivateKey, openLedger, readAddressBook, writeAddressBook, type AddressBookData } from '../../src/ledger/index.js'
import { newKey } from './helpers.js'

let dir: string
let anvil: AnvilProcess
let book: AddressBookData
const dev = (i: number): `0x${string}` => privateKeyToAccount(devPrivateKey(i)).address

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zos-ledger-net-'))
  anvil = await startAnvil({ port: 0, logFile: join(dir, 'anvil.log'), mining: 'instant' })
  book = await deployGrid({
    rpcUrl: anvil.url,
    deployerKey: devPrivateKey(0),
    network: 'test',
    council: { members: [dev(1), dev(2)], threshold: 2 },
    foundation: dev(4),
    sales: dev(5),
    stakingPool: dev(6),
    faucet: false,
    gasFree: false,
  })
  await writeAddressBook(dir, book)
})
after(async () => {
  await anvil?.stop()
  await rm(dir, { recursive: true, force: true })
})

test('network - deployed address book round-trips; funded accounts pay gas; reverts come back coded', async () => {
  const read = await readAddressBook(dir)
  assert.deepEqual(read, book)
  assert.equal(read.gasFree, false)
  assert.equal(read.network, 'test')
  const a = await openLedger({ ledgerDir: dir, privateKey: devPrivateKey(7) })
  const b = await openLedger({ ledgerDir: dir, privateKey: devPrivateKey(8) })
  const twin = await a.twins.create({ relay: 'relay.test' })
  assert.equal(twin.account, dev(7))
  const farm = await a.farms.create({ name: 'net-farm', publicIps: [{ ip: '185.50.0.10/24', gateway: '185.50.0.1' }] })
  await b.twins.create({ relay: 'relay.test' })
  await assert.rejects(b.farms.rename(farm.id, 'mine-now'), (err: unknown) => ZosError.is(err) && err.code === 'NOT_OWNER')
  // no faucet outside development chains
  await assert.rejects(a.token.faucet(10n), (err: unknown) => ZosError.is(err) && err.code === 'UNAUTHORIZED' && /development ledger/.test(err.message))
  // an account without ether cannot pay gas on this network
  const poor = await openLedger({ ledgerDir: dir, privateKey: newKey() })
  await assert.rejects(poor.twins.create({ relay: 'x' }), (err: unknown) => ZosError.is(err) && err.code === 'INSUFFICIENT_FUNDS' && /gas/.test(err.message))
  // the council of this network is 2 of 2
  const m1 = await openLedger({ ledgerDir: dir, privateKey: devPrivateKey(1) })
  const m2 = await openLedger({ ledgerDir: dir, privateKey: devPrivateKey(2) })
  const p = await m1.council.propose({ type: 'setRelease', network: 'test', version: '2.0.0', flistHash: `0x${'42'.repeat(32)}`, safeToUpgrade: false, testFarms: [farm.id] })
  assert.equal(p.executed, false)
  assert.equal((await m2.council.approve(p.proposal.id)).executed, true)
  assert.deepEqual((await a.council.release('test'))?.testFarms, [farm.id])
  for (const l of [a, b, poor, m1, m2]) await l.close()
})

test('network - a client refuses an address book for another chain or without contracts', async () => {
  await assert.rejects(openLedger({ addressBook: { ...book, chainId: 1 } }), (err: unknown) => ZosError.is(err) && err.code === 'LEDGER_MISMATCH' && /chain/.test(err.message))
  await assert.rejects(
    openLedger({ addressBook: { ...book, contracts: { ...book.contracts, gridContracts: '0x000000000000000000000000000000000000dEaD' } } }),
    (err: unknown) => ZosError.is(err) && err.code === 'LEDGER_MISMATCH',
  )
  await assert.rejects(openLedger({ addressBook: { ...book, abiHash: 'f'.repeat(64) } }), (err: unknown) => ZosError.is(err) && err.code === 'LEDGER_MISMATCH')
  await assert.rejects(openLedger({ addressBook: book, rpcUrl: 'http://127.0.0.1:9' }), (err: unknown) => ZosError.is(err) && err.code === 'LEDGER_UNAVAILABLE' && /127\.0\.0\.1:9/.test(err.message))
})
