// An in-memory, inode-based filesystem for the FUSE driver's tests and benchmark: directories, regular files
// (served as views of their Buffers), symlinks, hard links, fifos, xattrs, and per-inode faults (throw, hang
// until interrupted, errno) to exercise the driver's error paths.
import {
  FuseError, S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFMT,
  type FuseOps, type Attr, type Entry, type DirAdder, type DirEntry, type DirEntryPlus, type OpenReply,
  type RequestContext, type Statfs,
} from '../../src/fuse/index.js'

export type Fault = 'throw' | 'hang' | 'eacces'

interface Node {
  ino: bigint
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  mtimeNs: bigint
  data: Buffer
  target: Buffer
  children: Map<string, bigint>
  parent: bigint
  xattrs: Map<string, Buffer>
  directIo: boolean
}

const T0 = 1_700_000_000_123_456_789n

export class MemFs implements FuseOps {
  private readonly nodes = new Map<bigint, Node>()
  private nextIno = 2n
  readonly faults = new Map<bigint, Fault>()
  /** Counters the tests look at. */
  readonly stats = { lookups: 0, reads: 0, forgets: 0n, opens: 0, releases: 0, interrupted: 0 }
  /** Resolvers of reads that hang until interrupted (the tests check the signal reached them). */
  readonly hanging = new Set<unknown>()
  /** Set by a test to observe the end of the session. */
  destroy?: () => void

  constructor(options: { readdirplus?: boolean } = {}) {
    this.nodes.set(1n, this.makeNode(1n, S_IFDIR | 0o755, 1n))
    if (options.readdirplus === false) (this as { readdirplus?: unknown }).readdirplus = undefined
  }

