// The peer's edge, fed by a relay under the test's control (a compromised relay): every malformed, misrouted,
// expired, replayed, unknown-twin, tampered, forged or unsolicited message is dropped and counted by reason,
// none reaches a handler, and the peer keeps serving.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { WebSocketServer, type WebSocket } from 'ws'
import { generateKey, type KeyPair } from '../../src/core/keys.js'
import { Sealer, Signer } from '../../src/rmb/crypto.js'
import { decodeEnvelope, sealEnvelope, type EnvelopeHeader } from '../../src/rmb/envelope.js'
import { connect } from '../../src/rmb/peer.js'
import { FAST_BACKOFF, code, directoryOf, makeTwins, until, type TestTwin } from './helpers.js'

async function fakeRelay(t: TestContext): Promise<{ url: string; peerSocket: Promise<WebSocket>; fromPeer: Buffer[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(wss, 'listening')
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => resolve())
      }),
  )
  const fromPeer: Buffer[] = []
  const peerSocket = new Promise<WebSocket>((resolve) =>
    wss.once('connection', (ws) => {
      ws.on('message', (d) => fromPeer.push(d as Buffer))
      resolve(ws)
    }),
  )
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, peerSocket, fromPeer }
}

const sealer = new Sealer()

function envelope(from: TestTwin, to: TestTwin, over: Partial<EnvelopeHeader> & { signWith?: KeyPair; sealFor?: Buffer; payload?: Buffer } = {}): Buffer {
  const { signWith, sealFor, payload, ...h } = over
  const header: EnvelopeHeader = {
    kind: 'request',
    id: randomBytes(16),
    from: from.id,
    fromSession: 0,
    to: to.id,
    toSession: 0,
    timestamp: Date.now(),
    ttl: 10_000,
    command: 'test.echo',
    replyTo: null,
    stream: null,
    binary: false,
    ...h,
  }
  return sealEnvelope(header, payload ?? Buffer.from('"hello"'), sealFor ?? to.key.publicKey, sealer, new Signer(signWith ?? from.key))
}

test('peer - every kind of bad message is dropped, counted by reason, and never reaches a handler', async (t) => {
  const [alice, bob, mallory] = makeTwins(3) as [TestTwin, TestTwin, TestTwin]
  const ghost: TestTwin = { id: 99, key: generateKey(), info: { id: 99, account: '0x', pk: null, relays: [] } }
  const dir = directoryOf([alice, bob, mallory])
  const relay = await fakeRelay(t)
  const calls: unknown[] = []
  const peer = await connect({ twinId: bob.id, key: bob.key, directory: dir, relays: [relay.url], backoff: FAST_BACKOFF, handlers: { 'test.echo': (p, ctx) => (calls.push([p, ctx.twinId]), p) } })
  t.after(() => peer.close())
  const ws = await relay.peerSocket
  const send = (b: Buffer | string) => ws.send(b)

  const valid = envelope(alice, bob)
  send(valid)
  await until(() => relay.fromPeer.length === 1, 5000, 'the reply')
  const reply = decodeEnvelope(relay.fromPeer[0]!)
  assert.equal(reply.kind, 'response')
  assert.equal(reply.to, alice.id)
  assert.deepEqual(reply.replyTo, decodeEnvelope(valid).id)
  assert.deepEqual(calls, [['hello', alice.id]])

  // malformed: garbage, a truncated envelope, an unparsable relay notice
  send(Buffer.from('garbage'))
  send(valid.subarray(0, valid.length - 1))
  send('{not json')
  // misrouted: for another twin, or another session of bob
  send(envelope(alice, mallory))
  send(envelope(alice, bob, { toSession: 7 }))
  // expired
  send(envelope(alice, bob, { timestamp: Date.now() - 20_000, ttl: 10_000 }))
  // replayed: the same bytes again, or a timestamp beyond the allowed clock skew
  send(valid)
  send(envelope(alice, bob, { timestamp: Date.now() + 120_000 }))
  // from a twin the directory does not know
  send(envelope(ghost, bob))
  // tampered: a ciphertext byte, or a header byte (the GCM additional data), changed on the way
  const t1 = envelope(alice, bob)
  const env1 = decodeEnvelope(t1)
  t1[env1.headerEnd + 50]! ^= 1
  send(t1)
  const t2 = Buffer.from(envelope(alice, bob, { command: 'test.echo' }))
  const at = t2.indexOf(Buffer.from('test.echo'))
  t2[at + 5] = 'E'.charCodeAt(0) // test.Echo: still a valid command, but not what was sealed
  send(t2)
  // a payload sealed for another key
  send(envelope(alice, bob, { sealFor: mallory.key.publicKey }))
  // forged: mallory claims to be alice (valid encryption, wrong signature)
  send(envelope(alice, bob, { signWith: mallory.key }))
  // unsolicited: a response nobody asked for
  send(envelope(alice, bob, { kind: 'response', replyTo: randomBytes(16) }))

  const expected = { malformed: 3, misrouted: 2, expired: 1, replayed: 2, 'unknown-twin': 1, tampered: 3, forged: 1, unsolicited: 1 }
  const total = Object.values(expected).reduce((a, b) => a + b, 0)
  await until(() => Object.values(peer.stats().drops).reduce((a, b) => a + b, 0) >= total, 5000, 'all drops counted')
  assert.deepEqual(peer.stats().drops, expected)
  assert.equal(calls.length, 1, 'no bad message reached the handler')
  const text = peer.metrics.render()
  assert.match(text, /zos_rmb_peer_drops_total\{reason="forged"\} 1/)

  // Still serving.
  send(envelope(alice, bob, { payload: Buffer.from('"again"') }))
  await until(() => calls.length === 2, 5000, 'second call')
  assert.deepEqual(calls[1], ['again', alice.id])
})

