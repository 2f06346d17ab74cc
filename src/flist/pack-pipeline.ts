// The content half of the packer: file bytes → chunks in packs, batched so that one worker round trip serves
// many small files (per-file round trips cost more than chunking a small file).
//   batch buffer ──► worker: read local files, FastCDC, SHA-256 ──► claim (this flist) / lookup (store index)
//   ──► delta bases from the store's path hints ──► worker: encode ──► PackBuilder ──► store.putPack
import { BufferLru } from '../core/lru.js'
import { createHash, createHmac, hash } from 'node:crypto'
import { zerr } from '../core/errors.js'
import type { WorkerPool } from '../core/worker-pool.js'
import type { ChunkLocation, WritableStore } from '../store/types.js'
import type { ChunkerParams } from './chunker.js'
import { CODEC_ZSTD_DELTA, ChunkDecodeError, decodeChunk, encodeBound, sha256, storeId } from './codec.js'
import type { BaseChunk, ChunkPart, ChunkResponse, EncodeRequest, EncodeResponse, LocalRead, WorkerRequest, WorkerResponse } from './pack-worker.js'
import type { FlistWriter } from './writer.js'

/** What the packer knows about one file while its chunks are produced. */
export interface FileState {
  readonly ino: number
  readonly path: string
  readonly hintKey: string
  readonly oldSids: readonly string[]
  readonly oldIndex: ReadonlyMap<string, number>
  /** The last chunk this version shares with the old one, for picking delta bases. */
  anchor?: { newIdx: number; oldIdx: number }
  readonly sids: string[]
  readonly extents: { offset: number; chunk: number }[]
  /** File offset of the next byte to chunk, and the bytes held back for the next segment. */
  fileOffset: number
  carry: Uint8Array
}

export interface BatchPart {
  file: FileState
  start: number
  length: number
  final: boolean
  read?: LocalRead
}

export interface PipelineStats {
  newChunks: number
  deltaChunks: number
}

interface PendingBlob {
  id: number
  hash: Buffer
  sid: string
  size: number
  codec: number
  baseId?: number
  baseSid?: string
}

/**
 * A pack a worker has started but not finished: encodings too few to make a pack on their own. The next encode
 * request that has room takes it over and appends to it, so that the worker, not this thread, copies and hashes
 * the bytes of (almost) every pack.
 */
export interface OpenPack {
  /** The whole output buffer; data[0, bytes) holds the encodings so far. */
  readonly buffer: Buffer
  readonly bytes: number
  readonly blobs: readonly PendingBlob[]
  readonly offsets: readonly { offset: number; length: number }[]
}

/**
 * Accumulates encoded chunks into packs and stores each pack once it reaches the target size. Small encodings
 * are copied into a reused pack buffer (a fresh buffer per pack would cost its page faults).
 */
class PackBuilder {
  private blobs: (PendingBlob & { offset: number; length: number })[] = []
  private buffer: Buffer | undefined
  private bytes = 0
  private readonly inflight = new Set<Promise<void>>()
  private readonly open: OpenPack[] = []
  packs = 0
  storedBytes = 0

  constructor(
    private readonly store: WritableStore,
    private readonly writer: FlistWriter,
    private readonly target: number,
    private readonly buffers: BufferRecycler,
  ) {}

  add(blob: PendingBlob, data: Uint8Array): void {
    if (this.buffer && this.bytes + data.length > this.buffer.length) this.flush()
    this.buffer ??= this.buffers.take(Math.max(this.buffers.capacity, data.length))
    this.buffer.set(data, this.bytes)
    this.blobs.push({ ...blob, offset: this.bytes, length: data.length })
    this.bytes += data.length
    if (this.bytes >= this.target) this.flush()
  }

  private flush(): void {
    const buffer = this.buffer
    if (!buffer || this.blobs.length === 0) return
    const blobs = this.blobs
    const data = buffer.subarray(0, this.bytes)
    this.blobs = []
    this.buffer = undefined
    this.bytes = 0
    this.track(createHash('sha256').update(data).digest('hex'), data, blobs, blobs)
  }

