// The packer: turns a Source into an flist metadata file plus packs in a writable store.
//   entries ──► FlistWriter (inodes, names, xattrs)
//   file content ──► ChunkPipeline (pack-pipeline.ts): small files in batches, large ones segment by segment
import { randomBytes } from 'node:crypto'
import { zerr, ZosError } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import { Semaphore } from '../core/semaphore.js'
import type { WorkerPool } from '../core/worker-pool.js'
import type { WritableStore } from '../store/types.js'
import { DEFAULT_CHUNKER, validateChunkerParams, type ChunkerParams } from './chunker.js'
import { ChunkPipeline, type BatchPart, type FileState } from './pack-pipeline.js'
import { createPackPool } from './pack-pool.js'

export { createPackPool }
import type { WorkerRequest, WorkerResponse } from './pack-worker.js'
import { TAG_KEYS, TYPE_BITS, encodeDev, S_IFDIR, ROOT_INO } from './schema.js'
import type { Source, SourceEntry } from './source/types.js'
import type { PrefetchEntry } from './prefetch.js'
import { FlistWriter, type InodeAttrs, type PrefetchRow } from './writer.js'

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
  /** Paths (whole files) or entries with byte ranges to fetch first at mount, in order (see prefetch.ts). */
  prefetch?: readonly (string | PrefetchEntry)[]
  /** Use delta compression against earlier versions found through the store's path hints (default true). */
  delta?: boolean
  workers?: number
  /** A pool of pack workers to use (and leave open), e.g. started early or shared by several packs. */
  pool?: WorkerPool<WorkerRequest, WorkerResponse>
  /** Target pack size in bytes (default 4 MiB). */
  packSize?: number
  /** The format version to write (default the newest; FlistWriter's `version`). */
  formatVersion?: number
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

const SEGMENT = 4 * 1024 * 1024
/** Files up to this size are packed in batches of up to BATCH_FILES files or SEGMENT bytes. */
const BATCH_FILE_MAX = 1024 * 1024
const BATCH_FILES = 256
const DEFAULT_PACK_SIZE = 4 * 1024 * 1024
/** Tasks (batches of up to BATCH_FILES files, or a large file) the walk may queue before it waits for the workers. */
const WALK_AHEAD_TASKS = 64
const MAX_NAME_BYTES = 255

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

