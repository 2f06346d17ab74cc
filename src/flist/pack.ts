// The packer: turns a Source into an flist metadata file plus packs in a writable store.
//   entries ──► FlistWriter (inodes, names, xattrs)
//   file content ──► worker: FastCDC + SHA-256 ──► dedup (this flist, then the store index)
//                ──► new chunks: delta base from the store's path hints ──► worker: zstd (+delta, +AES-GCM)
//                ──► PackBuilder (≈4 MiB packs) ──► store.putPack ──► chunk rows
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { zerr, ZosError } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import { Semaphore } from '../core/semaphore.js'
import { WorkerPool, siblingModule } from '../core/worker-pool.js'
import type { ChunkLocation, WritableStore } from '../store/types.js'
import { DEFAULT_CHUNKER, validateChunkerParams, type ChunkerParams } from './chunker.js'
import { CODEC_ZSTD_DELTA, ChunkDecodeError, decodeChunk, sha256, storeId } from './codec.js'
import type { WorkerRequest, WorkerResponse, ChunkRequest, ChunkResponse, EncodeResponse, EncodeItem } from './pack-worker.js'
import { TAG_KEYS, TYPE_BITS, encodeDev, S_IFDIR, ROOT_INO } from './schema.js'
import type { Source, SourceEntry } from './source/types.js'
import { FlistWriter, type InodeAttrs } from './writer.js'

export interface PackOptions {
  source: Source
  output: string
  store: WritableStore
  /** zstd level (1–19); default 3. */
  level?: number
  chunker?: ChunkerParams
  /** Encrypt chunks with AES-256-GCM: true for a fresh random key, or the 32-byte key to use. */
  encrypt?: boolean | Buffer
  signers?: readonly KeyPair[]
  tags?: Readonly<Record<string, string>>
  /** Paths (relative to the root) to fetch first at mount, in order. */
  prefetch?: readonly string[]
  /** Use delta compression against earlier versions found through the store's path hints (default true). */
  delta?: boolean
  workers?: number
  /** Target pack size in bytes (default 4 MiB). */
  packSize?: number
  onProgress?: (bytesRead: number, path: string) => void
}

export interface PackResult {
  root: string
  output: string
  files: number
  dirs: number
  symlinks: number
  specials: number
  hardlinks: number
  /** Bytes of file content in the tree. */
  bytes: number
  /** Distinct chunks referenced by the flist. */
  chunks: number
  /** Chunks that were new to the store, and the bytes they took there. */
  newChunks: number
  storedBytes: number
  deltaChunks: number
  packs: number
  seconds: number
}

const SEGMENT = 8 * 1024 * 1024
const DEFAULT_PACK_SIZE = 4 * 1024 * 1024
const MAX_NAME_BYTES = 255

interface PendingBlob {
  id: number
  hash: Buffer
  sid: string
  size: number
  codec: number
  baseId?: number
  baseSid?: string
  data: Uint8Array
}

/** Accumulates encoded chunks into packs and stores each pack once it reaches the target size. */
class PackBuilder {
  private blobs: PendingBlob[] = []
  private bytes = 0
  private readonly inflight = new Set<Promise<void>>()
  packs = 0
  storedBytes = 0

  constructor(
    private readonly store: WritableStore,
    private readonly writer: FlistWriter,
    private readonly target: number,
  ) {}

  add(blob: PendingBlob): void {
    this.blobs.push(blob)
    this.bytes += blob.data.length
    if (this.bytes >= this.target) this.flush()
  }

