// Billing on a real anvil against hand-computed cases. Block timestamps are set exactly with
// evm_setNextBlockTimestamp, so elapsed seconds are known.
//
// Default pricing policy (TFChain dev chain spec), units USD per hour (1 mUSD = 10 000 units):
// CU 100 000, SU 50 000, IPU 40 000, NU 15 000 per GB, unique name 2 500; token price 50 mUSD; 7 decimals.
//   1 CU + 1 SU for 1 h = 150 000 units = 15 mUSD = 0.3 token   = 3 000 000 base units
//   1 public IP for 1 h =  40 000 units =  4 mUSD = 0.08 token  =   800 000
//   name for 1 h        =   2 500 units = 0.25 mUSD = 0.005 token =  50 000
//   2 GB of NU          =  30 000 units =  3 mUSD = 0.06 token  =   600 000
// Resources cru 2, mru 4 GiB, sru 200 GiB: CU = min(max(4/4, 2/2), max(4/8, 2), max(4/2, 2/4)) = 1; SU = 200/200 = 1.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { privateKeyToAccount } from 'viem/accounts'
import { ZosError } from '../../src/core/errors.js'
import { DEV_ROLES, devPrivateKey, type Ledger, type LedgerEvent } from '../../src/ledger/index.js'
import { GIB, TOKEN, farmWithNode, nextHash, startTestLedger, userWithTwin, type TestLedger } from './helpers.js'

const ONE_CU_ONE_SU = { cru: 2, mru: 4 * GIB, sru: 200 * GIB, hru: 0 }
const HOUR = 3600
const dev = (i: number): `0x${string}` => privateKeyToAccount(devPrivateKey(i)).address

let t: TestLedger
let clock = 0
before(async () => {
  t = await startTestLedger()
  clock = (await t.now()) + 100
})
after(async () => {
  await t?.stop()
})

/** Mines the next transaction at exactly `ts` (strictly increasing across the file). */
async function at(ts: number): Promise<void> {
  assert.ok(ts > clock || clock === 0, `timestamps must increase (${ts} after ${clock})`)
  clock = ts
  await t.setNextTimestamp(ts)
}

/** A contract of one CU + one SU reported at `start`; returns the contract id. */
async function reportedContract(node: Ledger, user: Ledger, nodeId: number, start: number, publicIps = 0): Promise<number> {
  const c = await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps })
  await at(start)
  await node.billing.reportResources([{ contractId: c.id, used: ONE_CU_ONE_SU }])
  return c.id
}

test('billing - 1 CU + 1 SU for one hour, no discount: 0.3 token, split 10/5/50/35 with the burn', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-1' })
  const user = await userWithTwin(t, 100n) // 100 tokens < 1.5 months (1.5 × 216) of this contract
  const T = clock + 100
  const id = await reportedContract(node, user, nodeId, T)
  const before = {
    supply: await user.token.totalSupply(),
    foundation: await user.token.balanceOf(dev(DEV_ROLES.foundation)),
    sales: await user.token.balanceOf(dev(DEV_ROLES.sales)),
    staking: await user.token.balanceOf(dev(DEV_ROLES.stakingPool)),
    user: await user.token.balance(),
  }
  await at(T + HOUR)
  const r = await user.billing.bill(id)
  assert.equal(r.billed, 3_000_000n)
  assert.equal(r.paid, 3_000_000n)
  assert.equal(r.owed, 0n)
  assert.equal(r.discountLevel, 'None')
  assert.equal(r.state, 'Created')
  assert.deepEqual(r.payout, { farmer: 0n, foundation: 300_000n, staking: 150_000n, sales: 1_500_000n, providers: 0n, burned: 1_050_000n })
  assert.equal(await user.token.balance(), before.user - 3_000_000n)
  assert.equal(await user.token.balanceOf(dev(DEV_ROLES.foundation)), before.foundation + 300_000n)
  assert.equal(await user.token.balanceOf(dev(DEV_ROLES.sales)), before.sales + 1_500_000n)
  assert.equal(await user.token.balanceOf(dev(DEV_ROLES.stakingPool)), before.staking + 150_000n)
  assert.equal(await user.token.totalSupply(), before.supply - 1_050_000n)
  const rec = await user.billing.record(id)
  assert.equal(rec.totalPaid, 3_000_000n)
  assert.equal(rec.lastBilled, T + HOUR)
  // anyone may bill; a second bill in the same second bills nothing
  await at(T + HOUR + 1800)
  const half = await node.billing.bill(id)
  assert.equal(half.billed, 1_500_000n, 'pro-rata per second: half an hour is half the price')
})

