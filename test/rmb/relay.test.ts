// Real relays and peers on 127.0.0.1 (twins from a StaticDirectory; test/rmb/e2e.test.ts uses the ledger).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { zerr } from '../../src/core/errors.js'
import { generateKey } from '../../src/core/keys.js'
import { Sealer, Signer } from '../../src/rmb/crypto.js'
import { sealEnvelope } from '../../src/rmb/envelope.js'
import { parseMetrics } from '../../src/rmb/metrics.js'
import type { Peer } from '../../src/rmb/peer.js'
import { startRelay } from '../../src/rmb/relay.js'
import { createToken } from '../../src/rmb/token.js'
import { code, directoryOf, makeTwins, rawClient, refusal, testPeer, testRelay, until, type TestTwin } from './helpers.js'

async function metricsOf(url: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(url.replace(/^ws/, 'http') + '/metrics')).text())
}

function envelopeFrom(from: TestTwin, to: TestTwin, over: { command?: string; timestamp?: number; ttl?: number; fromTwin?: number } = {}): Buffer {
  return sealEnvelope(
    {
      kind: 'request',
      id: randomBytes(16),
      from: over.fromTwin ?? from.id,
      fromSession: 0,
      to: to.id,
      toSession: 0,
      timestamp: over.timestamp ?? Date.now(),
      ttl: over.ttl ?? 10_000,
      command: over.command ?? 'test.echo',
      replyTo: null,
      stream: null,
      binary: false,
    },
    Buffer.from('{"raw":true}'),
    to.key.publicKey,
    new Sealer(),
    new Signer(from.key),
  )
}

test('relay - request and response between two peers; errors and unknown commands come back as codes', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const [a, b] = twins as [(typeof twins)[0], (typeof twins)[0]]
  const pa = await testPeer(t, a, dir, [relay.url])
  const pb = await testPeer(t, b, dir, [relay.url])
  const seen: unknown[] = []
  pb.handle('test.echo', (payload, ctx) => {
    seen.push(ctx.twinId)
    return { got: payload, from: ctx.twinId, command: ctx.command }
  })
  pb.handle('test.fail', () => {
    throw zerr('INVALID_STATE', 'contract 9 is in grace period', { contract: 9 })
  })
  pb.handle('test.crash', () => {
    throw new Error('boom')
  })
  pb.handle('test.bytes', (p) => Buffer.concat([Buffer.from('>'), p as Buffer]))
  assert.deepEqual(await pa.request(b.id, 'test.echo', { x: [1, 'two'] }), { got: { x: [1, 'two'] }, from: a.id, command: 'test.echo' })
  assert.deepEqual(await pa.request(b.id, 'test.echo'), { got: null, from: a.id, command: 'test.echo' })
  assert.deepEqual(await pa.request(b.id, 'test.bytes', Buffer.from([1, 2, 3])), Buffer.from([0x3e, 1, 2, 3]))
  await assert.rejects(pa.request(b.id, 'test.fail', {}), (err: unknown) => {
    code('INVALID_STATE')(err)
    assert.match((err as Error).message, new RegExp(`twin ${b.id}: contract 9 is in grace period`))
    assert.equal((err as { details: Record<string, unknown> }).details.contract, 9)
    return true
  })
  await assert.rejects(pa.request(b.id, 'test.crash'), (err: unknown) => code('RMB_REMOTE')(err) && /boom/.test((err as Error).message))
  await assert.rejects(pa.request(b.id, 'test.nothing'), (err: unknown) => code('RMB_UNKNOWN_COMMAND')(err) && /no handler for test.nothing/.test((err as Error).message))
  const ping = await pb.request<{ twin: number; from: number }>(a.id, 'rmb.ping')
  assert.equal(ping.twin, a.id)
  assert.equal(ping.from, b.id)
  await assert.rejects(pa.request(999, 'test.echo'), code('NOT_FOUND'))
  await assert.rejects(pa.request(b.id, 'bad command'), code('INVALID_ARGUMENT'))
  await assert.rejects(pa.request(b.id, 'test.echo', { n: 10n }), code('INVALID_ARGUMENT'))
  assert.deepEqual(seen, [a.id, a.id])
  assert.deepEqual(pb.stats().drops, {})
  const m = await metricsOf(relay.url)
  assert.equal(m.get('zos_relay_connections'), 2)
  assert.ok((m.get('zos_relay_messages_total{result="delivered"}') ?? 0) >= 14)
  assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0)
})

