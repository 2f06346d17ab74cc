// A small HTTP/1.1 client for the request a cold mount waits on most: a GET of a byte range of a pack over plain
// HTTP, answered 206 with a Content-Length (or chunked), on a kept-alive connection. A starting workload's page
// faults wait one after the other for such answers, and in a freshly started serving process node:http's general
// machinery (parser callbacks, IncomingMessage streams, the agent, async iteration of the body) made each answer
// 1-2 ms slower (docs/benchmarks.md, "Session 6"). What this client leaves alone (TLS, a close-delimited body, a
// transfer coding other than chunked, an interim 1xx answer, folded or oversized headers) goes to node:http
// instead: `get` then returns undefined, having dropped its connection, and the caller asks again through it.
import { connect, type Socket } from 'node:net'

/** Largest answer head read before giving up on this client (node:http's default limit is 16 KiB). */
const MAX_HEAD = 64 * 1024
/** Largest unwanted body read away to keep its connection (bigger ones drop the connection); node:http's too. */
export const MAX_DISCARD = 64 * 1024
/** Codes of a connection the server closed while it sat idle: the request is sent again on a new one. */
export const STALE_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])
const HEAD_END = Buffer.from('\r\n\r\n')
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** An answer whose head has been read; its body is read (or dropped) once. */
export interface Http1Answer {
  readonly status: number
  readonly statusText: string
  header(name: string): string | null
  /**
   * The body, at most `cap` bytes. A longer body is an error, or with `stopAtCap` cut at `cap` (its connection
   * is then dropped); so is a connection that ends before the body does.
   */
  body(cap: number, stopAtCap?: boolean): Promise<Buffer>
  /** Drops the body: read away when small (the connection stays usable), else the connection is closed. */
  discard(): Promise<void>
}

/** The pooled connection was found closed by the server before it answered anything. */
class StaleConnection extends Error {}

/** Longest chunk-size or trailer line accepted in a chunked body. */
const MAX_LINE = 4096

/** Undoes `Transfer-Encoding: chunked` (RFC 9112 §7.1) as the bytes arrive; throws on a malformed stream. */
class ChunkedDecoder {
  private state: 'size' | 'data' | 'cr' | 'lf' | 'trailer' | 'done' = 'size'
  private line = ''
  private left = 0

  get done(): boolean {
    return this.state === 'done'
  }

  /** Hands the data in `raw` to `out`; returns how many bytes follow the end of the body (0 before the end). */
  feed(raw: Buffer, out: (data: Buffer) => void): number {
    let i = 0
    while (i < raw.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, raw.length - i)
        out(raw.subarray(i, i + n))
        i += n
        this.left -= n
        if (this.left === 0) this.state = 'cr'
      } else if (this.state === 'cr' || this.state === 'lf') {
        if (raw[i++] !== (this.state === 'cr' ? 0x0d : 0x0a)) throw new Error('malformed chunked body: no CRLF after a chunk')
        this.state = this.state === 'cr' ? 'lf' : 'size'
      } else {
        const nl = raw.indexOf(0x0a, i)
        const end = nl < 0 ? raw.length : nl
        this.line += raw.toString('latin1', i, end)
        if (this.line.length > MAX_LINE) throw new Error('malformed chunked body: a line is too long')
        i = end
        if (nl < 0) break
        i++
        const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line
        this.line = ''
        if (this.state === 'trailer') {
          if (line === '') this.state = 'done'
          continue
        }
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line)
        if (!size) throw new Error('malformed chunked body: bad chunk size')
        this.left = Number.parseInt(size[1]!, 16)
        this.state = this.left === 0 ? 'trailer' : 'data'
      }
    }
    return this.state === 'done' ? raw.length - i : 0
  }
}

/** One request on one connection: the head, then the body on demand. */
class Exchange implements Http1Answer {
  status = 0
  statusText = ''
  private readonly headers = new Map<string, string>()
  private head: Buffer | undefined = Buffer.alloc(0)
  /** Body length from Content-Length (or once a chunked body is complete); -1 while unknown. */
  private length = -1
  private chunked: ChunkedDecoder | undefined
  /** Bytes came after the body: the connection is not reused. */
  private overrun = false
  private pieces: Buffer[] = []
  private received = 0
  private ended = false
  private failure: Error | undefined
  private onHead!: (answer: Http1Answer | undefined) => void
  private onFail!: (err: Error) => void
  private wake: (() => void) | undefined
  private readonly abort = (): void => this.fail(signalReason(this.signal))
  readonly headRead: Promise<Http1Answer | undefined>

