import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { decodeChunk } from '../../src/flist/codec.js'
import { DirStore, packPath } from '../../src/store/dir.js'
import { tempDir } from '../helpers/tmp.js'
import { buildPack } from './fixtures.js'

async function newStore(t: TestContext): Promise<DirStore> {
  const root = join(await tempDir(t), 'store')
  const s = await DirStore.open(root, { create: true })
  t.after(() => s.close())
  return s
}

test('dir store - put then read whole chunks and sub-ranges', async (t) => {
  const s = await newStore(t)
  const p = buildPack(8, 1000)
  await s.putPack(p.id, p.data, p.chunks)
  assert.deepEqual(await readFile(packPath(s.root, p.id)), p.data)
  const bufs = await s.readRanges([p.chunks[3]!, { pack: p.id, offset: 10, length: 5 }, p.chunks[0]!, { pack: p.id, offset: 0, length: 0 }])
  assert.deepEqual(bufs[0], p.data.subarray(3000, 4000))
  assert.deepEqual(bufs[1], p.data.subarray(10, 15))
  assert.deepEqual(bufs[2], p.data.subarray(0, 1000))
  assert.equal(bufs[3]!.length, 0)
  assert.equal(await s.statPack(p.id), p.data.length)
  assert.equal(await s.statPack('0'.repeat(64)), undefined)
})

test('dir store - multi-pack, coalesced and out-of-order reads return buffers in the order asked', async (t) => {
  const s = await newStore(t)
  const a = buildPack(50, 700)
  const b = buildPack(30, 300)
  await s.putPack(a.id, a.data, a.chunks)
  await s.putPack(b.id, b.data, b.chunks)
  const wanted = [...a.chunks.filter((_, i) => i % 3 !== 1), ...b.chunks].sort(() => Math.random() - 0.5)
  const bufs = await s.readRanges(wanted)
  wanted.forEach((r, i) => {
    const src = r.pack === a.id ? a.data : b.data
    assert.deepEqual(bufs[i], src.subarray(r.offset, r.offset + r.length))
  })
})

test('dir store - chunks read as one multi-range span are views of it, and decoded they no longer pin it', async (t) => {
  const s = await newStore(t)
  const p = buildPack(20, 10000)
  await s.putPack(p.id, p.data, p.chunks)
  const bufs = await s.readRanges(p.chunks)
  bufs.forEach((b, i) => assert.deepEqual(b, p.data.subarray(i * 10000, (i + 1) * 10000)))
  for (const [i, b] of bufs.entries()) {
    const c = p.chunks[i]!
    const plain = decodeChunk({ data: b, codec: c.codec, size: c.size, sid: c.sid })
    assert.ok(plain.buffer.byteLength < 200000, `decoded chunk of ${plain.length} bytes backed by ${plain.buffer.byteLength}`)
  }
})

test('dir store - a missing pack or a read past its end is CHUNK_MISSING naming pack and offset', async (t) => {
  const s = await newStore(t)
  const p = buildPack(2, 100)
  await s.putPack(p.id, p.data, p.chunks)
  const ghost = 'f'.repeat(64)
  await assert.rejects(s.readRanges([{ pack: ghost, offset: 42, length: 1 }]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CHUNK_MISSING')
    assert.match(err.message, new RegExp(`${ghost}.*offset 42`))
    return true
  })
  await assert.rejects(s.readRanges([{ pack: p.id, offset: 150, length: 100 }]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CHUNK_MISSING')
    assert.match(err.message, new RegExp(`${p.id}.*ends at byte 200.*offset 150`))
    return true
  })
  await assert.rejects(s.readRanges([{ pack: 'XYZ', offset: 0, length: 1 }]), { code: 'INVALID_ARGUMENT' })
})

test('dir store - lookups return only stored chunks, with codec and base', async (t) => {
  const s = await newStore(t)
  const p = buildPack(3, 64)
  const chunks = p.chunks.map((c, i) => (i === 2 ? { ...c, codec: 3, base: p.chunks[0]!.sid } : c))
  await s.putPack(p.id, p.data, chunks)
  const absent = '1'.repeat(64)
  const found = await s.lookupChunks([chunks[0]!.sid, absent, chunks[2]!.sid, chunks[0]!.sid])
  assert.equal(found.size, 2)
  assert.deepEqual(found.get(chunks[0]!.sid), chunks[0])
  assert.deepEqual(found.get(chunks[2]!.sid), chunks[2])
  assert.equal(found.has(absent), false)
  // Many sids at once (several SQL batches).
  const many = await s.lookupChunks([...Array.from({ length: 1200 }, (_, i) => i.toString(16).padStart(64, '0')), chunks[1]!.sid])
  assert.deepEqual([...many.keys()], [chunks[1]!.sid])
})

