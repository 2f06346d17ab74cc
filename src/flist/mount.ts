// An flist as a read-only FUSE filesystem: metadata answered from the SQLite file, content fetched lazily,
// verified chunk by chunk before a byte reaches the kernel. A chunk that fails verification or cannot be fetched
// is EIO for that read and a log line naming the chunk; never wrong data, never a hung process (the store's
// timeouts and retries bound every fetch).
//   open      → whole small files are fetched at once (one coalesced request)
//   read      → the chunks the range covers; sequential readers get the next chunks fetched ahead
//   mount     → the chunks of the flist's prefetch list are fetched in order, a few requests ahead, in the background
//   trace     → the parts of files read are recorded in the order first read (for `pack --prefetch`)
//   page cache→ content fetched beyond what a READ asked for (the rest of its chunks, read-ahead, small files, the
//               prefetch list) is stored into the kernel's page cache, so reads and page faults there need no request
import { constants as fsConstants, writeFileSync, renameSync } from 'node:fs'
import { ZosError, errorMessage } from '../core/errors.js'
import { FuseError, mountFuse, type FuseMount, type MountOptions, type PendingMount } from '../fuse/index.js'
import type { Attr, DirEntry, DirEntryPlus, DirAdder, Entry, FuseLogger, FuseOps, RequestContext } from '../fuse/types.js'
import type { Store } from '../store/types.js'
import type { DiskChunkCache } from './cache.js'
import { ChunkFetcher, defaultMemoryBytes, type FetcherStats } from './fetch.js'
import { FLIST_SUBTYPE, flistFsname } from './mount-options.js'
import { formatPrefetchList, type PrefetchEntry } from './prefetch.js'
import { FlistReader, type Inode, type TrustedKey } from './reader.js'
import { ROOT_INO } from './schema.js'

export interface FlistMountOptions {
  store: Store
  cache?: DiskChunkCache
  trust?: readonly TrustedKey[]
  /**
   * The root hash another process computed when it ran the flist's checks on this same file (an inherited file
   * descriptor: `zos flist mount --daemon` checks while its serving process starts). Awaited instead of running
   * the checks here; a rejection fails the mount like a failed check.
   */
  verified?: Promise<Buffer>
  /** What messages call the flist file (default: the path given, e.g. a /proc/self/fd/N). */
  name?: string
  /**
   * Chunks fetched ahead of a sequential reader at first (default 16, about 1 MiB); the window doubles while the
   * reader stays sequential, up to 4 times this.
   */
  readAheadChunks?: number
  /**
   * Verified chunks kept in memory by this mount (default defaultMemoryBytes(): 1/16 of the RAM, 64 MiB-1 GiB);
   * reads served from it are not re-hashed.
   */
  memoryBytes?: number
  /** Files up to this size are fetched whole when opened (default 1 MiB). */
  smallFileBytes?: number
  /**
   * On a read that is not sequential, the content this far before and after it is fetched too (in the background)
   * and stored into the page cache (default 1 MiB; 0: off).
   */
  neighbourBytes?: number
  /** Fetch the flist's prefetch list in the background at mount (default true). */
  prefetch?: boolean
  /** Record which chunk-aligned byte ranges of which files are read, in order, and write them to this file at unmount (prefetch.ts). */
  traceFile?: string
  /**
   * Store fetched content the kernel did not ask for into its page cache (FUSE_NOTIFY_STORE; default true, off
   * while tracing: a trace must see every read).
   */
  pageCache?: boolean
  logger?: FuseLogger
  /** FUSE options; `pending`: a mount startMount began for this mountpoint (type FLIST_SUBTYPE, flistFsname: mount-options.ts). */
  fuse?: Omit<MountOptions, 'logger' | 'readOnly'> & { pending?: PendingMount }
}

export interface FlistMount {
  readonly mountpoint: string
  readonly reader: FlistReader
  readonly fuse: FuseMount
  /** Settles when the background prefetch is done (or failed: failures are logged, not thrown). */
  readonly prefetched: Promise<void>
  stats(): FetcherStats & { readBytes: number; pushedBytes: number; badChunks: number }
  unmount(): Promise<void>
}

