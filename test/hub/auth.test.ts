import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as ecc from 'tiny-secp256k1'
import { domainDigest, generateKey } from '../../src/core/keys.js'
import { AddressDirectory, createToken, LedgerDirectory, ReplayCache, sha256Hex, TOKEN_DOMAIN, verifyToken } from '../../src/hub/auth.js'

const key = generateKey()
const req = { method: 'PUT', path: '/api/v1/packs/' + 'a'.repeat(64) }
const bodyHash = sha256Hex('body')

test('auth - a token verifies for its request and names its signer', () => {
  const t = verifyToken(createToken(key, { ...req, bodyHash }), req)
  assert.equal(t.address, key.address)
  assert.equal(t.claims.b, bodyHash)
  assert.equal(t.claims.m, 'PUT')
})

test('auth - refusals: missing, malformed, other request, expired, too long, forged, replayed', () => {
  const refuse = (header: string | undefined, r = req, now?: number): void => assert.throws(() => verifyToken(header, r, now), { code: 'HUB_AUTH' })
  refuse(undefined)
  refuse('Bearer abc')
  refuse('ZosHub !!!.???')
  refuse(`ZosHub ${Buffer.from('{"v":1}').toString('base64url')}.AAAA`)
  const good = createToken(key, { ...req, bodyHash })
  refuse(good, { method: 'POST', path: req.path })
  refuse(good, { method: 'PUT', path: req.path + '?x=1' })
  refuse(createToken(key, { ...req, bodyHash, now: Date.now() - 10 * 60_000 }))
  refuse(createToken(key, { ...req, bodyHash, lifetimeS: 3600 }))
  // Another key's signature over the same payload.
  const [payload] = good.slice('ZosHub '.length).split('.')
  const other = Buffer.from(ecc.sign(domainDigest(TOKEN_DOMAIN, Buffer.from(payload!, 'base64url')), generateKey().privateKey)).toString('base64url')
  refuse(`ZosHub ${payload}.${other}`)
  // Claims changed after signing.
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>
  claims.p = '/api/v1/other'
  refuse(`ZosHub ${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${good.split('.')[1]}`, { method: 'PUT', path: '/api/v1/other' })
  const replay = new ReplayCache()
  const t = verifyToken(good, req)
  replay.use(t.claims.n, t.claims.e)
  assert.throws(() => replay.use(t.claims.n, t.claims.e), { code: 'HUB_AUTH', message: /already used/ })
})

test('auth - directories: address mode, and ledger mode through a twin lookup (cached)', async () => {
  const addr = await new AddressDirectory().identify(key.address)
  assert.deepEqual(addr, { ns: key.address.toLowerCase(), address: key.address })
  let calls = 0
  const dir = new LedgerDirectory({
    byAccount: async (a) => {
      calls++
      return a === key.address ? { id: 42 } : null
    },
  })
  assert.deepEqual(await dir.identify(key.address), { ns: '42', address: key.address, twin: 42 })
  await dir.identify(key.address)
  assert.equal(calls, 1)
  await assert.rejects(dir.identify(generateKey().address), { code: 'HUB_AUTH', message: /no twin/ })
  const broken = new LedgerDirectory({ byAccount: async () => Promise.reject(new Error('rpc down')) })
  await assert.rejects(broken.identify(key.address), { code: 'HUB_UNAVAILABLE' })
})