  /** Stores a pack a worker already assembled and named (in a buffer of `buffers`, handed back once written). */
  addPack(pack: string, data: Uint8Array, blobs: readonly PendingBlob[], offsets: readonly { offset: number; length: number }[]): void {
    this.track(pack, Buffer.from(data.buffer, data.byteOffset, data.byteLength), blobs, offsets)
  }

  private track(pack: string, data: Buffer, blobs: readonly PendingBlob[], offsets: readonly { offset: number; length: number }[]): void {
    const locations: ChunkLocation[] = blobs.map((b, i) => ({ sid: b.sid, size: b.size, codec: b.codec, pack, offset: offsets[i]!.offset, length: offsets[i]!.length, ...(b.baseSid ? { base: b.baseSid } : {}) }))
    // Named here (flush) or by a worker of this packer: the store need not hash the pack again.
    const p = this.store.putPack(pack, data, locations, { sha256: pack }).then(() => {
      this.packs++
      this.storedBytes += data.length
      blobs.forEach((b, i) => {
        const loc = locations[i]!
        this.writer.addChunk({ id: b.id, hash: b.hash, size: b.size, pack, offset: loc.offset, length: loc.length, codec: b.codec, base: b.baseId })
      })
    })
    const tracked = p.finally(() => {
      this.inflight.delete(tracked)
      this.buffers.give(data.buffer)
    })
    this.inflight.add(tracked)
    tracked.catch(() => {})
  }

  /** An open pack with room for `need` more bytes, taken out of the builder (the caller hands it to a worker). */
  takeOpen(need: number): OpenPack | undefined {
    const i = this.open.findIndex((p) => p.bytes + need <= p.buffer.length)
    return i < 0 ? undefined : this.open.splice(i, 1)[0]
  }

  keepOpen(pack: OpenPack): void {
    this.open.push(pack)
  }

  /** Waits until at most `max` packs are being written (back-pressure). */
  async settle(max: number): Promise<void> {
    while (this.inflight.size > max) await Promise.race(this.inflight)
  }

  async finish(): Promise<void> {
    // What is left open: one pack as it is; several are joined here (at most one per concurrent batch).
    const open = this.open.splice(0)
    if (open.length === 1 && this.blobs.length === 0) {
      const p = open[0]!
      const data = p.buffer.subarray(0, p.bytes)
      this.track(createHash('sha256').update(data).digest('hex'), data, p.blobs, p.offsets)
    } else {
      for (const p of open) {
        p.blobs.forEach((b, i) => this.add(b, p.buffer.subarray(p.offsets[i]!.offset, p.offsets[i]!.offset + p.offsets[i]!.length)))
        this.buffers.give(p.buffer.buffer)
      }
    }
    this.flush()
    await Promise.all(this.inflight)
  }
}

/**
 * Buffers, reused: touching fresh memory costs a page fault per 4 KiB (about 3 ms per MiB on the VMs we measure
 * on: more than reading or compressing those bytes). Batch buffers go to a worker and come back with the answer,
 * encode outputs come back with the encoded chunks and return once their pack is written; one side at a time
 * uses a buffer.
 *
 * Encode outputs are SharedArrayBuffers, passed to the workers and back without a transfer: V8 counts every
 * transferred ArrayBuffer that arrives as new external memory of the young generation, and once that reaches a
 * few tens of MB, each small allocation of a backing store (a Buffer, an fs request) starts a scavenge. Shared
 * memory is not counted. Batch buffers stay ArrayBuffers (transferred): JavaScript reads bytes of a shared one
 * about half as fast (the chunker), and copies out of it element by element.
 */
class BufferRecycler {
  private readonly free: ArrayBufferLike[] = []

  constructor(
    readonly capacity: number,
    private readonly keep: number,
    private readonly shared: boolean,
  ) {}

  /** A buffer of exactly `size` bytes, not zero-filled. */
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.byteLength >= size)
    if (i >= 0) return Buffer.from(this.free.splice(i, 1)[0]!, 0, size)
    const n = Math.max(size, this.capacity)
    return Buffer.from(this.shared ? new SharedArrayBuffer(n) : Buffer.allocUnsafeSlow(n).buffer, 0, size)
  }

  give(buffer: ArrayBufferLike): void {
    if (buffer.byteLength >= this.capacity && this.free.length < this.keep) this.free.push(buffer)
  }
}