/** Metadata never changes under a mount: let the kernel cache it for a long time. */
const TTL_MS = 3600_000
const S_IFDIR = 0o040000
const PAGE = 4096
const { O_DIRECT } = fsConstants
/** Content kept for files not opened yet (FlistFs.storeOnOpen), at most. */
const STORE_ON_OPEN_BYTES = 256 * 1024 * 1024

/** A read this close to where the previous one ended continues a sequential stream. */
const STREAM_SLACK = 4 * 1024 * 1024
/**
 * Fetched around a read that jumps (FlistMountOptions.neighbourBytes). node's cold start from the benchmark image:
 * 1 MiB took its run phase from 556 to 456 ms (10 pairs), 2 MiB and 512 KiB ~40 ms less than without.
 */
const NEIGHBOUR_BYTES = 1024 * 1024
/** A read this close to where the last one ended continues it (the kernel's requests arrive a little out of order). */
const NEXT_SLACK = 256 * 1024
/** Chunks per read-ahead fetch (about 1 MiB: one store request). */
const READ_AHEAD_BATCH = 16
/**
 * Chunks per prefetch fetch, and fetches in flight: enough to stay ahead of a program's page faults without
 * taking every request slot (the store allows 8) from the reads that wait. A list is fetched in bulk, so its
 * store calls are larger than a read-ahead's (fewer requests, less CPU per chunk): with 48, 96 or 160 chunks per
 * call node's first output came 20-60 ms sooner at the median than with 16 in interleaved runs (load 1.5-3, 8-12
 * rounds each, noise ±150 ms); 64 is inside that range.
 */
const PREFETCH_BATCH = 64
const PREFETCH_PARALLEL = 3

type FileExtent = { offset: number; end: number; chunk: number }

/** Indexes of the first and last extents of `list` that overlap [offset, end) (end > offset, within the file). */
function extentSpan(list: readonly FileExtent[], offset: number, end: number): [number, number] {
  let lo = 0
  let hi = list.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (list[mid]!.end <= offset) lo = mid + 1
    else hi = mid
  }
  let last = lo
  while (last + 1 < list.length && list[last + 1]!.offset < end) last++
  return [lo, last]
}

export function attrOf(inode: Inode): Attr {
  return {
    ino: BigInt(inode.ino),
    mode: inode.mode,
    nlink: inode.nlink,
    uid: inode.uid,
    gid: inode.gid,
    rdev: inode.rdev, // already the kernel's new_encode_dev form
    size: inode.size,
    atimeNs: inode.atime,
    mtimeNs: inode.mtime,
    ctimeNs: inode.ctime,
    blksize: 65536,
  }
}

/** The FUSE operations of one flist. Exposed for tests; use mountFlist to mount. */
export class FlistFs implements FuseOps {
  readonly fetcher: ChunkFetcher
  readBytes = 0
  /** Bytes stored into the kernel's page cache unasked (see pushRun). */
  pushedBytes = 0
  /**
   * Where content goes that the kernel did not ask for (FuseMount.notifyStore), once mounted; undefined when
   * FlistMountOptions.pageCache is off.
   */
  pushTo: ((ino: bigint, offset: number, parts: Buffer[], total: number, done: (err: Error | null) => void) => boolean) | undefined
  /** Per file, the extents whose content the kernel has had: answered to a READ or stored. */
  private readonly inKernel = new Map<number, Set<number>>()
  /** Files opened: the kernel holds their inodes, so stores reach them. */
  private readonly opened = new Set<number>()
  /** Content for files not opened yet (a prefetch list comes before the program), stored when they are. */
  private readonly storeOnOpen = new Map<number, { start: number; plains: readonly Buffer[]; size: number }[]>()
  private storeOnOpenBytes = 0
  badChunks = 0
  cacheErrors = 0
  private readonly extentCache = new Map<number, FileExtent[]>()
  /** Per file being read sequentially: where reads got to, how far ahead chunks were asked for, the window. */
  private readonly streams = new Map<number, { end: number; ahead: number; window: number }>()
  /** With a trace file: the chunks read, by file and index in the file, in the order first read. */
  private readonly traced = new Map<number, Set<number>>()
  private readonly traceOrder: { ino: number; index: number }[] = []
  private readonly lookedUp = new Map<number, { parent: number; name: string }>()
  private readonly readAhead: number
  private readonly smallFile: number
  private readonly neighbours: number