test('dir store - putPack is idempotent and a chunk keeps its first location', async (t) => {
  const s = await newStore(t)
  const p = buildPack(4, 128)
  await s.putPack(p.id, p.data, p.chunks)
  await s.putPack(p.id, p.data, p.chunks)
  assert.deepEqual(await s.stats(), { packs: 1, bytes: 512, chunks: 4 })
  // A second pack holding a copy of chunk 0: the index keeps the first location.
  const data2 = Buffer.concat([p.data.subarray(0, 128), Buffer.from('tail')])
  const id2 = (await import('./fixtures.js')).sha256hex(data2)
  await s.putPack(id2, data2, [{ ...p.chunks[0]!, pack: id2 }])
  assert.equal((await s.lookupChunks([p.chunks[0]!.sid])).get(p.chunks[0]!.sid)!.pack, p.id)
  assert.deepEqual(await s.stats(), { packs: 2, bytes: 512 + 132, chunks: 4 })
})

test('dir store - a digest the caller computed replaces only the hash: the packer names its packs itself', async (t) => {
  const s = await newStore(t)
  const p = buildPack(4, 500)
  await s.putPack(p.id, p.data, p.chunks, { sha256: p.id })
  assert.deepEqual(await readFile(packPath(s.root, p.id)), p.data)
  assert.equal((await s.lookupChunks([p.chunks[2]!.sid])).get(p.chunks[2]!.sid)!.offset, 1000)
  // Everything else is still checked.
  await assert.rejects(s.putPack('X'.repeat(64), p.data, p.chunks, { sha256: p.id }), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(s.putPack(p.id, p.data, p.chunks, { sha256: '0'.repeat(64) }), { code: 'CHUNK_TAMPERED' })
  await assert.rejects(s.putPack(p.id, p.data, [{ ...p.chunks[1]!, offset: 1900 }], { sha256: p.id }), { code: 'INVALID_ARGUMENT' })
})

test('dir store - a wrong hash is refused with CHUNK_TAMPERED and nothing is written', async (t) => {
  const s = await newStore(t)
  const p = buildPack(2, 100)
  const bad = Buffer.from(p.data)
  bad[7]! ^= 1
  await assert.rejects(s.putPack(p.id, bad, p.chunks), { code: 'CHUNK_TAMPERED' })
  assert.equal(await s.statPack(p.id), undefined)
  assert.deepEqual(await readdir(join(s.root, 'packs')), [])
  assert.deepEqual(await s.stats(), { packs: 0, bytes: 0, chunks: 0 })
  // Chunks outside the pack or naming another pack are refused before anything is written too.
  await assert.rejects(s.putPack(p.id, p.data, [{ ...p.chunks[1]!, offset: 150 }]), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(s.putPack(p.id, p.data, [{ ...p.chunks[1]!, pack: 'e'.repeat(64) }]), { code: 'INVALID_ARGUMENT' })
  assert.equal(await s.statPack(p.id), undefined)
})

test('dir store - leftover temp files and packs without index rows are harmless', async (t) => {
  const s = await newStore(t)
  const p = buildPack(3, 100)
  // A crash after writing the temp file: the pack is not visible, and putPack still works afterwards.
  const dir = join(s.root, 'packs', p.id.slice(0, 2))
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, `.${p.id}.999.abc.tmp`), p.data.subarray(0, 50))
  assert.equal(await s.statPack(p.id), undefined)
  await assert.rejects(s.readRanges([p.chunks[0]!]), { code: 'CHUNK_MISSING' })
  assert.equal((await s.lookupChunks([p.chunks[0]!.sid])).size, 0)
  await s.putPack(p.id, p.data, p.chunks)
  assert.deepEqual((await s.readRanges([p.chunks[2]!]))[0], p.data.subarray(200, 300))
  // A pack file present but truncated (e.g. copied in by hand): putPack rewrites it.
  const q = buildPack(2, 100)
  await mkdir(join(s.root, 'packs', q.id.slice(0, 2)), { recursive: true })
  await writeFile(packPath(s.root, q.id), q.data.subarray(0, 10))
  await s.putPack(q.id, q.data, q.chunks)
  assert.deepEqual(await readFile(packPath(s.root, q.id)), q.data)
})