test('relay - authentication: missing, malformed, foreign-key, expired and unknown-twin tokens are refused and counted', async (t) => {
  const twins = makeTwins(1)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const me = twins[0]!
  const bearer = (s: string) => ({ authorization: `Bearer ${s}` })
  let r = await refusal(relay.url, {})
  assert.equal(r.status, 401)
  assert.match(r.body, /no auth token/)
  r = await refusal(relay.url, bearer('!!'))
  assert.equal(r.status, 401)
  assert.match(JSON.parse(r.body).code, /RMB_MALFORMED/)
  r = await refusal(relay.url, bearer(createToken(new Signer(generateKey()), { twin: me.id, session: 0 })))
  assert.match(r.body, /not signed by twin 1/)
  r = await refusal(relay.url, bearer(createToken(new Signer(me.key), { twin: me.id, session: 0, now: Date.now() - 600_000 })))
  assert.match(r.body, /expired/)
  r = await refusal(relay.url, bearer(createToken(new Signer(me.key), { twin: 77, session: 0 })))
  assert.match(r.body, /twin 77 is not on the ledger/)
  const ok = await rawClient(t, relay.url + '/?token=' + createToken(new Signer(me.key), { twin: me.id, session: 0 }), me).catch((e: unknown) => e)
  assert.ok(!(ok instanceof Error), 'query-string tokens work too')
  const m = await metricsOf(relay.url)
  for (const reason of ['no-token', 'malformed', 'bad-token', 'unknown-twin']) assert.ok((m.get(`zos_relay_auth_failures_total{reason="${reason}"}`) ?? 0) >= 1, reason)
  // A peer whose key is refused fails to connect with the relay's reason.
  const { connect } = await import('../../src/rmb/peer.js')
  await assert.rejects(connect({ twinId: me.id, key: generateKey(), directory: dir, relays: [relay.url] }), /is not twin 1's key/)
})

test('relay - malformed frames never crash it; spoofed senders and text frames are dropped, counted and answered with a notice', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const [a, b] = twins as [TestTwin, TestTwin]
  const pb = await testPeer(t, b, dir, [relay.url])
  pb.handle('test.echo', (p) => p)
  const raw = await rawClient(t, relay.url, a)
  raw.ws.send(Buffer.from('definitely not an envelope'))
  raw.ws.send(Buffer.alloc(0))
  raw.ws.send('{"type":"text"}')
  const good = envelopeFrom(a, b)
  for (let i = 0; i < 40; i++) raw.ws.send(good.subarray(0, Math.floor((good.length * i) / 40)))
  raw.ws.send(envelopeFrom(a, b, { fromTwin: b.id }))
  await until(() => raw.notices.length >= 44, 5000, 'notices')
  assert.ok(raw.notices.every((n) => n.type === 'error'))
  assert.equal(raw.notices.filter((n) => n.code === 'RMB_MALFORMED').length, 43)
  assert.match(raw.notices.at(-1)!.message, /cannot send as twin 2/)
  // An over-sized frame closes only that connection (WebSocket 1009).
  raw.ws.send(Buffer.alloc(1024 * 1024 + 1024))
  assert.equal((await raw.closed).code, 1009)
  const m = await metricsOf(relay.url)
  assert.equal(m.get('zos_relay_drops_total{reason="malformed"}'), 43)
  assert.equal(m.get('zos_relay_drops_total{reason="spoofed"}'), 1)
  // The relay still routes.
  const pa = await testPeer(t, a, dir, [relay.url])
  assert.deepEqual(await pa.request(b.id, 'test.echo', [1]), [1])
  assert.equal(pb.stats().received, 1)
})