test('peer - random frames never crash the peer', async (t) => {
  const [alice, bob] = makeTwins(2) as [TestTwin, TestTwin]
  const dir = directoryOf([alice, bob])
  const relay = await fakeRelay(t)
  let calls = 0
  const peer = await connect({ twinId: bob.id, key: bob.key, directory: dir, relays: [relay.url], handlers: { 'test.echo': (p) => (calls++, p) } })
  t.after(() => peer.close())
  const ws = await relay.peerSocket
  const valid = envelope(alice, bob)
  let sent = 0
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: valid.length - 1 }), fc.nat({ max: 255 }), (junk, pos, val) => {
      ws.send(Buffer.from(junk))
      const mutated = Buffer.from(valid)
      mutated[pos] = val === mutated[pos] ? val ^ 1 : val
      ws.send(mutated)
      sent += 2
    }),
    { numRuns: 300 },
  )
  await until(() => Object.values(peer.stats().drops).reduce((a, b) => a + b, 0) >= sent, 20_000, 'all dropped')
  assert.equal(calls, 0)
  ws.send(envelope(alice, bob))
  await until(() => calls === 1, 5000, 'a valid call after the noise')
})

test('peer - connect checks the twin, its key and its relays; requests check their arguments', async (t) => {
  const [alice, bob] = makeTwins(2) as [TestTwin, TestTwin]
  const dir = directoryOf([alice, { ...bob, info: { ...bob.info, pk: null } }])
  await assert.rejects(connect({ twinId: 5, key: alice.key, directory: dir, relays: ['ws://127.0.0.1:1'] }), code('NOT_FOUND'))
  await assert.rejects(connect({ twinId: alice.id, key: bob.key, directory: dir, relays: ['ws://127.0.0.1:1'] }), /is not twin 1's key/)
  await assert.rejects(connect({ twinId: bob.id, key: bob.key, directory: dir, relays: ['ws://127.0.0.1:1'] }), code('INVALID_STATE'))
  await assert.rejects(connect({ twinId: alice.id, key: alice.key, directory: dir }), /lists no relay/)
  await assert.rejects(connect({ twinId: 0, key: alice.key, directory: dir }), code('INVALID_ARGUMENT'))
  await assert.rejects(connect({ twinId: alice.id, key: alice.key, directory: dir, relays: ['ws://127.0.0.1:1'], connectTimeoutMs: 300 }), (err: unknown) => {
    code('RMB_UNREACHABLE')(err)
    assert.match((err as Error).message, /ws:\/\/127\.0\.0\.1:1/)
    return true
  })
  // Without waiting, requests wait in the outbox and time out when no relay comes.
  const peer = await connect({ twinId: alice.id, key: alice.key, directory: dir, relays: ['ws://127.0.0.1:1'], wait: false })
  t.after(() => peer.close())
  await assert.rejects(peer.request(alice.id, 'rmb.ping', null, { timeout: 100 }), code('TIMEOUT'))
  await assert.rejects(peer.request(bob.id, 'rmb.ping'), (err: unknown) => code('RMB_UNREACHABLE')(err) && /no encryption key/.test((err as Error).message))
  await assert.rejects(peer.request(alice.id, 'rmb.ping', null, { timeout: 0 }), code('INVALID_ARGUMENT'))
  const pending = peer.request(alice.id, 'rmb.ping', null, { timeout: 10_000 })
  await peer.close()
  await assert.rejects(pending, code('RMB_CLOSED'))
  await assert.rejects(peer.request(alice.id, 'rmb.ping'), code('RMB_CLOSED'))
})
