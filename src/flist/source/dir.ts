// A directory tree as a Source, walked in a fixed order (names sorted by bytes, depth first, parent before children)
// so that packing the same tree twice gives the same flist.
//
// Metadata calls and small-file reads are synchronous on purpose: each async fs call is a thread-pool round trip
// that costs 20–200 µs on a small VM, far more than the syscall itself (a few µs from the page cache), and a root
// filesystem is mostly small files. The walk yields to the event loop every few hundred entries.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs'
import { open, realpath, stat } from 'node:fs/promises'
import { errorMessage, zerr } from '../../core/errors.js'
import { decodeName, joinPath } from './paths.js'
import type { EntriesOptions, FileContent, ImageConfig, Source, SourceEntry } from './types.js'
import { readXattrs, type XattrMap } from './xattrs.js'

const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK } = constants
const READ_CHUNK = 1 << 20
const SMALL_FILE = 256 * 1024 // read in one synchronous call
const YIELD_EVERY = 256 // entries between turns of the event loop

export interface DirOptions {
  /** Receives one-line warnings (default: stderr). */
  warn?: (message: string) => void
}

export async function openDir(path: string, options: DirOptions = {}): Promise<DirSource> {
  let root: string
  try {
    root = await realpath(path)
  } catch (err: unknown) {
    throw zerr('NOT_FOUND', `cannot open directory ${path}: ${errorMessage(err)}`, { path }, err)
  }
  if (!(await stat(root)).isDirectory()) throw zerr('INVALID_ARGUMENT', `${path} is not a directory`, { path })
  return new DirSource(root, `directory ${path}`, options.warn ?? ((m) => process.stderr.write(`warning: ${m}\n`)))
}

export class DirSource implements Source {
  /** getfattr's answer, for entries yielded without their xattrs. */
  private late: { pending: Promise<XattrMap>; hardlinks: Set<string> } | undefined

  constructor(
    private readonly root: string,
    readonly description: string,
    private readonly warn: (message: string) => void,
  ) {}

  async *entries(options: EntriesOptions = {}): AsyncGenerator<SourceEntry> {
    // getfattr runs while we walk (a separate process: real parallelism). Entries found before its answer are held
    // back (compact entries, not stats objects, to keep the garbage collector out of it), then all go in walk order;
    // or, for a consumer that takes xattrs late, every entry goes at once and lateXattrs() has the xattrs.
    const pending = readXattrs(this.root, this.warn)
    if (options.lateXattrs) {
      this.late = { pending, hardlinks: new Set() }
      pending.catch(() => {}) // rethrown by lateXattrs()
      let count = 0
      for (const entry of this.walk()) {
        if (++count % YIELD_EVERY === 0) await new Promise(setImmediate)
        if (entry.kind === 'hardlink') this.late.hardlinks.add(entry.path)
        yield entry
      }
      return
    }
    let xattrs: XattrMap | undefined
    pending.then((map) => (xattrs = map)).catch(() => {}) // a failure is rethrown by `await pending` below
    const held: SourceEntry[] = []
    let count = 0
    for (const entry of this.walk()) {
      if (++count % YIELD_EVERY === 0) await new Promise(setImmediate)
      if (xattrs === undefined) {
        held.push(entry)
        continue
      }
      if (held.length > 0) {
        for (const e of held) yield withXattrs(e, xattrs)
        held.length = 0
      }
      yield withXattrs(entry, xattrs)
    }
    const map = await pending
    for (const e of held) yield withXattrs(e, map)
  }

  async lateXattrs(): Promise<ReadonlyMap<string, ReadonlyMap<string, Buffer>>> {
    if (!this.late) throw zerr('INTERNAL', 'lateXattrs() before entries({ lateXattrs: true })')
    const map = await this.late.pending
    for (const path of this.late.hardlinks) map.delete(path) // a hard link shares its target's inode and xattrs
    return map
  }

  imageConfig(): ImageConfig | undefined {
    return undefined
  }

  async close(): Promise<void> {}

  /**
   * The tree depth first, a directory before its children, synchronously: one generator with a stack of open
   * directories (a recursive async generator passed every entry up through each level, a promise per level).
   */
  private *walk(): Generator<SourceEntry> {
    const links = new Map<string, string>()
    const root = this.root
    yield entryOf('', root, fsCall(root, () => lstatSync(root, { bigint: true })), links)
    const stack: OpenDir[] = [this.readDir('', root)]
    while (stack.length > 0) {
      const dir = stack[stack.length - 1]!
      if (dir.next === dir.names.length) {
        stack.pop()
        continue
      }
      const name = dir.names[dir.next++]!
      const path = joinPath(dir.rel, name)
      const abs = dir.abs === '/' ? `/${name}` : `${dir.abs}/${name}`
      const entry = entryOf(path, abs, fsCall(abs, () => lstatSync(abs, { bigint: true })), links)
      yield entry
      if (entry.kind === 'dir') stack.push(this.readDir(path, abs))
    }
  }

  /** A directory's names, sorted by their bytes. */
  private readDir(rel: string, abs: string): OpenDir {
    const raw = fsCall(abs, () => readdirSync(abs, { encoding: 'buffer' }))
    raw.sort(Buffer.compare)
    return { rel, abs, names: raw.map((n) => decodeName(n, `${this.root}/${rel}`)), next: 0 }
  }
}

interface OpenDir {
  readonly rel: string
  readonly abs: string
  readonly names: readonly string[]
  next: number
}

