// One FUSE connection: requests arrive from a reader thread (reader.ts), the filesystem's async operations run on
// the main thread, and replies are written in whatever order they complete, with fs.writeSync/writevSync (a write
// to /dev/fuse only hands the reply to the waiting request, it never blocks for long). Nothing a request contains,
// and nothing an operation throws, ends the session: only the kernel does (ENODEV once unmounted or aborted).
import { writeSync, writev, writevSync, closeSync } from 'node:fs'
import { DevReader, END_UNMOUNTED, END_CLOSED } from './reader.js'
import {
  Op, InitFlag, OpenFlag, WRITE_OPS, FUSE_KERNEL_VERSION, FUSE_MAX_MINOR, FUSE_MIN_MINOR,
  IN_HEADER_SIZE, OUT_HEADER_SIZE, INIT_OUT_SIZE, INIT_OUT_COMPAT_22_SIZE, FUSE_MIN_READ_BUFFER, S_IFMT,
  type InHeader, ProtocolError, opName, decodeInHeader, decodeName, decodeInitIn, decodeReadIn, decodeOpenIn,
  decodeReleaseIn, decodeFlushIn, decodeGetattrIn, decodeForgetIn, decodeBatchForgetIn, decodeGetxattrIn,
  decodeListxattrIn, decodeAccessIn, decodeInterruptIn, encodeOutHeader, encodeEntryOut, encodeAttrOut,
  encodeOpenOut, encodeStatfsOut, encodeInitOut, encodeGetxattrOut, encodeDirent, encodeDirentplus, encodeXattrList,
  checkName, encodeNotifyStore, NOTIFY_STORE_HEADER_SIZE,
} from './protocol.js'
import { toErrno, EINTR, EIO, ENOENT, ENOSYS, EROFS, ERANGE, E2BIG, EAGAIN } from './errno.js'
import type {
  FuseOps, FuseLogger, RequestContext, Attr, AttrReply, OpenReply, DirEntry, DirEntryPlus,
} from './types.js'

export interface SessionOptions {
  /** Default name-cache TTL for lookups (ms). */
  entryTtlMs: number
  /** Default attribute-cache TTL (ms). */
  attrTtlMs: number
  /** Requests the reader thread may queue ahead of the main thread. */
  queueDepth: number
  /** Largest READ request, in 4 KiB pages (FUSE_MAX_PAGES); 256 = 1 MiB. */
  maxPages: number
  /** How many background requests (readahead) the kernel may have in flight. */
  maxBackground: number
  logger: FuseLogger
  /** A reader already made for this descriptor (prepareReader), its thread booting while the mount was made. */
  reader?: DevReader
}

/** The reader thread of a session on `fd` with `queueDepth` (SessionOptions.queueDepth), started now; it reads once the session starts. */
export function prepareReader(fd: number, queueDepth: number): DevReader {
  const reader = new DevReader(fd, Math.max(2, queueDepth), Math.max(FUSE_MIN_READ_BUFFER, SLOT_SIZE))
  reader.prepare()
  return reader
}

export interface InitInfo {
  /** Protocol version in use: 7.min(kernel, ours). */
  major: number
  minor: number
  /** The kernel's own protocol minor. */
  kernelMinor: number
  /** Negotiated flags (fuse_init_out.flags). */
  flags: number
  maxPages: number
  maxReadahead: number
}

export type SessionEndReason = 'unmounted' | 'destroyed' | 'closed' | 'error'

export interface SessionEnd {
  reason: SessionEndReason
  /** Requests answered during the session. */
  requests: number
  error?: Error
}

/** Requests whose result creates state in the filesystem or the kernel: on INTERRUPT they are signalled but still answered by the op. */
const NOT_ABANDONABLE: ReadonlySet<number> = new Set([Op.LOOKUP, Op.READDIRPLUS, Op.OPEN, Op.OPENDIR, Op.RELEASE, Op.RELEASEDIR])

const INTERRUPT_RETRY_MS = 10
/**
 * Size of one request slot. Requests of a read-only mount are small (a header and a name); the kernel needs at
 * least 8 KiB and more than max_write (4 KiB) plus headers, and answers larger requests itself (EIO/E2BIG).
 */