  constructor(
    readonly reader: FlistReader,
    store: Store,
    private readonly options: FlistMountOptions,
    private readonly log: FuseLogger,
  ) {
    this.fetcher = new ChunkFetcher(reader, store, {
      ...(options.cache ? { cache: options.cache } : {}),
      memoryBytes: options.memoryBytes ?? defaultMemoryBytes(),
      onBadChunk: (info, err) => {
        this.badChunks++
        log.error({ chunk: info.sid, pack: info.pack, offset: info.offset, flist: reader.path }, `rejected a chunk that does not match its id: ${err.message}`)
      },
      onCacheError: (info, err) => {
        // Reads go on from the store; say so once per 1000 failures, not once per chunk.
        if (this.cacheErrors++ % 1000 === 0) log.warn({ chunk: info.sid, failures: this.cacheErrors }, `cannot write the chunk cache: ${errorMessage(err)}`)
      },
    })
    this.readAhead = options.readAheadChunks ?? 16
    this.smallFile = options.smallFileBytes ?? 1024 * 1024
    this.neighbours = options.neighbourBytes ?? NEIGHBOUR_BYTES
  }

  private inode(ino: bigint): Inode {
    const node = this.reader.inode(Number(ino))
    if (!node) throw new FuseError('ENOENT')
    return node
  }

  private entry(node: Inode): Entry {
    return { ino: BigInt(node.ino), attr: attrOf(node), entryTtlMs: TTL_MS, attrTtlMs: TTL_MS }
  }

  async lookup(parent: bigint, name: Buffer): Promise<Entry> {
    const text = name.toString('utf8')
    const node = this.reader.lookup(Number(parent), text)
    if (!node) throw new FuseError('ENOENT')
    // A traced file is recorded under the name it was opened by (hard links have several).
    if (this.options.traceFile && node.type === 'file') this.lookedUp.set(node.ino, { parent: Number(parent), name: text })
    return this.entry(node)
  }

  private tracePath(ino: number): string {
    const seen = this.lookedUp.get(ino)
    if (!seen) return this.reader.pathOf(ino)
    const dir = seen.parent === ROOT_INO ? '' : this.reader.pathOf(seen.parent)
    return dir ? `${dir}/${seen.name}` : seen.name
  }

  async getattr(ino: bigint): Promise<{ attr: Attr; attrTtlMs: number }> {
    return { attr: attrOf(this.inode(ino)), attrTtlMs: TTL_MS }
  }

  async readlink(ino: bigint): Promise<Buffer> {
    const node = this.inode(ino)
    if (node.type !== 'symlink') throw new FuseError('EINVAL')
    return node.target ?? Buffer.alloc(0)
  }

  private extents(ino: number): FileExtent[] {
    let list = this.extentCache.get(ino)
    if (!list) {
      const raw = this.reader.extents(ino)
      // Larger files (up to ~1 GiB): their chunk rows in one query now, rather than one query per chunk as reads come.
      if (raw.length > 16 && raw.length <= 16384) this.fetcher.know(this.reader.fileChunks(ino))
      const size = this.reader.inode(ino)?.size ?? 0
      list = raw.map((e, i) => ({ offset: e.offset, end: i + 1 < raw.length ? raw[i + 1]!.offset : size, chunk: e.chunk }))
      if (this.extentCache.size > 4096) this.extentCache.delete(this.extentCache.keys().next().value!)
      this.extentCache.set(ino, list)
    }
    return list
  }

  async open(ino: bigint, flags: number): Promise<{ keepCache: boolean }> {
    const node = this.inode(ino)
    if ((flags & 3) !== 0) throw new FuseError('EROFS')
    if (node.type === 'file' && !this.opened.has(node.ino)) {
      this.opened.add(node.ino)
      const waiting = this.storeOnOpen.get(node.ino)
      this.storeOnOpen.delete(node.ino)
      for (const w of waiting ?? []) for (const p of w.plains) this.storeOnOpenBytes -= p.length
      // Just after the reply (the kernel then surely holds the inode).
      if (waiting) setImmediate(() => { for (const w of waiting) this.pushBytes(node.ino, w.start, w.plains, w.size) })
    }
    if (node.type === 'file' && node.size > 0 && node.size <= this.smallFile) {
      const list = this.extents(node.ino)
      this.background(node.ino, list, 0, list.length)
    }
    // Content never changes: the kernel may keep pages across opens.
    return { keepCache: true }
  }

