// The root hash: SHA-256 over a canonical stream of the rows of the tables ROOT_TABLES names, in their order.
// Two flists with the same root have the same tree, attributes, tags and content (by chunk hash), wherever
// their chunks are stored (docs/flist-format.md §5).
//
// Versions 1 and 2 encode each value in JavaScript: integer 'i' + int64 BE; text 't' + u32 BE length + UTF-8;
// blob 'b' + u32 length + bytes; null 'n'. Each table starts with 'T' + its name (as text), each row with 'R'.
// Handing every value of a 5,000-file image to JavaScript (~140,000 of them, a BigInt per integer) made this
// ~85 ms of a cold process: the largest step of opening an flist, and so of a mount's start.
// Version 3 hashes each row as SQLite itself renders it in one text value (integers in decimal, text and blobs
// as tagged hex, see renderColumn), one value per row instead of one per column: about half the time.
// Either stream is assembled in a 64 KiB buffer and hashed a buffer at a time.
import { createHash, type Hash } from 'node:crypto'
import type Database from 'better-sqlite3'
import { ROOT_DOMAIN, ROOT_TEXT_DOMAIN, ROOT_TEXT_VERSION, rootTables, type RootTable } from './schema.js'

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

  /** A string of one-byte characters (a rendered row), as its bytes. */
  latin1(s: string): void {
    if (s.length > BUFFER_BYTES - this.pos) {
      this.flush()
      if (s.length > BUFFER_BYTES) {
        this.h.update(s, 'latin1')
        return
      }
    }
    this.pos += this.buf.write(s, this.pos, 'latin1')
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

/**
 * Version 3: a column as SQLite renders it into the row's text: an integer in decimal, text as 'T' and the hex of
 * its UTF-8 bytes, a blob as 'B' and the hex of its bytes, null as 'N'. Anything else (a REAL, which no column
 * of the schema may hold) makes the whole row NULL, and the file is refused.
 */
function renderColumn(c: string): string {
  return `CASE typeof(${c}) WHEN 'integer' THEN ${c} WHEN 'text' THEN 'T' || hex(${c}) WHEN 'blob' THEN 'B' || hex(${c}) WHEN 'null' THEN 'N' END`
}

/** The rows of a table: as values (versions 1 and 2), or as one rendered text each (version 3), in key order. */
function tableQuery(t: RootTable, text: boolean): string {
  const columns = text ? t.columns.map(renderColumn).join(" || ',' || ") : t.columns.join(', ')
  return `SELECT ${columns} FROM ${t.from} ORDER BY ${t.order}`
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
  private readonly tables: readonly RootTable[]
  private readonly text: boolean
  private next = 0

  constructor(readonly version: number) {
    this.tables = rootTables(version)
    this.text = version >= ROOT_TEXT_VERSION
    this.out.bytes(Buffer.from(this.text ? ROOT_TEXT_DOMAIN : ROOT_DOMAIN))
    this.out.byte(0)
  }

  /** Hashes the tables not hashed yet, in order, up to and including `last` (all of them without it). */
  through(db: Database.Database, last?: string): void {
    if (last !== undefined && !this.tables.slice(this.next).some((t) => t.name === last)) throw new Error(`root hash: table ${last} is hashed already or unknown`)
    // hex() renders text in the database's encoding: the stream is defined over UTF-8.
    if (this.text && db.pragma('encoding', { simple: true }) !== 'UTF-8') throw new Error('the metadata is not UTF-8 encoded')
    while (this.next < this.tables.length) {
      const table = this.tables[this.next++]!
      if (this.text) this.textRows(db, table)
      else this.valueRows(db, table)
      if (table.name === last) return
    }
  }

  private valueRows(db: Database.Database, table: RootTable): void {
    this.out.byte(0x54) // 'T'
    this.out.value(table.name)
    const stmt = db.prepare(tableQuery(table, false)).raw(true).safeIntegers(true)
    for (const row of stmt.iterate() as Iterable<unknown[]>) {
      this.out.byte(0x52) // 'R'
      for (const v of row) this.out.value(v)
    }
  }

  /** Version 3: the table's name, 0x00, each rendered row followed by '\n', 0x00. */
  private textRows(db: Database.Database, table: RootTable): void {
    this.out.latin1(table.name)
    this.out.byte(0)
    for (const row of db.prepare(tableQuery(table, true)).pluck().iterate() as Iterable<string | null>) {
      if (row === null) throw new Error(`a value of a type the format does not allow (REAL) in table ${table.name}`)
      this.out.latin1(row)
      this.out.byte(0x0a)
    }
    this.out.byte(0)
  }

  /** Hashes the remaining tables and returns the root. */
  digest(db: Database.Database): Buffer {
    this.through(db)
    this.out.flush()
    return this.h.digest()
  }
}
