// Chunk rows of a metadata file and the store ids of chunks: what a reader and the hub client share. Light on
// purpose (node:crypto and SQLite rows only): `zos hub push FILE.fl` reads chunk rows without loading the codecs.
import { createHmac } from 'node:crypto'
import type Database from 'better-sqlite3'
import type { ChunkRow } from './writer.js'

// The codec column of a chunk row (flist/codec.ts encodes and decodes them; docs/flist-format.md §3).
export const CODEC_RAW = 0
export const CODEC_ZSTD = 1
export const CODEC_ZSTD_DELTA = 2
export type Codec = typeof CODEC_RAW | typeof CODEC_ZSTD | typeof CODEC_ZSTD_DELTA

export const CODEC_NAMES: Record<Codec, string> = { 0: 'raw', 1: 'zstd', 2: 'zstd-delta' }

export function isCodec(n: number): n is Codec {
  return n === CODEC_RAW || n === CODEC_ZSTD || n === CODEC_ZSTD_DELTA
}

/** A chunk row with its store id. */
export interface ChunkInfo extends ChunkRow {
  /** Store id (hex). */
  sid: string
}

/** Store-visible id of a chunk: hex sha256 of the plaintext, or a keyed id under the flist's encryption key. */
export function storeId(hash: Uint8Array, key: Buffer | undefined): string {
  if (!key) return Buffer.from(hash).toString('hex')
  return createHmac('sha256', key).update('zos-chunk-id-v1').update(hash).digest('hex')
}

/** A chunk row as `raw` statements return it: id, hash, size, pack, offset, length, codec, base. */
type RawChunkRow = [number, Buffer, number, string, number, number, number, number | null]
const CHUNK_COLUMNS = 'SELECT id, hash, size, pack, offset, length, codec, base FROM chunk'
/** Ids or packs per query (below SQLite's parameter limit). */
const CHUNK_BATCH = 500

function chunkInfos(rows: readonly RawChunkRow[], key: Buffer | undefined): ChunkInfo[] {
  return rows.map(([id, hash, size, pack, offset, length, codec, base]) => {
    const c: ChunkInfo = { id, hash, sid: key ? storeId(hash, key) : hash.toString('hex'), size, pack, offset, length, codec }
    if (base !== null) c.base = base
    return c
  })
}

/**
 * Every chunk row of an open flist database in pack order, in one query. FlistReader.allChunks after the full
 * checks of open(); the hub client calls it directly on a file it is about to push (the hub checks that file).
 */
export function readAllChunks(db: Database.Database, encryptionKey: Buffer | undefined): ChunkInfo[] {
  return chunkInfos(db.prepare(`${CHUNK_COLUMNS} ORDER BY pack, offset`).raw(true).all() as RawChunkRow[], encryptionKey)
}

/** The chunk rows of the extents of file `ino`, in extent order (a chunk used twice comes twice), in one query. */
export function readFileChunks(db: Database.Database, encryptionKey: Buffer | undefined, ino: number): ChunkInfo[] {
  const sql = 'SELECT c.id, c.hash, c.size, c.pack, c.offset, c.length, c.codec, c.base FROM extent e JOIN chunk c ON c.id = e.chunk WHERE e.ino = ? ORDER BY e.offset'
  return chunkInfos(db.prepare(sql).raw(true).all(ino) as RawChunkRow[], encryptionKey)
}

/** The chunk rows whose id (or pack) is one of `values`, in one query per 500 values, in no particular order. */
export function readChunksWhere(db: Database.Database, encryptionKey: Buffer | undefined, column: 'id' | 'pack', values: readonly (number | string)[]): ChunkInfo[] {
  const out: ChunkInfo[] = []
  for (let i = 0; i < values.length; i += CHUNK_BATCH) {
    const batch = values.slice(i, i + CHUNK_BATCH)
    const rows = db.prepare(`${CHUNK_COLUMNS} WHERE ${column} IN (${batch.map(() => '?').join(',')})`).raw(true).all(...batch) as RawChunkRow[]
    out.push(...chunkInfos(rows, encryptionKey))
  }
  return out
}
