// Worker thread for the packer: content-defined chunking with SHA-256 of every chunk, and chunk encoding.
import { createHash, randomFillSync } from 'node:crypto'
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { BufferLru } from '../core/lru.js'
import { Chunker, type ChunkerParams } from './chunker.js'
import { ChunkDecodeError, ChunkEncoder, decodeChunk, encodeBound, sha256 } from './codec.js'

/** One file's region of a chunk request's buffer: data[start, start+length) is filled, then `read` appends. */
export interface ChunkPart {
  start: number
  length: number
  /** The region holds the end of the file: cut the last chunk there. */
  final: boolean
  /** Read `read.length` more bytes from this local file into data[start+length…] first. */
  read?: LocalRead
}
export interface LocalRead {
  path: string
  offset: number
  length: number
  fileSize: number
}
export interface ChunkRequest {
  op: 'chunk'
  params: ChunkerParams
  data: Uint8Array
  parts: ChunkPart[]
}
export interface ChunkedPart {
  /** Filled bytes of the region (after any read). */
  length: number
  lengths: number[]
  hashes: Uint8Array // 32 bytes per chunk
  consumed: number
}
export interface ChunkResponse {
  data: Uint8Array
  parts: ChunkedPart[]
}

export interface EncodeItem {
  offset: number // into `data`
  length: number
  sid: string
  /** Index of this chunk's delta base in `EncodeRequest.bases`. */
  base?: number
}
/**
 * A delta base as the store holds it (encoded: about a fifth of its plaintext to pass over), at
 * bases.data[offset, offset+length). The worker decodes and verifies it before using it.
 */
export interface BaseChunk {
  sid: string
  pack: string
  codec: number
  size: number
  offset: number
  length: number
}
export interface EncodeRequest {
  op: 'encode'
  data: Uint8Array
  items: EncodeItem[]
  level: number
  key?: Uint8Array
  bases?: { data: Uint8Array; chunks: BaseChunk[] }
  /** When the encoded chunks add up to at least this many bytes, return them as one finished pack. */
  packMin: number
  /** Where to write the encoded chunks (returned as `data`), if large enough. */
  out: Uint8Array
  /** out[0, prefix) already holds encoded chunks of an open pack: write after them and return them too. */
  prefix: number
}
/**
 * The encoded chunks, back to back in one buffer after the request's prefix. When the buffer adds up to at least
 * `packMin` bytes it is a finished pack and `id` is its name (computed here, so that the main thread neither
 * copies nor hashes it); otherwise the packer keeps it open for the next request.
 */
export interface EncodeResponse {
  /** The request's data, handed back for reuse. */
  source: Uint8Array
  /** The prefix and the new encodings: data.buffer is `out`'s, or a larger one when `out` was too small. */
  data: Uint8Array
  /** The request's items (offsets into `data`, after the prefix). */
  blobs: { codec: number; offset: number; length: number }[]
  id?: string
}

export type WorkerRequest = ChunkRequest | EncodeRequest
export type WorkerResponse = ChunkResponse | EncodeResponse

const chunkers = new Map<string, Chunker>()
const encoder = new ChunkEncoder()

// Warm the chunking loop so V8 optimises it before real data arrives (the first megabytes of a cold worker
// otherwise run at a quarter of the speed). Half a megabyte gets it compiled; more only costs CPU while the
// main thread, on the same cores, is still loading. Every branch of the loop runs first with tiny parameters
// (too few iterations to optimise anything): optimised code compiled without feedback for a branch is thrown
// away when real data first takes it, and the loop's on-stack-replacement code was re-entered and thrown away
// again for every batch (15 times per worker on a Debian root: the second loop, after the average size, had
// never run when the first loop was compiled).
{
  const warm = randomFillSync(new Uint8Array(512 * 1024))
  // min and max not 8 bytes apart from avg: the loops' byte-at-a-time tails run too (with the default
  // parameters they run only at the end of a file).
  const tiny = new Chunker({ algorithm: 'fastcdc-gear32-v1', min: 67, avg: 256, max: 1029 })
  tiny.split(warm, 8 * 1024, true) // cuts in both loops
  tiny.split(warm, 8 * 1024, false) // a tail held back for the next segment
  tiny.split(warm, 32, true) // shorter than the minimum
  tiny.split(new Uint8Array(4 * 1024), 4 * 1024, true) // equal bytes: no cut before the maximum
  new Chunker().split(warm, warm.length, true)
}

/** A failure the main thread turns into a ZosError with this code. */
class CodedError extends Error {
  constructor(
    readonly code: 'SOURCE_CHANGED' | 'CHUNK_TAMPERED',
    message: string,
  ) {
    super(message)
  }
}