  /**
   * Fetches extents [from, to) of file `ino` without waiting (read-ahead, small files) and stores them into the
   * page cache; failures surface on the real read.
   */
  private background(ino: number, list: readonly FileExtent[], from: number, to: number, cached = true): void {
    if (to <= from) return
    const fetching = this.fetcher.fetch(list.slice(from, to).map((e) => e.chunk))
    if (cached) fetching.then((plains) => this.pushRun(ino, list, from, plains)).catch(() => {})
    else fetching.catch(() => {})
  }

  /** The extents of file `ino` the kernel has had (inKernel). */
  private kernelHas(ino: number): Set<number> {
    let had = this.inKernel.get(ino)
    if (!had) this.inKernel.set(ino, (had = new Set()))
    return had
  }

  /**
   * Stores the content of extents from, from + 1, … of file `ino` (their plaintexts, in order) into the kernel's
   * page cache, skipping the extents it has had already. Pages at the edges of a run that the run only partly
   * covers are left out (the kernel caches whole pages only), except the last page of the file.
   */
  private pushRun(ino: number, list: readonly FileExtent[], from: number, plains: readonly Buffer[]): void {
    if (!this.pushTo) return
    const had = this.kernelHas(ino)
    const size = list[list.length - 1]!.end
    for (let i = 0; i < plains.length; ) {
      if (had.has(from + i)) {
        i++
        continue
      }
      let j = i
      while (j < plains.length && !had.has(from + j)) had.add(from + j++)
      this.pushBytes(ino, list[from + i]!.offset, plains.slice(i, j), size)
      i = j
    }
  }

  /**
   * Stores the whole pages of `plains` (contiguous content of file `ino` from `start` on) into the page cache, or
   * keeps them for when the file is opened.
   */
  private pushBytes(ino: number, start: number, plains: readonly Buffer[], size: number): void {
    if (!this.opened.has(ino)) {
      let bytes = 0
      for (const p of plains) bytes += p.length
      // Bounded: what does not fit is read with requests, as without stores.
      if (this.storeOnOpenBytes + bytes > STORE_ON_OPEN_BYTES) return
      this.storeOnOpenBytes += bytes
      let list = this.storeOnOpen.get(ino)
      if (!list) this.storeOnOpen.set(ino, (list = []))
      list.push({ start, plains, size })
      return
    }
    let end = start
    for (const p of plains) end += p.length
    const first = Math.ceil(start / PAGE) * PAGE
    const last = end >= size ? end : Math.floor(end / PAGE) * PAGE
    if (last <= first) return
    const parts: Buffer[] = []
    let at = start
    for (const p of plains) {
      const a = Math.max(at, first)
      const b = Math.min(at + p.length, last)
      if (b > a) parts.push(p.subarray(a - at, b - at))
      at += p.length
    }
    this.pushTo!(BigInt(ino), first, parts, last - first, (err) => {
      if (!err) this.pushedBytes += last - first
    })
  }

  async read(ino: bigint, _fh: bigint, offset: number, size: number, ctx?: RequestContext): Promise<Buffer | Buffer[]> {
    // A reader that bypasses the page cache gains nothing from content stored there.
    const cached = ((ctx?.openFlags ?? 0) & O_DIRECT) === 0
    const n = Number(ino)
    const list = this.extents(n)
    if (list.length === 0) return Buffer.alloc(0)
    const end = Math.min(offset + size, list[list.length - 1]!.end)
    if (offset >= end) return Buffer.alloc(0)
    const [lo, last] = extentSpan(list, offset, end)
    const wanted = list.slice(lo, last + 1)
    if (this.options.traceFile) this.traceRead(n, lo, last)
    const sequential = this.readAheadFor(n, list, offset, end, last, cached)
    let plains: Buffer[]
    try {
      plains = await this.fetcher.fetch(wanted.map((e) => e.chunk))
    } catch (err) {
      const code = ZosError.is(err) ? err.code : 'INTERNAL'
      this.log.error({ flist: this.reader.path, path: this.reader.pathOf(n), offset, code }, `read failed: ${errorMessage(err)}`)
      throw new FuseError('EIO')
    }
    this.readBytes += end - offset
    if (this.pushTo && cached) this.pushAround(n, list, lo, offset, end, plains)
    // After the read's own fetch, which the neighbours' would otherwise slow down (one store, one decoding thread).
    if (!sequential && cached && this.neighbours > 0 && this.pushTo) this.neighboursOf(n, list, lo, last)
    const first = wanted[0]!
    if (plains.length === 1) return plains[0]!.subarray(offset - first.offset, end - first.offset)
    // Views of the verified chunks, written to the kernel with one writev: no copy (the driver writes them
    // before its next await, so a chunk evicted from the memory cache meanwhile is still this reply's).
    return wanted.map((e, i) => plains[i]!.subarray(Math.max(offset, e.offset) - e.offset, Math.min(end, e.end) - e.offset))
  }

