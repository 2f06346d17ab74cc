// The root hash: SHA-256 over a canonical stream of the rows ROOT_QUERIES select. Two flists with the same root
// have the same tree, attributes, tags and content (by chunk hash), wherever their chunks are stored.
// Value encoding: integer 'i' + int64 BE; text 't' + u32 BE length + UTF-8; blob 'b' + u32 length + bytes;
// null 'n'. Each table starts with 'T' + its name (as text), each row with 'R'.
// The stream is assembled in a 64 KiB buffer and hashed a buffer at a time: one hash update per value made this
// the largest part of opening an flist (and so of every mount's start).
import { createHash, type Hash } from 'node:crypto'
import type Database from 'better-sqlite3'
import { ROOT_DOMAIN, rootQueries } from './schema.js'

const BUFFER_BYTES = 64 * 1024
/** Room always left for one fixed-size item: a tag byte and an int64 or a length. */
const ITEM_MAX = 16

class RootStream {
  private readonly buf = Buffer.allocUnsafe(BUFFER_BYTES)
  private readonly view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength)
  private pos = 0
  constructor(private readonly h: Hash) {}

  private room(n: number): void {
    if (this.pos + n > BUFFER_BYTES) this.flush()
  }

  flush(): void {
    if (this.pos > 0) this.h.update(this.buf.subarray(0, this.pos))
    this.pos = 0
  }

  byte(b: number): void {
    this.room(1)
    this.buf[this.pos++] = b
  }

  bytes(b: Uint8Array): void {
    if (b.length > BUFFER_BYTES - this.pos) {
      this.flush()
      if (b.length > BUFFER_BYTES) {
        this.h.update(b)
        return
      }
    }
    this.buf.set(b, this.pos)
    this.pos += b.length
  }

  value(v: unknown): void {
    this.room(ITEM_MAX)
    if (v === null || v === undefined) {
      this.buf[this.pos++] = 0x6e // 'n'
    } else if (typeof v === 'bigint' || typeof v === 'number') {
      this.buf[this.pos] = 0x69 // 'i'
      this.view.setBigInt64(this.pos + 1, typeof v === 'bigint' ? v : BigInt(v))
      this.pos += 9
    } else if (typeof v === 'string') {
      const n = Buffer.byteLength(v, 'utf8')
      this.buf[this.pos] = 0x74 // 't'
      this.view.setUint32(this.pos + 1, n)
      this.pos += 5
      if (n <= BUFFER_BYTES - this.pos) this.pos += this.buf.write(v, this.pos, 'utf8')
      else this.bytes(Buffer.from(v, 'utf8'))
    } else if (v instanceof Uint8Array) {
      this.buf[this.pos] = 0x62 // 'b'
      this.view.setUint32(this.pos + 1, v.length)
      this.pos += 5
      this.bytes(v)
    } else {
      throw new Error(`unexpected value in flist metadata: ${typeof v}`)
    }
  }
}

/** The root hash of the metadata in `db`, a flist of format `version` (docs/flist-format.md §5). */
export function computeRoot(db: Database.Database, version: number): Buffer {
  return new RootHasher(version).digest(db)
}

/**
 * The root hash, table by table: a writer that knows some tables are final can hash them early (the packer
 * hashes the tree while the last file content is still being compressed) and the rest in digest(). The
 * stream is the same as computeRoot's.
 */
export class RootHasher {
  private readonly h = createHash('sha256')
  private readonly out = new RootStream(this.h)
  private readonly queries: ReadonlyArray<{ name: string; sql: string }>
  private next = 0

  constructor(readonly version: number) {
    this.queries = rootQueries(version)
    this.out.bytes(Buffer.from(ROOT_DOMAIN))
    this.out.byte(0)
  }

  /** Hashes the tables not hashed yet, in order, up to and including `last` (all of them without it). */
  through(db: Database.Database, last?: string): void {
    if (last !== undefined && !this.queries.slice(this.next).some((q) => q.name === last)) throw new Error(`root hash: table ${last} is hashed already or unknown`)
    while (this.next < this.queries.length) {
      const query = this.queries[this.next++]!
      this.out.byte(0x54) // 'T'
      this.out.value(query.name)
      const stmt = db.prepare(query.sql).raw(true).safeIntegers(true)
      for (const row of stmt.iterate() as Iterable<unknown[]>) {
        this.out.byte(0x52) // 'R'
        for (const v of row) this.out.value(v)
      }
      if (query.name === last) return
    }
  }

  /** Hashes the remaining tables and returns the root. */
  digest(db: Database.Database): Buffer {
    this.through(db)
    this.out.flush()
    return this.h.digest()
  }
}