/** A prefetch entry as a row: the path must be in the tree, a range inside a regular file. */
function prefetchRow(writer: FlistWriter, e: PrefetchEntry): PrefetchRow {
  const ino = writer.resolvePath(e.path.replace(/^\/+/, ''))
  if (ino === undefined) throw zerr('INVALID_ARGUMENT', `prefetch list names ${e.path}, which is not in the tree`, { path: e.path })
  if (!e.range) return { ino }
  const size = writer.regularFileSize(ino)
  const { offset, length } = e.range
  if (size === undefined) throw zerr('INVALID_ARGUMENT', `prefetch list gives a byte range of ${e.path}, which is not a regular file`, { path: e.path })
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length > 0 && offset + length <= size)) {
    throw zerr('INVALID_ARGUMENT', `prefetch list range ${offset}+${length} of ${e.path} is not inside the file (${size} bytes)`, { path: e.path })
  }
  return { ino, range: { offset, length } }
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
  const writer = new FlistWriter(options.output, { chunker, encryptionKey: key, ...(options.formatVersion !== undefined ? { version: options.formatVersion } : {}) })
  const pool = options.pool ?? createPackPool(options.workers)
  const pipeline = new ChunkPipeline({
    pool, store, writer, chunker, level, key, delta: useDelta, packSize: options.packSize ?? DEFAULT_PACK_SIZE,
    bufferSize: SEGMENT + Math.max(chunker.max, BATCH_FILE_MAX),
  })
  // A task holds one batch buffer at a time (a large file two): bounding them bounds the buffers, which are reused
  // (fresh memory costs a page fault per 4 KiB), to two per worker and the one being filled.
  const running = new Semaphore(pool.size * 2 + 1)

  const result: PackResult = {
    root: '', output: options.output, files: 0, dirs: 0, symlinks: 0, specials: 0, hardlinks: 0, bytes: 0,
    chunks: 0, newChunks: 0, storedBytes: 0, deltaChunks: 0, packs: 0, seconds: 0,
  }
  const pathIno = new Map<string, number>([['', ROOT_INO]])
  const dirInos = new Set<number>([ROOT_INO])
  const implicitDirs = new Set<string>()
  const hints = new Map<string, string[]>()
  const tasks = new Set<Promise<void>>()
  let firstError: unknown
  let bytesRead = 0
  const progress = (n: number, path: string): void => {
    bytesRead += n
    options.onProgress?.(bytesRead, path)
  }

  function finishFile(f: FileState): void {
    if (f.carry.length > 0) throw zerr('INTERNAL', `chunker left ${f.carry.length} bytes of ${f.path}`)
    writer.addExtents(f.ino, f.extents)
    hints.set(f.hintKey, f.sids)
  }

  /**
   * A file too big for a batch: segment by segment, each prefixed with the previous one's carry. A segment is
   * chunked once the one before it is (its carry comes from there), while that one is encoded on the other
   * worker: a large file keeps two workers busy, not one (one segment encoding at a time, so it holds at most
   * two batch buffers).
   */
  async function packLargeFile(ino: number, entry: SourceEntry): Promise<void> {
    const content = entry.content!
    const f = await pipeline.openFile(ino, entry.path)
    let encoding: Promise<void> = Promise.resolve()
    const segment = async (data: Uint8Array, part: Omit<BatchPart, 'file' | 'start'>): Promise<void> => {
      const { encoded } = await pipeline.chunkBatch(data, [{ file: f, start: 0, ...part }])
      const previous = encoding
      encoding = encoded // awaited below even if the previous one failed
      await previous
    }
    let total = 0
    try {
      if (content.local) {
        // The worker reads the bytes itself: only the segment buffer passes through this thread.
        const { path, offset, fileSize } = content.local
        while (total < entry.size) {
          const n = Math.min(SEGMENT, entry.size - total)
          // Not zero-filled: the worker reads the file over everything after the carry.
          const data = pipeline.takeBuffer(f.carry.length + n)
          data.set(f.carry)
          await segment(data, { length: f.carry.length, final: total + n === entry.size, read: { path, offset: offset + total, length: n, fileSize } })
          total += n
          progress(n, entry.path)
        }
      } else {
        let data = pipeline.takeBuffer(f.carry.length + Math.min(SEGMENT, entry.size))
        let fill = 0
        for await (const piece of content.stream()) {
          let off = 0
          while (off < piece.length) {
            if (fill === data.length) {
              await segment(data, { length: fill, final: false })
              data = pipeline.takeBuffer(f.carry.length + Math.min(SEGMENT, entry.size - total + (piece.length - off)))
              data.set(f.carry)
              fill = f.carry.length
            }
            const n = Math.min(data.length - fill, piece.length - off)
            data.set(piece.subarray(off, off + n), fill)
            fill += n
            off += n
          }
          total += piece.length
          if (total > entry.size) throw zerr('SOURCE_CHANGED', `${entry.path} grew while it was being read (expected ${entry.size} bytes)`, { path: entry.path })
          progress(piece.length, entry.path)
        }
        if (total !== entry.size) throw zerr('SOURCE_CHANGED', `${entry.path} is ${total} bytes, expected ${entry.size} (changed while packing, or truncated)`, { path: entry.path })
        await segment(data, { length: fill, final: true })
      }
    } finally {
      await encoding.catch(() => {}) // a failure is rethrown below; none is left running behind the task
    }
    await encoding
    finishFile(f)
  }

  /** Small local files go through the workers together: one round trip per batch instead of per file. */
  let batch: { ino: number; entry: SourceEntry }[] = []
  let batchBytes = 0
  async function packBatch(files: { ino: number; entry: SourceEntry }[]): Promise<void> {
    const states = await pipeline.openFiles(files.map((x) => ({ ino: x.ino, path: x.entry.path })))
    const data = pipeline.takeBuffer(files.reduce((n, x) => n + x.entry.size, 0)) // the worker fills all of it
    let start = 0
    const parts = files.map((x, i) => {
      const { path, offset, fileSize } = x.entry.content!.local!
      const part = { file: states[i]!, start, length: 0, final: true, read: { path, offset, length: x.entry.size, fileSize } }
      start += x.entry.size
      return part
    })
    await pipeline.runBatch(data, parts)
    for (const f of states) finishFile(f)
    for (const x of files) progress(x.entry.size, x.entry.path)
  }

  /** `weight`: the batch buffers the job holds at once. */
  function run(job: () => Promise<void>, weight = 1, first = false): void {
    const task = running
      .acquire(weight, { first })
      .then(() => (firstError ? undefined : job()))
      .catch((err: unknown) => {
        firstError ??= err
      })
      .finally(() => running.release(weight))
    tasks.add(task)
    void task.finally(() => tasks.delete(task))
  }

  function flushBatch(): void {
    if (batch.length === 0) return
    const files = batch
    run(() => packBatch(files))
    batch = []
    batchBytes = 0
  }

  function schedule(ino: number, entry: SourceEntry): void {
    if (entry.content?.local && entry.size <= BATCH_FILE_MAX) {
      batch.push({ ino, entry })
      batchBytes += entry.size
      if (batchBytes >= SEGMENT || batch.length >= BATCH_FILES) flushBatch()
      return
    }
    // Ahead of the small files' batches: a large file is chunked one segment after the other, so started last it
    // would leave one worker busy after the rest is done (a 50 MB apt index at the end of a Debian walk did).
    run(() => packLargeFile(ino, entry), 2, true)
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

  function addXattrs(ino: number, entry: Pick<SourceEntry, 'path' | 'xattrs'>): void {
    for (const [k, v] of entry.xattrs ?? []) {
      if (k === '' || k.includes('\0') || Buffer.byteLength(k) > 255) throw zerr('BAD_NAME', `invalid xattr name on ${entry.path}`, { path: entry.path })
      if (v.length > 65536) throw zerr('BAD_ARCHIVE', `xattr ${k} on ${entry.path} is larger than 64 KiB`, { path: entry.path })
      writer.addXattr(ino, k, v)
    }
  }

  try {
    // xattrs may come after the entries (the directory walk's getfattr): content need not wait for them.
    for await (const entry of options.source.entries({ lateXattrs: true })) {
      if (firstError) break
      addEntry(entry)
      // Keep the walk from running far ahead of the workers (it runs ahead enough to find the large files early).
      while (tasks.size > WALK_AHEAD_TASKS) await Promise.race(tasks)
    }
    flushBatch()
    if (!firstError && options.source.lateXattrs) {
      for (const [path, xattrs] of await options.source.lateXattrs()) {
        const ino = pathIno.get(path)
        // Not the root's (addEntry keeps none), nor those of a path created after the walk passed by.
        if (path !== '' && ino !== undefined) addXattrs(ino, { path, xattrs })
      }
    }
    // The tree is complete: hash it into the root while the workers compress the last batches (a prefetch
    // list of byte ranges changes the format version, which is hashed with the tree: then all at the end).
    if (!firstError && !options.prefetch?.some((e) => typeof e !== 'string' && e.range)) writer.sealTree()
    while (tasks.size > 0) await Promise.all(tasks)
    if (firstError) throw firstError
    await pipeline.finish()
    result.packs = pipeline.packCount
    result.storedBytes = pipeline.storedBytes
    result.newChunks = pipeline.stats.newChunks
    result.deltaChunks = pipeline.stats.deltaChunks
    result.chunks = pipeline.chunkIds.size

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
    if (options.prefetch?.length) writer.setPrefetch(options.prefetch.map((e) => prefetchRow(writer, typeof e === 'string' ? { path: e } : e)))
    result.root = (await writer.finish(options.signers ?? [])).toString('hex')
    if (useDelta) await store.setPathHints(hints)
  } catch (err) {
    writer.abort()
    await pipeline.finish().catch(() => {})
    if (ZosError.is(err)) throw err
    throw zerr('INTERNAL', `packing failed: ${err instanceof Error ? err.message : String(err)}`, {}, err)
  } finally {
    if (!options.pool) await pool.close()
    await options.source.close()
  }
  result.seconds = (performance.now() - started) / 1000
  return result
}