  /**
   * After a READ of [offset, end) answered from extents lo, lo + 1, …: the kernel now has those extents, except
   * the parts of the first and the last before and after the range, which are stored into its page cache.
   */
  private pushAround(ino: number, list: readonly FileExtent[], lo: number, offset: number, end: number, plains: readonly Buffer[]): void {
    const had = this.kernelHas(ino)
    const lastIndex = lo + plains.length - 1
    const first = list[lo]!
    const last = list[lastIndex]!
    const size = list[list.length - 1]!.end
    const headNew = !had.has(lo)
    const tailNew = !had.has(lastIndex)
    for (let i = lo; i <= lastIndex; i++) had.add(i)
    if (headNew && first.offset < offset) this.pushBytes(ino, first.offset, [plains[0]!.subarray(0, offset - first.offset)], size)
    if (tailNew && last.end > end) this.pushBytes(ino, end, [plains[plains.length - 1]!.subarray(end - last.offset)], size)
  }

  private traceRead(ino: number, first: number, last: number): void {
    let seen = this.traced.get(ino)
    if (!seen) this.traced.set(ino, (seen = new Set()))
    for (let index = first; index <= last; index++) {
      if (seen.has(index)) continue
      seen.add(index)
      this.traceOrder.push({ ino, index })
    }
  }

  /** The trace as a prefetch list: runs of chunks of one file read one after another become one range. */
  traceList(): PrefetchEntry[] {
    const out: PrefetchEntry[] = []
    let run: { ino: number; first: number; last: number } | undefined
    const flush = (): void => {
      if (!run) return
      const list = this.extents(run.ino)
      const offset = list[run.first]!.offset
      out.push({ path: this.tracePath(run.ino), range: { offset, length: list[run.last]!.end - offset } })
    }
    for (const { ino, index } of this.traceOrder) {
      if (run && run.ino === ino && run.last + 1 === index) {
        run.last = index
        continue
      }
      flush()
      run = { ino, first: index, last: index }
    }
    flush()
    return out
  }

  /**
   * The content around a read that is not sequential (a page fault of a mapped program jumps, and then often
   * walks back and forth near where it landed): up to `neighbours` bytes before and after it, in the background,
   * into the page cache, so that the next faults there need no request.
   */
  private neighboursOf(ino: number, list: readonly FileExtent[], lo: number, last: number): void {
    const had = this.kernelHas(ino)
    let from = lo
    while (from > 0 && list[lo]!.offset - list[from - 1]!.offset <= this.neighbours && !had.has(from - 1)) from--
    let to = last + 1
    while (to < list.length && list[to]!.end - list[last]!.end <= this.neighbours && !had.has(to)) to++
    this.background(ino, list, from, lo)
    this.background(ino, list, last + 1, to)
  }

  /**
   * Sequential read-ahead. The kernel sends a sequential reader's 1 MiB requests a few at a time and not always in
   * order, so a read near where the last one ended counts as sequential. Chunks are asked for in batches of
   * READ_AHEAD_BATCH (one coalesced store request each, several in flight) once half the window is used up.
   * True when the read continues the previous one (within NEXT_SLACK of where it ended).
   */
  private readAheadFor(ino: number, list: readonly FileExtent[], offset: number, end: number, last: number, cached: boolean): boolean {
    const s = this.streams.get(ino)
    if (!s) {
      if (this.streams.size >= 1024) this.streams.delete(this.streams.keys().next().value!)
      this.streams.set(ino, { end, ahead: last + 1, window: this.readAhead })
      return false
    }
    const sequential = offset >= s.end - STREAM_SLACK && offset <= s.end + STREAM_SLACK
    if (!sequential) {
      Object.assign(s, { end, ahead: last + 1, window: this.readAhead })
      return false
    }
    const close = Math.abs(offset - s.end) <= NEXT_SLACK
    s.end = Math.max(s.end, end)
    s.ahead = Math.max(s.ahead, last + 1)
    const target = Math.min(list.length, last + 1 + s.window)
    if (target <= s.ahead || (target - s.ahead < s.window / 2 && target < list.length)) return close
    for (let i = s.ahead; i < target; i += READ_AHEAD_BATCH) this.background(ino, list, i, Math.min(i + READ_AHEAD_BATCH, target), cached)
    s.ahead = target
    s.window = Math.min(s.window * 2, this.readAhead * 4)
    return close
  }

