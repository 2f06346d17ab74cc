// The root hash: SHA-256 over a canonical stream of the rows ROOT_QUERIES select. Two flists with the same root
// have the same tree, attributes, tags and content (by chunk hash), wherever their chunks are stored.
// Value encoding: integer 'i' + int64 BE; text 't' + u32 BE length + UTF-8; blob 'b' + u32 length + bytes;
// null 'n'. Each table starts with 'T' + its name (as text), each row with 'R'.
import { createHash, type Hash } from 'node:crypto'
import type Database from 'better-sqlite3'
import { ROOT_DOMAIN, ROOT_QUERIES } from './schema.js'

function writeValue(h: Hash, v: unknown, scratch: Buffer): void {
  if (v === null || v === undefined) {
    h.update('n')
  } else if (typeof v === 'bigint' || typeof v === 'number') {
    scratch[0] = 0x69 // 'i'
    scratch.writeBigInt64BE(BigInt(v), 1)
    h.update(scratch.subarray(0, 9))
  } else if (typeof v === 'string') {
    const bytes = Buffer.from(v, 'utf8')
    scratch[0] = 0x74 // 't'
    scratch.writeUInt32BE(bytes.length, 1)
    h.update(scratch.subarray(0, 5))
    h.update(bytes)
  } else if (v instanceof Uint8Array) {
    scratch[0] = 0x62 // 'b'
    scratch.writeUInt32BE(v.length, 1)
    h.update(scratch.subarray(0, 5))
    h.update(v)
  } else {
    throw new Error(`unexpected value in flist metadata: ${typeof v}`)
  }
}

export function computeRoot(db: Database.Database): Buffer {
  const h = createHash('sha256')
  h.update(ROOT_DOMAIN)
  h.update(Buffer.of(0))
  const scratch = Buffer.alloc(9)
  for (const query of ROOT_QUERIES) {
    h.update('T')
    writeValue(h, query.name, scratch)
    const stmt = db.prepare(query.sql).raw(true).safeIntegers(true)
    for (const row of stmt.iterate() as Iterable<unknown[]>) {
      h.update('R')
      for (const v of row) writeValue(h, v, scratch)
    }
  }
  return h.digest()
}
