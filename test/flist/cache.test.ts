import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readdir, writeFile, readFile } from 'node:fs/promises'
import { tempDir } from '../helpers/tmp.js'
import { DiskChunkCache } from '../../src/flist/cache.js'
import { sha256 } from '../../src/flist/codec.js'

const chunk = (n: number): { sid: string; data: Buffer } => {
  const data = randomBytes(n)
  return { sid: sha256(data).toString('hex'), data }
}

test('cache - stores, finds and survives a reopen', async (t) => {
  const dir = await tempDir(t)
  const c = await DiskChunkCache.open(dir, 8 * 1024 * 1024)
  const a = chunk(100_000)
  assert.equal(await c.get(a.sid), undefined)
  await c.put(a.sid, a.data)
  assert.deepEqual(await c.get(a.sid), a.data)
  const again = await DiskChunkCache.open(dir, 8 * 1024 * 1024)
  assert.deepEqual(await again.get(a.sid), a.data)
  assert.equal(again.stats().entries, 1)
})

test('cache - stays under its bound, evicting the least recently used', async (t) => {
  const dir = await tempDir(t)
  const c = await DiskChunkCache.open(dir, 1024 * 1024)
  const chunks = Array.from({ length: 30 }, () => chunk(100_000))
  await c.put(chunks[0]!.sid, chunks[0]!.data)
  for (const [i, x] of chunks.entries()) {
    await c.put(x.sid, x.data)
    if (i % 3 === 0) assert.ok(await c.get(chunks[0]!.sid), 'the hot chunk stays') // keep chunk 0 hot
  }
  assert.ok(c.stats().bytes <= 1024 * 1024)
  assert.ok(c.stats().evictions > 0)
  assert.ok(await c.get(chunks[0]!.sid))
  let onDisk = 0
  for (const sub of await readdir(join(dir, 'chunks'))) onDisk += (await readdir(join(dir, 'chunks', sub))).length
  assert.equal(onDisk, c.stats().entries)
  // A smaller bound on reopen evicts down to it.
  const small = await DiskChunkCache.open(dir, 1024 * 1024 + 1)
  assert.ok(small.stats().bytes <= 1024 * 1024 + 1)
})

test('cache - temporary files of a crashed writer are never entries', async (t) => {
  const dir = await tempDir(t)
  const c = await DiskChunkCache.open(dir, 8 * 1024 * 1024)
  const a = chunk(5000)
  await c.put(a.sid, a.data)
  const leftover = join(dir, 'chunks', a.sid.slice(0, 2), `${'e'.repeat(64)}.tmp-1-0`)
  await writeFile(leftover, Buffer.from('half a chunk'))
  const again = await DiskChunkCache.open(dir, 8 * 1024 * 1024)
  assert.equal(again.stats().entries, 1)
  await assert.rejects(readFile(leftover))
  await assert.rejects(c.put('not-a-sid', a.data))
})

test('cache - a chunk is served while it is being written, and the bound counts it before it is on disk', async (t) => {
  const dir = await tempDir(t)
  const c = await DiskChunkCache.open(dir, 1024 * 1024)
  const chunks = Array.from({ length: 12 }, () => chunk(100_000))
  // Not awaited: the writes are in flight while we read. Ten fit in the bound; the last two are not cached.
  const writes = chunks.map((x) => c.put(x.sid, x.data))
  assert.deepEqual(await c.get(chunks[0]!.sid), chunks[0]!.data)
  assert.ok(c.stats().bytes <= 1024 * 1024, `counted ${c.stats().bytes} bytes`)
  assert.equal(c.stats().skipped, 2)
  assert.equal(await c.get(chunks[11]!.sid), undefined)
  await Promise.all(writes)
  let onDisk = 0
  for (const sub of await readdir(join(dir, 'chunks'))) {
    for (const name of await readdir(join(dir, 'chunks', sub))) onDisk += (await readFile(join(dir, 'chunks', sub, name))).length
  }
  assert.equal(onDisk, c.stats().bytes)
  assert.equal(c.stats().entries, 10)
  assert.deepEqual(await c.get(chunks[9]!.sid), chunks[9]!.data)
  // Once written, later chunks evict the oldest as usual.
  await c.put(chunks[11]!.sid, chunks[11]!.data)
  assert.deepEqual(await c.get(chunks[11]!.sid), chunks[11]!.data)
  assert.ok(c.stats().bytes <= 1024 * 1024 && c.stats().evictions === 1)
})