  async opendir(ino: bigint): Promise<{ keepCache: boolean; cacheDir: boolean }> {
    if (this.inode(ino).type !== 'dir') throw new FuseError('ENOTDIR')
    return { keepCache: true, cacheDir: true }
  }

  private listing(ino: bigint): { name: string; ino: number }[] {
    const n = Number(ino)
    const node = this.inode(ino)
    if (node.type !== 'dir') throw new FuseError('ENOTDIR')
    const parent = n === ROOT_INO ? ROOT_INO : (this.reader.parentOf(n) ?? ROOT_INO)
    return [{ name: '.', ino: n }, { name: '..', ino: parent }, ...this.reader.readdir(n)]
  }

  async readdir(ino: bigint, _fh: bigint, offset: number, add: DirAdder<DirEntry>): Promise<void> {
    const list = this.listing(ino)
    for (let i = offset; i < list.length; i++) {
      const e = list[i]!
      const mode = e.name === '.' || e.name === '..' ? S_IFDIR : (this.reader.inode(e.ino)?.mode ?? 0)
      if (!add({ name: e.name, ino: BigInt(e.ino), mode, offset: i + 1 })) return
    }
  }

  async readdirplus(ino: bigint, _fh: bigint, offset: number, add: DirAdder<DirEntryPlus>): Promise<void> {
    const list = this.listing(ino)
    for (let i = offset; i < list.length; i++) {
      const e = list[i]!
      const node = this.reader.inode(e.ino)!
      // '.' and '..' carry no attributes: the kernel must not take a lookup reference for them.
      const entry: Entry = e.name === '.' || e.name === '..' ? { ino: 0n, attr: attrOf(node) } : this.entry(node)
      if (!add({ name: e.name, entry, offset: i + 1 })) return
    }
  }

  async statfs(): Promise<{ blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number }> {
    const s = this.reader.counts()
    return { blocks: Math.ceil(s.bytes / 4096), bfree: 0, bavail: 0, files: s.inodes, ffree: 0, bsize: 4096, namelen: 255 }
  }

  async getxattr(ino: bigint, name: string): Promise<Buffer> {
    const v = this.reader.xattrs(Number(ino)).get(name)
    if (!v) throw new FuseError('ENODATA')
    return v
  }

  async listxattr(ino: bigint): Promise<string[]> {
    return [...this.reader.xattrs(Number(ino)).keys()]
  }

  /** The chunks the prefetch list covers, in list order, each once, with where they first appear (file, extent). */
  prefetchChunks(): { chunk: number; ino: number; index: number }[] {
    const seen = new Set<number>()
    const out: { chunk: number; ino: number; index: number }[] = []
    for (const r of this.reader.prefetch()) {
      const list = this.extents(r.ino)
      const end = Math.min(r.offset + r.length, list.at(-1)?.end ?? 0)
      if (r.offset >= end) continue
      const [lo, last] = extentSpan(list, r.offset, end)
      for (let i = lo; i <= last; i++) {
        const chunk = list[i]!.chunk
        if (seen.has(chunk)) continue
        seen.add(chunk)
        out.push({ chunk, ino: r.ino, index: i })
      }
    }
    return out
  }

