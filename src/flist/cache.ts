// The chunk cache on disk: verified plaintext by store id, shared by every mount of every flist on the machine,
// bounded by size with least-recently-used eviction. Entries are written to a temporary name and renamed, so
// a crash leaves either a whole entry or none; the fetcher re-checks every hit against the chunk's hash, so
// even a disk that rots cannot make a mount serve wrong bytes.
// Entries are small (at most a chunk, 256 KiB) and usually in the page cache, so get reads synchronously: one
// open/read/close costs tens of microseconds, where each async call is a thread-pool round trip (20-200 µs here)
// and a read needs four of them; a read waiting on the cache is a FUSE request waiting. put writes through the
// thread pool instead (creating a file costs 0.3-1 ms on this disk), and the fetcher does not wait for it.
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readSync, statSync, unlinkSync } from 'node:fs'
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { zerr } from '../core/errors.js'
import type { ChunkCache } from './fetch.js'

export const DEFAULT_CACHE_BYTES = 2 * 1024 * 1024 * 1024

export interface DiskCacheStats {
  entries: number
  bytes: number
  hits: number
  misses: number
  evictions: number
  /** Chunks not cached because the writes in flight already filled the bound. */
  skipped: number
}

const SID = /^[0-9a-f]{64}$/

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // absent already
  }
}

/** Reads a whole small file with one open, fstat, read and close. */
function readWhole(path: string): Buffer {
  const fd = openSync(path, 'r')
  try {
    const size = fstatSync(fd).size
    const buf = Buffer.allocUnsafe(size)
    let pos = 0
    while (pos < size) {
      const n = readSync(fd, buf, pos, size - pos, pos)
      if (n === 0) break
      pos += n
    }
    return pos === size ? buf : buf.subarray(0, pos)
  } finally {
    closeSync(fd)
  }
}

export class DiskChunkCache implements ChunkCache {
  /** sid → size; Map order is recency order (oldest first). */
  private readonly entries = new Map<string, number>()
  private bytes = 0
  private readonly stats_ = { hits: 0, misses: 0, evictions: 0, skipped: 0 }
  private tmpSeq = 0
  /** Entries being written, with their bytes (a second put of the same chunk meanwhile is a no-op). */
  private readonly writing = new Map<string, Buffer>()
  private writingBytes = 0

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** Opens (creating if needed) a cache directory and indexes what is already there, oldest first. */
  static async open(dir: string, maxBytes: number = DEFAULT_CACHE_BYTES): Promise<DiskChunkCache> {
    if (!Number.isFinite(maxBytes) || maxBytes < 1024 * 1024) throw zerr('INVALID_ARGUMENT', `cache size must be at least 1 MiB, got ${maxBytes}`)
    const cache = new DiskChunkCache(dir, maxBytes)
    // Fan-out directories are made by put when first needed (256 mkdirs up front cost 100+ ms of mount time).
    mkdirSync(join(dir, 'chunks'), { recursive: true })
    const found: { sid: string; size: number; used: number }[] = []
    // Synchronous scan: a cache of tens of thousands of entries is indexed in a fraction of the time the same
    // number of async stat calls take, and a mount is not serving anything yet.
    for (const sub of readdirSync(join(dir, 'chunks'))) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue
      for (const name of readdirSync(join(dir, 'chunks', sub))) {
        const p = join(dir, 'chunks', sub, name)
        if (!SID.test(name)) {
          // A temporary file left by a crash: never a valid entry.
          if (name.includes('.tmp-')) unlinkQuiet(p)
          continue
        }
        const st = statSync(p, { throwIfNoEntry: false })
        if (st?.isFile()) found.push({ sid: name, size: st.size, used: st.mtimeMs })
      }
    }
    found.sort((a, b) => a.used - b.used)
    for (const f of found) {
      cache.entries.set(f.sid, f.size)
      cache.bytes += f.size
    }
    cache.evict()
    return cache
  }

  private path(sid: string): string {
    return join(this.dir, 'chunks', sid.slice(0, 2), sid)
  }

  async get(sid: string): Promise<Buffer | undefined> {
    const pending = this.writing.get(sid)
    if (pending) {
      this.stats_.hits++
      return pending
    }
    if (!this.entries.has(sid)) {
      this.stats_.misses++
      return undefined
    }
    try {
      const data = readWhole(this.path(sid))
      const size = this.entries.get(sid)!
      this.entries.delete(sid)
      this.entries.set(sid, size)
      this.stats_.hits++
      return data
    } catch {
      // Evicted by another process sharing the cache.
      this.forget(sid)
      this.stats_.misses++
      return undefined
    }
  }

  /**
   * Stores verified plaintext. Callers only put chunks that decoded to their id. The room is made (and counted)
   * before the file is written, so the files on disk, temporary ones included, never exceed the bound; until the
   * write is done, get answers from the buffer. When the writes already in flight fill the bound, the chunk is
   * not cached (it is only a cache).
   */
  async put(sid: string, plain: Buffer): Promise<void> {
    if (!SID.test(sid)) throw zerr('INVALID_ARGUMENT', `not a chunk id: ${sid}`)
    if (this.entries.has(sid) || this.writing.has(sid)) return
    if (this.writingBytes + plain.length > this.maxBytes) {
      this.stats_.skipped++
      return
    }
    const final = this.path(sid)
    const tmp = `${final}.tmp-${process.pid}-${this.tmpSeq++}`
    this.writing.set(sid, plain)
    this.writingBytes += plain.length
    this.bytes += plain.length
    this.evict()
    try {
      try {
        await writeFile(tmp, plain)
      } catch (err) {
        // The fan-out directory does not exist yet (or was removed under us).
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
        await mkdir(join(this.dir, 'chunks', sid.slice(0, 2)), { recursive: true })
        await writeFile(tmp, plain)
      }
      await rename(tmp, final)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      this.bytes -= plain.length
      throw zerr('STORE_UNAVAILABLE', `cannot write the chunk cache ${this.dir}: ${err instanceof Error ? err.message : String(err)}`)
    } finally {
      this.writing.delete(sid)
      this.writingBytes -= plain.length
    }
    this.entries.set(sid, plain.length)
  }

  /** Drops an entry that failed verification or vanished. */
  async remove(sid: string): Promise<void> {
    this.forget(sid)
    unlinkQuiet(this.path(sid))
  }

  private forget(sid: string): void {
    const size = this.entries.get(sid)
    if (size === undefined) return
    this.entries.delete(sid)
    this.bytes -= size
  }

  /** Removes the least recently used entries until the bound holds (entries being written are not candidates). */
  private evict(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next()
      if (oldest.done) break
      this.forget(oldest.value)
      this.stats_.evictions++
      unlinkQuiet(this.path(oldest.value)) // may be gone already: another process sharing the cache evicted it
    }
  }

  stats(): DiskCacheStats {
    return { entries: this.entries.size, bytes: this.bytes, ...this.stats_ }
  }
}