test('relay - each twin is rate limited; refused messages fail fast with RMB_REJECTED', async (t) => {
  const twins = makeTwins(3)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir, limits: { messagesPerSecond: 0.01, burstMessages: 3 } })
  const [a, b, c] = twins as [TestTwin, TestTwin, TestTwin]
  const echo = { 'test.echo': (p: unknown) => p }
  const pa = await testPeer(t, a, dir, [relay.url])
  await testPeer(t, b, dir, [relay.url], { handlers: echo })
  const pc = await testPeer(t, c, dir, [relay.url], { handlers: echo })
  // Three messages pass for a (and three replies for b); the fourth and fifth are refused at once.
  const results = await Promise.allSettled([1, 2, 3, 4, 5].map((i) => pa.request(b.id, 'test.echo', i, { timeout: 20_000 })))
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'])
  for (const r of results.slice(3)) {
    code('RMB_REJECTED')((r as PromiseRejectedResult).reason)
    assert.match(String((r as PromiseRejectedResult).reason.message), /twin 1 is over its rate limit/)
  }
  assert.equal(await pc.request(c.id, 'test.echo', 'c'), 'c', 'other twins are not affected')
  assert.equal((await metricsOf(relay.url)).get('zos_relay_drops_total{reason="rate-limited"}'), 2)
})

test('relay - a message to an offline twin waits in the queue and is delivered when it connects; expired ones are dropped', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir, sweepEveryMs: 50 })
  const [a, b] = twins as [TestTwin, TestTwin]
  const pa = await testPeer(t, a, dir, [relay.url])
  const late = pa.request(b.id, 'test.echo', 'late', { timeout: 300 })
  const waiting = pa.request(b.id, 'test.echo', 'waited', { timeout: 10_000 })
  await until(() => relay.stats().queuedMessages === 2, 5000, 'queued')
  await assert.rejects(late, code('TIMEOUT'))
  await until(() => relay.stats().queuedMessages === 1, 5000, 'expiry in the queue')
  const got: unknown[] = []
  // Handlers given to connect() are in place before the queued message arrives.
  await testPeer(t, b, dir, [relay.url], {
    handlers: {
      'test.echo': (p) => {
        got.push(p)
        return p
      },
    },
  })
  assert.equal(await waiting, 'waited')
  assert.deepEqual(got, ['waited'])
  const m = await metricsOf(relay.url)
  assert.equal(m.get('zos_relay_messages_total{result="queued"}'), 2)
  assert.equal(m.get('zos_relay_messages_total{result="flushed"}'), 1)
  assert.equal(m.get('zos_relay_drops_total{reason="expired"}'), 1)
  assert.equal(m.get('zos_relay_queue_messages'), 0)
})

test('relay - payloads larger than a piece stream both ways', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const [a, b] = twins as [TestTwin, TestTwin]
  const pa = await testPeer(t, a, dir, [relay.url], { pieceBytes: 64 * 1024 })
  const pb = await testPeer(t, b, dir, [relay.url], { pieceBytes: 64 * 1024, stream: { maxStreamBytes: 4 * 1024 * 1024 } })
  const big = randomBytes(1_500_000)
  pb.handle('test.digest', (p) => ({ size: (p as Buffer).length, sha256: createHash('sha256').update(p as Buffer).digest('hex') }))
  pb.handle('test.download', (p) => randomBytes((p as { size: number }).size))
  pb.handle('test.json', (p) => p)
  assert.deepEqual(await pa.request(b.id, 'test.digest', big), { size: big.length, sha256: createHash('sha256').update(big).digest('hex') })
  const down = await pa.request<Buffer>(b.id, 'test.download', { size: 700_000 })
  assert.equal(down.length, 700_000)
  const doc = { items: Array.from({ length: 20_000 }, (_, i) => ({ i, name: `workload-${i}` })) }
  assert.deepEqual(await pa.request(b.id, 'test.json', doc), doc)
  // Above the receiver's stream limit: dropped and counted, the caller times out.
  await assert.rejects(pa.request(b.id, 'test.digest', Buffer.alloc(5 * 1024 * 1024), { timeout: 1500 }), code('TIMEOUT'))
  assert.equal(pb.dropped('too-large'), 1)
})

