// The typed surface a filesystem implements: inode-based, async, read-only for now. Inode numbers are the kernel's
// node ids (bigint); the root is always 1n. Every operation may throw a FuseError (or a Node system error, or a
// ZosError) to answer with an errno; anything else becomes EIO and is logged, and the mount keeps serving.

/** File attributes, as stat(2) shows them. */
export interface Attr {
  ino: bigint
  /** Type and permission bits, e.g. 0o100644 (S_IFREG | 0644) or 0o040755. */
  mode: number
  nlink: number
  uid: number
  gid: number
  /** Device number for character/block devices (kernel encoding, major << 8 | minor for small numbers). */
  rdev?: number
  size: bigint | number
  /** Number of 512-byte blocks; defaults to ceil(size / 512). */
  blocks?: bigint | number
  /** Preferred I/O size reported by stat; defaults to 4096. */
  blksize?: number
  /** Times in nanoseconds since the epoch (may be negative). Default 0n. */
  atimeNs?: bigint
  mtimeNs?: bigint
  ctimeNs?: bigint
}

/** The answer to LOOKUP (and one READDIRPLUS entry). `ino: 0n` with an entryTtlMs caches a negative lookup. */
export interface Entry {
  ino: bigint
  attr: Attr
  /** Inode generation: (ino, generation) must be unique over the filesystem's lifetime. Default 0n. */
  generation?: bigint
  /** How long the kernel may cache the name → inode mapping; defaults to the mount's entryTtlMs. */
  entryTtlMs?: number
  /** How long the kernel may cache the attributes; defaults to the mount's attrTtlMs. */
  attrTtlMs?: number
}

export interface AttrReply {
  attr: Attr
  attrTtlMs?: number
}

export interface OpenReply {
  /** Opaque handle passed back to read/release. Default 0n. */
  fh?: bigint
  /** Keep the page cache of this file across opens (for immutable content). */
  keepCache?: boolean
  /** Bypass the page cache: every read(2) reaches the filesystem with the caller's size. */
  directIo?: boolean
  /** Cache directory listings (opendir only). */
  cacheDir?: boolean
  /** The file is a stream (no offsets). */
  nonSeekable?: boolean
}

/** One directory entry for readdir. */
export interface DirEntry {
  name: Buffer | string
  ino: bigint
  /** Mode or just the type bits (S_IFDIR, S_IFREG, …); only the type is used. */
  mode: number
  /**
   * The cookie the kernel passes back as `offset` to continue after this entry. Defaults to the call's offset plus
   * the entry's position in this call plus one (index cookies).
   */
  offset?: number
}

/** One directory entry for readdirplus: the name plus a full lookup answer (use entry.ino 0n to give no attributes). */
export interface DirEntryPlus {
  name: Buffer | string
  entry: Entry
  offset?: number
}

/**
 * Adds one entry to the reply. Returns false, without adding it, once the reply buffer is full: stop then and
 * resolve; the kernel asks again from the last added entry's cookie.
 */
export type DirAdder<T> = (entry: T) => boolean

export interface Statfs {
  blocks: bigint | number
  bfree: bigint | number
  bavail: bigint | number
  files: bigint | number
  ffree: bigint | number
  bsize?: number
  frsize?: number
  namelen?: number
}

/** Who asked, and a signal aborted when the kernel interrupts the request (e.g. the caller got SIGINT). */
export interface RequestContext {
  uid: number
  gid: number
  pid: number
  readonly signal: AbortSignal
  /** For a READ: the open flags of the file read (O_DIRECT: the reader bypasses the page cache); else 0. */
  readonly openFlags: number
}

/**
 * The filesystem. Only lookup and getattr are required; a missing operation answers ENOSYS (which most kernels
 * remember and stop asking), except: open/opendir/release/releasedir/flush succeed with handle 0, and statfs
 * answers an empty filesystem. Write operations (setattr, mknod, mkdir, unlink, rmdir, rename, link, symlink,
 * write, create, setxattr, removexattr, fallocate, copy_file_range, tmpfile) always answer EROFS.
 */
export interface FuseOps {
  lookup(parent: bigint, name: Buffer, ctx: RequestContext): Promise<Entry>
  /** The kernel dropped `nlookup` references to `ino` (no reply is sent; errors are logged). */
  forget?(ino: bigint, nlookup: bigint): void
  getattr(ino: bigint, fh: bigint | undefined, ctx: RequestContext): Promise<Attr | AttrReply>
  readlink?(ino: bigint, ctx: RequestContext): Promise<Buffer | string>
  /** `flags` are the open(2) flags (O_ACCMODE, O_NONBLOCK, …). */
  open?(ino: bigint, flags: number, ctx: RequestContext): Promise<OpenReply>
  /**
   * Returns at most `size` bytes at `offset` (fewer only at end of file, unless directIo): one Buffer, or several
   * whose concatenation is the data (written with one writev, without copying them together). What is returned is
   * written to the kernel before the next await, so it may be a view into a cache that changes later.
   */
  read?(ino: bigint, fh: bigint, offset: number, size: number, ctx: RequestContext): Promise<Buffer | readonly Buffer[]>
  release?(ino: bigint, fh: bigint): Promise<void>
  flush?(ino: bigint, fh: bigint, ctx: RequestContext): Promise<void>
  opendir?(ino: bigint, flags: number, ctx: RequestContext): Promise<OpenReply>
  /**
   * Lists entries from `offset` on: call `add` per entry until it returns false, or resolve to an array of entries
   * (the driver adds them until the reply is full). Return only what follows `offset`.
   */
  readdir?(ino: bigint, fh: bigint, offset: number, add: DirAdder<DirEntry>, ctx: RequestContext): Promise<void | DirEntry[]>
  /** When present, the mount negotiates READDIRPLUS (ls -l then costs no extra LOOKUP per entry). Same contract as readdir. */
  readdirplus?(ino: bigint, fh: bigint, offset: number, add: DirAdder<DirEntryPlus>, ctx: RequestContext): Promise<void | DirEntryPlus[]>
  releasedir?(ino: bigint, fh: bigint): Promise<void>
  statfs?(ino: bigint, ctx: RequestContext): Promise<Statfs>
  /** The value of one attribute; throw FuseError('ENODATA') when it does not exist. */
  getxattr?(ino: bigint, name: string, ctx: RequestContext): Promise<Buffer | string>
  listxattr?(ino: bigint, ctx: RequestContext): Promise<Array<string | Buffer>>
  /** access(2) check with `mask` (R_OK/W_OK/X_OK bits); resolve to allow, throw EACCES to deny. Not asked with defaultPermissions. */
  access?(ino: bigint, mask: number, ctx: RequestContext): Promise<void>
  /** Called once when the session ends (unmounted, aborted, or DESTROY). */
  destroy?(): void | Promise<void>
}

/** Minimal structured logger (pino-compatible call shape: object first, then message). */
export interface FuseLogger {
  warn(obj: Record<string, unknown>, msg: string): void
  error(obj: Record<string, unknown>, msg: string): void
  debug?(obj: Record<string, unknown>, msg: string): void
}
