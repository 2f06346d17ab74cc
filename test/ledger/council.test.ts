// The M-of-N council on a real anvil: thresholds, the approved release per network, pricing by vote, failed
// actions that can be retried, membership changes.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { ZosError } from '../../src/core/errors.js'
import { DEFAULT_POLICY, type CouncilAction, type Ledger } from '../../src/ledger/index.js'
import { startTestLedger, userWithTwin, type TestLedger } from './helpers.js'

let t: TestLedger
let m1: Ledger
let m2: Ledger
let m3: Ledger
before(async () => {
  t = await startTestLedger()
  ;[m1, m2, m3] = await Promise.all([t.councilMember(1), t.councilMember(2), t.councilMember(3)])
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

const HASH = `0x${'5a'.repeat(32)}` as const

test('council - development council is 2 of 3; a release runs only at the threshold', async () => {
  const info = await m1.council.info()
  assert.equal(info.members.length, 3)
  assert.equal(info.threshold, 2)
  assert.ok(info.members.includes(m1.account!))

  const outsider = await t.client()
  await assert.rejects(outsider.council.propose({ type: 'setThreshold', threshold: 1 }), code('UNAUTHORIZED', /council member/))
  assert.equal(await m1.council.release('dev'), null)

  const release: CouncilAction = { type: 'setRelease', network: 'dev', version: '1.2.3', flistHash: HASH, safeToUpgrade: true, testFarms: [1, 2] }
  const p = await m1.council.propose(release, 'zos 1.2.3')
  assert.equal(p.executed, false)
  assert.equal(p.proposal.approvals, 1)
  assert.deepEqual(p.proposal.action, release, 'the proposal decodes back into its action')
  assert.equal(p.proposal.description, 'zos 1.2.3')
  assert.equal(await m1.council.release('dev'), null, 'one approval is not enough')
  await assert.rejects(m1.council.approve(p.proposal.id), code('EXISTS'))
  await assert.rejects(outsider.council.approve(p.proposal.id), code('UNAUTHORIZED'))

  const done = await m2.council.approve(p.proposal.id)
  assert.equal(done.executed, true)
  assert.equal(done.failure, null)
  assert.equal(done.proposal.executed, true)
  const r = await outsider.council.release('dev')
  assert.ok(r)
  assert.equal(r.version, '1.2.3')
  assert.equal(r.flistHash, HASH)
  assert.equal(r.safeToUpgrade, true)
  assert.deepEqual(r.testFarms, [1, 2])
  assert.equal(r.proposalId, p.proposal.id)
  assert.equal(await outsider.council.release('test'), null, 'releases are per network')
  await assert.rejects(m3.council.approve(p.proposal.id), code('INVALID_STATE', /already executed/))
  const evs = await outsider.events.query({ types: ['ReleaseApproved'] })
  assert.equal(evs.length, 1)
  const ev = evs[0]!
  assert.ok(ev.type === 'ReleaseApproved' && ev.version === '1.2.3' && ev.network === 'dev' && ev.proposalId === p.proposal.id)
})

test('council - pricing policy and token price change only by vote', async () => {
  const user = await userWithTwin(t)
  const policy = { ...DEFAULT_POLICY, name: 'cheap', cu: 50_000, foundationAccount: m1.account!, certifiedSalesAccount: m2.account! }
  const p = await m1.council.propose({ type: 'createPricingPolicy', policy })
  await m3.council.approve(p.proposal.id)
  assert.equal(await user.pricing.policyCount(), 2)
  const stored = await user.pricing.policy(2)
  assert.equal(stored.name, 'cheap')
  assert.equal(stored.cu, 50_000)

  const q = await m1.council.propose({ type: 'setTokenPrice', priceMusd: 2000, minMusd: 10, maxMusd: 1000 })
  await m2.council.approve(q.proposal.id)
  const eco = await user.pricing.economics()
  assert.equal(eco.tokenPriceMusd, 2000)
  assert.equal(eco.effectivePriceMusd, 1000, 'the price is clamped to the maximum')
  assert.deepEqual([eco.foundationPct, eco.stakingPct, eco.salesPct], [10, 5, 50])
  assert.equal(eco.gracePeriodSeconds, 14 * 24 * 3600)
})

test('council - an action that fails after the threshold is reported and can be retried', async () => {
  const p = await m1.council.propose({ type: 'setFarmCertification', farmId: 4242, certification: 'Gold' })
  const r = await m2.council.approve(p.proposal.id)
  assert.equal(r.executed, false)
  assert.match(r.failure ?? '', /NOT_FOUND.*farm 4242/)
  assert.equal(r.proposal.executed, false)
  const again = await m3.council.execute(p.proposal.id)
  assert.equal(again.executed, false)
  assert.match(again.failure ?? '', /farm 4242/)
  await assert.rejects(m1.council.proposal(999), code('NOT_FOUND', /proposal 999/))
})

test('council - membership and threshold change by vote; a removed member no longer counts', async () => {
  const newcomer = await t.client()
  const add = await m1.council.propose({ type: 'addMember', member: newcomer.account! })
  await m2.council.approve(add.proposal.id)
  assert.equal((await m1.council.info()).members.length, 4)

  const raise = await m1.council.propose({ type: 'setThreshold', threshold: 3 })
  await m2.council.approve(raise.proposal.id)
  assert.equal((await m1.council.info()).threshold, 3)

  // a pending proposal approved by m3 before m3 is removed: m3's approval stops counting
  const pending = await m3.council.propose({ type: 'setGracePeriod', seconds: 3600 })
  await m1.council.approve(pending.proposal.id)
  const remove = await m1.council.propose({ type: 'removeMember', member: m3.account! })
  await m2.council.approve(remove.proposal.id)
  assert.equal((await newcomer.council.approve(remove.proposal.id)).executed, true)
  assert.ok(!(await m1.council.info()).members.includes(m3.account!))
  await assert.rejects(m3.council.propose({ type: 'setThreshold', threshold: 1 }), code('UNAUTHORIZED'))
  assert.equal((await m2.council.approve(pending.proposal.id)).executed, false, 'm3 left: 2 of the 3 needed')
  assert.equal((await newcomer.council.approve(pending.proposal.id)).executed, true)
  assert.equal((await m1.pricing.economics()).gracePeriodSeconds, 3600)

  // the threshold cannot exceed the members
  const bad = await m1.council.propose({ type: 'setThreshold', threshold: 9 })
  await m2.council.approve(bad.proposal.id)
  const r = await newcomer.council.approve(bad.proposal.id)
  assert.equal(r.executed, false)
  assert.match(r.failure ?? '', /threshold/)
})