  constructor(
    private readonly pool: Http1Pool,
    private readonly socket: Socket,
    private readonly reused: boolean,
    private readonly signal: AbortSignal,
  ) {
    this.headRead = new Promise((resolve, reject) => {
      this.onHead = resolve
      this.onFail = reject
    })
    socket.on('data', this.onData)
    socket.on('error', this.onError)
    socket.on('end', this.onEnd)
    socket.on('close', this.onEnd)
    if (signal.aborted) this.abort()
    else signal.addEventListener('abort', this.abort, { once: true })
  }

  header(name: string): string | null {
    return this.headers.get(name.toLowerCase()) ?? null
  }

  private readonly onData = (data: Buffer): void => {
    if (this.head !== undefined) {
      const head = this.head.length === 0 ? data : Buffer.concat([this.head, data])
      const end = head.indexOf(HEAD_END)
      if (end < 0) {
        if (head.length > MAX_HEAD) this.giveUp()
        else this.head = head
        return
      }
      this.head = undefined
      if (end > MAX_HEAD || !this.parseHead(head.toString('latin1', 0, end))) return this.giveUp()
      data = head.subarray(end + HEAD_END.length)
      this.onHead(this)
      if (data.length === 0) return
    }
    if (this.chunked) {
      try {
        this.overrun = this.chunked.feed(data, this.take) > 0
      } catch (err) {
        return this.fail(err as Error)
      }
      if (this.chunked.done) {
        this.length = this.received
        this.ended = true
      }
    } else {
      this.take(data)
      this.overrun = this.length >= 0 && this.received > this.length
      if (this.length >= 0 && this.received >= this.length) this.ended = true
    }
    this.wake?.()
  }

  private readonly take = (data: Buffer): void => {
    this.pieces.push(data)
    this.received += data.length
  }

  /** Fills status and headers; false for an answer left to node:http. */
  private parseHead(text: string): boolean {
    const lines = text.split('\r\n')
    const m = STATUS_LINE.exec(lines[0]!)
    if (!m) return false
    this.status = Number(m[1])
    this.statusText = m[2] ?? ''
    if (this.status < 200) return false // an interim answer (100 Continue, 103 Early Hints)
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!
      const colon = line.indexOf(':')
      if (colon <= 0) return false // no name, or a folded continuation line
      const name = line.slice(0, colon)
      if (!TOKEN.test(name)) return false
      const key = name.toLowerCase()
      const value = line.slice(colon + 1).trim()
      const had = this.headers.get(key)
      this.headers.set(key, had === undefined ? value : `${had}, ${value}`)
    }
    const te = this.headers.get('transfer-encoding')
    const cl = this.headers.get('content-length')
    if (te !== undefined) {
      // Only plain chunked, and not with a Content-Length beside it (a message framed two ways).
      if (te.toLowerCase() !== 'chunked' || cl !== undefined) return false
      this.chunked = new ChunkedDecoder()
    } else if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) return false // also two differing values, joined with a comma
      this.length = Number(cl)
    } else if (this.status === 204 || this.status === 304) {
      this.length = 0
    } else if (this.status === 200 || this.status === 206) {
      return false // a body that ends with the connection
    }
    if (this.length === 0) this.ended = true
    return true
  }

  /** This client does not take the answer: drop the connection and let node:http ask. */
  private giveUp(): void {
    this.detach()
    this.socket.destroy()
    this.onHead(undefined)
  }

  private readonly onError = (err: Error & { code?: string }): void => {
    if (this.head !== undefined && this.head.length === 0 && this.reused && err.code !== undefined && STALE_CODES.has(err.code)) {
      this.fail(new StaleConnection(err.message))
    } else {
      this.fail(err)
    }
  }

  private readonly onEnd = (): void => {
    if (this.head !== undefined) {
      this.fail(this.head.length === 0 && this.reused ? new StaleConnection('closed while idle') : new Error('the server closed the connection before its answer was complete'))
    } else if (this.length < 0 || this.received < this.length) {
      this.fail(new Error(`the server closed the connection ${this.received} bytes into the answer's body`))
    }
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    this.detach()
    this.socket.destroy()
    this.onFail(err)
    this.wake?.()
  }

  private detach(): void {
    this.socket.off('data', this.onData)
    this.socket.off('error', this.onError)
    this.socket.off('end', this.onEnd)
    this.socket.off('close', this.onEnd)
    this.signal.removeEventListener('abort', this.abort)
  }

  /** Waits until `n` body bytes are in, the body is complete, or the exchange failed. */
  private async until(n: number): Promise<void> {
    while (this.failure === undefined && !this.ended && this.received < n) {
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
      this.wake = undefined
    }
    if (this.failure !== undefined) throw this.failure
  }

  /** The connection goes back to the pool when the body is complete and the server keeps it open. */
  private finish(complete: boolean): void {
    this.detach()
    const keep = complete && this.failure === undefined && !this.socket.destroyed && !this.overrun && this.received === this.length &&
      (this.header('connection') ?? '').toLowerCase() !== 'close'
    if (keep) this.pool.release(this.socket)
    else this.socket.destroy()
  }

  async body(cap: number, stopAtCap = false): Promise<Buffer> {
    const limit = stopAtCap ? cap : cap + 1 // one byte past the cap shows a body that is too long
    const want = this.length >= 0 ? Math.min(this.length, limit) : limit
    try {
      await this.until(want)
    } catch (err) {
      this.finish(false)
      throw err
    }
    const got = Math.min(this.received, want)
    if (got > cap && !stopAtCap) {
      this.finish(false)
      throw new Error(`the answer holds more than the ${cap} bytes expected`)
    }
    const size = Math.min(got, cap)
    const out = this.pieces.length === 1 && this.pieces[0]!.length === size ? this.pieces[0]! : Buffer.concat(this.pieces, size)
    this.pieces = []
    this.finish(size === this.length)
    return out
  }

  async discard(): Promise<void> {
    // A body of unknown length that is not chunked ends with the connection: nothing to wait for.
    if (this.length > MAX_DISCARD || (this.length < 0 && !this.chunked)) {
      this.pieces = []
      this.finish(false)
      return
    }
    try {
      await this.until(MAX_DISCARD + 1)
    } catch {
      // the connection is dropped below
    }
    this.pieces = []
    this.finish(this.ended && this.received <= MAX_DISCARD)
  }
}

function signalReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted')
}

/** Kept-alive plain-HTTP connections to one origin, for GETs of bodies framed by Content-Length or chunked. */
export class Http1Pool {
  private readonly idle: Socket[] = []
  private readonly sockets = new Set<Socket>()
  private readonly host: string
  private readonly port: number
  /** The Host header: the URL's host, with its port if it has one. */
  private readonly authority: string
  private closed = false

  /** For the origin of an http:// URL; at most `maxIdle` idle connections are kept. */
  constructor(origin: URL, private readonly maxIdle: number) {
    this.host = origin.hostname.replace(/^\[(.*)\]$/, '$1')
    this.port = Number(origin.port || 80)
    this.authority = origin.host
  }

  /**
   * Sends `GET path` with `headers` and resolves with the answer once its head is in, or undefined when the
   * answer is one to ask node:http for instead (its connection is dropped). A connection the server closed while
   * it sat idle is replaced without an error. Rejects on network errors and when `signal` aborts.
   */
  async get(path: string, headers: Readonly<Record<string, string>>, signal: AbortSignal): Promise<Http1Answer | undefined> {
    const reused = this.take()
    try {
      return await this.send(reused ?? this.open(), reused !== undefined, path, headers, signal)
    } catch (err) {
      if (err instanceof StaleConnection && !signal.aborted) return this.send(this.open(), false, path, headers, signal)
      throw err
    }
  }

  private send(socket: Socket, reused: boolean, path: string, headers: Readonly<Record<string, string>>, signal: AbortSignal): Promise<Http1Answer | undefined> {
    if (this.closed) throw new Error('the store is closed')
    let head = `GET ${path} HTTP/1.1\r\nhost: ${this.authority}\r\n`
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
    const exchange = new Exchange(this, socket, reused, signal)
    socket.write(head + '\r\n', 'latin1')
    return exchange.headRead
  }

  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port, noDelay: true })
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    return socket
  }

  private take(): Socket | undefined {
    for (let s = this.idle.pop(); s !== undefined; s = this.idle.pop()) {
      s.off('data', this.dropIdle).off('error', this.dropIdle).off('end', this.dropIdle).off('close', this.dropIdle)
      if (s.destroyed || s.readableEnded) {
        s.destroy()
        continue
      }
      s.ref()
      return s
    }
    return undefined
  }

  /**
   * Back into the pool (most recently used first). Idle, it keeps nothing alive, and it is closed if the server
   * closes it or sends anything (bytes nobody asked for would be taken for the next answer).
   */
  release(socket: Socket): void {
    if (this.closed || this.idle.length >= this.maxIdle) {
      socket.destroy()
      return
    }
    socket.on('data', this.dropIdle).on('error', this.dropIdle).on('end', this.dropIdle).on('close', this.dropIdle)
    socket.unref()
    this.idle.push(socket)
  }

  private readonly dropIdle = function (this: Socket): void {
    this.destroy()
  }

  close(): void {
    this.closed = true
    this.idle.length = 0
    for (const s of this.sockets) s.destroy()
  }
}
