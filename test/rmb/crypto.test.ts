import { test } from 'node:test'
import assert from 'node:assert/strict'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { domainDigest, generateKey, signDomain } from '../../src/core/keys.js'
import { ENVELOPE_DOMAIN, Opener, SEAL_OVERHEAD, Sealer, Signer, TOKEN_DOMAIN, compressPublicKey, verifySignature } from '../../src/rmb/crypto.js'

const N = secp256k1.Point.CURVE().n

test('crypto - signatures are low-s ECDSA over domainDigest, checked by noble too, and bound to their domain', () => {
  const key = generateKey()
  const signer = new Signer(key)
  const pub = key.publicKey
  for (let i = 0; i < 20; i++) {
    const msg = Buffer.from(`message ${i}`)
    const sig = signer.sign(ENVELOPE_DOMAIN, msg)
    assert.equal(sig.length, 64)
    assert.ok(BigInt('0x' + sig.subarray(32).toString('hex')) <= N >> 1n, 'low s')
    assert.ok(verifySignature(pub, ENVELOPE_DOMAIN, msg, sig))
    assert.ok(secp256k1.verify(sig, domainDigest(ENVELOPE_DOMAIN, msg), key.publicKey, { prehash: false }), 'noble agrees')
    assert.equal(verifySignature(pub, TOKEN_DOMAIN, msg, sig), false, 'another domain')
    assert.equal(verifySignature(pub, ENVELOPE_DOMAIN, Buffer.from(`message ${i + 1}`), sig), false)
  }
  // keys.ts signatures (r || s || v) carry the same r || s
  const msg = Buffer.from('from keys.ts')
  assert.ok(verifySignature(pub, ENVELOPE_DOMAIN, msg, signDomain(key, ENVELOPE_DOMAIN, msg).subarray(0, 64)))
})

test('crypto - high-s forms, wrong keys and garbage never verify (and never throw)', () => {
  const key = generateKey()
  const signer = new Signer(key)
  const pub = key.publicKey
  const msg = Buffer.from('x')
  const sig = signer.sign(ENVELOPE_DOMAIN, msg)
  const s = BigInt('0x' + sig.subarray(32).toString('hex'))
  const high = Buffer.concat([sig.subarray(0, 32), Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex')])
  assert.equal(verifySignature(pub, ENVELOPE_DOMAIN, msg, high), false)
  assert.equal(verifySignature(generateKey().publicKey, ENVELOPE_DOMAIN, msg, sig), false)
  assert.equal(verifySignature(pub, ENVELOPE_DOMAIN, msg, Buffer.alloc(64)), false)
  assert.equal(verifySignature(pub, ENVELOPE_DOMAIN, msg, Buffer.alloc(64, 0x7f)), false)
  assert.equal(verifySignature(pub, ENVELOPE_DOMAIN, msg, sig.subarray(0, 63)), false)
})

test('crypto - compressPublicKey accepts 33/65-byte points and rejects others', () => {
  const key = generateKey()
  const full = Buffer.from(secp256k1.Point.fromBytes(key.publicKey).toBytes(false))
  assert.deepEqual(compressPublicKey(full), key.publicKey)
  assert.deepEqual(compressPublicKey(key.publicKey), key.publicKey)
  assert.throws(() => compressPublicKey(Buffer.concat([Buffer.of(2), Buffer.alloc(32, 0xff)])), /not a secp256k1 public key/)
  assert.throws(() => compressPublicKey(Buffer.alloc(20)), /not a secp256k1 public key/)
})

function seal(sealer: Sealer, pk: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const out = Buffer.alloc(plaintext.length + SEAL_OVERHEAD)
  sealer.seal(pk, aad, plaintext, out, 0)
  return out
}

test('crypto - sealed payloads open only for the receiver, with the same additional data, unchanged', () => {
  const bob = generateKey()
  const eve = generateKey()
  const sealer = new Sealer()
  const opener = new Opener(bob.privateKey, bob.publicKey)
  const aad = Buffer.from('header')
  const pt = Buffer.from('{"deploy":true}')
  const sealed = seal(sealer, bob.publicKey, aad, pt)
  assert.equal(sealed.length, pt.length + SEAL_OVERHEAD)
  assert.ok(!sealed.includes(pt), 'ciphertext hides the plaintext')
  assert.deepEqual(opener.open(sealed, aad), pt)
  assert.equal(new Opener(eve.privateKey, eve.publicKey).open(sealed, aad), null, 'not for eve')
  assert.equal(opener.open(sealed, Buffer.from('Header')), null, 'other additional data')
  for (const at of [0, 33, 40, 45, sealed.length - 1]) {
    const bad = Buffer.from(sealed)
    bad[at]! ^= 1
    assert.equal(opener.open(bad, aad), null, `flipped byte ${at}`)
  }
  assert.equal(opener.open(sealed.subarray(0, SEAL_OVERHEAD - 1), aad), null)
  assert.deepEqual(opener.open(seal(sealer, bob.publicKey, aad, Buffer.alloc(0)), aad), Buffer.alloc(0), 'empty payload')
})

test('crypto - a sealer never reuses a nonce under one key and rotates its ephemeral key', () => {
  const bob = generateKey()
  const sealer = new Sealer()
  const a = seal(sealer, bob.publicKey, Buffer.alloc(0), Buffer.from('a'))
  const b = seal(sealer, bob.publicKey, Buffer.alloc(0), Buffer.from('a'))
  assert.deepEqual(a.subarray(0, 33), b.subarray(0, 33), 'same ephemeral key within a session')
  assert.notDeepEqual(a.subarray(33, 45), b.subarray(33, 45), 'different nonces')
  const rotating = new Sealer({ rotateAfterMs: -1 })
  const c = seal(rotating, bob.publicKey, Buffer.alloc(0), Buffer.from('a'))
  const d = seal(rotating, bob.publicKey, Buffer.alloc(0), Buffer.from('a'))
  assert.notDeepEqual(c.subarray(0, 33), d.subarray(0, 33))
  const opener = new Opener(bob.privateKey, bob.publicKey)
  for (const x of [a, b, c, d]) assert.deepEqual(opener.open(x, Buffer.alloc(0)), Buffer.from('a'))
})