/** The buffers among these that must be transferred (shared ones are passed as they are). */
function movable(...buffers: ArrayBufferLike[]): ArrayBuffer[] {
  return buffers.filter((b): b is ArrayBuffer => !(b instanceof SharedArrayBuffer))
}

interface Recyclers {
  /** Batch buffers: file bytes to chunk and encode. */
  batches: BufferRecycler
  /** Encoded chunks: encode outputs and packs being assembled. */
  outputs: BufferRecycler
}

/** One set of recyclers per worker pool: a pool shared by several packs (`PackOptions.pool`) keeps its buffers warm. */
const recyclers = new WeakMap<object, Recyclers>()
function recyclersOf(pool: WorkerPool<WorkerRequest, WorkerResponse>, batch: number, output: number): Recyclers {
  let r = recyclers.get(pool)
  if (!r || r.batches.capacity !== batch || r.outputs.capacity !== output) {
    const keep = pool.size * 4 + 4
    recyclers.set(pool, (r = { batches: new BufferRecycler(batch, keep, false), outputs: new BufferRecycler(output, keep, true) }))
  }
  return r
}

/** The old-version index of a file that has none (most files of a first pack). */
const NO_SIDS: ReadonlyMap<string, number> = new Map()
/** The carry of a file not yet chunked (carries are replaced, never written to). */
const NO_BYTES = new Uint8Array(0)

/** A new chunk of a batch, to encode. */
interface Item {
  file: FileState
  idx: number
  offset: number // into the batch buffer
  length: number
  sid: string
  hash: Buffer
  id: number
  baseSid?: string
  baseLoc?: ChunkLocation
}

export interface PipelineOptions {
  pool: WorkerPool<WorkerRequest, WorkerResponse>
  store: WritableStore
  writer: FlistWriter
  chunker: ChunkerParams
  level: number
  key: Buffer | undefined
  delta: boolean
  packSize: number
  /** Size of the batch buffers to reuse (the largest batch or segment the packer makes). */
  bufferSize: number
}

export class ChunkPipeline {
  readonly stats: PipelineStats = { newChunks: 0, deltaChunks: 0 }
  /** chunk sid → flist chunk id, for every chunk this flist references (including delta bases). */
  readonly chunkIds = new Map<string, number>()
  private readonly packs: PackBuilder
  private readonly bases = new BufferLru(64 * 1024 * 1024)
  private readonly buffers: Recyclers

  constructor(private readonly o: PipelineOptions) {
    // Encodings of a full batch buffer fit in an output buffer after an open pack (less than packSize / 2),
    // and so does a pack being assembled.
    const output = Math.max(o.packSize / 2 + encodeBound(o.bufferSize) + (o.bufferSize >> 6), o.packSize + encodeBound(o.chunker.max))
    this.buffers = recyclersOf(o.pool, o.bufferSize, output)
    this.packs = new PackBuilder(o.store, o.writer, o.packSize, this.buffers.outputs)
  }

  /** A buffer for runBatch (which takes it over), of `size` bytes, not zero-filled. */
  takeBuffer(size: number): Buffer {
    return this.buffers.batches.take(size)
  }

  get packCount(): number {
    return this.packs.packs
  }

  get storedBytes(): number {
    return this.packs.storedBytes
  }

  hintKey(path: string): string {
    const key = this.o.key
    return key
      ? createHmac('sha256', key).update('zos-path-hint-v1').update(path).digest('hex')
      : hash('sha256', `zos-path-hint-v1${path}`, 'hex') // one call per file, no Hash object: the same digest
  }

  async openFile(ino: number, path: string): Promise<FileState> {
    return (await this.openFiles([{ ino, path }]))[0]!
  }

