// Fetches chunks of an flist from a store, resolving delta bases, and verifies every one before returning it.
// Failures name the chunk, its pack and the store: CHUNK_MISSING when the store lacks the bytes,
// CHUNK_TAMPERED when they do not decode to the chunk's id.
import { zerr, ZosError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { ChunkDecodeError, decodeChunk } from './codec.js'
import type { ChunkInfo, FlistReader } from './reader.js'

/** A place to keep verified plaintext between fetches (the mount's disk cache implements it too). */
export interface ChunkCache {
  get(sid: string): Buffer | undefined | Promise<Buffer | undefined>
  put(sid: string, plain: Buffer): void | Promise<void>
}

export class ChunkFetcher {
  constructor(
    readonly reader: FlistReader,
    readonly store: Store,
    private readonly cache?: ChunkCache,
  ) {}

  /** Fetches and verifies chunks by id; the result is in the order asked. */
  async fetch(ids: readonly number[], signal?: AbortSignal): Promise<Buffer[]> {
    const infos = ids.map((id) => this.reader.chunk(id))
    const out = new Map<number, Buffer>()
    // Cache first.
    const missing: ChunkInfo[] = []
    for (const info of infos) {
      if (out.has(info.id)) continue
      const hit = this.cache ? await this.cache.get(info.sid) : undefined
      if (hit) out.set(info.id, hit)
      else missing.push(info)
    }
    if (missing.length > 0) {
      // Bases of delta chunks are fetched in the same round when not cached.
      const bases = new Map<number, ChunkInfo>()
      for (const info of missing) {
        if (info.base !== undefined && !out.has(info.base) && !missing.some((m) => m.id === info.base)) {
          const base = this.reader.chunk(info.base)
          const hit = this.cache ? await this.cache.get(base.sid) : undefined
          if (hit) out.set(base.id, hit)
          else bases.set(base.id, base)
        }
      }
      const all = [...missing, ...bases.values()]
      const raw = await this.readRaw(all, signal)
      // Full chunks first, then deltas (their bases are then known).
      const order = all.map((info, i) => ({ info, data: raw[i]! })).sort((a, b) => Number(a.info.base !== undefined) - Number(b.info.base !== undefined))
      for (const { info, data } of order) {
        const base = info.base !== undefined ? out.get(info.base) : undefined
        const plain = this.decode(info, data, base)
        out.set(info.id, plain)
        if (this.cache) await this.cache.put(info.sid, plain)
      }
    }
    return infos.map((info) => out.get(info.id)!)
  }

  private async readRaw(infos: readonly ChunkInfo[], signal?: AbortSignal): Promise<Buffer[]> {
    try {
      return await this.store.readRanges(infos, signal ? { signal } : undefined)
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
        throw zerr('CHUNK_TAMPERED', `chunk ${info.sid} (pack ${info.pack} @${info.offset}) in ${this.store.url} is corrupt: ${err.message}`, {
          sid: info.sid,
          pack: info.pack,
          offset: info.offset,
        })
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
    const buf = Buffer.concat(plains)
    const start = offset - wanted[0]!.offset
    return buf.subarray(start, start + length)
  }
}