  private flush(): void {
    if (this.blobs.length === 0) return
    const blobs = this.blobs
    this.blobs = []
    this.bytes = 0
    const data = Buffer.concat(blobs.map((b) => b.data))
    const pack = createHash('sha256').update(data).digest('hex')
    let offset = 0
    const locations: ChunkLocation[] = blobs.map((b) => {
      const loc: ChunkLocation = { sid: b.sid, size: b.size, codec: b.codec, pack, offset, length: b.data.length, ...(b.baseSid ? { base: b.baseSid } : {}) }
      offset += b.data.length
      return loc
    })
    const p = this.store.putPack(pack, data, locations).then(() => {
      this.packs++
      this.storedBytes += data.length
      blobs.forEach((b, i) => {
        const loc = locations[i]!
        this.writer.addChunk({ id: b.id, hash: b.hash, size: b.size, pack, offset: loc.offset, length: loc.length, codec: b.codec, base: b.baseId })
      })
    })
    this.inflight.add(p)
    void p.finally(() => this.inflight.delete(p)).catch(() => {})
  }

  /** Waits until fewer than `max` packs are being written (back-pressure). */
  async settle(max: number): Promise<void> {
    while (this.inflight.size > max) await Promise.race(this.inflight)
  }

  async finish(): Promise<void> {
    this.flush()
    await Promise.all(this.inflight)
  }
}

/** Small LRU of decoded delta bases: neighbouring files of one release share few, hot bases. */
class BaseCache {
  private readonly map = new Map<string, Buffer>()
  private bytes = 0
  constructor(private readonly limit: number) {}
  get(sid: string): Buffer | undefined {
    const v = this.map.get(sid)
    if (v) {
      this.map.delete(sid)
      this.map.set(sid, v)
    }
    return v
  }
  set(sid: string, v: Buffer): void {
    this.map.set(sid, v)
    this.bytes += v.length
    for (const [k, old] of this.map) {
      if (this.bytes <= this.limit) break
      this.map.delete(k)
      this.bytes -= old.length
    }
  }
}

export function validateName(name: string, path: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw zerr('BAD_NAME', `invalid file name in ${JSON.stringify(path)}`, { path })
  }
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw zerr('BAD_NAME', `file name longer than 255 bytes: ${path}`, { path })
  if (name.includes('\uFFFD')) throw zerr('BAD_NAME', `file name is not valid UTF-8: ${path}`, { path })
}

function splitPath(path: string): { parent: string; name: string } {
  const i = path.lastIndexOf('/')
  return i < 0 ? { parent: '', name: path } : { parent: path.slice(0, i), name: path.slice(i + 1) }
}