test('relay - 200 peers at once, each calling its neighbour', async (t) => {
  const n = 200
  const twins = makeTwins(n)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const peers: Peer[] = []
  for (let i = 0; i < n; i += 50) peers.push(...(await Promise.all(twins.slice(i, i + 50).map((tw) => testPeer(t, tw, dir, [relay.url])))))
  for (const p of peers) p.handle('test.who', (_payload, ctx) => ({ me: p.twinId, caller: ctx.twinId }))
  assert.equal(relay.stats().connections, n)
  const replies = await Promise.all(peers.map((p, i) => p.request<{ me: number; caller: number }>(twins[(i + 1) % n]!.id, 'test.who', null, { timeout: 60_000 })))
  replies.forEach((r, i) => assert.deepEqual(r, { me: twins[(i + 1) % n]!.id, caller: twins[i]!.id }))
  await Promise.all(peers.map((p) => p.close()))
  await until(() => relay.stats().connections === 0, 10_000, 'all disconnected')
})

test('relay - restart: peers reconnect; pending requests complete or fail with TIMEOUT', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  let relay = await startRelay({ directory: dir, port: 0 })
  const port = relay.port
  t.after(() => relay.close())
  const [a, b] = twins as [TestTwin, TestTwin]
  const pa = await testPeer(t, a, dir, [relay.url])
  const pb = await testPeer(t, b, dir, [relay.url])
  pb.handle('test.slow', async (p) => {
    await sleep(300)
    return p
  })
  assert.equal(await pa.request(b.id, 'test.slow', 0), 0)
  // In flight when the relay goes away: b's reply waits in b's outbox until b is back.
  const inFlight = pa.request(b.id, 'test.slow', 1, { timeout: 10_000 })
  await sleep(100)
  await relay.close()
  await until(() => !pa.stats().relays[0]!.open && !pb.stats().relays[0]!.open, 5000, 'links down')
  const whileDown = pa.request(b.id, 'test.slow', 2, { timeout: 10_000 })
  const tooShort = pa.request(b.id, 'test.slow', 3, { timeout: 200 })
  await assert.rejects(tooShort, code('TIMEOUT'))
  relay = await startRelay({ directory: dir, port })
  assert.equal(await inFlight, 1)
  assert.equal(await whileDown, 2)
  assert.ok(pa.stats().relays[0]!.connects >= 2 && pb.stats().relays[0]!.connects >= 2)
  assert.equal(await pa.request(b.id, 'test.slow', 4), 4)
})

test('relay - federation: each relay forwards to the relay the receiving twin lists', async (t) => {
  const base = makeTwins(3)
  const dir = directoryOf([])
  const r1 = await testRelay(t, { directory: dir })
  const r2 = await testRelay(t, { directory: dir })
  const [a, b, c] = base as [TestTwin, TestTwin, TestTwin]
  a.info.relays = [r1.url]
  b.info.relays = [r2.url]
  c.info.relays = [r2.url]
  for (const tw of base) dir.set(tw.info)
  const pa = await testPeer(t, a, dir, a.info.relays)
  const pb = await testPeer(t, b, dir, b.info.relays)
  pb.handle('test.where', (_p, ctx) => ({ at: 'b', from: ctx.twinId }))
  pa.handle('test.where', (_p, ctx) => ({ at: 'a', from: ctx.twinId }))
  assert.deepEqual(await pa.request(b.id, 'test.where'), { at: 'b', from: a.id })
  assert.deepEqual(await pb.request(a.id, 'test.where'), { at: 'a', from: b.id })
  // c is offline: r1 forwards, r2 holds it; c connects later and answers.
  const toC = pa.request(c.id, 'test.where', null, { timeout: 10_000 })
  await until(() => r2.stats().queuedMessages === 1, 5000, 'held at r2')
  await testPeer(t, c, dir, c.info.relays, { handlers: { 'test.where': () => ({ at: 'c' }) } })
  assert.deepEqual(await toC, { at: 'c' })
  const m1 = await metricsOf(r1.url)
  const m2 = await metricsOf(r2.url)
  // r1 forwarded a's two requests and a's reply to b; r2 forwarded b's request and the replies of b and c.
  assert.equal(m1.get('zos_relay_federation_total{result="ok"}'), 3)
  assert.equal(m2.get('zos_relay_federation_total{result="ok"}'), 3)
  assert.equal(m2.get('zos_relay_federation_total{result="received"}'), 3)
  assert.equal(m1.get('zos_relay_federation_total{result="received"}'), 3)
  // Garbage posted to /federation is refused and counted, not routed.
  const res = await fetch(r2.url.replace('ws', 'http') + '/federation', { method: 'POST', body: 'junk' })
  assert.equal(res.status, 400)
  assert.equal(((await res.json()) as { code: string }).code, 'RMB_MALFORMED')
  // An unknown destination is refused by the first relay already.
  const raw = await rawClient(t, r1.url, a)
  const ghost: TestTwin = { id: 4242, key: generateKey(), info: { id: 4242, account: '0x', pk: null, relays: [] } }
  raw.ws.send(envelopeFrom(a, ghost))
  await until(() => raw.notices.length === 1, 5000, 'notice')
  assert.equal(raw.notices[0]!.code, 'NOT_FOUND')
})

