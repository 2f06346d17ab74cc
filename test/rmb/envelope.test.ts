import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ZosError } from '../../src/core/errors.js'
import { generateKey } from '../../src/core/keys.js'
import { ENVELOPE_DOMAIN, Opener, SEAL_OVERHEAD, Sealer, Signer, verifySignature } from '../../src/rmb/crypto.js'
import { newState } from '../../src/rmb/encoding.js'
import { MAX_ENVELOPE_BYTES, decodeEnvelope, header, sealEnvelope, type EnvelopeHeader } from '../../src/rmb/envelope.js'
import { code } from './helpers.js'

const alice = generateKey()
const bob = generateKey()
const signer = new Signer(alice)
const sealer = new Sealer()

function h(over: Partial<EnvelopeHeader> = {}): EnvelopeHeader {
  return {
    kind: 'request',
    id: Buffer.alloc(16, 0xaa),
    from: 7,
    fromSession: 0,
    to: 300,
    toSession: 70_000,
    timestamp: 1_700_000_000_000,
    ttl: 30_000,
    command: 'zos.deployment.get',
    replyTo: null,
    stream: null,
    binary: false,
    ...over,
  }
}

test('envelope - header bytes are exactly the documented layout', () => {
  const s = newState()
  const v = h({ kind: 'response', replyTo: Buffer.alloc(16, 0xbb), stream: { id: Buffer.alloc(16, 0xcc), index: 1, count: 3 }, binary: true })
  header.preencode(s, v)
  s.buffer = Buffer.alloc(s.end)
  header.encode(s, v)
  const expected = Buffer.concat([
    Buffer.from([1, 0x07, 2]), // version, flags (reply-to | stream | binary), kind response
    Buffer.alloc(16, 0xaa), // id
    Buffer.from([7, 0]), // from, fromSession
    Buffer.from('fd2c01', 'hex'), // to 300
    Buffer.from('fe70110100', 'hex'), // toSession 70000
    Buffer.from('ff' + Buffer.from(new BigUint64Array([1_700_000_000_000n]).buffer).toString('hex'), 'hex'), // timestamp
    Buffer.from('fd3075', 'hex'), // ttl 30000
    Buffer.from([18]),
    Buffer.from('zos.deployment.get'),
    Buffer.alloc(16, 0xbb), // replyTo
    Buffer.alloc(16, 0xcc), // stream id
    Buffer.from([1, 3]), // index, count
  ])
  assert.deepEqual(s.buffer, expected)
  const back = header.decode(newState(s.buffer))
  assert.deepEqual(back, v)
})

test('envelope - seal, decode, open and verify round trip; the header is the GCM additional data', () => {
  const pt = Buffer.from(JSON.stringify({ contract_id: 42 }))
  const raw = sealEnvelope(h(), pt, bob.publicKey, sealer, signer)
  const env = decodeEnvelope(raw)
  assert.equal(env.command, 'zos.deployment.get')
  assert.equal(env.payload.length, pt.length + SEAL_OVERHEAD)
  assert.equal(raw.length, env.bodyEnd + 64)
  assert.ok(verifySignature(alice.publicKey, ENVELOPE_DOMAIN, raw.subarray(0, env.bodyEnd), env.signature))
  const opener = new Opener(bob.privateKey, bob.publicKey)
  assert.deepEqual(opener.open(env.payload, raw.subarray(0, env.headerEnd)), pt)
  // Changing any header byte (here: the destination session) breaks decryption.
  const moved = Buffer.from(raw)
  moved[22]! ^= 1
  const env2 = decodeEnvelope(moved)
  assert.equal(opener.open(env2.payload, moved.subarray(0, env2.headerEnd)), null)
})

test('envelope - every truncation and every single-byte change decodes or fails with RMB_MALFORMED, nothing else', () => {
  const raw = sealEnvelope(h({ kind: 'error', replyTo: Buffer.alloc(16, 1) }), Buffer.from('{}'), bob.publicKey, sealer, signer)
  for (let n = 0; n < raw.length; n++) assert.throws(() => decodeEnvelope(raw.subarray(0, n)), code('RMB_MALFORMED'), `truncated to ${n}`)
  assert.throws(() => decodeEnvelope(Buffer.concat([raw, Buffer.of(0)])), /trailing/)
  for (let i = 0; i < raw.length; i++) {
    for (const x of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(raw)
      bad[i]! ^= x
      try {
        decodeEnvelope(bad)
      } catch (err) {
        assert.ok(ZosError.is(err) && err.code === 'RMB_MALFORMED', `byte ${i}: ${String(err)}`)
      }
    }
  }
})

test('envelope - random bytes never throw anything but RMB_MALFORMED', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        decodeEnvelope(Buffer.from(bytes))
      } catch (err) {
        assert.ok(ZosError.is(err) && err.code === 'RMB_MALFORMED', String(err))
      }
    }),
    { numRuns: 2000 },
  )
})

test('envelope - decoding names the field that is out of bounds', () => {
  const raw = sealEnvelope(h(), Buffer.from('1'), bob.publicKey, sealer, signer)
  const v2 = Buffer.from(raw)
  v2[0] = 2
  assert.throws(() => decodeEnvelope(v2), /envelope version 2 is not supported/)
  const flags = Buffer.from(raw)
  flags[1] = 0x40
  assert.throws(() => decodeEnvelope(flags), /envelope flags 0x40 has unknown bits/)
  const kind = Buffer.from(raw)
  kind[2] = 9
  assert.throws(() => decodeEnvelope(kind), /envelope kind/)
  const replyInRequest = Buffer.from(raw)
  replyInRequest[1] = 0x01
  assert.throws(() => decodeEnvelope(replyInRequest), /envelope replyTo is not allowed in a request/)
  const zeroTwin = Buffer.from(raw)
  zeroTwin[19] = 0
  assert.throws(() => decodeEnvelope(zeroTwin), /envelope from twin 0 is out of range/)
  assert.throws(() => decodeEnvelope(Buffer.alloc(MAX_ENVELOPE_BYTES + 1)), /above the limit/)
})

test('envelope - building checks every field and names it', () => {
  const build = (over: Partial<EnvelopeHeader>) => () => sealEnvelope(h(over), Buffer.alloc(0), bob.publicKey, sealer, signer)
  assert.throws(build({ command: 'has space' }), /envelope command/)
  assert.throws(build({ command: '' }), /envelope command/)
  assert.throws(build({ command: 'x'.repeat(129) }), /envelope command/)
  assert.throws(build({ to: 0 }), /envelope to must be/)
  assert.throws(build({ ttl: 0 }), /envelope ttl/)
  assert.throws(build({ ttl: 25 * 3600 * 1000 }), /envelope ttl/)
  assert.throws(build({ kind: 'response' }), /envelope replyTo is required/)
  assert.throws(build({ replyTo: Buffer.alloc(16) }), /envelope replyTo must be absent/)
  assert.throws(build({ stream: { id: Buffer.alloc(16), index: 2, count: 2 } }), /stream.index/)
  assert.throws(build({ stream: { id: Buffer.alloc(16), index: 0, count: 1 } }), /stream.count/)
  assert.throws(() => sealEnvelope(h(), Buffer.alloc(1024 * 1024 + 1), bob.publicKey, sealer, signer), /send it as a stream/)
})
