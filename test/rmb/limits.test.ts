// The bounded helpers of the relay: replay window, rate limiter, stream assembler, relay queue, backoff, metrics.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Backoff } from '../../src/rmb/backoff.js'
import type { EnvelopeHeader } from '../../src/rmb/envelope.js'
import { Metrics, parseMetrics } from '../../src/rmb/metrics.js'
import { RateLimiter } from '../../src/rmb/rate-limit.js'
import { MessageQueue } from '../../src/rmb/relay-queue.js'
import { ReplayWindow } from '../../src/rmb/replay.js'
import { StreamAssembler, splitPayload } from '../../src/rmb/stream.js'

test('replay - seen ids are refused until they expire; when full the floor rises to the forgotten timestamps', () => {
  const w = new ReplayWindow({ maxEntries: 3, sweepEveryMs: 0 })
  w.add('a', 100, 1000, 0)
  assert.ok(w.rejects('a', 100))
  assert.ok(!w.rejects('b', 101))
  w.add('b', 101, 1000, 0)
  w.add('c', 102, 1000, 0)
  w.add('d', 150, 1000, 0) // forgets a (ts 100)
  assert.equal(w.size, 3)
  assert.equal(w.floor, 100)
  assert.ok(w.rejects('a', 100), 'a forgotten, but its timestamp is at the floor')
  assert.ok(w.rejects('new', 99), 'older than the floor')
  assert.ok(!w.rejects('new', 120))
  w.sweep(2000)
  assert.equal(w.size, 0, 'expired ids are swept')
})

test('rate limit - a key bursts, is refused, refills at the sustained rate; bytes are limited too; keys are independent', () => {
  const r = new RateLimiter({ messagesPerSecond: 10, burstMessages: 3, bytesPerSecond: 1000, burstBytes: 1000 })
  const t0 = 1_000_000
  assert.ok(r.take('a', 10, t0) && r.take('a', 10, t0) && r.take('a', 10, t0))
  assert.equal(r.take('a', 10, t0), false)
  assert.ok(r.take('b', 10, t0), 'another key')
  assert.ok(r.take('a', 10, t0 + 100), 'one message refilled after 100 ms')
  assert.equal(r.take('a', 10, t0 + 100), false)
  assert.equal(r.take('c', 1001, t0), false, 'over the byte burst')
  const small = new RateLimiter({ messagesPerSecond: 1, burstMessages: 1 }, 2)
  small.take('x', 1, 0)
  small.take('y', 1, 0)
  small.take('z', 1, 0)
  assert.ok(small.size <= 2, 'table bounded')
})

function piece(index: number, count: number, over: Partial<EnvelopeHeader> = {}): EnvelopeHeader {
  return {
    kind: 'request',
    id: Buffer.alloc(16, index),
    from: 1,
    fromSession: 0,
    to: 2,
    toSession: 0,
    timestamp: 1000,
    ttl: 1000,
    command: 'c',
    replyTo: null,
    stream: { id: Buffer.alloc(16, 0xee), index, count },
    binary: true,
    ...over,
  }
}

test('stream - pieces in any order reassemble once; bounds and inconsistent pieces drop the stream', () => {
  const data = Buffer.from('abcdefghij')
  const parts = splitPayload(data, 4)
  assert.deepEqual(parts.map(String), ['abcd', 'efgh', 'ij'])
  const a = new StreamAssembler()
  assert.equal(a.add(piece(2, 3), parts[2]!).state, 'partial')
  assert.equal(a.add(piece(0, 3), parts[0]!).state, 'partial')
  assert.equal(a.add(piece(0, 3), parts[0]!).state, 'partial', 'duplicate ignored')
  const done = a.add(piece(1, 3), parts[1]!)
  assert.equal(done.state, 'complete')
  assert.deepEqual(done.state === 'complete' && done.message.payload, data)
  assert.equal(a.streams, 0)
  assert.equal(a.bytes, 0)

  const small = new StreamAssembler({ maxStreamBytes: 5 })
  small.add(piece(0, 2), Buffer.alloc(4))
  assert.deepEqual(small.add(piece(1, 2), Buffer.alloc(4)), { state: 'dropped', reason: 'too-large' })
  assert.equal(small.bytes, 0)

  const b = new StreamAssembler()
  b.add(piece(0, 2), Buffer.alloc(1))
  assert.deepEqual(b.add(piece(1, 2, { command: 'other' }), Buffer.alloc(1)), { state: 'dropped', reason: 'inconsistent' })

  const c = new StreamAssembler({ maxStreamsPerSender: 1 })
  c.add(piece(0, 2), Buffer.alloc(1))
  assert.deepEqual(c.add({ ...piece(0, 2), stream: { id: Buffer.alloc(16, 1), index: 0, count: 2 } }, Buffer.alloc(1)), { state: 'dropped', reason: 'too-large' })
  assert.equal(c.sweep(1500), 0)
  assert.equal(c.sweep(2001), 1, 'expired stream swept')
  assert.equal(c.streams, 0)
})

test('relay queue - bounded per key and overall, expires, returns items oldest first', () => {
  const q = new MessageQueue({ maxMessagesPerKey: 2, maxBytesPerKey: 100, maxBytes: 150 })
  const item = (n: number, exp = 1000) => ({ bytes: Buffer.alloc(n), expiresAt: exp, id: String(n), from: 1, fromSession: 0 })
  assert.ok(q.push('a', item(10)))
  assert.ok(q.push('a', item(20, 5)))
  assert.equal(q.push('a', item(1)), false, 'per-key count')
  assert.equal(q.push('b', item(101)), false, 'per-key bytes')
  assert.ok(q.push('b', item(100)))
  assert.equal(q.push('c', item(30)), false, 'overall bytes')
  assert.equal(q.messages, 3)
  assert.equal(q.sweep(10).length, 1)
  assert.equal(q.bytes, 110)
  assert.deepEqual(q.take('a').map((x) => x.id), ['10'])
  assert.deepEqual(q.take('a'), [])
  assert.deepEqual(q.unshift('b', [item(60)]).map((x) => x.id), ['100'], 'what no longer fits is returned')
  assert.deepEqual(q.keys(), ['b'])
})

test('backoff - grows to the maximum with jitter and resets', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 })
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000])
  b.reset()
  assert.equal(b.next(), 100)
  const j = new Backoff({ initialMs: 100, jitter: 0.5 })
  const v = j.next()
  assert.ok(v >= 50 && v <= 100)
})

test('metrics - counters and gauges render in the Prometheus text format and parse back', () => {
  const m = new Metrics()
  const c = m.counter<'a' | 'b"x'>('zos_test_total', 'A test counter.', 'reason')
  c.inc('a')
  c.inc('a', 2)
  c.inc('b"x')
  m.counter('zos_plain_total', 'Unlabelled.')
  m.gauge('zos_gauge', 'A gauge.', () => 7)
  const text = m.render()
  assert.match(text, /# TYPE zos_test_total counter\nzos_test_total\{reason="a"\} 3\nzos_test_total\{reason="b\\"x"\} 1/)
  assert.match(text, /zos_plain_total 0/)
  const parsed = parseMetrics(text)
  assert.equal(parsed.get('zos_test_total{reason="a"}'), 3)
  assert.equal(parsed.get('zos_gauge'), 7)
  assert.deepEqual(c.toJSON(), { a: 3, 'b"x': 1 })
})
