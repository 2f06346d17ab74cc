// Checking an uploaded pack before anything is written: its bytes hash to its id, every index entry lies
// inside it without overlapping another, and every chunk the hub can decode (not encrypted; for a delta, its
// base at hand in the same pack or verified on the hub) decodes to its id. Encrypted chunks, and deltas whose
// base is not on the hub yet, are recorded as unverified: the hub decodes them when an flist that uses them is
// uploaded (the flist holds the key and lists the base).
import { createHash } from 'node:crypto'
import { zerr } from '../core/errors.js'
import { ChunkDecodeError, CODEC_ZSTD_DELTA, decodeChunk } from '../flist/codec.js'
import type { ChunkLoc } from './db.js'
import type { PackEntry } from './wire.js'

/** Largest plaintext size of one chunk the hub decodes (a zstd frame cannot make it allocate more). */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024
/** nonce + GCM tag around an encrypted chunk. */
const MIN_ENCRYPTED = 28

export interface PackCheck {
  locs: ChunkLoc[]
  verified: number
}

/**
 * Verifies an uploaded pack. `verifiedBase` returns the plaintext of a full chunk the hub already verified, or
 * undefined. Throws CHUNK_TAMPERED (bytes that do not match their id) or INVALID_ARGUMENT (a bad index).
 */
export async function checkPack(
  id: string,
  pack: Buffer,
  entries: readonly PackEntry[],
  verifiedBase: (sid: string) => Promise<Buffer | undefined>,
  /** The SHA-256 of `pack` when it was computed on the way in. */
  packSha256?: string,
): Promise<PackCheck> {
  const actual = packSha256 ?? createHash('sha256').update(pack).digest('hex')
  if (actual !== id) {
    throw zerr('CHUNK_TAMPERED', `pack bytes hash to ${actual}, not to the id ${id} they were uploaded as (truncated or altered in transit); nothing was stored`, { pack: id, actual })
  }
  if (entries.length === 0) throw zerr('INVALID_ARGUMENT', `pack ${id}: the index lists no chunks`)
  const sorted = entries.map((e, i) => ({ e, i })).sort((a, b) => a.e.offset - b.e.offset)
  let end = 0
  for (const { e, i } of sorted) {
    const where = `pack ${id}, index entry ${i} (sid ${e.sid})`
    if (e.offset + e.length > pack.length) throw zerr('INVALID_ARGUMENT', `${where}: bytes ${e.offset}+${e.length} do not lie inside the ${pack.length}-byte pack`)
    if (e.offset < end) throw zerr('INVALID_ARGUMENT', `${where}: bytes ${e.offset}+${e.length} overlap the previous chunk`)
    end = e.offset + e.length
    if (e.size > MAX_CHUNK_SIZE) throw zerr('INVALID_ARGUMENT', `${where}: size ${e.size} is larger than the ${MAX_CHUNK_SIZE} bytes a chunk may have`)
    if ((e.codec === CODEC_ZSTD_DELTA) !== (e.base !== undefined)) throw zerr('INVALID_ARGUMENT', `${where}: a delta chunk (codec 2) needs a base, and only a delta has one`)
    if (e.encrypted && e.length < MIN_ENCRYPTED) throw zerr('CHUNK_TAMPERED', `${where}: an encrypted chunk is at least ${MIN_ENCRYPTED} bytes (nonce and tag)`)
  }

  const plains = new Map<string, Buffer>()
  const decode = (e: PackEntry, base?: Buffer): void => {
    try {
      plains.set(e.sid, decodeChunk({ data: pack.subarray(e.offset, e.offset + e.length), codec: e.codec, size: e.size, sid: e.sid, ...(base ? { base } : {}) }))
    } catch (err) {
      if (err instanceof ChunkDecodeError) {
        throw zerr('CHUNK_TAMPERED', `pack ${id}: chunk ${e.sid} at offset ${e.offset} does not decode to its id (${err.message}); nothing was stored`, { pack: id, sid: e.sid, offset: e.offset })
      }
      throw err
    }
  }
  const verified = new Set<PackEntry>()
  for (const e of entries) {
    if (e.encrypted || e.codec === CODEC_ZSTD_DELTA) continue
    decode(e)
    verified.add(e)
  }
  for (const e of entries) {
    if (e.encrypted || e.codec !== CODEC_ZSTD_DELTA) continue
    const base = plains.get(e.base!) ?? (await verifiedBase(e.base!))
    if (!base) continue // verified when an flist that lists the base is uploaded
    decode(e, base)
    verified.add(e)
  }
  const locs = entries.map((e) => {
    const loc: ChunkLoc = { pack: id, offset: e.offset, length: e.length, sid: e.sid, size: e.size, codec: e.codec, verified: verified.has(e) }
    if (e.base !== undefined) loc.base = e.base
    return loc
  })
  return { locs, verified: verified.size }
}
