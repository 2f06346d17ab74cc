// The relay: a WebSocket server twins dial out to. It authenticates each connection with a signed token,
// routes envelopes by destination twin and session, holds messages for sessions that are offline until they
// expire, forwards to the receiver's relay (from the ledger) when that is another relay (federation, HTTP POST
// /federation), limits each twin's rate, and exposes Prometheus metrics on GET /metrics.
//
// A relay cannot read payloads (they are sealed for the receiver) and does not check signatures (receivers
// do); it checks the structure and bounds of every frame, that a connection only sends as its own twin and
// session, times, and rates. Nothing a peer sends can throw out of a handler here.
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { ERROR_CODES, ZosError, errorMessage, zerr, type ErrorCode } from '../core/errors.js'
import { CachingDirectory, federationUrl, relayUrl, type TwinDirectory, type TwinInfo } from './directory.js'
import { MAX_ENVELOPE_BYTES, decodeEnvelope, expiresAt, type Envelope } from './envelope.js'
import { Metrics, type Counter } from './metrics.js'
import { RateLimiter, type RateLimits } from './rate-limit.js'
import { MessageQueue, type QueueLimits, type Queued } from './relay-queue.js'
import { checkToken, decodeToken } from './token.js'

export type RelayDropReason =
  | 'malformed'
  | 'spoofed'
  | 'rate-limited'
  | 'expired'
  | 'clock-skew'
  | 'queue-full'
  | 'unknown-twin'
  | 'backpressure'
  | 'federation-refused'

export type AuthFailure = 'no-token' | 'malformed' | 'unknown-twin' | 'no-key' | 'bad-token' | 'lookup-failed' | 'busy'

/** What the relay logs through (pino's Logger fits). */
export interface RelayLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

const SILENT: RelayLogger = { info() {}, warn() {}, debug() {} }

export interface RelayOptions {
  directory: TwinDirectory
  /** Address to listen on (default 127.0.0.1). */
  host?: string
  /** TCP port (default 0: a free one). */
  port?: number
  /** The relay's own addresses as twins list them on the ledger (default ws://HOST:PORT). */
  advertise?: string[]
  /** Per-twin rate limits. */
  limits?: RateLimits
  /** Bounds of the queue of messages for offline twins. */
  queue?: QueueLimits
  /** Most connected peers (default 10,000). */
  maxConnections?: number
  /** Token and timestamp tolerance (default 60 s). */
  clockSkewMs?: number
  /** WebSocket ping period; a peer that misses one is dropped (default 30 s). */
  pingIntervalMs?: number
  /** A peer whose unsent output exceeds this gets no more messages until it drains (default 8 MiB). */
  maxBufferedBytes?: number
  /** Timeout of a federation POST (default 5 s). */
  federationTimeoutMs?: number
  /** Period of queue expiry and federation retries (default 1 s). */
  sweepEveryMs?: number
  log?: RelayLogger
}

interface Conn {
  ws: WebSocket
  twin: number
  session: number
  key: string
  alive: boolean
}

type RouteResult = { ok: true; how: 'delivered' | 'queued' | 'forwarded' } | { ok: false; reason: RelayDropReason; code: ErrorCode; message: string }

const DROP_STATUS: Record<RelayDropReason, number> = {
  malformed: 400,
  spoofed: 400,
  'clock-skew': 400,
  expired: 410,
  'unknown-twin': 404,
  'rate-limited': 429,
  'queue-full': 503,
  backpressure: 503,
  'federation-refused': 502,
}

export interface RelayStats {
  connections: number
  queuedMessages: number
  queuedBytes: number
  retryMessages: number
  drops: Record<string, number>
  messages: Record<string, number>
}