  /** FileStates for several files, with their path hints from one store query. */
  async openFiles(files: readonly { ino: number; path: string }[]): Promise<FileState[]> {
    const keys = files.map((f) => this.hintKey(f.path))
    const store = this.o.store
    let hints: Map<string, string[]> | undefined
    if (this.o.delta) {
      if (store.getPathHints) hints = await store.getPathHints(keys)
      else {
        hints = new Map()
        for (const k of keys) {
          const sids = await store.getPathHint(k)
          if (sids) hints.set(k, sids)
        }
      }
    }
    return files.map((f, i) => {
      const hintKey = keys[i]!
      const oldSids = hints?.get(hintKey) ?? []
      return {
        ino: f.ino, path: f.path, hintKey, oldSids, oldIndex: oldSids.length ? new Map(oldSids.map((s, j) => [s, j] as const)) : NO_SIDS,
        sids: [], extents: [], fileOffset: 0, carry: NO_BYTES,
      }
    })
  }

  /** Registers a chunk the store already has (and, for a delta, its base) as rows of this flist. */
  private async importStoreChunk(loc: ChunkLocation, hash?: Buffer): Promise<number> {
    const known = this.chunkIds.get(loc.sid)
    if (known !== undefined) return known
    let baseId: number | undefined
    if (loc.codec === CODEC_ZSTD_DELTA) {
      if (!loc.base) throw zerr('CHUNK_TAMPERED', `store index: delta chunk ${loc.sid} has no base`)
      const baseLoc = (await this.o.store.lookupChunks([loc.base])).get(loc.base)
      if (!baseLoc) throw zerr('CHUNK_MISSING', `store index: base ${loc.base} of chunk ${loc.sid} is missing`)
      baseId = await this.importStoreChunk(baseLoc)
    }
    const again = this.chunkIds.get(loc.sid)
    if (again !== undefined) return again
    const id = this.o.writer.allocateChunk()
    this.chunkIds.set(loc.sid, id)
    const h = hash ?? (this.o.key ? sha256(await this.fetchPlain(loc)) : Buffer.from(loc.sid, 'hex'))
    this.o.writer.addChunk({ id, hash: h, size: loc.size, pack: loc.pack, offset: loc.offset, length: loc.length, codec: loc.codec, base: baseId })
    return id
  }

  /** Reads and verifies a full chunk from the store (for the plaintext hash of a chunk of an encrypted flist). */
  private async fetchPlain(loc: ChunkLocation): Promise<Buffer> {
    const cached = this.bases.get(loc.sid)
    if (cached) return cached
    if (loc.codec === CODEC_ZSTD_DELTA) throw zerr('INTERNAL', 'delta chunks are never used as bases')
    const [data] = await this.o.store.readRanges([loc])
    try {
      const plain = decodeChunk({ data: data!, codec: loc.codec, size: loc.size, sid: loc.sid, key: this.o.key })
      this.bases.set(loc.sid, plain)
      return plain
    } catch (err) {
      if (err instanceof ChunkDecodeError) throw zerr('CHUNK_TAMPERED', `chunk ${loc.sid} in pack ${loc.pack} of ${this.o.store.url}: ${err.message}`, { sid: loc.sid })
      throw err
    }
  }

  /**
   * Chunks, deduplicates, encodes and stores the parts of one buffer (one region per file). Each part's
   * FileState gets its chunk ids, sids and the carry to prepend to its next segment.
   */
  async runBatch(data: Uint8Array, parts: readonly BatchPart[]): Promise<void> {
    await (await this.chunkBatch(data, parts)).encoded
  }

