// Every chunk row of an flist in one query: what push and the hub's upload check walk. (FlistReader.allChunks
// answers the same with one query per chunk, ~17 µs each; a push of a 1,000-chunk image felt it.)
import Database from 'better-sqlite3'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import { storeId } from '../flist/codec.js'
import type { ChunkInfo } from '../flist/reader.js'
import { APPLICATION_ID } from '../flist/schema.js'

/** Chunk rows of a file FlistReader.open has accepted (this reads rows; it does not validate them). */
export function listChunks(path: string, encryptionKey: Buffer | undefined): ChunkInfo[] {
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    return rows(db, encryptionKey)
  } finally {
    db.close()
  }
}

function rows(db: Database.Database, encryptionKey: Buffer | undefined): ChunkInfo[] {
  const list = db.prepare('SELECT id, hash, size, pack, offset, length, codec, base FROM chunk ORDER BY pack, offset').raw(true).all() as [number, Buffer, number, string, number, number, number, number | null][]
  return list.map(([id, hash, size, pack, offset, length, codec, base]) => {
    const c: ChunkInfo = { id, hash, sid: encryptionKey ? storeId(hash, encryptionKey) : hash.toString('hex'), size, pack, offset, length, codec }
    if (base !== null) c.base = base
    return c
  })
}

/**
 * The chunks and encryption of an flist about to be pushed, read without the full check FlistReader.open makes
 * (root hash, signatures, invariants): the hub makes that check on what it receives, and refuses a bad file.
 */
export function readPushable(path: string): { chunks: ChunkInfo[]; encrypted: boolean } {
  let db: Database.Database | undefined
  try {
    db = new Database(path, { readonly: true, fileMustExist: true })
    if (db.pragma('application_id', { simple: true }) !== APPLICATION_ID) throw zerr('FLIST_CORRUPT', `${path} is not a zos flist`, { path })
    const enc = db.prepare("SELECT value FROM meta WHERE key = 'encryption-key'").get() as { value: string } | undefined
    const key = enc && /^[0-9a-f]{64}$/.test(enc.value) ? Buffer.from(enc.value, 'hex') : undefined
    return { chunks: rows(db, key), encrypted: key !== undefined }
  } catch (err) {
    if (ZosError.is(err)) throw err
    throw zerr('FLIST_CORRUPT', `cannot read ${path} as an flist: ${errorMessage(err)}`, { path }, err)
  } finally {
    db?.close()
  }
}
