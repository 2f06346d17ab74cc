import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join, relative } from 'node:path'
import { DirStore } from '../../src/store/dir.js'
import { HttpStore } from '../../src/store/http.js'
import { openStore, openWritableStore, parseStoreUrl, redact } from '../../src/store/open.js'
import { tempDir } from '../helpers/tmp.js'
import { buildPack } from './fixtures.js'

test('open - URL forms', () => {
  assert.deepEqual(parseStoreUrl('dir:///srv/store'), { kind: 'dir', path: '/srv/store' })
  assert.deepEqual(parseStoreUrl('dir://rel/store'), { kind: 'dir', path: 'rel/store' })
  assert.deepEqual(parseStoreUrl('/srv/store'), { kind: 'dir', path: '/srv/store' })
  assert.deepEqual(parseStoreUrl('./store'), { kind: 'dir', path: './store' })
  assert.deepEqual(parseStoreUrl('https://hub.example/x'), { kind: 'http', url: 'https://hub.example/x' })
  assert.deepEqual(parseStoreUrl('HTTP://hub'), { kind: 'http', url: 'HTTP://hub' })
  for (const bad of ['', 'dir://', 'dir:/x', 'zdb://host:9900/ns', 's3://u:p@bucket']) {
    assert.throws(() => parseStoreUrl(bad), { code: 'INVALID_ARGUMENT' }, bad)
  }
  assert.throws(() => parseStoreUrl('zdb://h'), (err: Error) => /dir:\/\/, http:\/\/, https:\/\//.test(err.message))
  assert.throws(() => parseStoreUrl('s3://u:secret@bucket'), (err: Error) => !err.message.includes('secret'))
  assert.equal(redact('https://u:p@h/x'), 'https://h/x')
})

test('open - dir stores: writable creates, read-only needs the directory; relative paths', async (t) => {
  const base = await tempDir(t)
  const abs = join(base, 'a', 'b')
  await assert.rejects(openStore(`dir://${abs}`), { code: 'NOT_FOUND' })
  const w = await openWritableStore(`dir://${abs}`)
  assert.ok(w instanceof DirStore)
  assert.equal(w.url, `dir://${abs}`)
  assert.ok(existsSync(join(abs, 'packs')))
  const p = buildPack(2, 50)
  await w.putPack(p.id, p.data, p.chunks)
  await w.close()
  const rel = relative(process.cwd(), abs)
  for (const url of [`dir://${rel}`, rel, abs]) {
    const r = await openStore(url)
    assert.equal(r.url, `dir://${abs}`)
    assert.deepEqual((await r.readRanges([p.chunks[1]!]))[0], p.data.subarray(50))
    await r.close()
  }
})

test('open - http stores are read-only and lose their credentials', async () => {
  const s = await openStore('https://user:pw@hub.example:8443/store/', { http: { retries: 0 } })
  assert.ok(s instanceof HttpStore)
  assert.equal(s.url, 'https://hub.example:8443/store')
  assert.equal(s.writable, false)
  await s.close()
  await assert.rejects(openWritableStore('https://user:pw@hub.example/'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_READONLY')
    assert.ok(!err.message.includes('pw'))
    return true
  })
})