export class Relay {
  readonly metrics = new Metrics()
  readonly advertise: readonly string[]
  private readonly conns = new Map<string, Conn>()
  private readonly local: MessageQueue
  private readonly retry: MessageQueue
  private readonly limiter: RateLimiter
  private readonly directory: TwinDirectory
  private readonly self: Set<string>
  private readonly log: RelayLogger
  private readonly o: Required<Omit<RelayOptions, 'directory' | 'advertise' | 'limits' | 'queue' | 'log' | 'host' | 'port'>>
  private readonly wss: WebSocketServer
  private readonly timers: NodeJS.Timeout[] = []
  private pendingAuth = 0
  private closing: Promise<void> | null = null
  private retrying = false

  private readonly drops: Counter<RelayDropReason>
  private readonly messages: Counter<'delivered' | 'queued' | 'forwarded' | 'flushed'>
  private readonly authFailures: Counter<AuthFailure>
  private readonly federation: Counter<'ok' | 'refused' | 'failed' | 'received'>
  private readonly connectionsTotal: Counter
  private readonly bytesIn: Counter
  private readonly bytesOut: Counter

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    opts: RelayOptions,
  ) {
    this.directory = opts.directory
    this.log = opts.log ?? SILENT
    this.o = {
      maxConnections: opts.maxConnections ?? 10_000,
      clockSkewMs: opts.clockSkewMs ?? 60_000,
      pingIntervalMs: opts.pingIntervalMs ?? 30_000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 8 * 1024 * 1024,
      federationTimeoutMs: opts.federationTimeoutMs ?? 5_000,
      sweepEveryMs: opts.sweepEveryMs ?? 1_000,
    }
    const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
    const defaults = [`ws://${urlHost}:${port}`, ...(urlHost === '127.0.0.1' ? [`ws://localhost:${port}`] : [])]
    this.advertise = (opts.advertise?.length ? opts.advertise : defaults).map(relayUrl)
    this.self = new Set([...this.advertise, ...defaults.map(relayUrl)])
    this.local = new MessageQueue(opts.queue)
    this.retry = new MessageQueue(opts.queue)
    this.limiter = new RateLimiter(opts.limits)

    const m = this.metrics
    m.gauge('zos_relay_connections', 'Peers connected now.', () => this.conns.size)
    this.connectionsTotal = m.counter('zos_relay_connections_total', 'Peer connections accepted.')
    this.authFailures = m.counter('zos_relay_auth_failures_total', 'Connections refused at authentication, by reason.', 'reason')
    this.messages = m.counter('zos_relay_messages_total', 'Envelopes handled, by outcome.', 'result')
    this.drops = m.counter('zos_relay_drops_total', 'Envelopes dropped, by reason.', 'reason')
    this.federation = m.counter('zos_relay_federation_total', 'Federation POSTs, by outcome (received: from other relays).', 'result')
    this.bytesIn = m.counter('zos_relay_bytes_in_total', 'Envelope bytes received.')
    this.bytesOut = m.counter('zos_relay_bytes_out_total', 'Envelope bytes sent to peers.')
    m.gauge('zos_relay_queue_messages', 'Messages held for offline twins.', () => this.local.messages)
    m.gauge('zos_relay_queue_bytes', 'Bytes held for offline twins.', () => this.local.bytes)
    m.gauge('zos_relay_retry_messages', 'Messages waiting for a remote relay to answer.', () => this.retry.messages)
    m.processGauges()

    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_ENVELOPE_BYTES, perMessageDeflate: false, clientTracking: false })
    server.on('request', (req, res) => this.onRequest(req, res))
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head))
    this.timers.push(setInterval(() => this.ping(), this.o.pingIntervalMs).unref())
    this.timers.push(setInterval(() => void this.sweep(), this.o.sweepEveryMs).unref())
  }

  static async start(opts: RelayOptions): Promise<Relay> {
    const host = opts.host ?? '127.0.0.1'
    const server = createServer({ maxHeaderSize: 16 * 1024 })
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject)
        resolve()
      })
    }).catch((err: unknown) => {
      throw zerr('INVALID_ARGUMENT', `relay cannot listen on ${host}:${opts.port ?? 0}: ${errorMessage(err)}`, {}, err)
    })
    const port = (server.address() as AddressInfo).port
    return new Relay(server, host, port, opts)
  }

  /** The first advertised address (what twins put on the ledger). */
  get url(): string {
    return this.advertise[0]!
  }

  stats(): RelayStats {
    return {
      connections: this.conns.size,
      queuedMessages: this.local.messages,
      queuedBytes: this.local.bytes,
      retryMessages: this.retry.messages,
      drops: this.drops.toJSON(),
      messages: this.messages.toJSON(),
    }
  }

  /** Closes every connection and the listener; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t)
      const sockets = [...this.conns.values()]
      for (const c of sockets) c.ws.close(1001, 'relay shutting down')
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
      // Give peers a moment to answer the close frame, then cut whatever is left.
      if (sockets.length > 0) await new Promise((r) => setTimeout(r, 200))
      for (const c of sockets) c.ws.terminate()
      this.server.closeAllConnections()
      this.wss.close()
      await closed
      this.conns.clear()
    })()
    return this.closing
  }

  // ---- HTTP: metrics, health, federation ----

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics.render())
      return
    }
    if (req.method === 'GET' && path === '/healthz') {
      json(res, 200, { ok: true, connections: this.conns.size, advertise: this.advertise })
      return
    }
    if (path.endsWith('/federation')) {
      if (req.method !== 'POST') {
        json(res, 405, { code: 'INVALID_ARGUMENT', message: 'federation takes POST with one envelope as the body' })
        return
      }
      this.onFederation(req, res).catch((err: unknown) => {
        this.log.warn({ err: errorMessage(err) }, 'federation request failed')
        if (!res.headersSent) json(res, 500, { code: 'INTERNAL', message: errorMessage(err) })
      })
      return
    }
    json(res, 404, { code: 'NOT_FOUND', message: `no route ${req.method} ${path}: the relay serves WebSocket upgrades, GET /metrics, GET /healthz and POST /federation` })
  }

  private async onFederation(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.federation.inc('received')
    const body = await readBody(req, MAX_ENVELOPE_BYTES)
    if (body === null) {
      this.drops.inc('malformed')
      json(res, 413, { code: 'RMB_MALFORMED', message: `envelope is above ${MAX_ENVELOPE_BYTES} bytes` })
      req.destroy()
      return
    }
    this.bytesIn.inc(undefined, body.length)
    let env: Envelope
    try {
      env = decodeEnvelope(body)
    } catch (err) {
      this.drops.inc('malformed')
      json(res, 400, { code: 'RMB_MALFORMED', message: errorMessage(err) })
      return
    }
    const r = this.precheck(env, body.length, `fed:${env.from}`) ?? (await this.route(env, body, true))
    if (r.ok) json(res, 202, { result: r.how })
    else json(res, DROP_STATUS[r.reason], { code: r.code, message: r.message })
  }

  // ---- WebSocket: authentication, messages ----

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined)
    if (this.closing || this.conns.size + this.pendingAuth >= this.o.maxConnections || this.pendingAuth >= 1024) {
      this.authFailures.inc('busy')
      refuse(socket, 503, 'RMB_UNREACHABLE', 'relay is at its connection limit; try another relay or later')
      return
    }
    this.pendingAuth++
    this.authenticate(req).then(
      (ident) => {
        this.pendingAuth--
        if (socket.destroyed || this.closing) {
          socket.destroy()
          return
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, ident.twin, ident.session))
      },
      (err: unknown) => {
        this.pendingAuth--
        const reason = (ZosError.is(err) && (err.details.reason as AuthFailure | undefined)) || 'malformed'
        this.authFailures.inc(reason)
        this.log.debug({ reason, err: errorMessage(err) }, 'connection refused')
        refuse(socket, reason === 'lookup-failed' ? 503 : 401, ZosError.is(err) ? err.code : 'RMB_UNREACHABLE', errorMessage(err))
      },
    )
  }

  private async authenticate(req: IncomingMessage): Promise<{ twin: number; session: number }> {
    const auth = req.headers.authorization
    let text: string | null = null
    if (typeof auth === 'string' && /^Bearer /i.test(auth)) text = auth.slice(7).trim()
    else text = new URL(req.url ?? '/', 'http://relay').searchParams.get('token')
    if (!text) throw zerr('RMB_UNREACHABLE', 'no auth token: send `Authorization: Bearer TOKEN` (see docs/rmb.md)', { reason: 'no-token' })
    let t
    try {
      t = decodeToken(text)
    } catch (err) {
      throw zerr('RMB_MALFORMED', errorMessage(err), { reason: 'malformed' })
    }
    const check = async (fresh: boolean): Promise<void> => {
      let twin: TwinInfo
      try {
        if (fresh && this.directory instanceof CachingDirectory) this.directory.invalidate(t.twin)
        twin = await this.directory.get(t.twin)
      } catch (err) {
        if (ZosError.is(err) && err.code === 'NOT_FOUND') throw zerr('RMB_UNREACHABLE', `twin ${t.twin} is not on the ledger`, { reason: 'unknown-twin' })
        throw zerr('RMB_UNREACHABLE', `cannot look up twin ${t.twin}: ${errorMessage(err)}`, { reason: 'lookup-failed' })
      }
      if (!twin.pk) throw zerr('RMB_UNREACHABLE', `twin ${t.twin} has no key (pk) on the ledger: set one with \`zos twin update\``, { reason: 'no-key' })
      try {
        checkToken(t, twin.pk, Date.now(), this.o.clockSkewMs)
      } catch (err) {
        throw zerr('RMB_UNREACHABLE', errorMessage(err), { reason: 'bad-token' })
      }
    }
    try {
      await check(false)
    } catch (err) {
      // The twin may have changed its key on the ledger since we cached it: look once more.
      const stale = this.directory instanceof CachingDirectory && this.directory.age(t.twin) > 5_000
      if (!(ZosError.is(err) && err.details.reason === 'bad-token' && stale)) throw err
      await check(true)
    }
    return { twin: t.twin, session: t.session }
  }

  private onConnection(ws: WebSocket, twin: number, session: number): void {
    const key = `${twin}:${session}`
    const conn: Conn = { ws, twin, session, key, alive: true }
    const old = this.conns.get(key)
    if (old) old.ws.close(4000, 'replaced by a newer connection of the same twin session')
    this.conns.set(key, conn)
    this.connectionsTotal.inc()
    this.log.debug({ twin, session }, 'peer connected')
    ws.on('error', () => undefined)
    ws.on('pong', () => {
      conn.alive = true
    })
    ws.on('message', (data, isBinary) => {
      conn.alive = true
      try {
        this.onMessage(conn, data, isBinary)
      } catch (err) {
        // A bug, not bad input (that is counted and refused above): log it and keep serving.
        this.log.warn({ twin, err: errorMessage(err) }, 'message handling failed')
      }
    })
    ws.on('close', () => {
      if (this.conns.get(key) === conn) this.conns.delete(key)
      this.log.debug({ twin, session }, 'peer disconnected')
    })
    const now = Date.now()
    for (const q of this.local.take(key)) {
      if (q.expiresAt < now) {
        this.drops.inc('expired')
        continue
      }
      const r = this.deliver(conn, q.bytes)
      if (r.ok) this.messages.inc('flushed')
    }
  }

  private onMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    this.bytesIn.inc(undefined, bytes.length)
    if (!isBinary) {
      this.drops.inc('malformed')
      notice(conn.ws, null, 'RMB_MALFORMED', 'relay peers send envelopes as binary frames')
      return
    }
    let env: Envelope
    try {
      env = decodeEnvelope(bytes)
    } catch (err) {
      this.drops.inc('malformed')
      notice(conn.ws, null, 'RMB_MALFORMED', errorMessage(err))
      return
    }
    const id = env.id.toString('hex')
    if (env.from !== conn.twin || env.fromSession !== conn.session) {
      this.drops.inc('spoofed')
      notice(conn.ws, id, 'RMB_REJECTED', `this connection is twin ${conn.twin} session ${conn.session}; it cannot send as twin ${env.from} session ${env.fromSession}`)
      return
    }
    const pre = this.precheck(env, bytes.length, String(conn.twin))
    if (pre) {
      notice(conn.ws, id, pre.code, pre.message)
      return
    }
    this.route(env, bytes, false).then(
      (r) => {
        if (!r.ok) notice(conn.ws, id, r.code, r.message)
      },
      (err: unknown) => this.log.warn({ err: errorMessage(err) }, 'routing failed'),
    )
  }

  /** Time and rate checks; a failed result (already counted) or null. */
  private precheck(env: Envelope, size: number, rateKey: string): (RouteResult & { ok: false }) | null {
    const now = Date.now()
    if (expiresAt(env) < now) return this.drop('expired', 'TIMEOUT', `message ${env.id.toString('hex')} expired before it reached the relay`)
    if (env.timestamp > now + this.o.clockSkewMs) return this.drop('clock-skew', 'RMB_MALFORMED', `message timestamp is ${env.timestamp - now} ms in the future: check the sender's clock`)
    if (!this.limiter.take(rateKey, size, now)) {
      return this.drop('rate-limited', 'RMB_REJECTED', `twin ${env.from} is over its rate limit (${this.limiter.messagesPerSecond} messages/s, ${this.limiter.bytesPerSecond} bytes/s)`)
    }
    return null
  }

  private drop(reason: RelayDropReason, code: ErrorCode, message: string): RouteResult & { ok: false } {
    this.drops.inc(reason)
    return { ok: false, reason, code, message }
  }

  // ---- routing ----

  /** Routes one envelope; `fromRelay` when it came from another relay (federation). */
  private async route(env: Envelope, bytes: Buffer, fromRelay: boolean): Promise<RouteResult> {
    const key = `${env.to}:${env.toSession}`
    const direct = this.conns.get(key)
    if (direct) return this.deliver(direct, bytes)
    let twin: TwinInfo | null = null
    try {
      twin = await this.directory.get(env.to)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'NOT_FOUND') return this.drop('unknown-twin', 'NOT_FOUND', `twin ${env.to} is not on the ledger`)
      this.log.warn({ twin: env.to, err: errorMessage(err) }, 'twin lookup failed; holding the message here')
    }
    const now = this.conns.get(key)
    if (now) return this.deliver(now, bytes)
    // Messages from other relays are never forwarded again (no loops); unknown relays (lookup failed) hold here.
    const remotes = fromRelay || twin === null ? [] : twin.relays.filter((r) => !this.self.has(r))
    if (remotes.length === 0) return this.enqueue(this.local, key, env, bytes)
    const mine = twin!.relays.some((r) => this.self.has(r))
    return this.forward(env, bytes, remotes, mine)
  }

  private deliver(conn: Conn, bytes: Buffer): RouteResult {
    if (conn.ws.bufferedAmount > this.o.maxBufferedBytes) {
      return this.drop('backpressure', 'RMB_REJECTED', `twin ${conn.twin} is not reading fast enough (${conn.ws.bufferedAmount} bytes waiting)`)
    }
    conn.ws.send(bytes)
    this.bytesOut.inc(undefined, bytes.length)
    this.messages.inc('delivered')
    return { ok: true, how: 'delivered' }
  }

  private enqueue(queue: MessageQueue, key: string, env: Envelope, bytes: Buffer): RouteResult {
    const q: Queued = { bytes, expiresAt: expiresAt(env), id: env.id.toString('hex'), from: env.from, fromSession: env.fromSession }
    if (!queue.push(key, q)) return this.drop('queue-full', 'RMB_REJECTED', `the relay queue for twin ${env.to} is full; it is offline or not reading`)
    this.messages.inc('queued')
    return { ok: true, how: 'queued' }
  }

  private async forward(env: Envelope, bytes: Buffer, remotes: string[], mine: boolean): Promise<RouteResult> {
    const errors: string[] = []
    for (const relay of remotes) {
      const r = await this.post(relay, bytes)
      if (r.status === 202) {
        this.federation.inc('ok')
        this.messages.inc('forwarded')
        return { ok: true, how: 'forwarded' }
      }
      if (r.status >= 400 && r.status < 500 && r.status !== 429) {
        // The remote relay looked at the message and refused it: no other relay will think differently.
        this.federation.inc('refused')
        return this.drop('federation-refused', r.code ?? 'RMB_REJECTED', `relay ${relay} refused the message: ${r.message}`)
      }
      errors.push(`${relay}: ${r.message}`)
    }
    this.federation.inc('failed')
    this.log.warn({ twin: env.to, errors }, 'no relay of the twin accepted the message; holding it')
    return this.enqueue(mine ? this.local : this.retry, `${env.to}:${env.toSession}`, env, bytes)
  }

  private async post(relay: string, bytes: Buffer): Promise<{ status: number; code?: ErrorCode; message: string }> {
    try {
      const res = await fetch(federationUrl(relay), {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: bytes,
        signal: AbortSignal.timeout(this.o.federationTimeoutMs),
      })
      const text = (await res.text()).slice(0, 2048)
      let code: ErrorCode | undefined
      let message = `HTTP ${res.status}`
      try {
        const b = JSON.parse(text) as { code?: string; message?: string }
        if (typeof b.code === 'string' && isErrorCode(b.code)) code = b.code
        if (typeof b.message === 'string') message = b.message
      } catch {
        // not JSON: keep the status
      }
      return { status: res.status, code, message }
    } catch (err) {
      return { status: 0, message: errorMessage(err) }
    }
  }

  // ---- timers ----

  private ping(): void {
    for (const c of this.conns.values()) {
      if (!c.alive) {
        c.ws.terminate()
        continue
      }
      c.alive = false
      c.ws.ping()
    }
  }

  private async sweep(): Promise<void> {
    const now = Date.now()
    for (const _ of this.local.sweep(now)) this.drops.inc('expired')
    for (const _ of this.retry.sweep(now)) this.drops.inc('expired')
    if (this.retrying || this.closing || this.retry.messages === 0) return
    this.retrying = true
    try {
      for (const key of this.retry.keys()) {
        for (const q of this.retry.take(key)) {
          let env: Envelope
          try {
            env = decodeEnvelope(q.bytes)
          } catch {
            continue
          }
          const r = await this.route(env, q.bytes, false)
          const sender = this.conns.get(`${q.from}:${q.fromSession}`)
          if (!r.ok && sender) notice(sender.ws, q.id, r.code, r.message)
        }
      }
    } finally {
      this.retrying = false
    }
  }
}

export function startRelay(opts: RelayOptions): Promise<Relay> {
  return Relay.start(opts)
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

/** A relay notice to a peer: a text frame (envelopes are binary). */
function notice(ws: WebSocket, id: string | null, code: ErrorCode, message: string): void {
  if (ws.readyState !== ws.OPEN) return
  ws.send(JSON.stringify({ type: 'error', id, code, message: message.slice(0, 1000) }))
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
  setTimeout(() => socket.destroy(), 1000).unref()
}

/** The request body, or null when it is longer than `max` bytes. */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) return null
  const parts: Buffer[] = []
  let n = 0
  for await (const chunk of req) {
    const b = chunk as Buffer
    n += b.length
    if (n > max) return null
    parts.push(b)
  }
  return Buffer.concat(parts, n)
}
