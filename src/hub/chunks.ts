// An flist about to be pushed, read without the checks of FlistReader.open (the hub makes them on what it
// receives, and refuses a bad file), and only as far as the push needs: its packs first, then the chunk rows of
// the packs the hub lacks (a second version sharing most packs reads a few rows, not all of them).
import Database from 'better-sqlite3'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import { readAllChunks, readChunksWhere, type ChunkInfo } from '../flist/chunks.js'
import { APPLICATION_ID } from '../flist/schema.js'

export class PushableFlist {
  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
    private readonly key: Buffer | undefined,
  ) {}

  /** Opens a metadata file (FLIST_CORRUPT when it is not a zos flist). */
  static open(path: string): PushableFlist {
    let db: Database.Database | undefined
    try {
      db = new Database(path, { readonly: true, fileMustExist: true })
      if (db.pragma('application_id', { simple: true }) !== APPLICATION_ID) throw zerr('FLIST_CORRUPT', `${path} is not a zos flist`, { path })
      const enc = db.prepare("SELECT value FROM meta WHERE key = 'encryption-key'").get() as { value: string } | undefined
      const key = enc && /^[0-9a-f]{64}$/.test(enc.value) ? Buffer.from(enc.value, 'hex') : undefined
      return new PushableFlist(path, db, key)
    } catch (err) {
      db?.close()
      throw PushableFlist.wrap(path, err)
    }
  }

  private static wrap(path: string, err: unknown): ZosError {
    return ZosError.is(err) ? err : zerr('FLIST_CORRUPT', `cannot read ${path} as an flist: ${errorMessage(err)}`, { path }, err)
  }

  private read<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      throw PushableFlist.wrap(this.path, err)
    }
  }

  get encrypted(): boolean {
    return this.key !== undefined
  }

  /** Each pack the flist names, with how many of its chunks lie in it. */
  packs(): Map<string, number> {
    return this.read(() => new Map(this.db.prepare('SELECT pack, count(*) FROM chunk GROUP BY pack').raw(true).all() as [string, number][]))
  }

  /** The chunks that lie in these packs, in pack order. */
  chunksIn(packs: readonly string[]): ChunkInfo[] {
    return this.read(() => readChunksWhere(this.db, this.key, 'pack', packs).sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.offset - b.offset)))
  }

  /** The chunks with these ids (delta bases outside the packs read). */
  chunks(ids: readonly number[]): ChunkInfo[] {
    return this.read(() => readChunksWhere(this.db, this.key, 'id', [...new Set(ids)]))
  }

  /** Every chunk, in pack order. */
  allChunks(): ChunkInfo[] {
    return this.read(() => readAllChunks(this.db, this.key))
  }

  close(): void {
    if (this.db.open) this.db.close()
  }
}