const SLOT_SIZE = 16384
/**
 * Page-cache stores written at once (FuseSession.store): at most half of the libuv pool (4 threads unless
 * UV_THREADPOOL_SIZE says otherwise), and none with a pool of 1, so that other work always finds a thread.
 */
const MAX_STORES = Math.min(2, Math.floor((Number(process.env.UV_THREADPOOL_SIZE) || 4) / 2))

/** One request in flight: the context handed to the op, and the state INTERRUPT needs. */
class Request implements RequestContext {
  replied = false
  interrupted = false
  openFlags = 0
  private ctrl: AbortController | null = null

  constructor(
    readonly unique: number,
    readonly opcode: number,
    readonly nodeid: bigint,
    readonly uid: number,
    readonly gid: number,
    readonly pid: number,
  ) {}

  get signal(): AbortSignal {
    if (this.ctrl === null) {
      this.ctrl = new AbortController()
      if (this.interrupted) this.ctrl.abort(interruptedError())
    }
    return this.ctrl.signal
  }

  interrupt(): void {
    if (this.interrupted) return
    this.interrupted = true
    this.ctrl?.abort(interruptedError())
  }
}

function interruptedError(): Error {
  const e = new Error('the kernel interrupted this FUSE request')
  e.name = 'AbortError'
  return e
}

function isAttrReply(v: Attr | AttrReply): v is AttrReply {
  return typeof (v as AttrReply).attr === 'object' && (v as AttrReply).attr !== null
}

function openFlagsOf(r: OpenReply): number {
  return (r.directIo ? OpenFlag.DIRECT_IO : 0) | (r.keepCache ? OpenFlag.KEEP_CACHE : 0) |
    (r.cacheDir ? OpenFlag.CACHE_DIR : 0) | (r.nonSeekable ? OpenFlag.NONSEEKABLE : 0)
}

function asBuffer(v: Buffer | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v) : v
}

export class FuseSession {
  readonly closed: Promise<SessionEnd>
  readonly initialized: Promise<InitInfo>
  /** Set once INIT has been answered. */
  init: InitInfo | null = null

  private fd: number
  private readonly reader: DevReader
  private started = false
  private readonly inflight = new Map<number, Request>()
  private readonly pendingInterrupts = new Map<number, number>()
  private readonly header = Buffer.alloc(OUT_HEADER_SIZE)
  /** Small replies are encoded here (header included) and written synchronously, so one buffer serves all. */
  private readonly scratch = Buffer.alloc(4096)
  private ended = false
  private endReason: SessionEndReason = 'closed'
  private endError: Error | undefined
  private requests = 0
  private maxRead = 0
  private resolveClosed!: (e: SessionEnd) => void
  private resolveInit!: (i: InitInfo) => void
  private rejectInit!: (e: Error) => void
  /** Page-cache stores being written; the descriptor is closed only once none is (see store()). */
  private storing = 0
  private readonly storeQueue: { iov: Uint8Array[]; done: ((err: Error | null) => void) | undefined }[] = []
  private closeAfterStores = -1
  private logBudget = 20
  private logSuppressed = 0
  private logTimer: NodeJS.Timeout | null = null

