// Chunk encoding: how a chunk's plaintext becomes the bytes kept in a pack, and back.
//   codec 0 raw          the plaintext
//   codec 1 zstd         a zstd frame of the plaintext
//   codec 2 zstd-delta   a zstd frame compressed with the plaintext of a base chunk as raw-content dictionary
// Encrypted flists wrap the encoded bytes as nonce(12) || AES-256-GCM(ciphertext) || tag(16), with a per-chunk
// key HMAC-SHA256(K, "zos-chunk-key-v1" || sid), a random nonce and the sid as AAD, where the store id
// sid = HMAC-SHA256(K, "zos-chunk-id-v1" || sha256(plaintext)).
// Decoding always ends with sha256(plaintext) == chunk hash: bytes that do not match are never returned.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import { Compressor, Decompressor } from 'zstd-napi'
import { storeId } from './chunks.js'

export { storeId }

export const CODEC_RAW = 0
export const CODEC_ZSTD = 1
export const CODEC_ZSTD_DELTA = 2
export type Codec = typeof CODEC_RAW | typeof CODEC_ZSTD | typeof CODEC_ZSTD_DELTA

export const CODEC_NAMES: Record<Codec, string> = { 0: 'raw', 1: 'zstd', 2: 'zstd-delta' }

export function isCodec(n: number): n is Codec {
  return n === CODEC_RAW || n === CODEC_ZSTD || n === CODEC_ZSTD_DELTA
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

// Keyed by the store id (not the plaintext hash) so that a chunk can be decoded, and verified, from what the
// store index holds: the sid and the flist key. Delta bases found through the store need nothing more.
function chunkKey(key: Buffer, sid: string): Buffer {
  return createHmac('sha256', key).update('zos-chunk-key-v1').update(Buffer.from(sid, 'hex')).digest()
}

export interface EncodeOptions {
  level: number
  /** Plaintext of the delta base; when given, a delta is tried and kept only if it beats plain zstd. */
  base?: Uint8Array
  /** Flist encryption key (32 bytes). */
  key?: Buffer
}

export interface Encoded {
  codec: Codec
  data: Buffer
}

/** Compressors are reused per thread: creating one per chunk costs more than compressing a 64 KiB chunk. */
const compressors = new Map<number, Compressor>()
function compressor(level: number): Compressor {
  let c = compressors.get(level)
  if (!c) {
    c = new Compressor()
    c.setParameters({ compressionLevel: level })
    compressors.set(level, c)
  }
  return c
}
const decompressor = new Decompressor()

/** Encodes one chunk. A delta is only kept when it is smaller than both the raw and the zstd encoding. */
export function encodeChunk(plain: Uint8Array, sid: string, options: EncodeOptions): Encoded {
  let best: Encoded = { codec: CODEC_RAW, data: Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength) }
  if (options.base) {
    const delta = new Compressor()
    delta.setParameters({ compressionLevel: options.level })
    delta.loadDictionary(options.base)
    const d = delta.compress(plain)
    if (d.length < best.data.length) best = { codec: CODEC_ZSTD_DELTA, data: d }
  }
  // A good delta (under 1/8 of the plaintext) is kept without trying plain zstd, which rarely gets there.
  if (best.codec !== CODEC_ZSTD_DELTA || best.data.length * 8 > plain.length) {
    const z = compressor(options.level).compress(plain)
    if (z.length < best.data.length) best = { codec: CODEC_ZSTD, data: z }
  }
  if (!options.key) return best
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', chunkKey(options.key, sid), nonce)
  cipher.setAAD(Buffer.from(sid, 'hex'))
  const ct = Buffer.concat([nonce, cipher.update(best.data), cipher.final(), cipher.getAuthTag()])
  return { codec: best.codec, data: ct }
}

export class ChunkDecodeError extends Error {
  constructor(
    message: string,
    readonly reason: 'decrypt' | 'decompress' | 'hash' | 'size' | 'codec',
  ) {
    super(message)
  }
}

/**
 * The content size a zstd frame declares (undefined if absent or the header is short). Checked before
 * decompressing so that a hostile frame cannot make us allocate more than the chunk's recorded size.
 */
export function zstdFrameContentSize(frame: Uint8Array): number | undefined {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return undefined
  const fhd = frame[4]!
  const fcsFlag = fhd >> 6
  const singleSegment = (fhd >> 5) & 1
  const dictIdSize = [0, 1, 2, 4][fhd & 3]!
  const fcsSize = fcsFlag === 0 ? singleSegment : [0, 2, 4, 8][fcsFlag]!
  const pos = 5 + (singleSegment ? 0 : 1) + dictIdSize
  if (fcsSize === 0 || frame.length < pos + fcsSize) return undefined
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  switch (fcsSize) {
    case 1: return view[pos]
    case 2: return view.readUInt16LE(pos) + 256
    case 4: return view.readUInt32LE(pos)
    default: return Number(view.readBigUInt64LE(pos))
  }
}

export interface DecodeInput {
  data: Uint8Array
  codec: number
  /** Plaintext SHA-256 when known (flist rows); without it the sid is checked (store-index lookups). */
  hash?: Uint8Array
  size: number
  sid: string
  key?: Buffer
  base?: Uint8Array
}

/** Decodes and verifies a chunk; throws ChunkDecodeError when anything does not match. */
export function decodeChunk(input: DecodeInput): Buffer {
  let data: Uint8Array = input.data
  if (input.key) {
    if (data.length < 28) throw new ChunkDecodeError('encrypted chunk is shorter than nonce and tag', 'decrypt')
    try {
      const decipher = createDecipheriv('aes-256-gcm', chunkKey(input.key, input.sid), data.subarray(0, 12))
      decipher.setAAD(Buffer.from(input.sid, 'hex'))
      decipher.setAuthTag(data.subarray(data.length - 16))
      data = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()])
    } catch {
      throw new ChunkDecodeError('authentication tag does not verify', 'decrypt')
    }
  }
  let plain: Buffer
  if (input.codec === CODEC_ZSTD || input.codec === CODEC_ZSTD_DELTA) {
    const declared = zstdFrameContentSize(data)
    if (declared !== input.size) throw new ChunkDecodeError(`zstd frame declares ${declared ?? 'no'} content size, expected ${input.size}`, 'decompress')
  }
  try {
    switch (input.codec) {
      case CODEC_RAW:
        plain = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
        break
      case CODEC_ZSTD:
        plain = decompressor.decompress(data)
        break
      case CODEC_ZSTD_DELTA: {
        if (!input.base) throw new ChunkDecodeError('delta chunk decoded without its base', 'codec')
        const d = new Decompressor()
        d.loadDictionary(input.base)
        plain = d.decompress(data)
        break
      }
      default:
        throw new ChunkDecodeError(`unknown codec ${input.codec}`, 'codec')
    }
  } catch (err) {
    if (err instanceof ChunkDecodeError) throw err
    throw new ChunkDecodeError(`cannot decompress: ${err instanceof Error ? err.message : String(err)}`, 'decompress')
  }
  if (plain.length !== input.size) throw new ChunkDecodeError(`size ${plain.length} differs from the recorded ${input.size}`, 'size')
  const digest = sha256(plain)
  if (input.hash ? !digest.equals(input.hash) : storeId(digest, input.key) !== input.sid) {
    throw new ChunkDecodeError('content does not match the chunk id', 'hash')
  }
  return plain
}
