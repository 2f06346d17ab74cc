// The FUSE kernel protocol (linux/fuse.h, 7.x): opcodes, flags, and bounds-checked encoders and decoders for the
// structures a read-only filesystem exchanges with /dev/fuse. All integers are little-endian (x86-64, arm64).
// Decoders take (buf, start, end) and never read past `end`; encoders take (buf, off) and return the new offset,
// checking room first. Struct sizes are those of protocol minor >= 12.
import type { Attr, Entry, Statfs } from './types.js'

export const FUSE_KERNEL_VERSION = 7
/** The newest protocol minor this implementation speaks (linux/fuse.h of Debian 12); the kernel may offer more. */
export const FUSE_MAX_MINOR = 38
/** The oldest kernel minor accepted (struct sizes below need >= 12; FUSE_MAX_PAGES needs 28). */
export const FUSE_MIN_MINOR = 12
export const FUSE_ROOT_ID = 1n
export const FUSE_MIN_READ_BUFFER = 8192
/** Bit 0 of `unique` marks an INTERRUPT request. */
export const FUSE_INT_REQ_BIT = 1

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k]))
export function opName(opcode: number): string {
  return OP_NAMES.get(opcode) ?? `OP_${opcode}`
}

/** Operations that modify the filesystem: always EROFS on a read-only mount. */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK, Op.WRITE, Op.SETXATTR,
  Op.REMOVEXATTR, Op.CREATE, Op.FALLOCATE, Op.RENAME2, Op.COPY_FILE_RANGE, Op.TMPFILE,
])

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  FILE_OPS: 1 << 2,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  FLOCK_LOCKS: 1 << 10,
  HAS_IOCTL_DIR: 1 << 11,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  MAP_ALIGNMENT: 1 << 26,
  SUBMOUNTS: 1 << 27,
  HANDLE_KILLPRIV_V2: 1 << 28,
  SETXATTR_EXT: 1 << 29,
  INIT_EXT: 1 << 30,
  INIT_RESERVED: 2 ** 31,
} as const

/** fuse_open_out.open_flags */
export const OpenFlag = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
} as const

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000
export const S_IFIFO = 0o010000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000
export const S_IFSOCK = 0o140000

export const IN_HEADER_SIZE = 40
export const OUT_HEADER_SIZE = 16
export const ATTR_SIZE = 88
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE // 128
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE // 104
export const OPEN_OUT_SIZE = 16
export const STATFS_OUT_SIZE = 80
export const INIT_OUT_SIZE = 64
/** fuse_init_out as known to kernels with minor < 23. */
export const INIT_OUT_COMPAT_22_SIZE = 24
export const GETXATTR_OUT_SIZE = 8
export const DIRENT_BASE_SIZE = 24
export const DIRENTPLUS_BASE_SIZE = ENTRY_OUT_SIZE + DIRENT_BASE_SIZE // 152
/** Longest name the kernel accepts in a dirent (FUSE_NAME_MAX). */
export const FUSE_NAME_MAX = 1024

/** A request or reply that breaks the protocol's framing. The session answers EIO and logs it. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

const TWO32 = 0x1_0000_0000

function need(buf: Buffer, start: number, n: number, end: number, what: string): void {
  if (start < 0 || start + n > end || end > buf.length) {
    throw new ProtocolError(`${what}: needs ${n} bytes at ${start}, the message ends at ${end}`)
  }
}

/** Reads a u64 as a JS number; throws above 2^53 (offsets and sizes never get there). */
export function readU64Number(buf: Buffer, off: number): number {
  const lo = buf.readUInt32LE(off)
  const hi = buf.readUInt32LE(off + 4)
  if (hi >= 0x20_0000) throw new ProtocolError(`u64 at ${off} exceeds 2^53`)
  return hi * TWO32 + lo
}