  constructor(fd: number, private readonly ops: FuseOps, private readonly opts: SessionOptions) {
    this.fd = fd
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve })
    this.initialized = new Promise((resolve, reject) => { this.resolveInit = resolve; this.rejectInit = reject })
    this.initialized.catch(() => {}) // observed by mountFuse; never an unhandled rejection
    // The reader thread boots while the mount is being made (or has booted already); it reads once start() is called.
    this.reader = opts.reader ?? prepareReader(fd, opts.queueDepth)
    this.reader.bind({
      message: (buf, n) => this.onMessage(buf, n),
      end: (code, err) => this.onReaderEnd(code, err),
      warn: (message, code) => this.log('warn', { err: message, code }, 'fuse: read from /dev/fuse failed; retrying'),
    })
  }

  /** Starts reading requests; call after mount(2) attached the fd (reads before that fail with EPERM). */
  start(): void {
    if (this.started || this.ended) return
    this.started = true
    this.reader.start()
  }

  get isEnded(): boolean {
    return this.ended
  }

  get inflightCount(): number {
    return this.inflight.size
  }

  private onReaderEnd(code: number, err: Error | undefined): void {
    if (code === END_UNMOUNTED) {
      if (this.endReason === 'closed') this.endReason = 'unmounted'
    } else if (code !== END_CLOSED) {
      this.endReason = 'error'
      this.endError = err ?? new Error('the /dev/fuse reader stopped')
      this.log('error', { err: this.endError.message }, 'fuse: reading /dev/fuse failed; ending the session')
    }
    this.finish()
  }

  private onMessage(buf: Buffer, n: number): void {
    if (this.ended) return
    let h: InHeader
    try {
      h = decodeInHeader(buf, n)
    } catch (e) {
      this.log('error', { err: (e as Error).message, bytes: n }, 'fuse: malformed request header; dropped')
      return
    }
    try {
      this.dispatch(h, buf)
    } catch (e) {
      // A decoding failure (ProtocolError) or a bug in a synchronous part: answer EIO if it expects an answer.
      this.log('error', { op: opName(h.opcode), err: (e as Error).message }, 'fuse: request could not be handled')
      if (!this.inflight.has(h.unique) && h.opcode !== Op.FORGET && h.opcode !== Op.BATCH_FORGET && h.opcode !== Op.INTERRUPT) {
        this.writeError(h.unique, EIO)
      }
    }
    // Everything dispatch needed from the buffer has been copied out: the reader reuses it after we return.
  }

  // -------------------------------------------------------------------------------------------------------------
  // Dispatch: decode synchronously (the buffer is reused right after), then start the async op.

  private dispatch(h: InHeader, buf: Buffer): void {
    const start = IN_HEADER_SIZE
    const end = h.len
    const op = h.opcode
    if (op === Op.INIT) return this.onInit(h, buf)
    if (this.init === null) {
      this.log('warn', { op: opName(op) }, 'fuse: request before INIT; answering EIO')
      return this.writeError(h.unique, EIO)
    }
    switch (op) {
      case Op.READ: {
        const r = decodeReadIn(buf, start, end)
        const req = this.begin(h)
        req.openFlags = r.flags
        return this.run(h, this.doRead(req, r.fh, r.offset, r.size))
      }
      case Op.LOOKUP: {
        const name = decodeName(buf, start, end)
        return this.run(h, this.doLookup(this.begin(h), name))
      }
      case Op.GETATTR: {
        const g = decodeGetattrIn(buf, start, end)
        return this.run(h, this.doGetattr(this.begin(h), g.fh))
      }
      case Op.FORGET: {
        const f = decodeForgetIn(buf, start, end)
        return this.forget(h.nodeid, f.nlookup)
      }
      case Op.BATCH_FORGET: {
        for (const f of decodeBatchForgetIn(buf, start, end)) this.forget(f.nodeid, f.nlookup)
        return
      }
      case Op.INTERRUPT:
        return this.onInterrupt(h.unique, decodeInterruptIn(buf, start, end).unique)
      case Op.OPEN: {
        const o = decodeOpenIn(buf, start, end)
        return this.run(h, this.doOpen(this.begin(h), o.flags, false))
      }
      case Op.OPENDIR: {
        const o = decodeOpenIn(buf, start, end)
        return this.run(h, this.doOpen(this.begin(h), o.flags, true))
      }
      case Op.READDIR: {
        const r = decodeReadIn(buf, start, end)
        return this.run(h, this.doReaddir(this.begin(h), r.fh, r.offset, r.size, false))
      }
      case Op.READDIRPLUS: {
        const r = decodeReadIn(buf, start, end)
        return this.run(h, this.doReaddir(this.begin(h), r.fh, r.offset, r.size, true))
      }
      case Op.RELEASE:
      case Op.RELEASEDIR: {
        const r = decodeReleaseIn(buf, start, end)
        return this.run(h, this.doRelease(this.begin(h), r.fh, op === Op.RELEASEDIR))
      }
      case Op.FLUSH: {
        const f = decodeFlushIn(buf, start, end)
        return this.run(h, this.doFlush(this.begin(h), f.fh))
      }
      case Op.READLINK:
        return this.run(h, this.doReadlink(this.begin(h)))
      case Op.STATFS:
        return this.run(h, this.doStatfs(this.begin(h)))
      case Op.GETXATTR: {
        const g = decodeGetxattrIn(buf, start, end)
        return this.run(h, this.doGetxattr(this.begin(h), g.name, g.size))
      }
      case Op.LISTXATTR: {
        const l = decodeListxattrIn(buf, start, end)
        return this.run(h, this.doListxattr(this.begin(h), l.size))
      }
      case Op.ACCESS: {
        const a = decodeAccessIn(buf, start, end)
        return this.run(h, this.doAccess(this.begin(h), a.mask))
      }
      case Op.DESTROY:
        this.writeEmpty(h.unique)
        this.endReason = 'destroyed'
        return
      case Op.NOTIFY_REPLY:
        return // answers a notification we never send; takes no reply
      default:
        return this.writeError(h.unique, WRITE_OPS.has(op) ? EROFS : ENOSYS)
    }
  }

  private begin(h: InHeader): Request {
    const req = new Request(h.unique, h.opcode, h.nodeid, h.uid, h.gid, h.pid)
    this.inflight.set(h.unique, req)
    if (this.pendingInterrupts.size > 0 && this.pendingInterrupts.has(h.unique)) {
      this.pendingInterrupts.delete(h.unique)
      this.interruptRequest(req)
    }
    this.requests++
    return req
  }

  /** Attaches the failure path to an op's promise: errors become -errno replies (EIO + a log line when unexpected). */
  private run(h: InHeader, p: Promise<void>): void {
    p.catch((err: unknown) => {
      const req = this.inflight.get(h.unique)
      if (req === undefined || req.replied) return
      const { errno, unexpected } = toErrno(err)
      if (unexpected) {
        this.log('error', { op: opName(h.opcode), ino: h.nodeid.toString(), err: err instanceof Error ? (err.stack ?? err.message) : String(err) },
          'fuse: operation failed; answering EIO')
      }
      this.replyError(req, errno)
    })
  }

  // -------------------------------------------------------------------------------------------------------------
  // INIT

  private onInit(h: InHeader, buf: Buffer): void {
    const i = decodeInitIn(buf, IN_HEADER_SIZE, h.len)
    if (this.init !== null) {
      this.log('warn', {}, 'fuse: second INIT ignored')
      return this.writeError(h.unique, EIO)
    }
    if (i.major > FUSE_KERNEL_VERSION) {
      // The kernel speaks a newer major: answer with ours and it sends INIT again.
      const end = encodeInitOut(this.scratch, OUT_HEADER_SIZE, {
        major: FUSE_KERNEL_VERSION, minor: FUSE_MAX_MINOR, maxReadahead: 0, flags: 0, maxBackground: 0,
        congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, flags2: 0,
      }, INIT_OUT_COMPAT_22_SIZE)
      this.writeScratch(h.unique, end)
      return
    }
    if (i.major < FUSE_KERNEL_VERSION || i.minor < FUSE_MIN_MINOR) {
      const err = new ProtocolError(`the kernel speaks FUSE ${i.major}.${i.minor}; this driver needs 7.${FUSE_MIN_MINOR} or newer`)
      this.rejectInit(err)
      this.writeError(h.unique, EIO)
      return
    }
    const minor = Math.min(i.minor, FUSE_MAX_MINOR)
    let want = InitFlag.ASYNC_READ | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS
    if (this.ops.readdirplus !== undefined) want |= InitFlag.DO_READDIRPLUS | InitFlag.READDIRPLUS_AUTO
    const flags = (i.flags & want) >>> 0
    const maxPages = (flags & InitFlag.MAX_PAGES) !== 0 ? this.opts.maxPages : 32
    const maxReadahead = Math.min(i.maxReadahead, maxPages * 4096)
    const maxBackground = Math.min(this.opts.maxBackground, 0xffff)
    const size = minor >= 23 ? INIT_OUT_SIZE : INIT_OUT_COMPAT_22_SIZE
    const end = encodeInitOut(this.scratch, OUT_HEADER_SIZE, {
      major: FUSE_KERNEL_VERSION,
      minor,
      maxReadahead,
      flags,
      maxBackground,
      congestionThreshold: Math.max(1, Math.floor((maxBackground * 3) / 4)),
      maxWrite: 4096, // read-only: writes are refused before any data moves
      timeGran: 1,
      maxPages,
      flags2: 0,
    }, size)
    this.maxRead = maxPages * 4096
    this.init = { major: FUSE_KERNEL_VERSION, minor, kernelMinor: i.minor, flags, maxPages, maxReadahead }
    this.writeScratch(h.unique, end)
    this.resolveInit(this.init)
  }

  // -------------------------------------------------------------------------------------------------------------
  // Operations

  private async doRead(req: Request, fh: bigint, offset: number, size: number): Promise<void> {
    const read = this.ops.read
    if (read === undefined) return this.replyError(req, ENOSYS)
    const data = await read.call(this.ops, req.nodeid, fh, offset, size, req)
    if (data instanceof Uint8Array) return this.replyData(req, data.length > size ? data.subarray(0, size) : data)
    if (!Array.isArray(data)) throw new TypeError(`read returned ${typeof data}, not a Buffer or an array of Buffers`)
    // Several buffers: one writev of the header and the parts, cut at size.
    const parts: Uint8Array[] = []
    let total = 0
    for (const part of data as readonly Uint8Array[]) {
      if (!(part instanceof Uint8Array)) throw new TypeError(`read returned an array holding ${typeof part}, not Buffers`)
      if (total >= size) break
      const take = part.length > size - total ? part.subarray(0, size - total) : part
      if (take.length > 0) parts.push(take)
      total += take.length
    }
    this.replyParts(req, parts, total)
  }

  private async doLookup(req: Request, name: Buffer): Promise<void> {
    const e = await this.ops.lookup(req.nodeid, name, req)
    // A negative entry (ino 0n) with no TTL caches nothing: that is plain ENOENT.
    if (e.ino === 0n && !((e.entryTtlMs ?? this.opts.entryTtlMs) > 0)) return this.replyError(req, ENOENT)
    this.replyScratch(req, encodeEntryOut(this.scratch, OUT_HEADER_SIZE, e, this.opts.entryTtlMs, this.opts.attrTtlMs))
  }

  private async doGetattr(req: Request, fh: bigint | undefined): Promise<void> {
    const r = await this.ops.getattr(req.nodeid, fh, req)
    const attr = isAttrReply(r) ? r.attr : r
    const ttl = isAttrReply(r) ? (r.attrTtlMs ?? this.opts.attrTtlMs) : this.opts.attrTtlMs
    const end = encodeAttrOut(this.scratch, OUT_HEADER_SIZE, attr, ttl)
    this.replyScratch(req, end)
  }

  private forget(ino: bigint, nlookup: bigint): void {
    const f = this.ops.forget
    if (f === undefined) return
    try {
      f.call(this.ops, ino, nlookup)
    } catch (err) {
      this.log('error', { ino: ino.toString(), err: err instanceof Error ? err.message : String(err) }, 'fuse: forget failed')
    }
  }

  private async doOpen(req: Request, flags: number, dir: boolean): Promise<void> {
    const fn = dir ? this.ops.opendir : this.ops.open
    const r: OpenReply = fn === undefined ? {} : await fn.call(this.ops, req.nodeid, flags, req)
    // NOFLUSH: close(2) sends no FLUSH (nothing to flush on a read-only mount). Besides saving a round trip, this
    // avoids a deadlock: a child forked by this process closes its inherited copies of our files at exec, and a
    // FLUSH would wait for this process's event loop, which waits for that exec (libuv's spawn is synchronous).
    const noflush = dir || this.ops.flush !== undefined ? 0 : OpenFlag.NOFLUSH
    const end = encodeOpenOut(this.scratch, OUT_HEADER_SIZE, r.fh ?? 0n, openFlagsOf(r) | noflush)
    if (!this.replyScratch(req, end) && r.fh !== undefined) {
      // The kernel will never send RELEASE for a handle it did not get: release it here.
      const rel = dir ? this.ops.releasedir : this.ops.release
      rel?.call(this.ops, req.nodeid, r.fh).catch(() => {})
    }
  }

  private async doRelease(req: Request, fh: bigint, dir: boolean): Promise<void> {
    const fn = dir ? this.ops.releasedir : this.ops.release
    if (fn !== undefined) await fn.call(this.ops, req.nodeid, fh)
    this.replyEmpty(req)
  }

  private async doFlush(req: Request, fh: bigint): Promise<void> {
    if (this.ops.flush !== undefined) await this.ops.flush(req.nodeid, fh, req)
    this.replyEmpty(req)
  }

  private async doReadlink(req: Request): Promise<void> {
    if (this.ops.readlink === undefined) return this.replyError(req, ENOSYS)
    const target = asBuffer(await this.ops.readlink(req.nodeid, req))
    this.replyData(req, target)
  }

  private async doStatfs(req: Request): Promise<void> {
    const s = this.ops.statfs === undefined
      ? { blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0 }
      : await this.ops.statfs(req.nodeid, req)
    this.replyScratch(req, encodeStatfsOut(this.scratch, OUT_HEADER_SIZE, s))
  }

  private async doGetxattr(req: Request, name: Buffer, size: number): Promise<void> {
    if (this.ops.getxattr === undefined) return this.replyError(req, ENOSYS)
    const value = asBuffer(await this.ops.getxattr(req.nodeid, name.toString(), req))
    this.replySized(req, value, size)
  }

  private async doListxattr(req: Request, size: number): Promise<void> {
    if (this.ops.listxattr === undefined) return this.replyError(req, ENOSYS)
    const list = encodeXattrList(await this.ops.listxattr(req.nodeid, req))
    this.replySized(req, list, size)
  }

  /** GETXATTR/LISTXATTR: size 0 asks for the length; a value longer than `size` is ERANGE. */
  private replySized(req: Request, value: Buffer, size: number): void {
    if (size === 0) {
      this.replyScratch(req, encodeGetxattrOut(this.scratch, OUT_HEADER_SIZE, value.length))
      return
    }
    if (value.length > size) return this.replyError(req, ERANGE)
    if (value.length > 65536) return this.replyError(req, E2BIG)
    this.replyData(req, value)
  }

  private async doAccess(req: Request, mask: number): Promise<void> {
    if (this.ops.access === undefined) return this.replyError(req, ENOSYS)
    await this.ops.access(req.nodeid, mask, req)
    this.replyEmpty(req)
  }

  private async doReaddir(req: Request, fh: bigint, offset: number, size: number, plus: boolean): Promise<void> {
    const cap = Math.min(size, Math.max(this.maxRead, 4096))
    const out = Buffer.allocUnsafe(cap)
    let pos = 0
    let index = 0
    let full = false
    let done = false
    const { entryTtlMs, attrTtlMs } = this.opts
    if (plus) {
      const fn = this.ops.readdirplus
      if (fn === undefined) return this.replyError(req, ENOSYS)
      const add = (d: DirEntryPlus): boolean => {
        if (done || full) return false
        const name = asBuffer(d.name)
        checkName(name)
        const next = encodeDirentplus(out, pos, cap, d.entry, d.offset ?? offset + index + 1, name, entryTtlMs, attrTtlMs)
        if (next < 0) { full = true; return false }
        pos = next
        index++
        return true
      }
      const list = await fn.call(this.ops, req.nodeid, fh, offset, add, req)
      if (Array.isArray(list)) for (const d of list) if (!add(d)) break
    } else {
      const add = (d: DirEntry): boolean => {
        if (done || full) return false
        const name = asBuffer(d.name)
        checkName(name)
        const next = encodeDirent(out, pos, cap, d.ino, d.offset ?? offset + index + 1, d.mode & S_IFMT, name)
        if (next < 0) { full = true; return false }
        pos = next
        index++
        return true
      }
      if (this.ops.readdir !== undefined) {
        const list = await this.ops.readdir(req.nodeid, fh, offset, add, req)
        if (Array.isArray(list)) for (const d of list) if (!add(d)) break
      } else if (this.ops.readdirplus !== undefined) {
        // READDIRPLUS_AUTO may still send plain READDIR: serve it from readdirplus.
        const plain = (d: DirEntryPlus): boolean =>
          add({ name: d.name, ino: d.entry.ino === 0n ? d.entry.attr.ino : d.entry.ino, mode: d.entry.attr.mode, offset: d.offset })
        const list = await this.ops.readdirplus(req.nodeid, fh, offset, plain, req)
        if (Array.isArray(list)) for (const d of list) if (!plain(d)) break
      } else {
        return this.replyError(req, ENOSYS)
      }
    }
    done = true
    this.replyData(req, out.subarray(0, pos))
  }

  // -------------------------------------------------------------------------------------------------------------
  // INTERRUPT

  private onInterrupt(ownUnique: number, target: number): void {
    const req = this.inflight.get(target)
    if (req !== undefined) return this.interruptRequest(req)
    // Not seen yet (another reader may hold it) or already answered. Remember it briefly; if it is still unmatched,
    // answer EAGAIN so the kernel re-queues the interrupt if the request is still pending (ENOENT otherwise, ignored).
    this.pendingInterrupts.set(target, ownUnique)
    setTimeout(() => {
      if (this.pendingInterrupts.get(target) === ownUnique) {
        this.pendingInterrupts.delete(target)
        this.writeError(ownUnique, EAGAIN)
      }
    }, INTERRUPT_RETRY_MS).unref()
  }

  private interruptRequest(req: Request): void {
    req.interrupt()
    // Read-type requests are answered EINTR at once, so a hung operation cannot hold the caller; the op's late
    // result is dropped. Requests that create state (lookup, open, …) must be answered by the op itself.
    if (!NOT_ABANDONABLE.has(req.opcode)) this.replyError(req, EINTR)
  }

  // -------------------------------------------------------------------------------------------------------------
  // Replies. Each returns true when the kernel took the reply.

  private finishRequest(req: Request): boolean {
    if (req.replied) return false
    req.replied = true
    this.inflight.delete(req.unique)
    return true
  }

  private replyError(req: Request, errno: number): void {
    if (this.finishRequest(req)) this.writeError(req.unique, errno)
  }

  private replyEmpty(req: Request): void {
    if (this.finishRequest(req)) this.writeEmpty(req.unique)
  }

  private replyScratch(req: Request, end: number): boolean {
    return this.finishRequest(req) && this.writeScratch(req.unique, end)
  }

  private replyData(req: Request, data: Uint8Array): void {
    if (!this.finishRequest(req)) return
    if (this.fd < 0) return
    const len = OUT_HEADER_SIZE + data.length
    encodeOutHeader(this.header, 0, len, 0, req.unique)
    try {
      if (data.length === 0) writeSync(this.fd, this.header, 0, OUT_HEADER_SIZE)
      else writevSync(this.fd, [this.header, data])
    } catch (err) {
      this.onWriteError(err, req.unique)
    }
  }

  /** A reply whose data is several buffers (total bytes in all): written with one writev, no copy. */
  private replyParts(req: Request, parts: readonly Uint8Array[], total: number): void {
    // writev takes at most IOV_MAX (1024) buffers: more (tiny ones) are copied together first.
    if (parts.length === 1 || parts.length > 512) return this.replyData(req, parts.length === 1 ? parts[0]! : Buffer.concat(parts, total))
    if (!this.finishRequest(req)) return
    if (this.fd < 0) return
    encodeOutHeader(this.header, 0, OUT_HEADER_SIZE + total, 0, req.unique)
    try {
      if (total === 0) writeSync(this.fd, this.header, 0, OUT_HEADER_SIZE)
      else writevSync(this.fd, [this.header, ...parts])
    } catch (err) {
      this.onWriteError(err, req.unique)
    }
  }

  private writeError(unique: number, errno: number): void {
    if (this.fd < 0) return
    encodeOutHeader(this.header, 0, OUT_HEADER_SIZE, -errno, unique)
    try {
      writeSync(this.fd, this.header, 0, OUT_HEADER_SIZE)
    } catch (err) {
      this.onWriteError(err, unique)
    }
  }

  private writeEmpty(unique: number): void {
    this.writeError(unique, 0)
  }

  /** Writes scratch[0, end) after filling in its header. */
  private writeScratch(unique: number, end: number): boolean {
    if (this.fd < 0) return false
    encodeOutHeader(this.scratch, 0, end, 0, unique)
    try {
      writeSync(this.fd, this.scratch, 0, end)
      return true
    } catch (err) {
      this.onWriteError(err, unique)
      return false
    }
  }

  private onWriteError(err: unknown, unique: number): void {
    const code = (err as NodeJS.ErrnoException).code
    // ENOENT: the request was interrupted or aborted meanwhile; ENODEV/EBADF: the connection is gone.
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'EBADF') return
    this.log('error', { unique, err: (err as Error).message }, `fuse: writing a reply failed (${code ?? 'unknown'})`)
  }

  // -------------------------------------------------------------------------------------------------------------
  // End

  private finish(): void {
    if (this.ended) return
    this.ended = true
    const fd = this.fd
    this.fd = -1 // late replies must never reach a reused descriptor number
    for (const q of this.storeQueue.splice(0)) q.done?.(new Error('the FUSE session ended'))
    if (this.storing > 0) this.closeAfterStores = fd // an in-flight store must not reach a reused number either
    else try { closeSync(fd) } catch { /* already closed */ }
    for (const req of this.inflight.values()) req.interrupt()
    this.inflight.clear()
    this.pendingInterrupts.clear()
    if (this.init === null) this.rejectInit(this.endError ?? new Error('the FUSE connection ended before INIT'))
    const end: SessionEnd = { reason: this.endReason, requests: this.requests, ...(this.endError ? { error: this.endError } : {}) }
    const destroy = this.ops.destroy
    Promise.resolve()
      .then(() => destroy?.call(this.ops))
      .catch((err: unknown) => this.log('error', { err: err instanceof Error ? err.message : String(err) }, 'fuse: destroy failed'))
      .finally(() => {
        if (this.logTimer) clearTimeout(this.logTimer)
        this.resolveClosed(end)
      })
  }

  /**
   * Hands the kernel content of file `ino` it did not ask for (FUSE_NOTIFY_STORE): `total` bytes in `parts`, to
   * be found in its page cache from `offset` on, so that reads and page faults there need no request. Only whole
   * pages (and a last page reaching the end of the file) become cached; the range must not pass the end of the
   * file (the kernel would grow it). `done` learns how it went (ENOENT: the kernel does not hold the inode, e.g.
   * it was never looked up or has been forgotten). False when not serving.
   *
   * The kernel locks each page it fills, so a store can wait for a READ of the same pages to be answered. The
   * write therefore goes through the libuv pool, never on this thread (which answers that READ), and at most
   * MAX_STORES run at once (the rest queue here): the READ's answer may itself need a pool thread (a disk-cache
   * read), and stores waiting in every pool thread would wait for it forever.
   */
  store(ino: bigint, offset: number, parts: readonly Uint8Array[], total: number, done?: (err: Error | null) => void): boolean {
    if (this.ended || this.init === null || this.fd < 0 || total <= 0 || MAX_STORES === 0) return false
    const head = Buffer.allocUnsafe(NOTIFY_STORE_HEADER_SIZE)
    encodeNotifyStore(head, ino, offset, total)
    // writev takes at most IOV_MAX (1024) buffers.
    const iov = parts.length < 1000 ? [head, ...parts] : [head, Buffer.concat(parts, total)]
    this.storeQueue.push({ iov, done })
    this.nextStores()
    return true
  }

  private nextStores(): void {
    while (this.storing < MAX_STORES && this.storeQueue.length > 0) {
      const { iov, done } = this.storeQueue.shift()!
      if (this.fd < 0) {
        done?.(new Error('the FUSE session ended'))
        continue
      }
      this.storing++
      writev(this.fd, iov, (err) => {
        done?.(err)
        this.storing--
        this.nextStores()
        if (this.storing > 0 || this.closeAfterStores < 0) return
        try { closeSync(this.closeAfterStores) } catch { /* already closed */ }
        this.closeAfterStores = -1
      })
    }
  }

  /**
   * Closes the descriptor of a session that was never started (mount(8) failed). A started session ends only when
   * the kernel ends the connection (unmount or abort): the reader thread is blocked in read(2) until then.
   */
  closeUnstarted(): void {
    if (this.started || this.ended) return
    this.reader.cancel()
    this.finish()
  }

  /** Rate-limited logging: at most 20 lines a second, then a count of what was suppressed. */
  log(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    if (this.logBudget <= 0) {
      this.logSuppressed++
      return
    }
    this.logBudget--
    if (this.logTimer === null) {
      this.logTimer = setTimeout(() => {
        this.logTimer = null
        this.logBudget = 20
        if (this.logSuppressed > 0) {
          this.opts.logger.warn({ suppressed: this.logSuppressed }, 'fuse: log lines suppressed')
          this.logSuppressed = 0
        }
      }, 1000)
      this.logTimer.unref()
    }
    this.opts.logger[level](obj, msg)
  }
}
