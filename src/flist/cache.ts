// The chunk cache on disk: verified plaintext by store id, shared by every mount of every flist on the machine,
// bounded by size with least-recently-used eviction. Entries are written to a temporary name and renamed, so
// a crash leaves either a whole entry or none; the fetcher re-checks every hit against the chunk's hash, so
// even a disk that rots cannot make a mount serve wrong bytes.
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
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
}

const SID = /^[0-9a-f]{64}$/

export class DiskChunkCache implements ChunkCache {
  /** sid → size; Map order is recency order (oldest first). */
  private readonly entries = new Map<string, number>()
  private bytes = 0
  private readonly stats_ = { hits: 0, misses: 0, evictions: 0 }
  private tmpSeq = 0

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** Opens (creating if needed) a cache directory and indexes what is already there, oldest first. */
  static async open(dir: string, maxBytes: number = DEFAULT_CACHE_BYTES): Promise<DiskChunkCache> {
    if (!Number.isFinite(maxBytes) || maxBytes < 1024 * 1024) throw zerr('INVALID_ARGUMENT', `cache size must be at least 1 MiB, got ${maxBytes}`)
    const cache = new DiskChunkCache(dir, maxBytes)
    await mkdir(join(dir, 'chunks'), { recursive: true })
    const found: { sid: string; size: number; used: number }[] = []
    for (const sub of await readdir(join(dir, 'chunks'))) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue
      for (const name of await readdir(join(dir, 'chunks', sub))) {
        const p = join(dir, 'chunks', sub, name)
        if (!SID.test(name)) {
          // A temporary file left by a crash: never a valid entry.
          if (name.includes('.tmp-')) await unlink(p).catch(() => {})
          continue
        }
        const st = await stat(p).catch(() => undefined)
        if (st?.isFile()) found.push({ sid: name, size: st.size, used: st.mtimeMs })
      }
    }
    found.sort((a, b) => a.used - b.used)
    for (const f of found) {
      cache.entries.set(f.sid, f.size)
      cache.bytes += f.size
    }
    await cache.evict()
    return cache
  }

  private path(sid: string): string {
    return join(this.dir, 'chunks', sid.slice(0, 2), sid)
  }

  async get(sid: string): Promise<Buffer | undefined> {
    if (!this.entries.has(sid)) {
      this.stats_.misses++
      return undefined
    }
    try {
      const data = await readFile(this.path(sid))
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

  /** Stores verified plaintext. Callers only put chunks that decoded to their id. */
  async put(sid: string, plain: Buffer): Promise<void> {
    if (!SID.test(sid)) throw zerr('INVALID_ARGUMENT', `not a chunk id: ${sid}`)
    if (this.entries.has(sid)) return
    const final = this.path(sid)
    const tmp = `${final}.tmp-${process.pid}-${this.tmpSeq++}`
    await mkdir(join(this.dir, 'chunks', sid.slice(0, 2)), { recursive: true })
    try {
      await writeFile(tmp, plain)
      await rename(tmp, final)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw zerr('STORE_UNAVAILABLE', `cannot write the chunk cache ${this.dir}: ${err instanceof Error ? err.message : String(err)}`)
    }
    this.entries.set(sid, plain.length)
    this.bytes += plain.length
    await this.evict()
  }

  /** Drops an entry that failed verification or vanished. */
  async remove(sid: string): Promise<void> {
    this.forget(sid)
    await unlink(this.path(sid)).catch(() => {})
  }

  private forget(sid: string): void {
    const size = this.entries.get(sid)
    if (size === undefined) return
    this.entries.delete(sid)
    this.bytes -= size
  }

  private async evict(): Promise<void> {
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next()
      if (oldest.done) break
      this.forget(oldest.value)
      this.stats_.evictions++
      await unlink(this.path(oldest.value)).catch(() => {})
    }
  }

  stats(): DiskCacheStats {
    return { entries: this.entries.size, bytes: this.bytes, ...this.stats_ }
  }
}
