import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKey } from '../../src/core/keys.js'
import { Signer } from '../../src/rmb/crypto.js'
import { checkToken, createToken, decodeToken } from '../../src/rmb/token.js'
import { code } from './helpers.js'

const key = generateKey()
const signer = new Signer(key)
const pub = key.publicKey

test('token - a fresh token decodes to its claims and checks against the twin key', () => {
  const now = 1_700_000_000_000
  const text = createToken(signer, { twin: 12, session: 3, now })
  assert.match(text, /^[A-Za-z0-9_-]+$/)
  const t = decodeToken(text)
  assert.deepEqual({ twin: t.twin, session: t.session, issuedAt: t.issuedAt, expiresAt: t.expiresAt }, { twin: 12, session: 3, issuedAt: 1_700_000_000, expiresAt: 1_700_000_060 })
  checkToken(t, pub, now + 30_000, 0)
})

test('token - expired, future, over-long, foreign-key and malformed tokens are refused with the reason', () => {
  const now = 1_700_000_000_000
  const t = decodeToken(createToken(signer, { twin: 1, session: 0, now }))
  assert.throws(() => checkToken(t, pub, now + 120_000, 10_000), /expired/)
  assert.throws(() => checkToken(t, pub, now - 120_000, 10_000), /in the future/)
  assert.throws(() => checkToken(decodeToken(createToken(signer, { twin: 1, session: 0, now, lifetimeS: 3600 })), pub, now, 0), /lifetime/)
  assert.throws(() => checkToken(t, generateKey().publicKey, now, 0), /not signed by twin 1/)
  const raw = Buffer.from(createToken(signer, { twin: 1, session: 0, now }), 'base64url')
  raw[raw.length - 1]! ^= 1
  assert.throws(() => checkToken(decodeToken(raw.toString('base64url')), pub, now, 0), code('RMB_UNREACHABLE'))
  assert.throws(() => decodeToken('not base64!'), code('RMB_MALFORMED'))
  assert.throws(() => decodeToken('A'.repeat(600)), code('RMB_MALFORMED'))
  assert.throws(() => decodeToken(Buffer.from([2, 0, 1, 0, 1, 2]).toString('base64url')), /version 2/)
  assert.throws(() => decodeToken(Buffer.from([1, 0, 1]).toString('base64url')), code('RMB_MALFORMED'))
  assert.throws(() => decodeToken(Buffer.concat([raw, Buffer.of(0)]).toString('base64url')), /trailing/)
})
