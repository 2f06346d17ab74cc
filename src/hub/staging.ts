// The store a conversion packs into: new packs go to a per-job staging dir store, while dedup lookups, delta
// hints and reads of existing chunks go to the hub's store. Nothing reaches the hub's store until the job
// commits (quota checked first), so a failed conversion leaves nothing behind but its deleted staging dir.
import { readFile } from 'node:fs/promises'
import { DirStore, packPath } from '../store/dir.js'
import type { ChunkLocation, PackRange, PutPackOptions, StoreStats, WritableStore } from '../store/types.js'
import type { HubDb } from './db.js'

export class StagingStore implements WritableStore {
  readonly writable = true as const
  readonly url: string
  /** Packs written by this job: id → size and chunk locations. */
  readonly staged = new Map<string, { size: number; chunks: readonly ChunkLocation[] }>()
  private readonly hints = new Map<string, string[]>()

  constructor(
    private readonly main: DirStore,
    private readonly staging: DirStore,
    private readonly db: HubDb,
  ) {
    this.url = staging.url
  }

  async readRanges(ranges: readonly PackRange[], options: { signal?: AbortSignal } = {}): Promise<Buffer[]> {
    const mine = ranges.map((r) => this.staged.has(r.pack))
    const fromStaging = ranges.filter((_, i) => mine[i])
    const fromMain = ranges.filter((_, i) => !mine[i])
    const [a, b] = await Promise.all([
      fromStaging.length ? this.staging.readRanges(fromStaging, options) : [],
      fromMain.length ? this.main.readRanges(fromMain, options) : [],
    ])
    let i = 0
    let j = 0
    return mine.map((m) => (m ? a[i++]! : b[j++]!))
  }

  async statPack(pack: string): Promise<number | undefined> {
    return this.staged.has(pack) ? this.staging.statPack(pack) : this.main.statPack(pack)
  }

  /** Chunks already on the hub that the hub verified, and the ones this job staged. */
  async lookupChunks(sids: readonly string[]): Promise<Map<string, ChunkLocation>> {
    const out = new Map<string, ChunkLocation>()
    for (const [sid, l] of this.db.usableLocations(sids, '')) {
      const loc: ChunkLocation = { sid, pack: l.pack, offset: l.offset, length: l.length, size: l.size, codec: l.codec }
      out.set(sid, l.base !== undefined ? { ...loc, base: l.base } : loc)
    }
    const rest = sids.filter((s) => !out.has(s))
    if (rest.length > 0 && this.staged.size > 0) for (const [sid, loc] of await this.staging.lookupChunks(rest)) out.set(sid, loc)
    return out
  }

  async putPack(pack: string, data: Buffer, chunks: readonly ChunkLocation[], options?: PutPackOptions): Promise<void> {
    await this.staging.putPack(pack, data, chunks, options)
    this.staged.set(pack, { size: data.length, chunks: [...chunks] })
  }

  async getPathHint(key: string): Promise<string[] | undefined> {
    return this.hints.get(key) ?? this.main.getPathHint(key)
  }

  async getPathHints(keys: readonly string[]): Promise<Map<string, string[]>> {
    const found = await this.main.getPathHints(keys.filter((k) => !this.hints.has(k)))
    for (const k of keys) {
      const mine = this.hints.get(k)
      if (mine) found.set(k, mine)
    }
    return found
  }

  async setPathHints(hints: ReadonlyMap<string, readonly string[]>): Promise<void> {
    for (const [k, v] of hints) this.hints.set(k, [...v])
  }

  async stats(): Promise<StoreStats> {
    return this.staging.stats()
  }

  /** Bytes of staged packs the hub does not have yet. */
  newBytes(): number {
    let n = 0
    for (const [id, p] of this.staged) if (this.db.packSize(id) === undefined) n += p.size
    return n
  }

  /** Moves the staged packs into the hub's store (recording them for `ns`, verified) and keeps the delta hints. */
  async commit(ns: string): Promise<void> {
    for (const [id, p] of this.staged) {
      const data = await readFile(packPath(this.staging.root, id))
      await this.main.putPack(id, data, p.chunks)
      this.db.addPack(id, p.size, ns, p.chunks.map((c) => ({ pack: id, offset: c.offset, length: c.length, sid: c.sid, size: c.size, codec: c.codec, verified: true, ...(c.base !== undefined ? { base: c.base } : {}) })))
    }
    if (this.hints.size > 0) await this.main.setPathHints(this.hints)
  }

  async close(): Promise<void> {
    await this.staging.close()
  }
}
