// DirStore: packs as files under a local directory, plus a SQLite index of the chunks they hold.
//
//   ROOT/packs/<id[0:2]>/<id>.pack   pack bytes, immutable, named by their SHA-256
//   ROOT/index.db                    chunks(sid → pack, offset, length, size, codec, base), packs, path hints
//
// A pack is written to a temp file in its final directory, fsynced, renamed and the directory fsynced BEFORE its
// index rows are committed, so the index never points at a pack that a crash lost. A pack without rows (or a
// stray temp file) is harmless: readers only open `<id>.pack`, lookups only see committed rows.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { copyFile, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { DirHandles } from '../core/dir-handles.js'
import { ZosError, errorMessage, zerr } from '../core/errors.js'
import { coalesce, isPackId, splitSpan, type CoalesceOptions, type Span } from './coalesce.js'
import { DEFAULT_MAX_OPEN, FdCache } from './fdcache.js'
import type { ChunkLocation, PackRange, PutPackOptions, StoreStats, WritableStore } from './types.js'

/** Version of the index.db schema this code writes (PRAGMA user_version). */
export const INDEX_SCHEMA_VERSION = 1
/** Spans of one call read at the same time (libuv has 4 threads by default; a little more keeps them busy). */
const READ_PARALLEL = 8
const HEX_ID = /^[0-9a-f]{16,128}$/
const LOOKUP_BATCH = 500

export interface DirStoreOptions extends CoalesceOptions {
  /** Create the directory if it does not exist (default false: a missing directory is NOT_FOUND). */
  create?: boolean
  /** Open file handles kept between reads (default 64). */
  maxOpenFiles?: number
}

interface ChunkRow {
  sid: string
  pack: string
  offset: number
  length: number
  size: number
  codec: number
  base: string | null
}

export function packPath(root: string, pack: string): string {
  return join(root, 'packs', pack.slice(0, 2), `${pack}.pack`)
}

function checkChunk(c: ChunkLocation, pack: string, packSize: number, i: number): void {
  const where = `chunk ${i} of pack ${pack}`
  if (typeof c !== 'object' || c === null) throw zerr('INVALID_ARGUMENT', `${where} is not an object`)
  if (typeof c.sid !== 'string' || !HEX_ID.test(c.sid)) throw zerr('INVALID_ARGUMENT', `${where}: sid must be lowercase hex, got ${JSON.stringify(c.sid)}`)
  if (c.pack !== pack) throw zerr('INVALID_ARGUMENT', `${where} (sid ${c.sid}) names pack ${String(c.pack)}; it must name the pack it is stored in`)
  if (!Number.isSafeInteger(c.offset) || c.offset < 0 || !Number.isSafeInteger(c.length) || c.length < 0 || c.offset + c.length > packSize) {
    throw zerr('INVALID_ARGUMENT', `${where} (sid ${c.sid}): bytes ${c.offset}+${c.length} do not lie inside the ${packSize}-byte pack`)
  }
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw zerr('INVALID_ARGUMENT', `${where} (sid ${c.sid}): size must be a non-negative integer`)
  if (!Number.isInteger(c.codec) || c.codec < 0 || c.codec > 0xffff) throw zerr('INVALID_ARGUMENT', `${where} (sid ${c.sid}): codec must be an integer 0..65535`)
  if (c.base !== undefined && (typeof c.base !== 'string' || !HEX_ID.test(c.base))) {
    throw zerr('INVALID_ARGUMENT', `${where} (sid ${c.sid}): base must be a lowercase hex sid when present`)
  }
}

/** A stored hint's sids; a damaged hint is only a lost optimisation. */
function parseHint(text: string): string[] | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  return Array.isArray(parsed) && parsed.every((s) => typeof s === 'string') ? (parsed as string[]) : undefined
}

function rowToLocation(r: ChunkRow): ChunkLocation {
  const loc: ChunkLocation = { sid: r.sid, pack: r.pack, offset: r.offset, length: r.length, size: r.size, codec: r.codec }
  return r.base === null ? loc : { ...loc, base: r.base }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('the operation was aborted', 'AbortError')
}