test('billing - the worked example of docs/ledger.md: 1 CU + 1 SU + 1 IP for an hour is 0.38 token, bronze 0.266', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-doc', ips: 2 })
  for (const [tokens, level, billed, payout] of [
    [100n, 'None', 3_800_000n, { farmer: 0n, foundation: 380_000n, staking: 190_000n, sales: 1_900_000n, providers: 0n, burned: 1_330_000n }],
    [1000n, 'Bronze', 2_660_000n, null],
  ] as const) {
    const user = await userWithTwin(t, tokens)
    const T = clock + 100
    await at(T)
    const c = await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 1 })
    await at(T + 1)
    await node.billing.reportResources([{ contractId: c.id, used: ONE_CU_ONE_SU }])
    await at(T + 2)
    await user.billing.bill(c.id) // settle the first seconds, so the next bill covers exactly one hour of everything
    await at(T + 2 + HOUR)
    const r = await user.billing.bill(c.id)
    assert.equal(r.discountLevel, level)
    assert.equal(r.billed, billed)
    if (payout) assert.deepEqual(r.payout, payout)
    await user.contracts.cancel(c.id)
  }
})

test('billing - public IPs bill from creation; IP cost is 0.08 token per IP-hour; NU and names', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-2', ips: 2 })
  const user = await userWithTwin(t, 100n)
  const T = clock + 100
  await at(T)
  const c = await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 2 })
  await at(T + HOUR)
  assert.equal((await user.billing.bill(c.id)).billed, 1_600_000n)

  await at(T + HOUR + 10)
  await node.billing.reportNru([{ contractId: c.id, timestamp: T + HOUR, window: HOUR, nru: 2_000_000_000 }])
  await at(T + HOUR + 10 + HOUR)
  // one more hour of 2 IPs (1 600 000) + 2 GB of NU (600 000) + the 10 s before the report (2 × 40 000 × 10 s)
  const ipTenSeconds = (2n * 800_000n * 10n) / 3600n
  assert.equal((await user.billing.bill(c.id)).billed, 1_600_000n + 600_000n + ipTenSeconds)

  await at(T + 3 * HOUR)
  const name = await user.contracts.createName('billed-name')
  await at(T + 5 * HOUR)
  // two hours of a name are 2 × 0.005 token, but 100 tokens hold 27 months of a name: gold discount (-60 %)
  const nameBill = await user.billing.bill(name.id)
  assert.equal(nameBill.discountLevel, 'Gold')
  assert.equal(nameBill.billed, 40_000n)
})

test('billing - balance-based discount: none, default -20%, bronze -30%, silver -40%, gold -60%', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-3' })
  // one month of this contract costs 0.3 × 720 = 216 tokens
  const cases: [bigint, string, bigint][] = [
    [100n, 'None', 3_000_000n],
    [400n, 'Default', 2_400_000n], // 1.85 months
    [1000n, 'Bronze', 2_100_000n], // 4.6 months
    [1500n, 'Silver', 1_800_000n], // 6.9 months
    [4000n, 'Gold', 1_200_000n], // 18.5 months
  ]
  for (const [tokens, level, billed] of cases) {
    const user = await userWithTwin(t, tokens)
    const T = clock + 100
    const id = await reportedContract(node, user, nodeId, T)
    await at(T + HOUR)
    const r = await user.billing.bill(id)
    assert.equal(r.discountLevel, level, `${tokens} tokens`)
    assert.equal(r.billed, billed, `${tokens} tokens`)
  }
})

