// Chunk encoding: how a chunk's plaintext becomes the bytes kept in a pack, and back.
//   codec 0 raw          the plaintext
//   codec 1 zstd         a zstd frame of the plaintext
//   codec 2 zstd-delta   a zstd frame compressed with the plaintext of a base chunk as raw-content dictionary
// Encrypted flists wrap the encoded bytes as nonce(12) || AES-256-GCM(ciphertext) || tag(16), with a per-chunk
// key HMAC-SHA256(K, "zos-chunk-key-v1" || sid), a random nonce and the sid as AAD, where the store id
// sid = HMAC-SHA256(K, "zos-chunk-id-v1" || sha256(plaintext)).
// Decoding always ends with sha256(plaintext) == chunk hash: bytes that do not match are never returned.
import { createCipheriv, createDecipheriv, createHmac, hash, randomBytes } from 'node:crypto'
// The binding alone: zstd-napi's index adds stream classes that take longer to load than the binding.
import zstd from 'zstd-napi/binding.js'
import { CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_DELTA, storeId, type Codec } from './chunks.js'

export { CODEC_NAMES, CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_DELTA, isCodec, storeId, type Codec } from './chunks.js'

export function sha256(data: Uint8Array): Buffer {
  return hash('sha256', data, 'buffer') // one call: no Hash object per chunk
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

/** Bytes of encryption overhead per chunk: nonce(12) and tag(16). */
const SEAL_OVERHEAD = 28
/** The first bytes of a formatted zstd dictionary (ZSTD_MAGIC_DICTIONARY, little endian). */
const DICT_MAGIC = 0xec30a437

/** Room `ChunkEncoder.encodeInto` may need for a chunk of `size` plaintext bytes. */
export function encodeBound(size: number): number {
  return zstd.compressBound(size) + SEAL_OVERHEAD
}

/**
 * Encodes chunks into caller-provided space. One per thread: it keeps one zstd context for every chunk,
 * plain or delta (a context per chunk, or a dictionary loaded into a fresh one, costs more than compressing
 * the chunk: 10x slower deltas).
 */
export class ChunkEncoder {
  private readonly cctx = new zstd.CCtx()
  private scratch = Buffer.allocUnsafe(0)

  /**
   * Writes the encoding of `plain` into out[at…] (which must have `encodeBound(plain.length)` bytes free) and
   * returns its codec and length. A delta is only kept when it is smaller than both the raw and the zstd
   * encoding.
   */
  encodeInto(plain: Uint8Array, sid: string, options: EncodeOptions, out: Buffer, at: number): { codec: Codec; length: number } {
    const bound = zstd.compressBound(plain.length)
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(Math.max(bound, 320 * 1024))
    // The base is loaded as raw content. A base that starts like a formatted zstd dictionary would be parsed as
    // one (by us and by readers), so it is not used.
    const base = options.base && options.base.length >= 8 && readU32(options.base) !== DICT_MAGIC ? options.base : undefined
    const dst = options.key ? this.scratch : out.subarray(at, at + bound)
    let codec: Codec = CODEC_RAW
    let length = plain.length
    if (base) {
      const n = this.cctx.compressUsingDict(dst, plain, base, options.level)
      if (n < length) {
        codec = CODEC_ZSTD_DELTA
        length = n
      }
    }
    // A good delta (under 1/8 of the plaintext) is kept without trying plain zstd, which rarely gets there.
    if (codec !== CODEC_ZSTD_DELTA || length * 8 > plain.length) {
      const into = codec === CODEC_RAW ? dst : options.key ? out.subarray(at, at + bound) : this.scratch
      const n = this.cctx.compress(into, plain, options.level)
      if (n < length) {
        if (into !== dst) into.copy(dst, 0, 0, n)
        codec = CODEC_ZSTD
        length = n
      }
    }
    if (codec === CODEC_RAW) dst.set(plain)
    if (!options.key) return { codec, length }
    // Encrypted: dst is the scratch buffer; seal it into out.
    const nonce = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', chunkKey(options.key, sid), nonce)
    cipher.setAAD(Buffer.from(sid, 'hex'))
    nonce.copy(out, at)
    let n = 12
    n += cipher.update(dst.subarray(0, length)).copy(out, at + n)
    n += cipher.final().copy(out, at + n)
    n += cipher.getAuthTag().copy(out, at + n)
    return { codec, length: n }
  }
}

function readU32(b: Uint8Array): number {
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0
}

let sharedEncoder: ChunkEncoder | undefined

/** Encodes one chunk (see ChunkEncoder.encodeInto). */
export function encodeChunk(plain: Uint8Array, sid: string, options: EncodeOptions): Encoded {
  const out = Buffer.allocUnsafe(encodeBound(plain.length))
  const { codec, length } = (sharedEncoder ??= new ChunkEncoder()).encodeInto(plain, sid, options, out, 0)
  return { codec, data: out.subarray(0, length) }
}

const plainContext = new zstd.DCtx()
const deltaContext = new zstd.DCtx()

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
  /** The caller only checks the chunk and drops the plaintext at once: a raw chunk's bytes are not copied. */
  checkOnly?: boolean
}

function copyOf(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.byteLength)
  out.set(data)
  return out
}

/** Decompresses into exactly `size` bytes (the size the frame declares, checked by the caller); more is an error. */
function decompress(dctx: InstanceType<typeof zstd.DCtx>, data: Uint8Array, size: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  return out.subarray(0, dctx.decompress(out, data))
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
        // A view of a larger buffer (a store's coalesced span) is copied, so that a kept chunk never pins the span.
        plain = input.checkOnly || data.byteLength === data.buffer.byteLength ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : copyOf(data)
        break
      case CODEC_ZSTD:
        plain = decompress(plainContext, data, input.size)
        break
      case CODEC_ZSTD_DELTA: {
        if (!input.base) throw new ChunkDecodeError('delta chunk decoded without its base', 'codec')
        deltaContext.loadDictionary(input.base)
        plain = decompress(deltaContext, data, input.size)
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