function withXattrs(entry: SourceEntry, map: XattrMap): SourceEntry {
  const xattrs = map.get(entry.path)
  return xattrs === undefined ? entry : { ...entry, xattrs }
}

/**
 * The entry for one lstat result. The type comes from the mode as a number: BigIntStats' isFile() and friends
 * allocate three BigInts per question, and this runs for every name in the tree.
 */
function entryOf(path: string, abs: string, st: BigIntStats, links: Map<string, string>): SourceEntry {
  const mode = Number(st.mode)
  const perm = mode & 0o7777
  const uid = Number(st.uid)
  const gid = Number(st.gid)
  const { mtimeNs, atimeNs, ctimeNs } = st
  switch (mode & S_IFMT) {
    case S_IFREG: {
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`
        const first = links.get(key)
        if (first !== undefined) return { path, kind: 'hardlink', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0, target: first }
        links.set(key, path)
      }
      const size = Number(st.size)
      return { path, kind: 'file', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size, content: new LocalFile(abs, size, st.dev, st.ino) }
    }
    case S_IFDIR:
      return { path, kind: 'dir', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0 }
    case S_IFLNK: {
      const target = decodeName(fsCall(abs, () => readlinkSync(abs, { encoding: 'buffer' })), `target of symlink ${abs}`)
      return { path, kind: 'symlink', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0, target }
    }
    case S_IFCHR:
    case S_IFBLK: {
      const kind = (mode & S_IFMT) === S_IFCHR ? 'char' : 'block'
      return { path, kind, mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0, rdevMajor: major(st.rdev), rdevMinor: minor(st.rdev) }
    }
    case S_IFIFO:
      return { path, kind: 'fifo', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0 }
    case S_IFSOCK:
      return { path, kind: 'socket', mode: perm, uid, gid, mtimeNs, atimeNs, ctimeNs, size: 0 }
    default:
      throw zerr('UNSUPPORTED', `${abs} has an unknown file type (mode ${mode.toString(8)})`, { path: abs })
  }
}

// glibc's dev_t encoding (gnu_dev_major / gnu_dev_minor).
function major(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n))
}

function minor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n))
}

/**
 * Reads a file in 1 MiB pieces. The file must still be the one that was walked and keep its size: a file written
 * while it is packed would give an flist whose content matches no moment of the file, so that is an error.
 * (A class, not closures: one object per file of the tree.)
 */
class LocalFile implements FileContent {
  readonly local: { readonly path: string; readonly offset: number; readonly fileSize: number }

  constructor(
    private readonly abs: string,
    private readonly size: number,
    private readonly dev: bigint,
    private readonly ino: bigint,
  ) {
    this.local = { path: abs, offset: 0, fileSize: size }
  }

  private changed(how: string): Error {
    return zerr('SOURCE_CHANGED', `${this.abs} ${how} while it was being packed; pack a tree nobody is writing to (or a snapshot)`, { path: this.abs })
  }

  private same(now: BigIntStats): void {
    if (now.ino !== this.ino || now.dev !== this.dev) throw this.changed('was replaced')
  }

  async *stream(): AsyncGenerator<Buffer> {
    const { abs, size } = this
    if (size <= SMALL_FILE) {
      const data = readSmall(abs, size, (st) => this.same(st), (how) => this.changed(how))
      if (size > 0) yield data
      return
    }
    const fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err: unknown) => {
      throw fsError(abs, err)
    })
    try {
      this.same(await fh.stat({ bigint: true }))
      let pos = 0
      for (;;) {
        const want = Math.min(READ_CHUNK, size - pos + 1) // one byte more than expected reveals a file that grew
        const buf = Buffer.allocUnsafe(want)
        const { bytesRead } = await fh.read(buf, 0, want, pos)
        if (bytesRead === 0) break
        pos += bytesRead
        if (pos > size) throw this.changed('grew')
        yield bytesRead === want ? buf : buf.subarray(0, bytesRead)
        if (bytesRead < want && pos === size) break // short read exactly at the expected end: end of file
      }
      if (pos !== size) throw this.changed('shrank')
    } finally {
      await fh.close()
    }
  }
}

function readSmall(abs: string, size: number, same: (st: BigIntStats) => void, changed: (how: string) => Error): Buffer {
  const fd = fsCall(abs, () => openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW))
  try {
    same(fstatSync(fd, { bigint: true }))
    const buf = Buffer.allocUnsafe(size + 1)
    let pos = 0
    for (;;) {
      const want = size + 1 - pos // one byte more than expected reveals a file that grew
      const n = readSync(fd, buf, pos, want, pos)
      pos += n
      if (n === 0 || pos > size || (n < want && pos === size)) break
    }
    if (pos > size) throw changed('grew')
    if (pos < size) throw changed('shrank')
    return buf.subarray(0, size)
  } finally {
    closeSync(fd)
  }
}

/** Runs a filesystem call; see fsError. */
function fsCall<T>(abs: string, fn: () => T): T {
  try {
    return fn()
  } catch (err: unknown) {
    throw fsError(abs, err)
  }
}

/** The errors a live tree produces, as coded errors naming the path; others unchanged. */
function fsError(abs: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ELOOP') {
    return zerr('SOURCE_CHANGED', `${abs} disappeared or was replaced while it was being packed`, { path: abs }, err)
  }
  if (code === 'EACCES' || code === 'EPERM') return zerr('PERMISSION', `cannot read ${abs}: permission denied`, { path: abs }, err)
  return err
}