function writeU64(buf: Buffer, off: number, v: bigint | number): void {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) throw new RangeError(`u64 out of range: ${v}`)
    buf.writeUInt32LE(v % TWO32, off)
    buf.writeUInt32LE(Math.floor(v / TWO32), off + 4)
  } else {
    buf.writeBigUInt64LE(v, off)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Incoming

export interface InHeader {
  /** Total length of the message, header included. */
  len: number
  opcode: number
  /** Request id (a u64 the kernel counts up by 2; kept as a number, exact below 2^53). */
  unique: number
  nodeid: bigint
  uid: number
  gid: number
  pid: number
  totalExtlen: number
}

/** Decodes fuse_in_header from the first `n` bytes read; the message must be exactly `len` long. */
export function decodeInHeader(buf: Buffer, n: number): InHeader {
  need(buf, 0, IN_HEADER_SIZE, n, 'fuse_in_header')
  const len = buf.readUInt32LE(0)
  if (len !== n) throw new ProtocolError(`fuse_in_header.len is ${len} but read returned ${n} bytes`)
  return {
    len,
    opcode: buf.readUInt32LE(4),
    unique: readU64Number(buf, 8),
    nodeid: buf.readBigUInt64LE(16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    totalExtlen: buf.readUInt16LE(36),
  }
}

/** A NUL-terminated name starting at `start` (the NUL must lie before `end`); returns a copy without the NUL. */
export function decodeName(buf: Buffer, start: number, end: number): Buffer {
  if (end > buf.length) throw new ProtocolError('name: message longer than buffer')
  const nul = buf.indexOf(0, start)
  if (nul < 0 || nul >= end) throw new ProtocolError(`name at ${start} has no NUL terminator before ${end}`)
  return Buffer.from(buf.subarray(start, nul))
}

export interface InitIn {
  major: number
  minor: number
  maxReadahead: number
  flags: number
  flags2: number
}

export function decodeInitIn(buf: Buffer, start: number, end: number): InitIn {
  need(buf, start, 16, end, 'fuse_init_in')
  const flags = buf.readUInt32LE(start + 12)
  const flags2 = end - start >= 20 ? buf.readUInt32LE(start + 16) : 0
  return {
    major: buf.readUInt32LE(start),
    minor: buf.readUInt32LE(start + 4),
    maxReadahead: buf.readUInt32LE(start + 8),
    flags,
    flags2,
  }
}

/** fuse_read_in (also READDIR / READDIRPLUS). */
export interface ReadIn {
  fh: bigint
  offset: number
  size: number
  readFlags: number
  flags: number
}

export function decodeReadIn(buf: Buffer, start: number, end: number): ReadIn {
  need(buf, start, 24, end, 'fuse_read_in')
  return {
    fh: buf.readBigUInt64LE(start),
    offset: readU64Number(buf, start + 8),
    size: buf.readUInt32LE(start + 16),
    readFlags: buf.readUInt32LE(start + 20),
    flags: end - start >= 36 ? buf.readUInt32LE(start + 32) : 0,
  }
}

export interface OpenIn {
  flags: number
  openFlags: number
}

export function decodeOpenIn(buf: Buffer, start: number, end: number): OpenIn {
  need(buf, start, 8, end, 'fuse_open_in')
  return { flags: buf.readUInt32LE(start), openFlags: buf.readUInt32LE(start + 4) }
}

export interface ReleaseIn {
  fh: bigint
  flags: number
  releaseFlags: number
}

export function decodeReleaseIn(buf: Buffer, start: number, end: number): ReleaseIn {
  need(buf, start, 16, end, 'fuse_release_in')
  return { fh: buf.readBigUInt64LE(start), flags: buf.readUInt32LE(start + 8), releaseFlags: buf.readUInt32LE(start + 12) }
}

/** fuse_flush_in: only the handle matters here. */
export function decodeFlushIn(buf: Buffer, start: number, end: number): { fh: bigint } {
  need(buf, start, 8, end, 'fuse_flush_in')
  return { fh: buf.readBigUInt64LE(start) }
}

export const FUSE_GETATTR_FH = 1

export function decodeGetattrIn(buf: Buffer, start: number, end: number): { fh: bigint | undefined } {
  if (end - start < 16) return { fh: undefined } // very old kernels send no body
  need(buf, start, 16, end, 'fuse_getattr_in')
  const flags = buf.readUInt32LE(start)
  return { fh: (flags & FUSE_GETATTR_FH) !== 0 ? buf.readBigUInt64LE(start + 8) : undefined }
}

export function decodeForgetIn(buf: Buffer, start: number, end: number): { nlookup: bigint } {
  need(buf, start, 8, end, 'fuse_forget_in')
  return { nlookup: buf.readBigUInt64LE(start) }
}

export function decodeBatchForgetIn(buf: Buffer, start: number, end: number): Array<{ nodeid: bigint; nlookup: bigint }> {
  need(buf, start, 8, end, 'fuse_batch_forget_in')
  const count = buf.readUInt32LE(start)
  need(buf, start + 8, count * 16, end, `fuse_batch_forget_in with ${count} entries`)
  const out = new Array<{ nodeid: bigint; nlookup: bigint }>(count)
  for (let i = 0, p = start + 8; i < count; i++, p += 16) {
    out[i] = { nodeid: buf.readBigUInt64LE(p), nlookup: buf.readBigUInt64LE(p + 8) }
  }
  return out
}

/** fuse_getxattr_in followed by the attribute name. */
export function decodeGetxattrIn(buf: Buffer, start: number, end: number): { size: number; name: Buffer } {
  need(buf, start, 8, end, 'fuse_getxattr_in')
  return { size: buf.readUInt32LE(start), name: decodeName(buf, start + 8, end) }
}

/** fuse_getxattr_in without a name (LISTXATTR). */
export function decodeListxattrIn(buf: Buffer, start: number, end: number): { size: number } {
  need(buf, start, 8, end, 'fuse_getxattr_in')
  return { size: buf.readUInt32LE(start) }
}

export function decodeAccessIn(buf: Buffer, start: number, end: number): { mask: number } {
  need(buf, start, 8, end, 'fuse_access_in')
  return { mask: buf.readUInt32LE(start) }
}

export function decodeInterruptIn(buf: Buffer, start: number, end: number): { unique: number } {
  need(buf, start, 8, end, 'fuse_interrupt_in')
  return { unique: readU64Number(buf, start) }
}

// ---------------------------------------------------------------------------------------------------------------
// Outgoing

function room(buf: Buffer, off: number, n: number, what: string): void {
  if (off < 0 || off + n > buf.length) throw new RangeError(`${what}: needs ${n} bytes at ${off}, buffer has ${buf.length}`)
}

/** fuse_out_header: `error` is 0 or a negative errno. */
export function encodeOutHeader(buf: Buffer, off: number, len: number, error: number, unique: number): number {
  room(buf, off, OUT_HEADER_SIZE, 'fuse_out_header')
  buf.writeUInt32LE(len, off)
  buf.writeInt32LE(error, off + 4)
  buf.writeUInt32LE(unique % TWO32, off + 8)
  buf.writeUInt32LE(Math.floor(unique / TWO32), off + 12)
  return off + OUT_HEADER_SIZE
}

const NS = 1_000_000_000n

/** Splits nanoseconds into (seconds, nanoseconds in [0, 1e9)), flooring for negative times. */
export function splitNs(ns: bigint): [bigint, number] {
  let s = ns / NS
  let r = ns % NS
  if (r < 0n) {
    s -= 1n
    r += NS
  }
  return [s, Number(r)]
}

/** Splits a TTL in milliseconds into (seconds, nanoseconds); negative or NaN → 0, huge → capped. */
export function splitTtl(ms: number): [number, number] {
  if (!(ms > 0)) return [0, 0]
  const capped = Math.min(ms, 1e15)
  const s = Math.floor(capped / 1000)
  const nsec = Math.min(999_999_999, Math.round((capped - s * 1000) * 1e6))
  return [s, nsec]
}

function u32(v: number | undefined, what: string): number {
  const n = v ?? 0
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`attr.${what} must be a u32, got ${String(v)}`)
  return n
}

/** fuse_attr (88 bytes). */
export function encodeAttr(buf: Buffer, off: number, a: Attr): number {
  room(buf, off, ATTR_SIZE, 'fuse_attr')
  writeU64(buf, off, a.ino)
  writeU64(buf, off + 8, a.size)
  const blocks = a.blocks ?? (typeof a.size === 'bigint' ? (a.size + 511n) / 512n : Math.ceil(a.size / 512))
  writeU64(buf, off + 16, blocks)
  const [as, ans] = splitNs(a.atimeNs ?? 0n)
  const [ms, mns] = splitNs(a.mtimeNs ?? 0n)
  const [cs, cns] = splitNs(a.ctimeNs ?? 0n)
  buf.writeBigInt64LE(as, off + 24)
  buf.writeBigInt64LE(ms, off + 32)
  buf.writeBigInt64LE(cs, off + 40)
  buf.writeUInt32LE(ans, off + 48)
  buf.writeUInt32LE(mns, off + 52)
  buf.writeUInt32LE(cns, off + 56)
  buf.writeUInt32LE(u32(a.mode, 'mode'), off + 60)
  buf.writeUInt32LE(u32(a.nlink, 'nlink'), off + 64)
  buf.writeUInt32LE(u32(a.uid, 'uid'), off + 68)
  buf.writeUInt32LE(u32(a.gid, 'gid'), off + 72)
  buf.writeUInt32LE(u32(a.rdev, 'rdev'), off + 76)
  buf.writeUInt32LE(u32(a.blksize ?? 4096, 'blksize'), off + 80)
  buf.writeUInt32LE(0, off + 84) // flags
  return off + ATTR_SIZE
}

/** fuse_entry_out (128 bytes); TTLs in ms. */
export function encodeEntryOut(buf: Buffer, off: number, e: Entry, entryTtlMs: number, attrTtlMs: number): number {
  room(buf, off, ENTRY_OUT_SIZE, 'fuse_entry_out')
  writeU64(buf, off, e.ino)
  writeU64(buf, off + 8, e.generation ?? 0n)
  const [es, ens] = splitTtl(e.entryTtlMs ?? entryTtlMs)
  const [as, ans] = splitTtl(e.attrTtlMs ?? attrTtlMs)
  writeU64(buf, off + 16, es)
  writeU64(buf, off + 24, as)
  buf.writeUInt32LE(ens, off + 32)
  buf.writeUInt32LE(ans, off + 36)
  if (e.ino === 0n) {
    buf.fill(0, off + 40, off + ENTRY_OUT_SIZE) // negative entry: attributes are ignored
    return off + ENTRY_OUT_SIZE
  }
  return encodeAttr(buf, off + 40, e.attr)
}

/** fuse_attr_out (104 bytes). */
export function encodeAttrOut(buf: Buffer, off: number, a: Attr, attrTtlMs: number): number {
  room(buf, off, ATTR_OUT_SIZE, 'fuse_attr_out')
  const [s, ns] = splitTtl(attrTtlMs)
  writeU64(buf, off, s)
  buf.writeUInt32LE(ns, off + 8)
  buf.writeUInt32LE(0, off + 12)
  return encodeAttr(buf, off + 16, a)
}

/** fuse_open_out (16 bytes). */
export function encodeOpenOut(buf: Buffer, off: number, fh: bigint, openFlags: number): number {
  room(buf, off, OPEN_OUT_SIZE, 'fuse_open_out')
  buf.writeBigUInt64LE(fh, off)
  buf.writeUInt32LE(openFlags, off + 8)
  buf.writeUInt32LE(0, off + 12)
  return off + OPEN_OUT_SIZE
}

/** fuse_statfs_out (80 bytes). */
/** fuse_notify_code FUSE_NOTIFY_STORE: content for the page cache, written unasked (unique 0). */
export const NOTIFY_STORE = 4
/** fuse_out_header + fuse_notify_store_out (nodeid, offset, size, padding). */
export const NOTIFY_STORE_HEADER_SIZE = OUT_HEADER_SIZE + 24

/** The header of a FUSE_NOTIFY_STORE message whose `size` bytes of data follow it. */
export function encodeNotifyStore(buf: Buffer, nodeid: bigint, offset: number, size: number): void {
  room(buf, 0, NOTIFY_STORE_HEADER_SIZE, 'fuse_notify_store_out')
  encodeOutHeader(buf, 0, NOTIFY_STORE_HEADER_SIZE + size, NOTIFY_STORE, 0)
  buf.writeBigUInt64LE(nodeid, OUT_HEADER_SIZE)
  buf.writeBigUInt64LE(BigInt(offset), OUT_HEADER_SIZE + 8)
  buf.writeUInt32LE(size, OUT_HEADER_SIZE + 16)
  buf.writeUInt32LE(0, OUT_HEADER_SIZE + 20)
}

export function encodeStatfsOut(buf: Buffer, off: number, s: Statfs): number {
  room(buf, off, STATFS_OUT_SIZE, 'fuse_statfs_out')
  buf.fill(0, off, off + STATFS_OUT_SIZE)
  writeU64(buf, off, s.blocks)
  writeU64(buf, off + 8, s.bfree)
  writeU64(buf, off + 16, s.bavail)
  writeU64(buf, off + 24, s.files)
  writeU64(buf, off + 32, s.ffree)
  const bsize = s.bsize ?? 4096
  buf.writeUInt32LE(u32(bsize, 'bsize'), off + 40)
  buf.writeUInt32LE(u32(s.namelen ?? 255, 'namelen'), off + 44)
  buf.writeUInt32LE(u32(s.frsize ?? bsize, 'frsize'), off + 48)
  return off + STATFS_OUT_SIZE
}

export interface InitOut {
  major: number
  minor: number
  maxReadahead: number
  flags: number
  maxBackground: number
  congestionThreshold: number
  maxWrite: number
  timeGran: number
  maxPages: number
  flags2: number
}

/** fuse_init_out: 64 bytes, or the 24-byte form for kernels older than minor 23. Returns the new offset. */
export function encodeInitOut(buf: Buffer, off: number, o: InitOut, size: number = INIT_OUT_SIZE): number {
  if (size !== INIT_OUT_SIZE && size !== INIT_OUT_COMPAT_22_SIZE) throw new RangeError(`fuse_init_out size ${size}`)
  room(buf, off, size, 'fuse_init_out')
  buf.fill(0, off, off + size)
  buf.writeUInt32LE(o.major, off)
  buf.writeUInt32LE(o.minor, off + 4)
  buf.writeUInt32LE(o.maxReadahead, off + 8)
  buf.writeUInt32LE(o.flags >>> 0, off + 12)
  buf.writeUInt16LE(o.maxBackground, off + 16)
  buf.writeUInt16LE(o.congestionThreshold, off + 18)
  buf.writeUInt32LE(o.maxWrite, off + 20)
  if (size === INIT_OUT_SIZE) {
    buf.writeUInt32LE(o.timeGran, off + 24)
    buf.writeUInt16LE(o.maxPages, off + 28)
    buf.writeUInt16LE(0, off + 30) // map_alignment
    buf.writeUInt32LE(o.flags2 >>> 0, off + 32)
  }
  return off + size
}

export function encodeGetxattrOut(buf: Buffer, off: number, size: number): number {
  room(buf, off, GETXATTR_OUT_SIZE, 'fuse_getxattr_out')
  buf.writeUInt32LE(size, off)
  buf.writeUInt32LE(0, off + 4)
  return off + GETXATTR_OUT_SIZE
}

const align8 = (n: number): number => (n + 7) & ~7

/** The 8-byte aligned size of one fuse_dirent with a name of `nameLen` bytes. */
export function direntSize(nameLen: number): number {
  return align8(DIRENT_BASE_SIZE + nameLen)
}

/** The 8-byte aligned size of one fuse_direntplus. */
export function direntplusSize(nameLen: number): number {
  return align8(DIRENTPLUS_BASE_SIZE + nameLen)
}

/** Checks a directory entry name: 1..1024 bytes, no '/' and no NUL. */
export function checkName(name: Buffer): void {
  if (name.length === 0 || name.length > FUSE_NAME_MAX) {
    throw new RangeError(`directory entry name must be 1..${FUSE_NAME_MAX} bytes, got ${name.length}`)
  }
  if (name.includes(0) || name.includes(0x2f)) throw new RangeError(`directory entry name ${JSON.stringify(name.toString())} contains '/' or NUL`)
}

/**
 * Appends one fuse_dirent at `off` if it fits before `end`; returns the new offset, or -1 when it does not fit
 * (nothing written). `cookie` is the offset the kernel sends back to continue after this entry.
 */
export function encodeDirent(buf: Buffer, off: number, end: number, ino: bigint, cookie: number, mode: number, name: Buffer): number {
  const size = direntSize(name.length)
  if (off + size > end) return -1
  room(buf, off, size, 'fuse_dirent')
  writeU64(buf, off, ino)
  writeU64(buf, off + 8, cookie)
  buf.writeUInt32LE(name.length, off + 16)
  buf.writeUInt32LE((mode & S_IFMT) >>> 12, off + 20)
  name.copy(buf, off + DIRENT_BASE_SIZE)
  buf.fill(0, off + DIRENT_BASE_SIZE + name.length, off + size)
  return off + size
}

/** Appends one fuse_direntplus (entry_out + dirent); -1 when it does not fit. */
export function encodeDirentplus(
  buf: Buffer, off: number, end: number, e: Entry, cookie: number, name: Buffer, entryTtlMs: number, attrTtlMs: number,
): number {
  const size = direntplusSize(name.length)
  if (off + size > end) return -1
  room(buf, off, size, 'fuse_direntplus')
  encodeEntryOut(buf, off, e, entryTtlMs, attrTtlMs)
  const d = off + ENTRY_OUT_SIZE
  writeU64(buf, d, e.ino === 0n ? e.attr.ino : e.ino)
  writeU64(buf, d + 8, cookie)
  buf.writeUInt32LE(name.length, d + 16)
  buf.writeUInt32LE((e.attr.mode & S_IFMT) >>> 12, d + 20)
  name.copy(buf, d + DIRENT_BASE_SIZE)
  buf.fill(0, d + DIRENT_BASE_SIZE + name.length, off + size)
  return off + size
}

/** NUL-separated xattr names for LISTXATTR. */
export function encodeXattrList(names: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = []
  for (const n of names) {
    const b = typeof n === 'string' ? Buffer.from(n) : n
    if (b.length === 0 || b.includes(0)) throw new RangeError(`xattr name ${JSON.stringify(b.toString())} is empty or contains NUL`)
    parts.push(b, Buffer.alloc(1))
  }
  return Buffer.concat(parts)
}
