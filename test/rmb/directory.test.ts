import { test } from 'node:test'
import assert from 'node:assert/strict'
import { zerr } from '../../src/core/errors.js'
import { generateKey } from '../../src/core/keys.js'
import { CachingDirectory, LedgerDirectory, StaticDirectory, federationUrl, parseRelays, readTwinsFile, relayUrl, type TwinDirectory, type TwinInfo } from '../../src/rmb/directory.js'
import { tempDir } from '../helpers/tmp.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { code } from './helpers.js'

test('directory - relay addresses normalise to the URL a peer dials', () => {
  assert.equal(relayUrl('relay.grid.tf'), 'wss://relay.grid.tf')
  assert.equal(relayUrl('Relay.Grid.TF:8443'), 'wss://relay.grid.tf:8443')
  assert.equal(relayUrl('127.0.0.1:8080'), 'ws://127.0.0.1:8080')
  assert.equal(relayUrl('localhost:9'), 'ws://localhost:9')
  assert.equal(relayUrl('ws://127.0.0.1:8080/'), 'ws://127.0.0.1:8080')
  assert.equal(relayUrl('wss://r.example:443/rmb/'), 'wss://r.example/rmb')
  assert.throws(() => relayUrl('http://r.example'), /must use ws:\/\/ or wss:\/\//)
  assert.throws(() => relayUrl('ws://u:p@r.example'), /credentials/)
  assert.throws(() => relayUrl('ws://r.example/?x=1'), /query/)
  assert.throws(() => relayUrl('ws://'), code('INVALID_ARGUMENT'))
  assert.deepEqual(parseRelays('relay.grid.tf_ws://127.0.0.1:1_bad host_relay.grid.tf'), ['wss://relay.grid.tf', 'ws://127.0.0.1:1'])
  assert.deepEqual(parseRelays(''), [])
  assert.equal(federationUrl('wss://r.example/rmb'), 'https://r.example/rmb/federation')
  assert.equal(federationUrl('ws://127.0.0.1:5'), 'http://127.0.0.1:5/federation')
})

test('directory - LedgerDirectory maps ledger twins (pk compressed, unset pk is null, relays parsed)', async () => {
  const key = generateKey()
  const { secp256k1 } = await import('@noble/curves/secp256k1.js')
  const full = Buffer.from(secp256k1.Point.fromBytes(key.publicKey).toBytes(false)).toString('hex')
  const twins = {
    get: async (id: number) => {
      if (id === 1) return { id: 1, account: key.address, relay: 'ws://127.0.0.1:7_relay.example', pk: `0x${full}` as const, createdAt: 0, updatedAt: 0 }
      if (id === 2) return { id: 2, account: key.address, relay: '', pk: '0x' as const, createdAt: 0, updatedAt: 0 }
      throw zerr('NOT_FOUND', `twin ${id} does not exist`)
    },
  }
  const dir = new LedgerDirectory({ twins })
  assert.deepEqual(await dir.get(1), { id: 1, account: key.address, pk: key.publicKey, relays: ['ws://127.0.0.1:7', 'wss://relay.example'] })
  assert.equal((await dir.get(2)).pk, null)
  await assert.rejects(dir.get(3), code('NOT_FOUND'))
})

test('directory - CachingDirectory coalesces lookups, keeps answers for a while, forgets failures other than NOT_FOUND', async () => {
  let calls = 0
  let fail = false
  const info: TwinInfo = { id: 1, account: '0x', pk: null, relays: [] }
  const inner: TwinDirectory = {
    get: async (id) => {
      calls++
      await new Promise((r) => setTimeout(r, 5))
      if (fail) throw zerr('LEDGER_UNAVAILABLE', 'down')
      if (id === 1) return info
      throw zerr('NOT_FOUND', 'no such twin')
    },
  }
  const dir = new CachingDirectory(inner, { ttlMs: 50, negativeTtlMs: 50 })
  const all = await Promise.all([dir.get(1), dir.get(1), dir.get(1)])
  assert.equal(calls, 1)
  assert.ok(all.every((x) => x === info))
  await dir.get(1)
  assert.equal(calls, 1)
  await assert.rejects(dir.get(2), code('NOT_FOUND'))
  await assert.rejects(dir.get(2), code('NOT_FOUND'))
  assert.equal(calls, 2, 'NOT_FOUND is cached')
  dir.invalidate(1)
  await dir.get(1)
  assert.equal(calls, 3)
  await new Promise((r) => setTimeout(r, 60))
  fail = true
  await assert.rejects(dir.get(1), code('LEDGER_UNAVAILABLE'))
  await assert.rejects(dir.get(1), code('LEDGER_UNAVAILABLE'))
  assert.equal(calls, 5, 'outages are not cached')
  fail = false
  assert.equal(await dir.get(1), info)
})

test('directory - twins files are validated and loaded into a StaticDirectory', async (t) => {
  const dir = await tempDir(t)
  const key = generateKey()
  const good = join(dir, 'twins.json')
  await writeFile(good, JSON.stringify([{ id: 5, pk: key.publicKey.toString('hex'), relay: '127.0.0.1:1' }]))
  const s = await readTwinsFile(good)
  assert.deepEqual(await s.get(5), { id: 5, account: '0x0000000000000000000000000000000000000000', pk: key.publicKey, relays: ['ws://127.0.0.1:1'] })
  await assert.rejects(s.get(6), code('NOT_FOUND'))
  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify([{ id: 0, pk: 'zz' }]))
  await assert.rejects(readTwinsFile(bad), /twins file .*bad.json: 0.id/)
  await assert.rejects(readTwinsFile(join(dir, 'missing.json')), code('INVALID_ARGUMENT'))
  assert.ok(new StaticDirectory().list().length === 0)
})
