// The chunk list of an flist about to be pushed, read without the checks of FlistReader.open.
import Database from 'better-sqlite3'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import { readAllChunks, type ChunkInfo } from '../flist/reader.js'
import { APPLICATION_ID } from '../flist/schema.js'

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
    return { chunks: readAllChunks(db, key), encrypted: key !== undefined }
  } catch (err) {
    if (ZosError.is(err)) throw err
    throw zerr('FLIST_CORRUPT', `cannot read ${path} as an flist: ${errorMessage(err)}`, { path }, err)
  } finally {
    db?.close()
  }
}