test('billing - certified node costs 25 % more; a solution provider takes its cut from the sales share', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-4' })
  const m1 = await t.councilMember(1)
  const m2 = await t.councilMember(2)
  const p = await m1.council.propose({ type: 'setNodeCertification', nodeId, certification: 'Certified' })
  await m2.council.approve(p.proposal.id)

  const provider = privateKeyToAccount(devPrivateKey(9)).address
  const user = await userWithTwin(t, 100n)
  const sp = await user.pricing.createSolutionProvider({ description: 'a dapp', link: 'https://dapp.test', providers: [{ who: provider, take: 10 }] })
  assert.equal(sp.approved, false)
  await assert.rejects(user.contracts.createNode({ nodeId, deploymentHash: nextHash(), solutionProviderId: sp.id }), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_STATE')
  const a = await m1.council.propose({ type: 'approveSolutionProvider', id: sp.id, approved: true })
  await m2.council.approve(a.proposal.id)

  const c = await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), solutionProviderId: sp.id })
  const T = clock + 100
  await at(T)
  await node.billing.reportResources([{ contractId: c.id, used: ONE_CU_ONE_SU }])
  const providerBefore = await user.token.balanceOf(provider)
  await at(T + HOUR)
  const r = await user.billing.bill(c.id)
  assert.equal(r.billed, 3_750_000n)
  assert.deepEqual(r.payout, { farmer: 0n, foundation: 375_000n, staking: 187_500n, sales: 1_500_000n, providers: 375_000n, burned: 1_312_500n })
  assert.equal(await user.token.balanceOf(provider), providerBefore + 375_000n)
})

test('billing - rent: (100 - 50) % of the whole node plus the farmer extra fee; node contracts on it pay only IPs', async () => {
  // node: cru 4, mru 8 GiB, sru 500 GiB → CU 2, SU 2.5 → 325 000 units/h, rent pays 50 % → 0.325 token/h
  const { farmer, node, nodeId } = await farmWithNode(t, { name: 'bill-farm-5', ips: 1 })
  await farmer.nodes.setExtraFee(nodeId, 7200) // 7200 mUSD a month = 10 mUSD/h = 0.2 token/h to the farmer
  const renter = await userWithTwin(t, 10n) // 10 tokens: under 1.5 months of rent (234 tokens a month), no discount
  const T = clock + 100
  await at(T)
  const rent = await renter.contracts.createRent({ nodeId })
  await at(T + 1)
  const c = await renter.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 1 })
  await at(T + 10)
  await node.billing.reportResources([{ contractId: c.id, used: ONE_CU_ONE_SU }])
  const farmerBefore = await farmer.token.balance()
  await at(T + 10 + HOUR)
  const r = await renter.billing.bill(rent.id)
  const rentOnly = (3_250_000n * 3610n) / 3600n // 3 259 027
  const extra = (2_000_000n * 3610n) / 3600n // 2 005 555
  assert.equal(r.billed, rentOnly + extra)
  assert.equal(r.payout?.farmer, extra)
  assert.equal(await farmer.token.balance(), farmerBefore + extra)
  await at(T + 20 + HOUR)
  const onRent = await renter.billing.bill(c.id)
  assert.equal(onRent.billed, (800_000n * 3619n) / 3600n, 'only the IP: CU and SU are covered by the rent')

  // a rented node in standby is not billed
  await node.nodes.setPowerState('Down')
  await at(T + 20 + 2 * HOUR)
  assert.equal((await renter.billing.bill(rent.id)).billed, 0n)
})