  /**
   * runBatch in two steps: resolves once the parts are chunked and their FileStates updated (the next segment of
   * a file can go to a worker then), with `encoded`, which settles once the new chunks are encoded and stored.
   */
  async chunkBatch(data: Uint8Array, parts: readonly BatchPart[]): Promise<{ encoded: Promise<void> }> {
    const { pool, store, chunker, key } = this.o
    const request: ChunkPart[] = parts.map((p) => ({ start: p.start, length: p.length, final: p.final, ...(p.read ? { read: p.read } : {}) }))
    const res = (await pool.run({ op: 'chunk', params: chunker, data, parts: request }, movable(data.buffer))) as ChunkResponse
    const buf = res.data

    const fresh: { file: FileState; idx: number; sid: string; hash: Buffer; offset: number; length: number }[] = []
    const firsts: number[] = []
    parts.forEach((part, p) => {
      const r = res.parts[p]!
      const f = part.file
      const first = f.sids.length
      firsts.push(first)
      let pos = part.start
      r.lengths.forEach((n, c) => {
        const hash = Buffer.from(r.hashes.buffer, r.hashes.byteOffset + c * 32, 32)
        const sid = storeId(hash, key)
        f.sids.push(sid)
        f.extents.push({ offset: f.fileOffset + (pos - part.start), chunk: -1 })
        if (!this.chunkIds.has(sid)) fresh.push({ file: f, idx: first + c, sid, hash, offset: pos, length: n })
        pos += n
      })
    })

    const found = fresh.length ? await store.lookupChunks([...new Set(fresh.map((f) => f.sid))]) : new Map<string, ChunkLocation>()
    const items: Item[] = []
    const itemAt = new Map<FileState, Map<number, Item>>()
    for (const f of fresh) {
      if (this.chunkIds.has(f.sid)) continue // claimed by an earlier file of this batch, or by a concurrent batch
      const loc = found.get(f.sid)
      if (loc) {
        await this.importStoreChunk(loc, f.hash)
        continue
      }
      const id = this.o.writer.allocateChunk()
      this.chunkIds.set(f.sid, id)
      const item: Item = { file: f.file, idx: f.idx, offset: f.offset, length: f.length, sid: f.sid, hash: f.hash, id }
      items.push(item)
      let m = itemAt.get(f.file)
      if (!m) itemAt.set(f.file, (m = new Map()))
      m.set(f.idx, item)
    }
    if (this.o.delta) await this.chooseBases(parts, firsts, itemAt, items)

    parts.forEach((part, p) => {
      const r = res.parts[p]!
      const f = part.file
      for (let c = firsts[p]!; c < f.sids.length; c++) f.extents[c]!.chunk = this.chunkIds.get(f.sids[c]!)!
      // Keep the unconsumed tail for the file's next segment (copied: the buffer moves to a worker).
      f.carry = Uint8Array.prototype.slice.call(buf, part.start + r.consumed, part.start + r.length)
      f.fileOffset += r.consumed
    })
    if (items.length === 0) {
      this.buffers.batches.give(buf.buffer)
      return { encoded: Promise.resolve() }
    }
    const encoded = this.encodeBatch(buf, items)
    encoded.catch(() => {}) // the caller awaits it
    return { encoded }
  }

  /** Encodes a batch's new chunks (at their offsets in `buf`, which it takes over) and stores them in packs. */
  private async encodeBatch(buf: Uint8Array, items: readonly Item[]): Promise<void> {
    const { pool, key } = this.o
    const bases = await this.readBases(items)
    let need = 0
    for (const item of items) need += encodeBound(item.length)
    const open = this.packs.takeOpen(need)
    const encode: EncodeRequest = {
      op: 'encode',
      data: buf,
      items: items.map(({ offset, length, sid, baseSid }) => ({ offset, length, sid, ...(baseSid ? { base: bases.index.get(baseSid)! } : {}) })),
      level: this.o.level,
      ...(key ? { key: new Uint8Array(key) } : {}),
      ...(bases.chunks.length ? { bases: { data: bases.data, chunks: bases.chunks } } : {}),
      packMin: this.o.packSize / 2,
      out: open?.buffer ?? this.buffers.outputs.take(this.buffers.outputs.capacity),
      prefix: open?.bytes ?? 0,
    }
    const transfer = movable(buf.buffer, encode.out.buffer, ...(bases.chunks.length ? [bases.data.buffer] : []))
    const enc = (await pool.run(encode, transfer)) as EncodeResponse
    this.buffers.batches.give(enc.source.buffer)
    const describe = (i: number, codec: number): PendingBlob => {
      const item = items[i]!
      if (codec === CODEC_ZSTD_DELTA) this.stats.deltaChunks++
      this.stats.newChunks++
      return {
        id: item.id, hash: item.hash, sid: item.sid, size: item.length, codec,
        ...(codec === CODEC_ZSTD_DELTA ? { baseId: this.chunkIds.get(item.baseSid!)!, baseSid: item.baseSid! } : {}),
      }
    }
    const mine = enc.blobs.map((b, i) => describe(i, b.codec))
    const blobs = open ? [...open.blobs, ...mine] : mine
    const offsets = open ? [...open.offsets, ...enc.blobs] : enc.blobs
    if (enc.id !== undefined) {
      this.packs.addPack(enc.id, enc.data, blobs, offsets)
    } else {
      // Too small for a pack of its own: the next batch's worker appends to it.
      this.packs.keepOpen({ buffer: Buffer.from(enc.data.buffer, 0, enc.data.buffer.byteLength), bytes: enc.data.byteLength, blobs, offsets })
    }
    await this.packs.settle(4)
  }

