import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readdir, writeFile, readFile, mkdir } from 'node:fs/promises'
import { tempDir } from '../helpers/tmp.js'
import { DiskChunkCache } from '../../src/flist/cache.js'
import { sha256 } from '../../src/flist/codec.js'
import { ChunkFetcher, defaultMemoryBytes } from '../../src/flist/fetch.js'
import { FlistReader } from '../../src/flist/reader.js'
import { pack } from '../../src/flist/pack.js'
import { openDir } from '../../src/flist/source/dir.js'
import { openStore, openWritableStore } from '../../src/store/open.js'
import type { Store } from '../../src/store/types.js'

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

// The fetcher in front of the disk cache: what it guarantees about the bytes it returns.

async function packedFile(dir: string, content: Buffer): Promise<{ flist: string; store: string }> {
  await mkdir(join(dir, 'src'), { recursive: true })
  await writeFile(join(dir, 'src', 'file.bin'), content)
  const w = await openWritableStore(join(dir, 'store'))
  try {
    await pack({ source: await openDir(join(dir, 'src')), output: join(dir, 'tree.fl'), store: w, workers: 1 })
  } finally {
    await w.close()
  }
  return { flist: join(dir, 'tree.fl'), store: join(dir, 'store') }
}

/** A 600 KiB random file packed into a store, with its reader, store and an empty 64 MiB disk cache (closed after the test). */
async function cachedFile(t: TestContext): Promise<{ dir: string; content: Buffer; reader: FlistReader; store: Store; cache: DiskChunkCache }> {
  const dir = await tempDir(t)
  const content = randomBytes(600 * 1024)
  const { flist, store: storeDir } = await packedFile(dir, content)
  const reader = FlistReader.open(flist)
  t.after(() => reader.close())
  const store = await openStore(storeDir)
  t.after(() => store.close())
  const cache = await DiskChunkCache.open(join(dir, 'cache'), 64 * 1024 * 1024)
  return { dir, content, reader, store, cache }
}

async function readAll(fetcher: ChunkFetcher, reader: FlistReader, size: number): Promise<Buffer> {
  const ino = reader.lookup(1, 'file.bin')!.ino
  return fetcher.readFile(ino, 0, size)
}

test('cache - a damaged or truncated entry is never served: every disk hit is re-hashed, dropped and fetched again', async (t) => {
  const { dir, content, reader, store, cache } = await cachedFile(t)
  const first = new ChunkFetcher(reader, store, { cache, memoryBytes: 0 })
  assert.deepEqual(await readAll(first, reader, content.length), content)
  await first.flushCache()
  const chunks = first.stats.fetchedChunks
  assert.ok(chunks >= 2, `${chunks} chunks`)

  // Rot one entry (same length, one flipped bit) and truncate another, as a bad disk or a lost write would.
  const files: string[] = []
  for (const sub of await readdir(join(dir, 'cache', 'chunks'))) for (const f of await readdir(join(dir, 'cache', 'chunks', sub))) files.push(join(dir, 'cache', 'chunks', sub, f))
  assert.equal(files.length, chunks)
  const rotten = await readFile(files[0]!)
  rotten[rotten.length >> 1]! ^= 0x01
  await writeFile(files[0]!, rotten)
  await writeFile(files[1]!, (await readFile(files[1]!)).subarray(0, 100))

  const bad: string[] = []
  const second = new ChunkFetcher(reader, store, { cache, memoryBytes: 0, onBadChunk: (info) => bad.push(info.sid) })
  assert.deepEqual(await readAll(second, reader, content.length), content, 'the right bytes, from the store')
  assert.equal(second.stats.fetchedChunks, 2, 'the two damaged entries were fetched again')
  assert.equal(second.stats.cacheHits, chunks - 2)
  assert.deepEqual(bad, [], 'a damaged cache entry is a miss, not a tampered chunk')
  await second.flushCache()
  // The damaged entries were replaced by good ones: a third reader hits the cache only.
  const third = new ChunkFetcher(reader, store, { cache, memoryBytes: 0 })
  assert.deepEqual(await readAll(third, reader, content.length), content)
  assert.equal(third.stats.fetchedChunks, 0)
  assert.equal(third.stats.cacheHits, chunks)
})

test('cache - the memory cache defaults to 1/16 of the RAM, at most a quarter of what is free, within 64 MiB-1 GiB', () => {
  const MiB = 1024 * 1024
  const GiB = 1024 * MiB
  assert.equal(defaultMemoryBytes(24 * GiB, 20 * GiB), GiB)
  assert.equal(defaultMemoryBytes(4 * GiB, 3 * GiB), 256 * MiB)
  assert.equal(defaultMemoryBytes(8 * GiB, 1 * GiB), 256 * MiB, 'little free memory: a quarter of it')
  assert.equal(defaultMemoryBytes(512 * MiB, 100 * MiB), 64 * MiB)
  const auto = defaultMemoryBytes()
  assert.ok(auto >= 64 * MiB && auto <= GiB)
})

test('cache - disk-cache writes wait for the store to be quiet (not during a burst of reads), and flushCache writes them', async (t) => {
  const { dir, content, reader, store, cache } = await cachedFile(t)
  const fetcher = new ChunkFetcher(reader, store, { cache, memoryBytes: 0 })
  assert.deepEqual(await readAll(fetcher, reader, content.length), content)
  const chunks = fetcher.stats.fetchedChunks
  assert.equal(cache.stats().entries, 0, 'nothing written during the reads')
  // Still served (from the verified buffers waiting to be written) without the store, even with no memory cache.
  assert.deepEqual(await readAll(fetcher, reader, content.length), content)
  assert.equal(fetcher.stats.fetchedChunks, chunks)
  // Written once the store has been quiet for a moment.
  const deadline = Date.now() + 10_000
  while (cache.stats().entries < chunks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.equal(cache.stats().entries, chunks)

  const other = await DiskChunkCache.open(join(dir, 'cache2'), 64 * 1024 * 1024)
  const second = new ChunkFetcher(reader, store, { cache: other, memoryBytes: 0 })
  await readAll(second, reader, content.length)
  await second.flushCache()
  assert.equal(other.stats().entries, chunks, 'flushCache starts the waiting writes and waits for them')
})