test('billing - grace period: entered when unpaid, left on top-up, contract deleted after it with IPs freed', async () => {
  const { farmer, node, farmId, nodeId } = await farmWithNode(t, { name: 'bill-farm-6', ips: 1 })
  const user = await t.client()
  await user.token.faucet(TOKEN / 10n) // 0.1 token = 1 000 000
  await user.twins.create({ relay: 'relay.test' })
  const events: LedgerEvent[] = []
  const fromBlock = (await user.chainInfo()).blockNumber
  // 1 CU + 1 SU + 1 IP = 0.38 token/h = 3 800 000; the IP accrues from creation at T, CU/SU from the report at T+1:
  // (4e13 × 3601 + 1.5e14 × 3600) units·1e9·s / (3.6e9 × 50) = 3 800 222 base units
  const T = clock + 100
  await at(T)
  const id = (await user.contracts.createNode({ nodeId, deploymentHash: nextHash(), publicIps: 1 })).id
  await at(T + 1)
  await node.billing.reportResources([{ contractId: id, used: ONE_CU_ONE_SU }])

  await at(T + 1 + HOUR)
  let r = await user.billing.bill(id)
  assert.equal(r.billed, 3_800_222n)
  assert.equal(r.paid, 1_000_000n, 'the whole balance is taken')
  assert.equal(r.owed, 2_800_222n)
  assert.equal(r.state, 'GracePeriod')
  assert.equal(await user.contracts.effectiveState(id), 'GracePeriod')
  assert.equal((await user.contracts.get(id)).graceStartedAt, T + 1 + HOUR)
  await assert.rejects(user.contracts.update(id, { deploymentHash: nextHash() }), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_STATE')

  await user.token.faucet(10n * TOKEN)
  await at(T + 1 + 2 * HOUR)
  r = await node.billing.bill(id) // anyone may trigger it, here the node
  assert.equal(r.billed, 3_800_000n)
  assert.equal(r.paid, 2_800_222n + 3_800_000n)
  assert.equal(r.owed, 0n)
  assert.equal(r.state, 'Created')

  // drain the account: the next bill starts a new grace period, billing during it keeps it, then deletion
  await user.token.transfer(farmer.account!, await user.token.balance())
  await at(T + 1 + 3 * HOUR)
  r = await user.billing.bill(id)
  assert.equal(r.state, 'GracePeriod')
  assert.equal(r.owed, 3_800_000n)
  const graceStart = T + 1 + 3 * HOUR
  await at(graceStart + 14 * 24 * HOUR - 1)
  r = await user.billing.bill(id)
  assert.equal(r.state, 'GracePeriod', 'one second before the end of the grace period')
  assert.equal((await farmer.farms.get(farmId)).freeIps, 0)
  await at(graceStart + 14 * 24 * HOUR)
  r = await user.billing.bill(id)
  assert.equal(r.state, 'Deleted')
  assert.equal(r.cause, 'OutOfFunds')
  assert.equal((await farmer.farms.get(farmId)).freeIps, 1, 'the IP is released')
  await assert.rejects(user.billing.bill(id), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_STATE')

  for (const e of await user.events.query({ fromBlock, types: ['ContractGracePeriodStarted', 'ContractGracePeriodEnded', 'ContractCanceled'] })) events.push(e)
  assert.deepEqual(
    events.map((e) => e.type),
    ['ContractGracePeriodStarted', 'ContractGracePeriodEnded', 'ContractGracePeriodStarted', 'ContractCanceled'],
  )
  const last = events.at(-1)!
  assert.ok(last.type === 'ContractCanceled' && last.cause === 'OutOfFunds' && last.contractId === id)
})

test('billing - a rent in grace puts its node contracts in grace; a rent deleted for funds deletes them', async () => {
  const { node, nodeId } = await farmWithNode(t, { name: 'bill-farm-7' })
  const renter = await t.client()
  await renter.token.faucet(4n * TOKEN / 10n) // 0.4 token: one hour of rent is 0.325
  await renter.twins.create({ relay: 'relay.test' })
  const T = clock + 100
  await at(T)
  const rent = await renter.contracts.createRent({ nodeId })
  const c = await renter.contracts.createNode({ nodeId, deploymentHash: nextHash() })
  await at(T + 2 * HOUR)
  assert.equal((await renter.billing.bill(rent.id)).state, 'GracePeriod')
  assert.equal((await renter.contracts.get(c.id)).state, 'Created')
  assert.equal(await renter.contracts.effectiveState(c.id), 'GracePeriod', 'the node pauses workloads of a rent in grace')
  await at(T + 2 * HOUR + 14 * 24 * HOUR)
  assert.equal((await renter.billing.bill(rent.id)).cause, 'OutOfFunds')
  assert.equal(await renter.contracts.effectiveState(c.id), 'Deleted')
  await at(T + 2 * HOUR + 14 * 24 * HOUR + 1)
  const r = await node.billing.bill(c.id)
  assert.equal(r.state, 'Deleted')
  assert.equal(r.cause, 'OutOfFunds')
  assert.equal(await renter.contracts.rentOf(nodeId), null)
})