export async function pack(options: PackOptions): Promise<PackResult> {
  const started = performance.now()
  const chunker = options.chunker ?? DEFAULT_CHUNKER
  validateChunkerParams(chunker)
  const level = options.level ?? 3
  if (!Number.isInteger(level) || level < 1 || level > 19) throw zerr('INVALID_ARGUMENT', `zstd level must be 1..19, got ${level}`)
  const key = options.encrypt === true ? randomBytes(32) : options.encrypt instanceof Buffer ? options.encrypt : undefined
  if (key && key.length !== 32) throw zerr('INVALID_ARGUMENT', 'the encryption key must be 32 bytes')
  const useDelta = options.delta ?? true
  const store = options.store
  const writer = new FlistWriter(options.output, { chunker, encryptionKey: key })
  const pool = new WorkerPool<WorkerRequest, WorkerResponse>(siblingModule(import.meta.url, 'pack-worker'), options.workers ?? availableParallelism())
  const packs = new PackBuilder(store, writer, options.packSize ?? DEFAULT_PACK_SIZE)
  const baseCache = new BaseCache(64 * 1024 * 1024)
  const memory = new Semaphore(Math.max(4, pool.size * 3) * SEGMENT)

  const result: PackResult = {
    root: '', output: options.output, files: 0, dirs: 0, symlinks: 0, specials: 0, hardlinks: 0, bytes: 0,
    chunks: 0, newChunks: 0, storedBytes: 0, deltaChunks: 0, packs: 0, seconds: 0,
  }
  const pathIno = new Map<string, number>([['', ROOT_INO]])
  const dirInos = new Set<number>([ROOT_INO])
  const implicitDirs = new Set<string>()
  /** chunk sid → flist chunk id, for every chunk this flist references (including delta bases). */
  const chunkIds = new Map<string, number>()
  const hints = new Map<string, string[]>()
  const tasks = new Set<Promise<void>>()
  let firstError: unknown
  let bytesRead = 0

  const hintKey = (path: string): string =>
    key ? createHmac('sha256', key).update('zos-path-hint-v1').update(path).digest('hex') : createHash('sha256').update('zos-path-hint-v1').update(path).digest('hex')

  /** Registers a chunk the store already has (and, for a delta, its base) as rows of this flist. */
  async function importStoreChunk(loc: ChunkLocation, hash?: Buffer): Promise<number> {
    const known = chunkIds.get(loc.sid)
    if (known !== undefined) return known
    let baseId: number | undefined
    if (loc.codec === CODEC_ZSTD_DELTA) {
      if (!loc.base) throw zerr('FLIST_CORRUPT', `store index: delta chunk ${loc.sid} has no base`)
      const baseLoc = (await store.lookupChunks([loc.base])).get(loc.base)
      if (!baseLoc) throw zerr('CHUNK_MISSING', `store index: base ${loc.base} of chunk ${loc.sid} is missing`)
      baseId = await importStoreChunk(baseLoc)
    }
    if (chunkIds.has(loc.sid)) return chunkIds.get(loc.sid)!
    const id = writer.allocateChunk()
    chunkIds.set(loc.sid, id)
    const h = hash ?? (key ? sha256(await fetchPlain(loc)) : Buffer.from(loc.sid, 'hex'))
    writer.addChunk({ id, hash: h, size: loc.size, pack: loc.pack, offset: loc.offset, length: loc.length, codec: loc.codec, base: baseId })
    return id
  }

  /** Reads and verifies a chunk from the store (only full chunks are used as delta bases). */
  async function fetchPlain(loc: ChunkLocation): Promise<Buffer> {
    const cached = baseCache.get(loc.sid)
    if (cached) return cached
    if (loc.codec === CODEC_ZSTD_DELTA) throw zerr('INTERNAL', 'delta chunks are never used as bases')
    const [data] = await store.readRanges([loc])
    try {
      const plain = decodeChunk({ data: data!, codec: loc.codec, size: loc.size, sid: loc.sid, key })
      baseCache.set(loc.sid, plain)
      return plain
    } catch (err) {
      if (err instanceof ChunkDecodeError) throw zerr('CHUNK_TAMPERED', `chunk ${loc.sid} in pack ${loc.pack} of ${store.url}: ${err.message}`, { sid: loc.sid })
      throw err
    }
  }

  /** Picks the delta base for new chunk i: the old chunk at the same distance from the last shared chunk. */
  function pickBase(i: number, oldSids: readonly string[], oldIndex: ReadonlyMap<string, number>, anchor: { newIdx: number; oldIdx: number } | undefined): string | undefined {
    const candidate = anchor ? anchor.oldIdx + (i - anchor.newIdx) : i
    if (candidate < 0 || candidate >= oldSids.length) return undefined
    const sid = oldSids[candidate]!
    return oldIndex.has(sid) ? sid : undefined
  }

  async function processFile(ino: number, entry: SourceEntry): Promise<void> {
    const content = entry.content
    if (!content) throw zerr('INTERNAL', `file entry ${entry.path} has no content`)
    const oldSids = useDelta ? ((await store.getPathHint(hintKey(entry.path))) ?? []) : []
    const oldIndex = new Map(oldSids.map((s, i) => [s, i] as const))
    const extents: { offset: number; chunk: number }[] = []
    const sids: string[] = []
    let anchor: { newIdx: number; oldIdx: number } | undefined
    let fileOffset = 0
    let total = 0

    let carry: Uint8Array = new Uint8Array(0)
    let seg = new Uint8Array(Math.min(entry.size, SEGMENT) + chunker.max)
    let fill = 0

    const runSegment = async (final: boolean, read?: ChunkRequest['read']): Promise<void> => {
      const res = (await pool.run({ op: 'chunk', params: chunker, data: seg, length: fill, final, ...(read ? { read } : {}) }, [seg.buffer])) as ChunkResponse
      const data = res.data
      const length = res.length
      // Decide, chunk by chunk, what is already stored and what must be encoded.
      const items: (EncodeItem & { idx: number; hash: Buffer; id: number; baseSid?: string })[] = []
      const itemAt = new Map<number, (typeof items)[number]>()
      const fresh: { idx: number; sid: string; hash: Buffer; offset: number; length: number }[] = []
      let pos = 0
      const first = sids.length
      for (let c = 0; c < res.lengths.length; c++) {
        const n = res.lengths[c]!
        const hash = Buffer.from(res.hashes.subarray(c * 32, c * 32 + 32))
        const sid = storeId(hash, key)
        sids.push(sid)
        if (!chunkIds.has(sid)) fresh.push({ idx: first + c, sid, hash, offset: pos, length: n })
        extents.push({ offset: fileOffset + pos, chunk: -1 })
        pos += n
      }
      const found = fresh.length ? await store.lookupChunks(fresh.map((f) => f.sid)) : new Map<string, ChunkLocation>()
      for (const f of fresh) {
        if (chunkIds.has(f.sid)) continue // claimed by a concurrent file meanwhile
        const loc = found.get(f.sid)
        if (loc) {
          await importStoreChunk(loc, f.hash)
          continue
        }
        const id = writer.allocateChunk()
        chunkIds.set(f.sid, id)
        const item = { idx: f.idx, offset: f.offset, length: f.length, sid: f.sid, hash: f.hash, id }
        items.push(item)
        itemAt.set(f.idx, item)
      }
      // Delta bases, chosen by position relative to the last chunk this version shares with the old one.
      if (useDelta && oldSids.length > 0) {
        const baseLocs = new Map<string, ChunkLocation>()
        const wanted: string[] = []
        for (let c = first; c < sids.length; c++) {
          const oi = oldIndex.get(sids[c]!)
          if (oi !== undefined) anchor = { newIdx: c, oldIdx: oi }
          const item = itemAt.get(c)
          if (!item) continue
          const b = pickBase(c, oldSids, oldIndex, anchor)
          if (b && b !== item.sid) {
            item.baseSid = b
            wanted.push(b)
          }
        }
        if (wanted.length) {
          for (const [sid, loc] of await store.lookupChunks([...new Set(wanted)])) baseLocs.set(sid, loc)
          // A delta's base must be a full chunk: an old delta chunk lends its own base instead.
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
            item.base = await fetchPlain(loc)
            baseLocs.set(loc.sid, loc)
          }
          for (const item of items) {
            if (item.baseSid) await importStoreChunk(baseLocs.get(item.baseSid)!)
          }
        }
      }
      for (let c = first; c < sids.length; c++) extents[c]!.chunk = chunkIds.get(sids[c]!)!
      // Keep the unconsumed tail for the next segment (copied: the segment moves to the worker).
      carry = data.slice(res.consumed, length)
      fileOffset += res.consumed
      if (items.length) {
        const enc = (await pool.run(
          {
            op: 'encode',
            data,
            items: items.map(({ offset, length, sid, base }) => ({ offset, length, sid, ...(base ? { base } : {}) })),
            level,
            ...(key ? { key: new Uint8Array(key) } : {}),
          },
          [data.buffer as ArrayBuffer],
        )) as EncodeResponse
        enc.blobs.forEach((blob, i) => {
          const item = items[i]!
          if (blob.codec === CODEC_ZSTD_DELTA) result.deltaChunks++
          result.newChunks++
          packs.add({
            id: item.id, hash: item.hash, sid: item.sid, size: item.length, codec: blob.codec, data: blob.data,
            ...(blob.codec === CODEC_ZSTD_DELTA ? { baseId: chunkIds.get(item.baseSid!)!, baseSid: item.baseSid! } : {}),
          })
        })
        await packs.settle(4)
      }
    }

    if (content.local) {
      // The worker reads the bytes itself: nothing passes through this thread but the segment buffer.
      const { path, offset, fileSize } = content.local
      while (total < entry.size) {
        const n = Math.min(SEGMENT, entry.size - total)
        seg = new Uint8Array(carry.length + n)
        seg.set(carry)
        fill = carry.length
        await runSegment(total + n === entry.size, { path, offset: offset + total, length: n, fileSize })
        total += n
        bytesRead += n
        options.onProgress?.(bytesRead, entry.path)
      }
      fill = 0
    } else for await (const piece of content.stream()) {
      total += piece.length
      if (total > entry.size) throw zerr('BAD_ARCHIVE', `${entry.path} grew while it was being read (expected ${entry.size} bytes)`, { path: entry.path })
      let off = 0
      while (off < piece.length) {
        const room = seg.length - chunker.max - fill
        if (room <= 0) {
          await runSegment(false)
          seg = new Uint8Array(Math.min(entry.size - total + (piece.length - off) + carry.length, SEGMENT) + chunker.max)
          seg.set(carry)
          fill = carry.length
          continue
        }
        const n = Math.min(room, piece.length - off)
        seg.set(piece.subarray(off, off + n), fill)
        fill += n
        off += n
      }
      bytesRead += piece.length
      options.onProgress?.(bytesRead, entry.path)
    }
    if (total !== entry.size) throw zerr('BAD_ARCHIVE', `${entry.path} is ${total} bytes, expected ${entry.size} (changed while packing, or truncated)`, { path: entry.path })
    if (fill > 0) await runSegment(true)
    if (carry.length > 0) throw zerr('INTERNAL', `chunker left ${carry.length} bytes of ${entry.path}`)
    writer.addExtents(ino, extents)
    hints.set(hintKey(entry.path), sids)
  }

  function attrsOf(entry: SourceEntry): InodeAttrs {
    const kindBits = entry.kind === 'hardlink' ? 0 : TYPE_BITS[entry.kind]
    return {
      mode: kindBits | (entry.mode & 0o7777),
      uid: entry.uid,
      gid: entry.gid,
      size: entry.kind === 'file' ? entry.size : entry.kind === 'symlink' ? Buffer.byteLength(entry.target ?? '') : 0,
      rdev: entry.kind === 'char' || entry.kind === 'block' ? encodeDev(entry.rdevMajor ?? 0, entry.rdevMinor ?? 0) : 0,
      mtime: entry.mtimeNs,
      atime: entry.atimeNs ?? entry.mtimeNs,
      ctime: entry.ctimeNs ?? entry.mtimeNs,
      ...(entry.kind === 'symlink' ? { target: Buffer.from(entry.target ?? '', 'utf8') } : {}),
    }
  }

  function ensureDir(path: string, like: SourceEntry): number {
    const ino = pathIno.get(path)
    if (ino !== undefined) {
      if (!dirInos.has(ino)) throw zerr('BAD_ARCHIVE', `${path} is used as a directory but is not one`, { path })
      return ino
    }
    const { parent, name } = splitPath(path)
    validateName(name, path)
    const parentIno = ensureDir(parent, like)
    const created = writer.addInode(parentIno, name, {
      mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, rdev: 0, mtime: like.mtimeNs, atime: like.mtimeNs, ctime: like.mtimeNs,
    })
    pathIno.set(path, created)
    dirInos.add(created)
    implicitDirs.add(path)
    result.dirs++
    return created
  }

  function addEntry(entry: SourceEntry): void {
    if (entry.path === '') {
      if (entry.kind !== 'dir') throw zerr('BAD_ARCHIVE', 'the root of the tree is not a directory')
      writer.setRoot(attrsOf(entry))
      return
    }
    const { parent, name } = splitPath(entry.path)
    validateName(name, entry.path)
    const parentIno = ensureDir(parent, entry)
    const existing = pathIno.get(entry.path)
    if (existing !== undefined) {
      if (implicitDirs.has(entry.path) && entry.kind === 'dir') {
        implicitDirs.delete(entry.path)
        writer.updateInode(existing, attrsOf(entry))
        addXattrs(existing, entry)
        return
      }
      throw zerr('BAD_ARCHIVE', `${entry.path} appears twice in the source`, { path: entry.path })
    }
    if (entry.kind === 'hardlink') {
      const target = pathIno.get(entry.target ?? '')
      if (target === undefined || dirInos.has(target)) {
        throw zerr('BAD_ARCHIVE', `hard link ${entry.path} points to ${entry.target ?? '?'}, which is not an earlier file`, { path: entry.path })
      }
      writer.addLink(parentIno, name, target)
      pathIno.set(entry.path, target)
      result.hardlinks++
      return
    }
    const ino = writer.addInode(parentIno, name, attrsOf(entry))
    pathIno.set(entry.path, ino)
    addXattrs(ino, entry)
    switch (entry.kind) {
      case 'dir':
        dirInos.add(ino)
        result.dirs++
        break
      case 'symlink':
        result.symlinks++
        break
      case 'file': {
        result.files++
        result.bytes += entry.size
        if (entry.size > 0) schedule(ino, entry)
        break
      }
      default:
        result.specials++
    }
  }

  function addXattrs(ino: number, entry: SourceEntry): void {
    for (const [k, v] of entry.xattrs ?? []) {
      if (k === '' || k.includes('\0') || Buffer.byteLength(k) > 255) throw zerr('BAD_NAME', `invalid xattr name on ${entry.path}`, { path: entry.path })
      if (v.length > 65536) throw zerr('BAD_ARCHIVE', `xattr ${k} on ${entry.path} is larger than 64 KiB`, { path: entry.path })
      writer.addXattr(ino, k, v)
    }
  }

  function schedule(ino: number, entry: SourceEntry): void {
    const weight = Math.min(entry.size, SEGMENT) + chunker.max
    const task = memory
      .acquire(weight)
      .then(() => (firstError ? undefined : processFile(ino, entry)))
      .catch((err: unknown) => {
        firstError ??= err
      })
      .finally(() => memory.release(weight))
    tasks.add(task)
    void task.finally(() => tasks.delete(task))
  }

  try {
    for await (const entry of options.source.entries()) {
      if (firstError) break
      addEntry(entry)
      // Keep the walk from running far ahead of the workers.
      while (tasks.size > pool.size * 8) await Promise.race(tasks)
    }
    await Promise.all(tasks)
    if (firstError) throw firstError
    await packs.finish()
    result.packs = packs.packs
    result.storedBytes = packs.storedBytes
    result.chunks = chunkIds.size

    const config = options.source.imageConfig()
    if (config) {
      const set = (k: string, v: unknown): void => {
        if (v !== undefined) writer.setTag(k, typeof v === 'string' ? v : JSON.stringify(v))
      }
      set(TAG_KEYS.entrypoint, config.entrypoint)
      set(TAG_KEYS.cmd, config.cmd)
      set(TAG_KEYS.env, config.env)
      set(TAG_KEYS.workingDir, config.workingDir)
      set(TAG_KEYS.user, config.user)
      set(TAG_KEYS.exposedPorts, config.exposedPorts)
      set(TAG_KEYS.labels, config.labels)
    }
    for (const [k, v] of Object.entries(options.tags ?? {})) writer.setTag(k, v)
    if (options.prefetch?.length) {
      const inos = options.prefetch.map((p) => {
        const ino = writer.resolvePath(p.replace(/^\/+/, ''))
        if (ino === undefined) throw zerr('INVALID_ARGUMENT', `prefetch list names ${p}, which is not in the tree`, { path: p })
        return ino
      })
      writer.setPrefetch(inos)
    }
    result.root = writer.finish(options.signers ?? []).toString('hex')
    if (useDelta) await store.setPathHints(hints)
  } catch (err) {
    writer.abort()
    await packs.finish().catch(() => {})
    if (ZosError.is(err)) throw err
    throw zerr('INTERNAL', `packing failed: ${err instanceof Error ? err.message : String(err)}`, {}, err)
  } finally {
    await pool.close()
    await options.source.close()
  }
  result.seconds = (performance.now() - started) / 1000
  return result
}