  /**
   * Delta bases: for each new chunk, the old version's chunk at the same distance from the last chunk both
   * versions share. A delta's base must be a full chunk, so an old delta chunk lends its own base.
   */
  private async chooseBases(parts: readonly BatchPart[], firsts: readonly number[], itemAt: Map<FileState, Map<number, Item>>, items: Item[]): Promise<void> {
    const wanted: string[] = []
    parts.forEach((part, p) => {
      const f = part.file
      if (f.oldSids.length === 0) return
      const mine = itemAt.get(f)
      for (let c = firsts[p]!; c < f.sids.length; c++) {
        const oi = f.oldIndex.get(f.sids[c]!)
        if (oi !== undefined) f.anchor = { newIdx: c, oldIdx: oi }
        const item = mine?.get(c)
        if (!item) continue
        const candidate = f.anchor ? f.anchor.oldIdx + (c - f.anchor.newIdx) : c
        const b = candidate >= 0 && candidate < f.oldSids.length ? f.oldSids[candidate]! : undefined
        if (b && b !== item.sid) {
          item.baseSid = b
          wanted.push(b)
        }
      }
    })
    if (wanted.length === 0) return
    const store = this.o.store
    const baseLocs = await store.lookupChunks([...new Set(wanted)])
    const second = [...baseLocs.values()].filter((l) => l.codec === CODEC_ZSTD_DELTA && l.base).map((l) => l.base!)
    const seconds = second.length ? await store.lookupChunks([...new Set(second)]) : new Map<string, ChunkLocation>()
    for (const item of items) {
      if (!item.baseSid) continue
      let loc = baseLocs.get(item.baseSid)
      if (loc && loc.codec === CODEC_ZSTD_DELTA) loc = loc.base ? seconds.get(loc.base) : undefined
      if (!loc || loc.codec === CODEC_ZSTD_DELTA) {
        delete item.baseSid
        continue
      }
      item.baseSid = loc.sid
      item.baseLoc = loc
      await this.importStoreChunk(loc)
    }
  }

  /**
   * The delta bases of a batch, read from the store in one call and passed to the worker encoded: the worker
   * decodes and verifies them (decompressing and hashing them here would load the main thread).
   */
  private async readBases(items: readonly Item[]): Promise<{ data: Uint8Array; chunks: BaseChunk[]; index: Map<string, number> }> {
    const index = new Map<string, number>()
    const locs: ChunkLocation[] = []
    for (const item of items) {
      if (!item.baseLoc || index.has(item.baseLoc.sid)) continue
      index.set(item.baseLoc.sid, locs.length)
      locs.push(item.baseLoc)
    }
    if (locs.length === 0) return { data: new Uint8Array(0), chunks: [], index }
    const encoded = await this.o.store.readRanges(locs)
    const data = Buffer.allocUnsafeSlow(encoded.reduce((n, b) => n + b.length, 0))
    let offset = 0
    const chunks = locs.map((loc, i): BaseChunk => {
      const b = encoded[i]!
      b.copy(data, offset)
      offset += b.length
      return { sid: loc.sid, pack: loc.pack, codec: loc.codec, size: loc.size, offset: offset - b.length, length: b.length }
    })
    return { data, chunks, index }
  }

  async finish(): Promise<void> {
    await this.packs.finish()
  }
}