  private makeNode(ino: bigint, mode: number, parent: bigint): Node {
    return {
      ino, mode, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1, uid: 0, gid: 0, rdev: 0, mtimeNs: T0 + ino,
      data: Buffer.alloc(0), target: Buffer.alloc(0), children: new Map(), parent, xattrs: new Map(), directIo: false,
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Building

  private node(ino: bigint): Node {
    const n = this.nodes.get(ino)
    if (n === undefined) throw new FuseError('ENOENT')
    return n
  }

  /** The inode at a '/'-separated path relative to the root. */
  resolve(path: string): bigint {
    let ino = 1n
    for (const part of path.split('/').filter((p) => p !== '')) {
      const next = this.node(ino).children.get(part)
      if (next === undefined) throw new Error(`memfs: no ${path}`)
      ino = next
    }
    return ino
  }

  private split(path: string): [bigint, string] {
    const parts = path.split('/').filter((p) => p !== '')
    const name = parts.pop()
    if (name === undefined) throw new Error(`memfs: bad path ${path}`)
    return [this.resolve(parts.join('/')), name]
  }

  private add(path: string, mode: number): Node {
    const [parent, name] = this.split(path)
    const p = this.node(parent)
    if (p.children.has(name)) throw new Error(`memfs: ${path} exists`)
    const n = this.makeNode(this.nextIno++, mode, parent)
    this.nodes.set(n.ino, n)
    p.children.set(name, n.ino)
    if ((mode & S_IFMT) === S_IFDIR) p.nlink++
    return n
  }

  mkdir(path: string, mode = 0o755): bigint {
    return this.add(path, S_IFDIR | mode).ino
  }

  writeFile(path: string, data: Buffer | string, opts: { mode?: number; directIo?: boolean; uid?: number; gid?: number } = {}): bigint {
    const n = this.add(path, S_IFREG | (opts.mode ?? 0o644))
    n.data = typeof data === 'string' ? Buffer.from(data) : data
    n.directIo = opts.directIo ?? false
    n.uid = opts.uid ?? 0
    n.gid = opts.gid ?? 0
    return n.ino
  }

  symlink(path: string, target: string): bigint {
    const n = this.add(path, S_IFLNK | 0o777)
    n.target = Buffer.from(target)
    return n.ino
  }

  mkfifo(path: string, mode = 0o644): bigint {
    return this.add(path, S_IFIFO | mode).ino
  }

  link(existing: string, path: string): void {
    const ino = this.resolve(existing)
    const [parent, name] = this.split(path)
    this.node(parent).children.set(name, ino)
    this.node(ino).nlink++
  }

  setXattr(path: string, name: string, value: Buffer | string): void {
    this.node(this.resolve(path)).xattrs.set(name, typeof value === 'string' ? Buffer.from(value) : value)
  }

  // -------------------------------------------------------------------------------------------------------------
  // FuseOps

  private attr(n: Node): Attr {
    const size = (n.mode & S_IFMT) === S_IFLNK ? n.target.length : (n.mode & S_IFMT) === S_IFDIR ? 4096 : n.data.length
    return {
      ino: n.ino, mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, size,
      atimeNs: n.mtimeNs, mtimeNs: n.mtimeNs, ctimeNs: n.mtimeNs,
    }
  }

  private entry(n: Node): Entry {
    return { ino: n.ino, attr: this.attr(n) }
  }

  async lookup(parent: bigint, name: Buffer): Promise<Entry> {
    this.stats.lookups++
    const p = this.node(parent)
    if ((p.mode & S_IFMT) !== S_IFDIR) throw new FuseError('ENOTDIR')
    const ino = p.children.get(name.toString())
    if (ino === undefined) throw new FuseError('ENOENT')
    return this.entry(this.node(ino))
  }

  forget(_ino: bigint, nlookup: bigint): void {
    this.stats.forgets += nlookup
  }

  async getattr(ino: bigint): Promise<Attr> {
    return this.attr(this.node(ino))
  }

  async readlink(ino: bigint): Promise<Buffer> {
    const n = this.node(ino)
    if ((n.mode & S_IFMT) !== S_IFLNK) throw new FuseError('EINVAL')
    return n.target
  }

  async open(ino: bigint): Promise<OpenReply> {
    this.stats.opens++
    const n = this.node(ino)
    return { fh: ino * 1000n, directIo: n.directIo, keepCache: false }
  }

  async release(): Promise<void> {
    this.stats.releases++
  }

  async read(ino: bigint, fh: bigint, offset: number, size: number, ctx: RequestContext): Promise<Buffer> {
    this.stats.reads++
    if (fh !== ino * 1000n) throw new FuseError('EBADF', `read with handle ${fh} on inode ${ino}`)
    const fault = this.faults.get(ino)
    if (fault === 'throw') throw new Error(`memfs: injected failure reading inode ${ino}`)
    if (fault === 'eacces') throw new FuseError('EACCES')
    if (fault === 'hang') {
      // Never resolves on its own; rejects when the kernel interrupts the request.
      await new Promise<never>((_, reject) => {
        this.hanging.add(reject)
        ctx.signal.addEventListener('abort', () => {
          this.stats.interrupted++
          this.hanging.delete(reject)
          reject(ctx.signal.reason)
        }, { once: true })
      })
    }
    const data = this.node(ino).data
    return data.subarray(Math.min(offset, data.length), Math.min(offset + size, data.length))
  }

  private listing(ino: bigint): Array<[string, Node]> {
    const dir = this.node(ino)
    if ((dir.mode & S_IFMT) !== S_IFDIR) throw new FuseError('ENOTDIR')
    const out: Array<[string, Node]> = [['.', dir], ['..', this.node(dir.parent)]]
    for (const [name, child] of dir.children) out.push([name, this.node(child)])
    return out
  }

  /** Uses the array form (readdirplus uses the adder form), so both are exercised. */
  async readdir(ino: bigint, _fh: bigint, offset: number): Promise<DirEntry[]> {
    return this.listing(ino).slice(offset).map(([name, n], i) => ({ name, ino: n.ino, mode: n.mode, offset: offset + i + 1 }))
  }

  async readdirplus(ino: bigint, _fh: bigint, offset: number, add: DirAdder<DirEntryPlus>): Promise<void> {
    const list = this.listing(ino)
    for (let i = offset; i < list.length; i++) {
      const [name, n] = list[i]!
      if (!add({ name, entry: this.entry(n), offset: i + 1 })) break
    }
  }

  async statfs(): Promise<Statfs> {
    let bytes = 0
    for (const n of this.nodes.values()) bytes += n.data.length
    const blocks = Math.ceil(bytes / 4096)
    return { blocks, bfree: 0, bavail: 0, files: this.nodes.size, ffree: 0, bsize: 4096, namelen: 255 }
  }

  async getxattr(ino: bigint, name: string): Promise<Buffer> {
    const v = this.node(ino).xattrs.get(name)
    if (v === undefined) throw new FuseError('ENODATA')
    return v
  }

  async listxattr(ino: bigint): Promise<string[]> {
    return [...this.node(ino).xattrs.keys()]
  }
}