  /**
   * Fetches the prefetch list's chunks in order, PREFETCH_PARALLEL store calls of PREFETCH_BATCH chunks in flight:
   * a program's start reads them in about this order, so they arrive ahead of its page faults.
   */
  async prefetchAll(signal: AbortSignal): Promise<void> {
    const chunks = this.prefetchChunks()
    let next = 0
    let failed: { err: unknown } | undefined
    // A lane never rejects: the first failure stops every lane, and this settles only once none is fetching
    // (unmount waits for it before closing the reader).
    const lane = async (): Promise<void> => {
      while (next < chunks.length && !signal.aborted && !failed) {
        const batch = chunks.slice(next, next + PREFETCH_BATCH)
        next += batch.length
        try {
          const plains = await this.fetcher.fetch(batch.map((c) => c.chunk))
          // Into the page cache, by runs of neighbouring extents of one file.
          for (let i = 0; i < batch.length; ) {
            let j = i + 1
            while (j < batch.length && batch[j]!.ino === batch[i]!.ino && batch[j]!.index === batch[j - 1]!.index + 1) j++
            this.pushRun(batch[i]!.ino, this.extents(batch[i]!.ino), batch[i]!.index, plains.slice(i, j))
            i = j
          }
        } catch (err) {
          failed ??= { err }
        }
      }
    }
    await Promise.all(Array.from({ length: PREFETCH_PARALLEL }, lane))
    if (failed) throw failed.err
  }
}

const defaultLogger: FuseLogger = {
  warn: (obj, msg) => process.stderr.write(`zos flist mount: ${msg} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`zos flist mount: ${msg} ${JSON.stringify(obj)}\n`),
}

export async function mountFlist(flist: string, mountpoint: string, options: FlistMountOptions): Promise<FlistMount> {
  const log = options.logger ?? defaultLogger
  // The cheap checks now; the root hash, signatures and table invariants (0.2-0.7 s on a large flist) run while
  // mount(8) runs (whileMounting below): no request is answered before they pass, and a flist that fails them is
  // unmounted again and never served.
  const reader = FlistReader.open(flist, { trust: options.trust ?? [], deferVerify: true, ...(options.name ? { name: options.name } : {}) })
  const fs = new FlistFs(reader, options.store, options, log)
  // While the kernel mounts (a `mount` child process and the INIT exchange), ask the store about one pack of
  // this flist: the first read then finds the HTTP client loaded and a connection open. Failures do not matter.
  // (zos packers number chunks from 1; a flist without chunk 1 just skips this.)
  let somePack: string | undefined
  try {
    somePack = reader.chunk(1).pack
  } catch {
    // no chunk 1 (an empty tree, or another packer's numbering)
  }
  if (somePack) {
    const pack = somePack
    setImmediate(() => void options.store.statPack(pack).catch(() => {}))
  }
  let fuse: FuseMount
  try {
    fuse = await mountFuse(mountpoint, fs, {
      fsname: flistFsname(options.name ?? flist),
      subtype: FLIST_SUBTYPE,
      ...options.fuse,
      whileMounting: options.verified ? async () => reader.acceptVerified(await options.verified!) : () => reader.verify(),
      logger: log,
    })
  } catch (err) {
    reader.close()
    throw err
  }
  // A trace must see every read: content stored unasked would be read without a request.
  if ((options.pageCache ?? true) && !options.traceFile) fs.pushTo = (ino, offset, parts, total, done) => fuse.notifyStore(ino, offset, parts, total, done)
  const abort = new AbortController()
  const prefetched = options.prefetch === false
    ? Promise.resolve()
    : fs.prefetchAll(abort.signal).catch((err: unknown) => log.warn({ flist }, `prefetch stopped: ${errorMessage(err)}`))
  let unmounting: Promise<void> | undefined
  // Once, while the reader is open: an unmount from outside closes the reader before unmount() is called.
  const finish = (): void => {
    if (abort.signal.aborted) return
    abort.abort()
    if (options.traceFile) {
      const tmp = `${options.traceFile}.tmp-${process.pid}`
      writeFileSync(tmp, formatPrefetchList(fs.traceList()))
      renameSync(tmp, options.traceFile)
    }
  }
  void fuse.closed.then(() => {
    if (!unmounting) {
      finish()
      reader.close()
    }
  })
  return {
    mountpoint: fuse.mountpoint,
    reader,
    fuse,
    prefetched,
    stats: () => ({ ...fs.fetcher.stats, readBytes: fs.readBytes, pushedBytes: fs.pushedBytes, badChunks: fs.badChunks }),
    unmount() {
      unmounting ??= (async () => {
        finish()
        await fuse.unmount()
        await prefetched
        await fs.fetcher.flushCache()
        reader.close()
      })()
      return unmounting
    },
  }
}

export { assertMountable } from './mount-options.js'