test('dir store - path hints round-trip and are replaced', async (t) => {
  const s = await newStore(t)
  assert.equal(await s.getPathHint('usr/bin/x'), undefined)
  await s.setPathHints(new Map([['usr/bin/x', ['aa', 'bb']], ['etc/y', []]]))
  assert.deepEqual(await s.getPathHint('usr/bin/x'), ['aa', 'bb'])
  assert.deepEqual(await s.getPathHint('etc/y'), [])
  await s.setPathHints(new Map([['usr/bin/x', ['cc']]]))
  assert.deepEqual(await s.getPathHint('usr/bin/x'), ['cc'])
  await assert.rejects(s.setPathHints(new Map([['k', [1 as unknown as string]]])), { code: 'INVALID_ARGUMENT' })
})

test('dir store - index schema, reopen, close twice, use after close', async (t) => {
  const root = join(await tempDir(t), 's')
  const s = await DirStore.open(root, { create: true })
  const p = buildPack(2, 10)
  await s.putPack(p.id, p.data, p.chunks)
  await s.close()
  await s.close()
  await assert.rejects(s.readRanges([p.chunks[0]!]), { code: 'STORE_UNAVAILABLE' })
  const db = new Database(join(root, 'index.db'))
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  assert.equal(db.pragma('user_version', { simple: true }), 1)
  db.pragma('user_version = 99')
  db.close()
  const again = await DirStore.open(root)
  t.after(() => again.close())
  assert.deepEqual((await again.readRanges([p.chunks[1]!]))[0], p.data.subarray(10, 20)) // reads need no index
  await assert.rejects(again.stats(), { code: 'UNSUPPORTED' })
})

test('dir store - opening a missing directory without create is NOT_FOUND; a file is INVALID_ARGUMENT', async (t) => {
  const dir = await tempDir(t)
  await assert.rejects(DirStore.open(join(dir, 'nope')), { code: 'NOT_FOUND' })
  await writeFile(join(dir, 'file'), 'x')
  await assert.rejects(DirStore.open(join(dir, 'file')), { code: 'INVALID_ARGUMENT' })
})

test('dir store - file handles are cached and survive eviction while in use', async (t) => {
  const root = join(await tempDir(t), 's')
  const s = await DirStore.open(root, { create: true, maxOpenFiles: 2 })
  t.after(() => s.close())
  const packs = Array.from({ length: 5 }, () => buildPack(4, 256))
  for (const p of packs) await s.putPack(p.id, p.data, p.chunks)
  for (let round = 0; round < 3; round++) {
    const wanted = packs.flatMap((p) => p.chunks)
    const bufs = await s.readRanges(wanted)
    wanted.forEach((r, i) => assert.deepEqual(bufs[i], packs.find((p) => p.id === r.pack)!.data.subarray(r.offset, r.offset + r.length)))
  }
  // The two most recently used handles stay open: a pack removed behind the store's back is still readable
  // through its handle, and CHUNK_MISSING once the handle was evicted.
  await rm(packPath(root, packs[4]!.id))
  assert.deepEqual((await s.readRanges([packs[4]!.chunks[1]!]))[0], packs[4]!.data.subarray(256, 512))
  await s.readRanges([packs[0]!.chunks[0]!, packs[1]!.chunks[0]!])
  await assert.rejects(s.readRanges([packs[4]!.chunks[1]!]), { code: 'CHUNK_MISSING' })
  await truncate(packPath(root, packs[3]!.id), 100)
  await assert.rejects(s.readRanges([packs[3]!.chunks[1]!]), { code: 'CHUNK_MISSING' })
})

test('dir store - an aborted signal stops the read', async (t) => {
  const s = await newStore(t)
  const p = buildPack(2, 10)
  await s.putPack(p.id, p.data, p.chunks)
  const ac = new AbortController()
  ac.abort()
  await assert.rejects(s.readRanges([p.chunks[0]!], { signal: ac.signal }), { name: 'AbortError' })
})