/** Fills data[at, at+length) from a local file, checking that the file still has the size it was walked with. */
function readInto(data: Uint8Array, at: number, read: LocalRead): void {
  const fd = openSync(read.path, constants.O_RDONLY | constants.O_NOFOLLOW)
  try {
    if (read.offset === 0 && read.length === read.fileSize && at + read.length < data.byteLength) {
      // A whole file (most are): ask for one byte more; a short read that ends exactly at its size is the end
      // of the file, which checks the size without an fstat.
      readWhole(fd, data, at, read)
      return
    }
    if (fstatSync(fd).size !== read.fileSize) throw new CodedError('SOURCE_CHANGED', `${read.path} changed size while it was being packed`)
    let done = 0
    while (done < read.length) {
      const n = readSync(fd, data, at + done, read.length - done, read.offset + done)
      if (n === 0) throw new CodedError('SOURCE_CHANGED', `${read.path} shrank while it was being packed`)
      done += n
    }
  } finally {
    closeSync(fd)
  }
}

/** readInto for a whole file, into data[at, at+length] (one byte more, put back after). */
function readWhole(fd: number, data: Uint8Array, at: number, read: LocalRead): void {
  const after = data[at + read.length]!
  let done = 0
  for (;;) {
    const want = read.length + 1 - done
    const n = readSync(fd, data, at + done, want, done)
    done += n
    if (n === 0 || done > read.length || (n < want && done === read.length)) break
  }
  data[at + read.length] = after
  if (done !== read.length) throw new CodedError('SOURCE_CHANGED', `${read.path} changed size while it was being packed`)
}

/**
 * Decoded delta bases, by sid (keyed ids of encrypted flists never collide with plain ones): successive versions
 * of a file keep deltas against the same old chunks, so a pool shared by several packs decodes each once.
 */
const decodedBases = new BufferLru(32 * 1024 * 1024)

/** Decodes and verifies the delta bases of an encode request. */
function decodeBases(bases: EncodeRequest['bases'], key: Buffer | undefined): Buffer[] {
  if (!bases) return []
  return bases.chunks.map((b) => {
    const cached = decodedBases.get(b.sid)
    if (cached) return cached
    try {
      const plain = decodeChunk({ data: bases.data.subarray(b.offset, b.offset + b.length), codec: b.codec, size: b.size, sid: b.sid, key })
      decodedBases.set(b.sid, plain)
      return plain
    } catch (err) {
      if (err instanceof ChunkDecodeError) throw new CodedError('CHUNK_TAMPERED', `delta base ${b.sid} in pack ${b.pack}: ${err.message}`)
      throw err
    }
  })
}

/** The buffers among these that must be transferred back (shared ones, the packer's encode outputs, are not). */
function movable(...buffers: ArrayBufferLike[]): ArrayBuffer[] {
  return buffers.filter((b): b is ArrayBuffer => !(b instanceof SharedArrayBuffer))
}

function handle(req: WorkerRequest): { value: WorkerResponse; transfer: ArrayBuffer[] } {
  if (req.op === 'chunk') {
    const key = JSON.stringify(req.params)
    let chunker = chunkers.get(key)
    if (!chunker) chunkers.set(key, (chunker = new Chunker(req.params)))
    const cut = req.parts.map((part) => {
      let length = part.length
      if (part.read) {
        readInto(req.data, part.start + length, part.read)
        length += part.read.length
      }
      return { length, ...chunker!.split(req.data, part.start + length, part.final, part.start) }
    })
    // One hash buffer for the whole batch: an ArrayBuffer per file costs more than its 32 bytes.
    const hashes = new Uint8Array(cut.reduce((n, c) => n + c.lengths.length, 0) * 32)
    let at = 0
    const parts = cut.map(({ length, lengths, consumed }, p): ChunkedPart => {
      const mine = hashes.subarray(at * 32, (at + lengths.length) * 32)
      let pos = req.parts[p]!.start
      for (let i = 0; i < lengths.length; i++) {
        mine.set(sha256(req.data.subarray(pos, pos + lengths[i]!)), i * 32)
        pos += lengths[i]!
      }
      at += lengths.length
      return { length, lengths, hashes: mine, consumed }
    })
    return { value: { data: req.data, parts }, transfer: movable(req.data.buffer, hashes.buffer) }
  }
  const key = req.key ? Buffer.from(req.key) : undefined
  const bases = decodeBases(req.bases, key)
  const need = req.items.reduce((n, item) => n + encodeBound(item.length), req.prefix)
  let out = Buffer.from(req.out.buffer, req.out.byteOffset, req.out.byteLength)
  if (out.length < need) {
    const larger = Buffer.allocUnsafeSlow(need)
    out.copy(larger, 0, 0, req.prefix)
    out = larger
  }
  let offset = req.prefix
  const blobs = req.items.map((item) => {
    const plain = req.data.subarray(item.offset, item.offset + item.length)
    const { codec, length } = encoder.encodeInto(plain, item.sid, { level: req.level, base: item.base === undefined ? undefined : bases[item.base], key }, out, offset)
    offset += length
    return { codec, offset: offset - length, length }
  })
  const data = out.subarray(0, offset)
  const id = offset >= req.packMin ? createHash('sha256').update(data).digest('hex') : undefined
  return { value: { source: req.data, data, blobs, ...(id ? { id } : {}) }, transfer: movable(req.data.buffer, out.buffer) }
}

parentPort?.on('message', (req: WorkerRequest) => {
  try {
    const { value, transfer } = handle(req)
    parentPort!.postMessage({ ok: true, value }, transfer)
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err), ...(err instanceof CodedError ? { code: err.code } : {}) })
  }
})
