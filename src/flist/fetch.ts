// Fetches chunks of an flist from a store, resolving delta bases, and verifies every one before returning it.
// In front of the store: an in-memory LRU of hot plaintext and an optional shared disk cache (every hit is
// re-verified); each chunk is fetched once however many readers wait for it (single flight), and the chunks one
// call needs go to the store together so that it can coalesce neighbouring ranges.
// Failures name the chunk, its pack and the store: CHUNK_MISSING when the store lacks the bytes,
// CHUNK_TAMPERED when they do not decode to the chunk's id.
import { freemem, totalmem } from 'node:os'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { BufferLru } from '../core/lru.js'
import { zerr, ZosError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { ChunkDecodeError, decodeChunk, sha256 } from './codec.js'
import type { ChunkInfo, FlistReader } from './reader.js'

/** A place to keep verified plaintext between fetches (DiskChunkCache implements it). */
export interface ChunkCache {
  get(sid: string): Buffer | undefined | Promise<Buffer | undefined>
  put(sid: string, plain: Buffer): void | Promise<void>
  /** Drops an entry that failed verification. */
  remove?(sid: string): void | Promise<void>
}

export interface FetcherOptions {
  cache?: ChunkCache
  /**
   * Bytes of decoded chunks kept in memory (default 64 MiB, for one-pass readers such as unpack and verify;
   * mounts default to defaultMemoryBytes(); 0 disables).
   */
  memoryBytes?: number
  /** Called for every chunk that failed verification (for logs and metrics). */
  onBadChunk?: (info: ChunkInfo, err: ZosError) => void
  /** Called when the cache cannot store a chunk (disk full, …): the read still succeeds. */
  onCacheError?: (info: ChunkInfo, err: unknown) => void
}

export interface FetcherStats {
  fetchedChunks: number
  /** Bytes received from the store (encoded: compressed, encrypted). */
  fetchedBytes: number
  /** Plaintext bytes of the chunks fetched from the store. */
  fetchedPlainBytes: number
  memoryHits: number
  cacheHits: number
  joined: number
}

const MiB = 1024 * 1024

/**
 * The default bound of a fetcher's memory cache, from the machine's memory: 1/16 of the RAM and at most a quarter
 * of what is available now, never below 64 MiB nor above 1 GiB (24 GiB of RAM gives 1 GiB; 4 GiB gives 256 MiB).
 * It is a bound, not an allocation: only chunks read fill it. A disk-cache hit costs a file read and a SHA-256
 * per chunk (0.4-0.5 GB/s warm, 4-6k random 4 KiB IOPS here) where a memory hit costs nothing, so hot data that
 * fits in memory is what makes warm reads fast.
 */
export function defaultMemoryBytes(total: number = totalmem(), available: number = freemem()): number {
  const bytes = Math.min(total / 16, available / 4)
  return Math.floor(Math.min(1024 * MiB, Math.max(64 * MiB, bytes)))
}

/** Bytes of verified chunks waiting to be written to the disk cache before reads start waiting for the disk. */
const CACHE_WRITE_BACKLOG = 32 * 1024 * 1024
/**
 * Disk-cache writes wait until the store has been quiet for this long, or until this many bytes wait: a program's
 * cold start (node: 750 chunks in 1-2 s) is a burst of fetches on a CPU-bound machine, and creating the cache
 * files during it (four thread-pool calls and a file creation per chunk) made it 15 % slower here.
 */
const CACHE_DEFER_MS = 100
const CACHE_DEFER_BYTES = 64 * 1024 * 1024

/**
 * A batch of fetched chunks is decoded (zstd, SHA-256: ~2 ms per MiB here) in slices of about this long, with a
 * turn of the event loop between them. A mount's prefetch list arrives in batches of 64 chunks, several at once:
 * decoded in one go they kept the filesystem's requests (a program's lookups and page faults) waiting 30-60 ms
 * each while node started.
 */
const DECODE_SLICE_MS = 2

/** Chunk rows looked up from the metadata, kept so that a hot chunk costs no SQLite query per read. */
const INFO_ENTRIES = 65536

export class ChunkFetcher {
  readonly stats: FetcherStats = { fetchedChunks: 0, fetchedBytes: 0, fetchedPlainBytes: 0, memoryHits: 0, cacheHits: 0, joined: 0 }
  private readonly memory: BufferLru
  private readonly infoCache = new Map<number, ChunkInfo>()
  private readonly cacheWrites = new Set<Promise<void>>()
  private cacheBacklog = 0
  /** Verified chunks whose disk-cache write has not started yet (oldest first), and their bytes. */
  private readonly deferred = new Map<string, { info: ChunkInfo; plain: Buffer }>()
  private deferredBytes = 0
  private deferTimer: NodeJS.Timeout | undefined
  private readonly inflight = new Map<string, Promise<Buffer>>()
  private readonly cache: ChunkCache | undefined

  constructor(
    readonly reader: FlistReader,
    readonly store: Store,
    private readonly options: FetcherOptions | ChunkCache = {},
  ) {
    // Accept a bare cache for the common case.
    const o = 'get' in options ? { cache: options as ChunkCache } : (options as FetcherOptions)
    this.cache = o.cache
    this.memory = new BufferLru(o.memoryBytes ?? 64 * MiB)
    this.options = o
  }

  private info(id: number): ChunkInfo {
    let info = this.infoCache.get(id)
    if (!info) {
      info = this.reader.chunk(id)
      if (this.infoCache.size >= INFO_ENTRIES) this.infoCache.delete(this.infoCache.keys().next().value!)
      this.infoCache.set(id, info)
    }
    return info
  }

  /**
   * Remembers chunk rows looked up in bulk (a file's, when it is first read), so that fetching them costs no
   * query each: a cold `node` start looked up 750 rows one at a time, ~20 ms.
   */
  know(infos: readonly ChunkInfo[]): void {
    for (const info of infos) {
      if (this.infoCache.has(info.id)) continue
      if (this.infoCache.size >= INFO_ENTRIES) this.infoCache.delete(this.infoCache.keys().next().value!)
      this.infoCache.set(info.id, info)
    }
  }

  /** Fetches and verifies chunks by id; the result is in the order asked. */
  async fetch(ids: readonly number[], signal?: AbortSignal): Promise<Buffer[]> {
    if (signal?.aborted) throw zerr('TIMEOUT', 'the read was interrupted')
    // Every chunk in memory: the common case of a warm read, answered without maps or awaits.
    const hot: Buffer[] = []
    for (const id of ids) {
      const b = this.memory.get(this.info(id).sid)
      if (!b) break
      hot.push(b)
    }
    if (hot.length === ids.length) {
      this.stats.memoryHits += hot.length
      return hot
    }
    const infos = new Map(ids.map((id) => [id, this.info(id)] as const))
    const pending = new Map<string, Promise<Buffer> | Buffer>()
    const needed: ChunkInfo[] = []
    for (const info of infos.values()) {
      const hot = this.memory.get(info.sid)
      const flying = this.inflight.get(info.sid)
      if (hot) {
        this.stats.memoryHits++
        pending.set(info.sid, hot)
      } else if (flying) {
        this.stats.joined++
        pending.set(info.sid, flying)
      } else {
        needed.push(info)
      }
    }
    if (needed.length > 0) {
      const batch = this.fetchBatch(needed)
      for (const info of needed) {
        const one = batch.then((m) => m.get(info.sid)!)
        one.catch(() => {}) // a failure is reported to whoever awaits it
        this.inflight.set(info.sid, one)
        void one.finally(() => this.inflight.delete(info.sid)).catch(() => {})
        pending.set(info.sid, one)
      }
    }
    const out: Buffer[] = []
    for (const id of ids) out.push(await pending.get(infos.get(id)!.sid)!)
    return out
  }

  private async fromCache(info: ChunkInfo): Promise<Buffer | undefined> {
    if (!this.cache) return undefined
    // Verified in this process and not yet written (the memory cache may have dropped it meanwhile).
    const waiting = this.deferred.get(info.sid)
    if (waiting) {
      this.stats.memoryHits++
      return waiting.plain
    }
    const hit = await this.cache.get(info.sid)
    if (!hit) return undefined
    if (hit.length === info.size && sha256(hit).equals(info.hash)) {
      this.stats.cacheHits++
      // Verified: keep it in memory so that the next reads of this chunk cost neither a disk read nor a hash.
      this.memory.set(info.sid, hit)
      return hit
    }
    await this.cache.remove?.(info.sid)
    return undefined
  }

  private async fetchBatch(infos: readonly ChunkInfo[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>()
    const missing: ChunkInfo[] = []
    for (const info of infos) {
      const hit = this.memory.get(info.sid) ?? (await this.fromCache(info))
      if (hit) out.set(info.sid, hit)
      else missing.push(info)
    }
    // Bases of delta chunks come in the same round when not at hand.
    const bases = new Map<number, ChunkInfo>()
    const baseOf = new Map<number, Buffer>()
    for (const info of missing) {
      if (info.base === undefined || bases.has(info.base) || baseOf.has(info.base) || missing.some((m) => m.id === info.base)) continue
      const base = this.info(info.base)
      const hit = this.memory.get(base.sid) ?? (await this.fromCache(base))
      if (hit) baseOf.set(base.id, hit)
      else bases.set(base.id, base)
    }
    const all = [...missing, ...bases.values()]
    if (all.length > 0) {
      const raw = await this.readRaw(all)
      // Full chunks first, then deltas (their bases are then known).
      const order = all.map((info, i) => ({ info, data: raw[i]! })).sort((a, b) => Number(a.info.base !== undefined) - Number(b.info.base !== undefined))
      let slice = performance.now()
      for (const { info, data } of order) {
        if (performance.now() - slice > DECODE_SLICE_MS) {
          await nextTurn()
          slice = performance.now()
        }
        const plain = this.decode(info, data, info.base !== undefined ? baseOf.get(info.base) : undefined)
        baseOf.set(info.id, plain)
        this.stats.fetchedChunks++
        this.stats.fetchedBytes += data.length
        this.stats.fetchedPlainBytes += plain.length
        this.memory.set(info.sid, plain)
        if (this.cache) await this.deferCache(info, plain)
        out.set(info.sid, plain)
      }
    }
    return out
  }

  /**
   * Queues a verified chunk for the disk cache. The writes start once the store has been quiet for
   * CACHE_DEFER_MS (each new chunk re-arms the timer), or at once for the oldest chunks when more than
   * CACHE_DEFER_BYTES wait.
   */
  private async deferCache(info: ChunkInfo, plain: Buffer): Promise<void> {
    if (this.deferred.has(info.sid)) return
    this.deferred.set(info.sid, { info, plain })
    this.deferredBytes += plain.length
    if (this.deferTimer) this.deferTimer.refresh()
    else {
      this.deferTimer = setTimeout(() => this.startDeferredWrites(), CACHE_DEFER_MS)
      this.deferTimer.unref()
    }
    // Past the bound, the oldest writes start now; the read waits only when the writes in flight pile up.
    const waits: Promise<void>[] = []
    while (this.deferredBytes > CACHE_DEFER_BYTES) waits.push(this.startOldestWrite())
    await Promise.all(waits)
  }

  private startOldestWrite(): Promise<void> {
    const oldest = this.deferred.entries().next()
    if (oldest.done) return Promise.resolve()
    const [sid, { info, plain }] = oldest.value
    this.deferred.delete(sid)
    this.deferredBytes -= plain.length
    return this.toCache(info, plain)
  }

  private startDeferredWrites(): void {
    clearTimeout(this.deferTimer)
    this.deferTimer = undefined
    while (this.deferred.size > 0) void this.startOldestWrite()
  }

  /**
   * Stores a verified chunk in the cache without making the read wait for the disk (the memory LRU serves it
   * meanwhile), unless more than CACHE_WRITE_BACKLOG bytes are already waiting to be written.
   */
  private async toCache(info: ChunkInfo, plain: Buffer): Promise<void> {
    const write = (async () => {
      try {
        await this.cache!.put(info.sid, plain)
      } catch (err) {
        // Only a cache: the verified bytes are still good for this read.
        ;(this.options as FetcherOptions).onCacheError?.(info, err)
      }
    })()
    this.cacheBacklog += plain.length
    this.cacheWrites.add(write)
    void write.finally(() => {
      this.cacheBacklog -= plain.length
      this.cacheWrites.delete(write)
    })
    if (this.cacheBacklog > CACHE_WRITE_BACKLOG) await write
  }

  /** Settles when every cache write started so far has finished (call before exiting). */
  async flushCache(): Promise<void> {
    this.startDeferredWrites()
    while (this.cacheWrites.size > 0) await Promise.all([...this.cacheWrites])
  }

  private async readRaw(infos: readonly ChunkInfo[]): Promise<Buffer[]> {
    try {
      return await this.store.readRanges(infos)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'CHUNK_MISSING') {
        const first = infos[0]!
        throw zerr('CHUNK_MISSING', `${err.message} (needed for chunk ${first.sid.slice(0, 16)}… of ${this.reader.path}; is --store right?)`, { ...err.details }, err)
      }
      throw err
    }
  }

  decode(info: ChunkInfo, data: Buffer, base?: Buffer): Buffer {
    try {
      return decodeChunk({ data, codec: info.codec, hash: info.hash, size: info.size, sid: info.sid, key: this.reader.encryptionKey, base })
    } catch (err) {
      if (err instanceof ChunkDecodeError) {
        const e = zerr('CHUNK_TAMPERED', `chunk ${info.sid} (pack ${info.pack} @${info.offset}) in ${this.store.url} is corrupt: ${err.message}`, {
          sid: info.sid,
          pack: info.pack,
          offset: info.offset,
        })
        ;(this.options as FetcherOptions).onBadChunk?.(info, e)
        throw e
      }
      throw err
    }
  }

  /** Reads a byte range of a regular file. */
  async readFile(ino: number, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const extents = this.reader.extents(ino)
    const wanted = extents.filter((e, i) => {
      const end = i + 1 < extents.length ? extents[i + 1]!.offset : Infinity
      return end > offset && e.offset < offset + length
    })
    if (wanted.length === 0) return Buffer.alloc(0)
    const plains = await this.fetch(wanted.map((e) => e.chunk), signal)
    const buf = plains.length === 1 ? plains[0]! : Buffer.concat(plains)
    const start = offset - wanted[0]!.offset
    return buf.subarray(start, start + length)
  }
}