test('relay - a newer connection of the same twin session replaces the older one', async (t) => {
  const twins = makeTwins(1)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const first = await rawClient(t, relay.url, twins[0]!)
  const second = await rawClient(t, relay.url, twins[0]!)
  assert.deepEqual(await first.closed, { code: 4000, reason: 'replaced by a newer connection of the same twin session' })
  const other = await rawClient(t, relay.url, twins[0]!, { session: 5 })
  assert.equal(relay.stats().connections, 2)
  second.ws.close()
  other.ws.close()
  await until(() => relay.stats().connections === 0, 5000, 'closed')
})

test('relay - federation retries: a message for a relay that is down is held and forwarded when it returns', async (t) => {
  const base = makeTwins(2)
  const dir = directoryOf([])
  const r1 = await testRelay(t, { directory: dir, sweepEveryMs: 50, federationTimeoutMs: 1000 })
  let r2 = await startRelay({ directory: dir, port: 0 })
  const port2 = r2.port
  t.after(() => r2.close())
  const [a, b] = base as [TestTwin, TestTwin]
  a.info.relays = [r1.url]
  b.info.relays = [r2.url]
  for (const tw of base) dir.set(tw.info)
  const pa = await testPeer(t, a, dir, a.info.relays)
  const pb = await testPeer(t, b, dir, b.info.relays, { handlers: { 'test.echo': (p) => p } })
  assert.equal(await pa.request(b.id, 'test.echo', 1), 1)
  await r2.close()
  await until(() => !pb.stats().relays[0]!.open, 5000, 'b disconnected')
  const held = pa.request(b.id, 'test.echo', 2, { timeout: 20_000 })
  await until(() => r1.stats().retryMessages === 1, 5000, 'held at r1')
  r2 = await startRelay({ directory: dir, port: port2 })
  assert.equal(await held, 2)
  assert.equal(r1.stats().retryMessages, 0)
  const m1 = await metricsOf(r1.url)
  assert.ok((m1.get('zos_relay_federation_total{result="failed"}') ?? 0) >= 1)
})

test('relay - a handler that outlives its request gives its slot back', async (t) => {
  const twins = makeTwins(2)
  const dir = directoryOf(twins)
  const relay = await testRelay(t, { directory: dir })
  const [a, b] = twins as [TestTwin, TestTwin]
  const pa = await testPeer(t, a, dir, [relay.url])
  let release: () => void = () => undefined
  const stuck = new Promise<void>((r) => (release = r))
  t.after(() => release())
  await testPeer(t, b, dir, [relay.url], { maxConcurrentHandlers: 1, handlers: { 'test.hang': () => stuck, 'test.echo': (p) => p } })
  await assert.rejects(pa.request(b.id, 'test.hang', null, { timeout: 200 }), code('TIMEOUT'))
  assert.equal(await pa.request(b.id, 'test.echo', 'free'), 'free')
})