export class DirStore implements WritableStore {
  readonly url: string
  readonly writable = true as const
  readonly root: string
  private readonly fds: FdCache
  /** Pack directories open for fsync (at most 256: packs/<id[0:2]>). */
  private readonly dirs = new DirHandles()
  private readonly coalesceOptions: CoalesceOptions
  private db: Database.Database | undefined
  private closed = false

  private constructor(root: string, options: DirStoreOptions) {
    this.root = root
    this.url = `dir://${root}`
    this.fds = new FdCache(Math.max(1, options.maxOpenFiles ?? DEFAULT_MAX_OPEN))
    this.coalesceOptions = { maxGap: options.maxGap, maxSpan: options.maxSpan }
  }

  /** Opens the store rooted at `path` (relative paths resolve against the working directory). */
  static async open(path: string, options: DirStoreOptions = {}): Promise<DirStore> {
    if (typeof path !== 'string' || path === '') throw zerr('INVALID_ARGUMENT', 'a dir store needs a directory path')
    const root = resolve(path)
    if (options.create) {
      try {
        await mkdir(join(root, 'packs'), { recursive: true })
      } catch (err) {
        throw zerr('STORE_UNAVAILABLE', `cannot create store directory ${root}: ${errorMessage(err)}`, { path: root }, err)
      }
    }
    let st
    try {
      st = await stat(root)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw zerr('NOT_FOUND', `store directory ${root} does not exist (check the path, or create the store by writing to it)`, { path: root })
      }
      throw zerr('STORE_UNAVAILABLE', `cannot open store directory ${root}: ${errorMessage(err)}`, { path: root }, err)
    }
    if (!st.isDirectory()) throw zerr('INVALID_ARGUMENT', `${root} is not a directory, so it cannot be a dir store`, { path: root })
    return new DirStore(root, options)
  }

  /** The index, opened on first use: readers that only read packs never touch index.db. */
  private readonly statements = new Map<string, Database.Statement>()

  /** Prepared statements are reused: preparing one costs more than running it. */
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql)
    if (!st) {
      st = this.index().prepare(sql)
      this.statements.set(sql, st)
    }
    return st
  }

  private index(): Database.Database {
    this.checkOpen()
    if (this.db) return this.db
    const file = join(this.root, 'index.db')
    let db: Database.Database
    try {
      db = new Database(file)
      db.pragma('journal_mode = WAL')
      // NORMAL: a power loss may lose the last commits, never consistency. The index only describes pack files
      // already fsynced in place; rows it lost are written again when the pack is put again (putPack indexes an
      // existing file), which a client does when the store says the chunks are missing.
      db.pragma('synchronous = NORMAL')
      db.pragma('busy_timeout = 5000')
    } catch (err) {
      throw zerr('STORE_UNAVAILABLE', `cannot open the store index ${file}: ${errorMessage(err)}`, { path: file }, err)
    }
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > INDEX_SCHEMA_VERSION) {
      db.close()
      throw zerr('UNSUPPORTED', `store index ${file} has schema version ${version}; this zos understands up to ${INDEX_SCHEMA_VERSION} (upgrade zos)`, { path: file })
    }
    if (version < INDEX_SCHEMA_VERSION) {
      db.exec(`
        BEGIN;
        CREATE TABLE IF NOT EXISTS packs (id TEXT PRIMARY KEY, size INTEGER NOT NULL, created INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS chunks (
          sid TEXT PRIMARY KEY, pack TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
          size INTEGER NOT NULL, codec INTEGER NOT NULL, base TEXT);
        CREATE INDEX IF NOT EXISTS chunks_pack ON chunks(pack);
        CREATE TABLE IF NOT EXISTS hints (key TEXT PRIMARY KEY, sids TEXT NOT NULL);
        PRAGMA user_version = ${INDEX_SCHEMA_VERSION};
        COMMIT;`)
    }
    this.db = db
    return db
  }

  private checkOpen(): void {
    if (this.closed) throw zerr('STORE_UNAVAILABLE', `store ${this.url} is closed`, { url: this.url })
  }

  async readRanges(ranges: readonly PackRange[], options: { signal?: AbortSignal } = {}): Promise<Buffer[]> {
    this.checkOpen()
    const signal = options.signal
    if (signal?.aborted) throw abortReason(signal)
    const spans = coalesce(ranges, this.coalesceOptions)
    const out: Buffer[] = ranges.map(() => Buffer.alloc(0))
    // Open each pack once per call: spans of one pack share one lease.
    const byPack = new Map<string, Span[]>()
    for (const s of spans) {
      const list = byPack.get(s.pack)
      if (list) list.push(s)
      else byPack.set(s.pack, [s])
    }
    const jobs: Array<() => Promise<void>> = []
    const leases: Array<{ release(): void }> = []
    try {
      for (const [pack, list] of byPack) {
        const path = packPath(this.root, pack)
        let lease
        try {
          lease = await this.fds.acquire(path)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            throw zerr('CHUNK_MISSING', `pack ${pack} is not in store ${this.url} (wanted bytes at offset ${list[0]!.offset})`, {
              pack,
              offset: list[0]!.offset,
              store: this.url,
            })
          }
          throw zerr('STORE_UNAVAILABLE', `cannot open pack ${pack} in ${this.url}: ${errorMessage(err)}`, { pack, store: this.url }, err)
        }
        leases.push(lease)
        const fh = lease.fh
        for (const span of list) {
          jobs.push(async () => {
            if (signal?.aborted) throw abortReason(signal)
            splitSpan(span, await this.readSpan(fh, path, span), out)
          })
        }
      }
      if (jobs.length === 1) {
        await jobs[0]!() // the common case of one chunk: no worker pool
      } else {
        let next = 0
        const worker = async (): Promise<void> => {
          while (next < jobs.length) await jobs[next++]!()
        }
        await Promise.all(Array.from({ length: Math.min(READ_PARALLEL, jobs.length) }, worker))
      }
    } finally {
      for (const l of leases) l.release()
    }
    return out
  }

  private async readSpan(fh: FileHandle, path: string, span: Span): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(span.length)
    let done = 0
    while (done < span.length) {
      let n: number
      try {
        n = (await fh.read(buf, done, span.length - done, span.offset + done)).bytesRead
      } catch (err) {
        this.fds.drop(path)
        throw zerr('STORE_UNAVAILABLE', `reading pack ${span.pack} at offset ${span.offset + done} in ${this.url} failed: ${errorMessage(err)}`, {
          pack: span.pack,
          offset: span.offset + done,
          store: this.url,
        }, err)
      }
      if (n === 0) {
        throw zerr(
          'CHUNK_MISSING',
          `pack ${span.pack} in ${this.url} ends at byte ${span.offset + done}, before the ${span.length} bytes wanted at offset ${span.offset}`,
          { pack: span.pack, offset: span.offset, length: span.length, store: this.url },
        )
      }
      done += n
    }
    return buf
  }

  async statPack(pack: string): Promise<number | undefined> {
    this.checkOpen()
    if (!isPackId(pack)) throw zerr('INVALID_ARGUMENT', `pack id must be 64 lowercase hex characters, got ${JSON.stringify(pack)}`)
    try {
      const st = await stat(packPath(this.root, pack))
      return st.isFile() ? st.size : undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw zerr('STORE_UNAVAILABLE', `cannot stat pack ${pack} in ${this.url}: ${errorMessage(err)}`, { pack, store: this.url }, err)
    }
  }

  packFile(pack: string): string {
    return packPath(this.root, pack)
  }

  async lookupChunks(sids: readonly string[]): Promise<Map<string, ChunkLocation>> {
    const found = new Map<string, ChunkLocation>()
    const unique = [...new Set(sids)]
    for (const sid of unique) {
      if (typeof sid !== 'string') throw zerr('INVALID_ARGUMENT', `chunk ids must be strings, got ${typeof sid}`)
    }
    for (let i = 0; i < unique.length; i += LOOKUP_BATCH) {
      const batch = unique.slice(i, i + LOOKUP_BATCH)
      const rows = this
        .stmt(`SELECT sid, pack, offset, length, size, codec, base FROM chunks WHERE sid IN (${batch.map(() => '?').join(',')})`)
        .all(...batch) as ChunkRow[]
      for (const r of rows) found.set(r.sid, rowToLocation(r))
    }
    return found
  }

  /**
   * Stores a pack atomically and indexes its chunks. The bytes are hashed against the id first, unless the caller
   * passes `sha256`: the digest it already computed over exactly these bytes (the packer names the packs it builds;
   * the hub hashes uploads as they arrive), which saves a pass over the pack.
   */
  async putPack(pack: string, data: Buffer, chunks: readonly ChunkLocation[], options: PutPackOptions = {}): Promise<void> {
    this.checkOpen()
    if (!isPackId(pack)) throw zerr('INVALID_ARGUMENT', `pack id must be 64 lowercase hex characters, got ${JSON.stringify(pack)}`)
    if (!Buffer.isBuffer(data)) throw zerr('INVALID_ARGUMENT', `pack ${pack}: data must be a Buffer`)
    const actual = options.sha256 ?? createHash('sha256').update(data).digest('hex')
    if (actual !== pack) {
      throw zerr('CHUNK_TAMPERED', `pack data hashes to ${actual}, not to its claimed id ${pack}; nothing was written`, { pack, actual })
    }
    if (!Array.isArray(chunks)) throw zerr('INVALID_ARGUMENT', `pack ${pack}: chunks must be an array`)
    chunks.forEach((c, i) => checkChunk(c, pack, data.length, i))
    const db = this.index() // opened before the file is written: a broken index fails the call early

    const final = packPath(this.root, pack)
    const existing = await this.statPack(pack)
    if (existing !== data.length) await this.writeAtomically(final, pack, data)
    this.indexPack(db, pack, data.length, chunks)
  }

  /**
   * Stores a pack that is already complete in a file (the hub receives uploads into one): the file is made durable
   * and renamed into place (copied when it lies on another filesystem), then its chunks are indexed. `sha256`
   * as in putPack; without it the file is hashed first. `handle`: the caller's open handle on the file, synced
   * instead of opening the file again. The file is gone on success and left as it was on failure.
   */
  async putPackFile(pack: string, file: string, chunks: readonly ChunkLocation[], options: PutPackOptions & { synced?: { size: number; done: Promise<void> } } = {}): Promise<void> {
    this.checkOpen()
    if (!isPackId(pack)) throw zerr('INVALID_ARGUMENT', `pack id must be 64 lowercase hex characters, got ${JSON.stringify(pack)}`)
    let size: number
    try {
      size = options.synced ? options.synced.size : (await stat(file)).size
    } catch (err) {
      throw zerr('NOT_FOUND', `pack file ${file} does not exist`, { path: file }, err)
    }
    let actual = options.sha256
    if (actual === undefined) {
      const h = createHash('sha256')
      for await (const piece of createReadStream(file) as AsyncIterable<Buffer>) h.update(piece)
      actual = h.digest('hex')
    }
    if (actual !== pack) throw zerr('CHUNK_TAMPERED', `pack data hashes to ${actual}, not to its claimed id ${pack}; nothing was written`, { pack, actual })
    if (!Array.isArray(chunks)) throw zerr('INVALID_ARGUMENT', `pack ${pack}: chunks must be an array`)
    chunks.forEach((c, i) => checkChunk(c, pack, size, i))
    const db = this.index()
    const final = packPath(this.root, pack)
    const dir = join(this.root, 'packs', pack.slice(0, 2))
    // Independent file system calls at the same time: each is a round trip through the libuv pool, and on a busy
    // event loop those round trips, not the calls, are what a pack's move costs.
    const [existing, dh] = await Promise.all([this.statPack(pack), this.dirs.get(dir).catch(() => undefined)])
    if (existing === size) await rm(file, { force: true })
    else {
      try {
        if (options.synced) await options.synced.done
        else {
          const fh = await open(file, 'r+')
          await fh.sync().finally(() => fh.close())
        }
        if (!dh) await this.dirs.get(dir) // the error, this time
        try {
          await rename(file, final)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
          const tmp = join(dir, `.${pack}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
          await copyFile(file, tmp)
          const th = await open(tmp, 'r+')
          await th.sync().finally(() => th.close())
          await rename(tmp, final)
          await rm(file, { force: true })
        }
        await this.dirs.sync(dir)
      } catch (err) {
        if (ZosError.is(err)) throw err
        throw zerr('STORE_UNAVAILABLE', `moving pack ${pack} to ${final} failed: ${errorMessage(err)}`, { pack, path: final }, err)
      }
    }
    this.indexPack(db, pack, size, chunks)
  }

  private indexPack(db: Database.Database, pack: string, size: number, chunks: readonly ChunkLocation[]): void {
    const insertPack = this.stmt('INSERT OR IGNORE INTO packs (id, size, created) VALUES (?, ?, ?)')
    // A chunk already stored elsewhere keeps its first location: both copies are valid.
    const insertChunk = this.stmt('INSERT OR IGNORE INTO chunks (sid, pack, offset, length, size, codec, base) VALUES (?, ?, ?, ?, ?, ?, ?)')
    try {
      db.transaction(() => {
        insertPack.run(pack, size, Date.now())
        for (const c of chunks) insertChunk.run(c.sid, pack, c.offset, c.length, c.size, c.codec, c.base ?? null)
      })()
    } catch (err) {
      throw zerr('STORE_UNAVAILABLE', `pack ${pack} was written but recording its chunks in ${this.root}/index.db failed: ${errorMessage(err)}`, { pack }, err)
    }
  }

  private async writeAtomically(final: string, pack: string, data: Buffer): Promise<void> {
    const dir = join(this.root, 'packs', pack.slice(0, 2))
    const tmp = join(dir, `.${pack}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    try {
      const dh = await this.dirs.get(dir)
      const fh = await open(tmp, 'wx', 0o644)
      try {
        let done = 0
        while (done < data.length) done += (await fh.write(data, done, data.length - done, done)).bytesWritten
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, final)
      await dh.sync()
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {})
      if (ZosError.is(err)) throw err
      throw zerr('STORE_UNAVAILABLE', `writing pack ${pack} to ${final} failed: ${errorMessage(err)}`, { pack, path: final }, err)
    }
  }

  async getPathHint(key: string): Promise<string[] | undefined> {
    if (typeof key !== 'string') throw zerr('INVALID_ARGUMENT', 'a path hint key must be a string')
    const row = this.stmt('SELECT sids FROM hints WHERE key = ?').get(key) as { sids: string } | undefined
    return row ? parseHint(row.sids) : undefined
  }

  async getPathHints(keys: readonly string[]): Promise<Map<string, string[]>> {
    const found = new Map<string, string[]>()
    const unique = [...new Set(keys)]
    for (const key of unique) if (typeof key !== 'string') throw zerr('INVALID_ARGUMENT', 'a path hint key must be a string')
    for (let i = 0; i < unique.length; i += LOOKUP_BATCH) {
      const batch = unique.slice(i, i + LOOKUP_BATCH)
      const rows = this.stmt(`SELECT key, sids FROM hints WHERE key IN (${batch.map(() => '?').join(',')})`).all(...batch) as { key: string; sids: string }[]
      for (const r of rows) {
        const sids = parseHint(r.sids)
        if (sids) found.set(r.key, sids)
      }
    }
    return found
  }

  async setPathHints(hints: ReadonlyMap<string, readonly string[]>): Promise<void> {
    if (!(hints instanceof Map)) throw zerr('INVALID_ARGUMENT', 'path hints must be a Map from key to sids')
    for (const [key, sids] of hints) {
      if (typeof key !== 'string') throw zerr('INVALID_ARGUMENT', 'a path hint key must be a string')
      if (!Array.isArray(sids) || !sids.every((s) => typeof s === 'string')) {
        throw zerr('INVALID_ARGUMENT', `path hint ${JSON.stringify(key)}: sids must be an array of strings`)
      }
    }
    const db = this.index()
    const put = this.stmt('INSERT OR REPLACE INTO hints (key, sids) VALUES (?, ?)')
    db.transaction(() => {
      for (const [key, sids] of hints) put.run(key, JSON.stringify(sids))
    })()
  }

  async stats(): Promise<StoreStats> {
    const db = this.index()
    const p = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM packs').get() as { n: number; bytes: number }
    const c = db.prepare('SELECT count(*) AS n FROM chunks').get() as { n: number }
    return { packs: p.n, bytes: p.bytes, chunks: c.n }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.dirs.close()
    await this.fds.close()
    this.statements.clear()
    this.db?.close()
    this.db = undefined
  }
}

