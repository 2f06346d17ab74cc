// A twin on the relay: `connect()` dials out to the twin's relays (all of them, each reconnecting with backoff),
// `request()` sends a signed, sealed request and waits for the reply, `handle()` serves commands. Payloads
// above one piece travel as streams. Every incoming envelope is checked at the edge, in order of cost:
// structure, destination, expiry and time window, replay, sender known to the ledger, decryption (GCM), then
// signature; a message failing any check is dropped and counted by reason and never reaches a handler.
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { ERROR_CODES, ZosError, errorMessage, zerr, type ErrorCode } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import { Semaphore } from '../core/semaphore.js'
import type { BackoffOptions } from './backoff.js'
import { ENVELOPE_DOMAIN, Opener, Sealer, Signer, verifySignature } from './crypto.js'
import { CachingDirectory, relayUrl, type TwinDirectory, type TwinInfo } from './directory.js'
import {
  COMMAND_RE,
  ID_BYTES,
  MAX_PIECE_BYTES,
  MAX_SESSION,
  MAX_STREAM_PIECES,
  MAX_TTL_MS,
  MAX_TWIN_ID,
  decodeEnvelope,
  expiresAt,
  sealEnvelope,
  type Envelope,
  type EnvelopeHeader,
  type Kind,
} from './envelope.js'
import { RelayLink } from './link.js'
import { Metrics, type Counter } from './metrics.js'
import { ReplayWindow, type ReplayOptions } from './replay.js'
import type { RelayLogger } from './relay.js'
import { StreamAssembler, splitPayload, type StreamLimits } from './stream.js'
import { createToken } from './token.js'

export type PeerDropReason =
  | 'malformed'
  | 'misrouted'
  | 'expired'
  | 'replayed'
  | 'unknown-twin'
  | 'unverifiable'
  | 'tampered'
  | 'forged'
  | 'unsolicited'
  | 'too-large'

export interface ConnectOptions {
  twinId: number
  /** The twin's key: its public key must be the twin's `pk` on the ledger. */
  key: KeyPair
  directory: TwinDirectory
  /** Relay addresses to dial (default: the twin's relays from the directory). */
  relays?: string[]
  /** Session id, so several processes of one twin can be connected (default 0). */
  session?: number
  /** Wait until one relay accepted the connection (default true). */
  wait?: boolean
  /** How long `wait` waits (default 10 s). */
  connectTimeoutMs?: number
  /** Request timeout when `request` is given none (default 30 s). */
  timeoutMs?: number
  /** Plaintext bytes per envelope; larger payloads are streamed in pieces of this size (default 512 KiB). */
  pieceBytes?: number
  stream?: StreamLimits
  /** Handlers running at once (default 64); up to `maxQueuedHandlers` (default 1,024) more wait. */
  maxConcurrentHandlers?: number
  maxQueuedHandlers?: number
  /** Tolerated clock difference for timestamps in the future (default 60 s). */
  clockSkewMs?: number
  replay?: ReplayOptions
  backoff?: BackoffOptions
  pingIntervalMs?: number
  /** Bounds of what waits for a relay connection (default 1,000 messages, 64 MiB). */
  outbox?: { maxMessages?: number; maxBytes?: number }
  /**
   * Handlers in place before the first relay connection opens, so requests the relay held while the twin was
   * offline find them (`handle()` adds more later).
   */
  handlers?: Record<string, Handler>
  /** Answer the built-in `rmb.ping` (default true). */
  builtins?: boolean
  log?: RelayLogger
}

export interface RequestOptions {
  /** Milliseconds to wait for the reply; also the request's time to live in relay queues (default 30 s). */
  timeout?: number
  /** Session of the receiving twin (default 0). */
  session?: number
}

export interface HandlerContext {
  /** The calling twin (verified). */
  twinId: number
  session: number
  command: string
  /** Hex id of the request. */
  id: string
  /** Unix ms after which the caller no longer waits. */
  expiresAt: number
}

/**
 * Serves one command. `payload` is what the caller sent: a parsed JSON value, or a Buffer for binary payloads;
 * validate it (zod) before use. The return value (JSON-serialisable, or a Uint8Array) is the reply; a thrown
 * ZosError reaches the caller with its code.
 */
export type Handler = (payload: unknown, ctx: HandlerContext) => unknown

export interface PeerStats {
  twinId: number
  session: number
  relays: { url: string; open: boolean; connects: number; lastError: string | null }[]
  pending: number
  outbox: number
  drops: Record<string, number>
  received: number
  sent: number
}

interface Pending {
  id: string
  twin: number
  session: number
  command: string
  frames: Frame[]
  frameIds: Set<string>
  sentOn: RelayLink | null
  needsResend: boolean
  resolve(v: unknown): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

interface Frame {
  bytes: Buffer
  id: string
  expiresAt: number
}

/** A message after checks and (for streams) reassembly. */
interface Incoming {
  kind: Kind
  id: string
  from: number
  fromSession: number
  command: string
  replyTo: string | null
  binary: boolean
  payload: Buffer
  expiresAt: number
}

const EXPIRED = Symbol('expired')
const NoticeSchema = z.object({ type: z.literal('error'), id: z.string().max(64).nullable(), code: z.string().max(64), message: z.string().max(2000) })
const RemoteErrorSchema = z.object({ code: z.string().max(64), message: z.string().max(4000), details: z.record(z.unknown()).optional() })

export class Peer {
  readonly twinId: number
  readonly session: number
  readonly metrics = new Metrics()
  private readonly directory: TwinDirectory
  private readonly signer: Signer
  private readonly sealer = new Sealer()
  private readonly opener: Opener
  private readonly replay: ReplayWindow
  private readonly assembler: StreamAssembler
  private readonly links: RelayLink[]
  private readonly handlers = new Map<string, Handler>()
  private readonly pending = new Map<string, Pending>()
  private outbox: Frame[] = []
  private outboxBytes = 0
  private readonly semaphore: Semaphore
  private waitingHandlers = 0
  private closed = false
  private readonly sweepTimer: NodeJS.Timeout
  private readonly log: RelayLogger
  private readonly o: {
    timeoutMs: number
    pieceBytes: number
    clockSkewMs: number
    maxQueuedHandlers: number
    outboxMessages: number
    outboxBytes: number
  }
  private openWaiters: { resolve(): void; reject(err: Error): void }[] = []

  private readonly drops: Counter<PeerDropReason>
  private readonly received: Counter
  private readonly sent: Counter
  private readonly requests: Counter<'ok' | 'error' | 'timeout'>
  private readonly handled: Counter<'ok' | 'error' | 'expired'>

  constructor(opts: ConnectOptions & { relays: string[] }) {
    this.twinId = opts.twinId
    this.session = opts.session ?? 0
    this.directory = opts.directory
    this.signer = new Signer(opts.key)
    this.opener = new Opener(opts.key.privateKey, this.signer.publicKey)
    this.replay = new ReplayWindow(opts.replay)
    this.assembler = new StreamAssembler(opts.stream)
    this.semaphore = new Semaphore(opts.maxConcurrentHandlers ?? 64)
    this.log = opts.log ?? { info() {}, warn() {}, debug() {} }
    this.o = {
      timeoutMs: opts.timeoutMs ?? 30_000,
      pieceBytes: opts.pieceBytes ?? 512 * 1024,
      clockSkewMs: opts.clockSkewMs ?? 60_000,
      maxQueuedHandlers: opts.maxQueuedHandlers ?? 1024,
      outboxMessages: opts.outbox?.maxMessages ?? 1000,
      outboxBytes: opts.outbox?.maxBytes ?? 64 * 1024 * 1024,
    }
    const m = this.metrics
    this.drops = m.counter('zos_rmb_peer_drops_total', 'Incoming envelopes dropped, by reason.', 'reason')
    this.received = m.counter('zos_rmb_peer_received_total', 'Incoming envelopes accepted.')
    this.sent = m.counter('zos_rmb_peer_sent_total', 'Envelopes sent.')
    this.requests = m.counter('zos_rmb_peer_requests_total', 'Requests made, by outcome.', 'result')
    this.handled = m.counter('zos_rmb_peer_handled_total', 'Requests served, by outcome.', 'result')
    m.gauge('zos_rmb_peer_relays_connected', 'Relays this peer is connected to.', () => this.links.filter((l) => l.open).length)
    m.gauge('zos_rmb_peer_pending_requests', 'Requests waiting for a reply.', () => this.pending.size)

    const hooks = {
      token: () => createToken(this.signer, { twin: this.twinId, session: this.session }),
      onOpen: (link: RelayLink) => this.onOpen(link),
      onClose: (link: RelayLink) => this.onClose(link),
      onFrame: (link: RelayLink, frame: Buffer) => {
        this.onFrame(frame).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'incoming message failed'))
      },
      onNotice: (_link: RelayLink, text: string) => this.onNotice(text),
    }
    this.links = opts.relays.map((url) => new RelayLink(url, hooks, { backoff: opts.backoff, pingIntervalMs: opts.pingIntervalMs }))
    if (opts.builtins !== false) {
      this.handle('rmb.ping', (_p, ctx) => ({ twin: this.twinId, session: this.session, from: ctx.twinId, time: Date.now() }))
    }
    for (const [command, handler] of Object.entries(opts.handlers ?? {})) this.handle(command, handler)
    this.sweepTimer = setInterval(() => {
      for (let n = this.assembler.sweep(); n > 0; n--) this.drops.inc('expired')
    }, 5_000).unref()
    for (const l of this.links) l.start()
  }

  /** Registers (or replaces) the handler of `command`. */
  handle(command: string, handler: Handler): this {
    if (!COMMAND_RE.test(command) || command.length > 128) throw zerr('INVALID_ARGUMENT', `command "${command}" must be 1-128 characters of [A-Za-z0-9._-]`)
    this.handlers.set(command, handler)
    return this
  }

  /** Sends `payload` (JSON value or Uint8Array) to `twin` and resolves with its reply. */
  async request<T = unknown>(twin: number, command: string, payload?: unknown, opts: RequestOptions = {}): Promise<T> {
    if (this.closed) throw zerr('RMB_CLOSED', 'the peer is closed')
    if (!Number.isInteger(twin) || twin < 1 || twin > MAX_TWIN_ID) throw zerr('INVALID_ARGUMENT', `twin must be an id in [1, ${MAX_TWIN_ID}], got ${twin}`)
    if (!COMMAND_RE.test(command) || command.length > 128) throw zerr('INVALID_ARGUMENT', `command "${command}" must be 1-128 characters of [A-Za-z0-9._-]`)
    const timeout = opts.timeout ?? this.o.timeoutMs
    if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TTL_MS) throw zerr('INVALID_ARGUMENT', `timeout must be in [1, ${MAX_TTL_MS}] ms, got ${timeout}`)
    const session = opts.session ?? 0
    if (!Number.isInteger(session) || session < 0 || session > MAX_SESSION) throw zerr('INVALID_ARGUMENT', `session must be in [0, ${MAX_SESSION}], got ${session}`)
    const body = encodePayload(payload, `request ${command}`)
    const receiver = await this.receiverOf(twin)
    if (this.closed) throw zerr('RMB_CLOSED', 'the peer is closed')
    const id = randomBytes(ID_BYTES)
    const frames = this.build({ kind: 'request', id, to: twin, toSession: session, command, ttl: timeout, replyTo: null }, body, receiver)
    return new Promise<T>((resolve, reject) => {
      const hex = id.toString('hex')
      const p: Pending = {
        id: hex,
        twin,
        session,
        command,
        frames,
        frameIds: new Set(frames.map((f) => f.id)),
        sentOn: null,
        needsResend: false,
        resolve: (v) => {
          this.requests.inc('ok')
          resolve(v as T)
        },
        reject: (err) => {
          this.requests.inc(ZosError.is(err) && err.code === 'TIMEOUT' ? 'timeout' : 'error')
          reject(err)
        },
        timer: setTimeout(() => {
          if (this.pending.delete(hex)) p.reject(zerr('TIMEOUT', `no reply from twin ${twin} to ${command} within ${timeout} ms`, { twin, command }))
        }, timeout),
      }
      this.pending.set(hex, p)
      this.transmit(frames, p).catch((err: unknown) => {
        if (this.pending.delete(hex)) {
          clearTimeout(p.timer)
          p.reject(err instanceof Error ? err : new Error(String(err)))
        }
      })
    })
  }

  stats(): PeerStats {
    return {
      twinId: this.twinId,
      session: this.session,
      relays: this.links.map((l) => ({ url: l.url, open: l.open, connects: l.connects, lastError: l.lastError })),
      pending: this.pending.size,
      outbox: this.outbox.length,
      drops: this.drops.toJSON(),
      received: this.received.value(),
      sent: this.sent.value(),
    }
  }

  /** Drops counted for `reason` so far. */
  dropped(reason: PeerDropReason): number {
    return this.drops.value(reason)
  }

  /** Resolves when a relay link is open; RMB_UNREACHABLE with each relay's last error after `timeoutMs`. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.links.some((l) => l.open)) return Promise.resolve()
    if (this.closed) return Promise.reject(zerr('RMB_CLOSED', 'the peer is closed'))
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.openWaiters = this.openWaiters.filter((w) => w !== waiter)
        const why = this.links.map((l) => l.lastError ?? `relay ${l.url}: no answer`).join('; ')
        reject(zerr('RMB_UNREACHABLE', `could not connect twin ${this.twinId} to any relay within ${timeoutMs} ms: ${why}`, { relays: this.links.map((l) => l.url) }))
      }, timeoutMs)
      const waiter = {
        resolve: (): void => {
          clearTimeout(timer)
          resolve()
        },
        reject: (err: Error): void => {
          clearTimeout(timer)
          reject(err)
        },
      }
      this.openWaiters.push(waiter)
    })
  }

  /** Closes every relay link and fails pending requests with RMB_CLOSED. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.sweepTimer)
    for (const l of this.links) l.stop()
    for (const w of this.openWaiters.splice(0)) w.reject(zerr('RMB_CLOSED', 'the peer was closed before a relay accepted it'))
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(zerr('RMB_CLOSED', `the peer closed before twin ${p.twin} answered ${p.command}`))
    }
    this.pending.clear()
    this.outbox = []
    this.outboxBytes = 0
  }

  // ---- sending ----

  private async receiverOf(twin: number): Promise<TwinInfo & { pk: Buffer }> {
    let info: TwinInfo
    try {
      info = await this.directory.get(twin)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'NOT_FOUND') throw zerr('NOT_FOUND', `twin ${twin} is not on the ledger`, { twin }, err)
      throw err
    }
    if (!info.pk) throw zerr('RMB_UNREACHABLE', `twin ${twin} has no encryption key (pk) on the ledger, so nothing can be sent to it`, { twin })
    return info as TwinInfo & { pk: Buffer }
  }

  /** Envelopes for one logical message: one, or a stream of pieces sharing the message id. */
  private build(h: Omit<EnvelopeHeader, 'from' | 'fromSession' | 'timestamp' | 'stream' | 'binary'>, body: { bytes: Buffer; binary: boolean }, receiver: { pk: Buffer }): Frame[] {
    const timestamp = Date.now()
    const base: EnvelopeHeader = { ...h, from: this.twinId, fromSession: this.session, timestamp, stream: null, binary: body.binary }
    const exp = timestamp + h.ttl
    if (body.bytes.length <= this.o.pieceBytes) {
      return [{ bytes: sealEnvelope(base, body.bytes, receiver.pk, this.sealer, this.signer), id: h.id.toString('hex'), expiresAt: exp }]
    }
    const pieces = splitPayload(body.bytes, this.o.pieceBytes)
    if (pieces.length > MAX_STREAM_PIECES) throw zerr('INVALID_ARGUMENT', `payload of ${body.bytes.length} bytes needs more than ${MAX_STREAM_PIECES} pieces`)
    return pieces.map((piece, index) => {
      const pid = randomBytes(ID_BYTES)
      const env: EnvelopeHeader = { ...base, id: pid, stream: { id: h.id, index, count: pieces.length } }
      return { bytes: sealEnvelope(env, piece, receiver.pk, this.sealer, this.signer), id: pid.toString('hex'), expiresAt: exp }
    })
  }

  private openLink(): RelayLink | undefined {
    return this.links.find((l) => l.open)
  }

  private async transmit(frames: Frame[], p?: Pending): Promise<void> {
    for (const f of frames) {
      const link = this.openLink()
      if (link && (await link.write(f.bytes))) {
        this.sent.inc()
        if (p) p.sentOn = link
        continue
      }
      if (this.outbox.length >= this.o.outboxMessages || this.outboxBytes + f.bytes.length > this.o.outboxBytes) {
        throw zerr('RMB_UNREACHABLE', `no relay is connected and ${this.outbox.length} messages already wait for one`, { relays: this.links.map((l) => l.url) })
      }
      this.outbox.push(f)
      this.outboxBytes += f.bytes.length
    }
  }

  private onOpen(link: RelayLink): void {
    this.log.debug({ relay: link.url, twin: this.twinId }, 'relay connected')
    for (const w of this.openWaiters.splice(0)) w.resolve()
    void this.flush(link)
  }

  private onClose(link: RelayLink): void {
    this.log.debug({ relay: link.url, twin: this.twinId }, 'relay disconnected')
    for (const p of this.pending.values()) if (p.sentOn === link) p.needsResend = true
    const other = this.openLink()
    if (other) void this.flush(other)
  }

  /** Sends what waited for a relay, and resends requests that went out on a link that closed before the reply. */
  private async flush(link: RelayLink): Promise<void> {
    const now = Date.now()
    const waiting = this.outbox
    this.outbox = []
    this.outboxBytes = 0
    try {
      for (const f of waiting) {
        if (f.expiresAt < now) continue
        if (await link.write(f.bytes)) this.sent.inc()
        else {
          this.outbox.push(f)
          this.outboxBytes += f.bytes.length
        }
      }
      for (const p of this.pending.values()) {
        if (!p.needsResend) continue
        p.needsResend = false
        for (const f of p.frames) if (await link.write(f.bytes)) this.sent.inc()
        p.sentOn = link
      }
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'flush failed')
    }
  }

  // ---- receiving ----

  private async onFrame(frame: Buffer): Promise<void> {
    if (this.closed) return
    let env: Envelope
    try {
      env = decodeEnvelope(frame)
    } catch {
      this.drops.inc('malformed')
      return
    }
    if (env.to !== this.twinId || env.toSession !== this.session) return this.drop('misrouted')
    const now = Date.now()
    const exp = expiresAt(env)
    if (exp < now) return this.drop('expired')
    const id = env.id.toString('hex')
    if (env.timestamp > now + this.o.clockSkewMs || this.replay.rejects(id, env.timestamp)) return this.drop('replayed')
    let sender: TwinInfo
    try {
      sender = await this.directory.get(env.from)
    } catch (err) {
      return this.drop(ZosError.is(err) && err.code === 'NOT_FOUND' ? 'unknown-twin' : 'unverifiable')
    }
    const plaintext = this.opener.open(env.payload, env.raw.subarray(0, env.headerEnd))
    if (!plaintext) return this.drop('tampered')
    if (!(await this.verified(env, sender))) return this.drop('forged')
    if (this.replay.rejects(id, env.timestamp)) return this.drop('replayed') // a copy that arrived meanwhile
    this.replay.add(id, env.timestamp, exp)
    this.received.inc()
    let msg: Incoming
    if (env.stream) {
      const r = this.assembler.add(env, plaintext)
      if (r.state === 'partial') return
      if (r.state === 'dropped') return this.drop(r.reason === 'too-large' ? 'too-large' : 'malformed')
      msg = { ...this.incoming(env, r.message.payload), id: env.stream.id.toString('hex'), expiresAt: r.message.expiresAt }
    } else {
      msg = this.incoming(env, plaintext)
    }
    if (msg.kind === 'request') await this.serve(msg)
    else this.settle(msg)
  }

  private incoming(env: Envelope, payload: Buffer): Incoming {
    return {
      kind: env.kind,
      id: env.id.toString('hex'),
      from: env.from,
      fromSession: env.fromSession,
      command: env.command,
      replyTo: env.replyTo?.toString('hex') ?? null,
      binary: env.binary,
      payload,
      expiresAt: expiresAt(env),
    }
  }

  private drop(reason: PeerDropReason): void {
    this.drops.inc(reason)
  }

  /** The signature checks against the sender's key; a key cached a while ago is read again once on failure. */
  private async verified(env: Envelope, sender: TwinInfo): Promise<boolean> {
    const body = env.raw.subarray(0, env.bodyEnd)
    if (sender.pk && verifySignature(sender.pk, ENVELOPE_DOMAIN, body, env.signature)) return true
    if (!(this.directory instanceof CachingDirectory) || this.directory.age(env.from) < 5_000) return false
    this.directory.invalidate(env.from)
    try {
      const fresh = await this.directory.get(env.from)
      return fresh.pk !== null && verifySignature(fresh.pk, ENVELOPE_DOMAIN, body, env.signature)
    } catch {
      return false
    }
  }

  private settle(msg: Incoming): void {
    const p = msg.replyTo ? this.pending.get(msg.replyTo) : undefined
    if (!p || p.twin !== msg.from || p.session !== msg.fromSession) return this.drop('unsolicited')
    this.pending.delete(p.id)
    clearTimeout(p.timer)
    if (msg.kind === 'response') {
      try {
        p.resolve(decodePayload(msg.payload, msg.binary))
      } catch (err) {
        p.reject(zerr('RMB_MALFORMED', `twin ${msg.from} answered ${p.command} with a payload that is not JSON`, { twin: msg.from }, err))
      }
      return
    }
    p.reject(remoteError(msg, p.command))
  }

  private async serve(msg: Incoming): Promise<void> {
    const handler = this.handlers.get(msg.command)
    if (!handler) {
      await this.reply(msg, 'error', errorBody('RMB_UNKNOWN_COMMAND', `twin ${this.twinId} has no handler for ${msg.command}`))
      return
    }
    if (this.waitingHandlers >= this.o.maxQueuedHandlers) {
      await this.reply(msg, 'error', errorBody('RMB_REJECTED', `twin ${this.twinId} is busy (${this.waitingHandlers} requests waiting)`))
      return
    }
    this.waitingHandlers++
    await this.semaphore.acquire()
    this.waitingHandlers--
    try {
      if (Date.now() > msg.expiresAt) return // the caller gave up while this waited
      let payload: unknown
      try {
        payload = decodePayload(msg.payload, msg.binary)
      } catch {
        await this.reply(msg, 'error', errorBody('INVALID_ARGUMENT', `the payload of ${msg.command} is not JSON`))
        return
      }
      const ctx: HandlerContext = { twinId: msg.from, session: msg.fromSession, command: msg.command, id: msg.id, expiresAt: msg.expiresAt }
      let result: unknown
      let expiry: NodeJS.Timeout | undefined
      try {
        // A handler still running when the caller stops waiting gives its slot back (its answer would be dropped).
        const expired = new Promise<typeof EXPIRED>((resolve) => {
          expiry = setTimeout(() => resolve(EXPIRED), Math.max(0, msg.expiresAt - Date.now()))
        })
        result = await Promise.race([Promise.resolve().then(() => handler(payload, ctx)), expired])
        if (result === EXPIRED) {
          this.handled.inc('expired')
          return
        }
      } catch (err) {
        this.handled.inc('error')
        const body = ZosError.is(err) ? errorBody(err.code, err.message, err.details) : errorBody('RMB_REMOTE', `${msg.command} failed: ${errorMessage(err)}`)
        await this.reply(msg, 'error', body)
        return
      } finally {
        clearTimeout(expiry)
      }
      this.handled.inc('ok')
      let out: { bytes: Buffer; binary: boolean }
      try {
        out = encodePayload(result, `reply to ${msg.command}`)
      } catch (err) {
        await this.reply(msg, 'error', errorBody('RMB_REMOTE', errorMessage(err)))
        return
      }
      await this.reply(msg, 'response', out)
    } finally {
      this.semaphore.release()
    }
  }

  private async reply(msg: Incoming, kind: 'response' | 'error', body: { bytes: Buffer; binary: boolean }): Promise<void> {
    const ttl = msg.expiresAt - Date.now()
    if (ttl < 1 || this.closed) return
    try {
      const receiver = await this.receiverOf(msg.from)
      const frames = this.build(
        { kind, id: randomBytes(ID_BYTES), to: msg.from, toSession: msg.fromSession, command: msg.command, ttl: Math.min(ttl, MAX_TTL_MS), replyTo: Buffer.from(msg.replyTo ?? msg.id, 'hex') },
        body,
        receiver,
      )
      await this.transmit(frames)
    } catch (err) {
      this.log.warn({ twin: msg.from, command: msg.command, err: errorMessage(err) }, 'could not send the reply')
    }
  }

  private onNotice(text: string): void {
    let n: z.infer<typeof NoticeSchema>
    try {
      n = NoticeSchema.parse(JSON.parse(text))
    } catch {
      this.drops.inc('malformed')
      return
    }
    this.log.debug({ notice: n }, 'relay notice')
    if (!n.id) return
    for (const p of this.pending.values()) {
      if (p.id !== n.id && !p.frameIds.has(n.id)) continue
      this.pending.delete(p.id)
      clearTimeout(p.timer)
      const code: ErrorCode = isErrorCode(n.code) ? n.code : 'RMB_REJECTED'
      p.reject(zerr(code, `relay refused ${p.command} to twin ${p.twin}: ${n.message}`, { twin: p.twin, relay: true }))
      return
    }
  }
}

/** Connects a twin to its relays. */
export async function connect(opts: ConnectOptions): Promise<Peer> {
  if (!Number.isInteger(opts.twinId) || opts.twinId < 1 || opts.twinId > MAX_TWIN_ID) throw zerr('INVALID_ARGUMENT', `twinId must be an id in [1, ${MAX_TWIN_ID}], got ${opts.twinId}`)
  const session = opts.session ?? 0
  if (!Number.isInteger(session) || session < 0 || session > MAX_SESSION) throw zerr('INVALID_ARGUMENT', `session must be in [0, ${MAX_SESSION}], got ${session}`)
  const pieceBytes = opts.pieceBytes ?? 512 * 1024
  if (!Number.isInteger(pieceBytes) || pieceBytes < 1024 || pieceBytes > MAX_PIECE_BYTES) throw zerr('INVALID_ARGUMENT', `pieceBytes must be in [1024, ${MAX_PIECE_BYTES}], got ${pieceBytes}`)
  let me: TwinInfo
  try {
    me = await opts.directory.get(opts.twinId)
  } catch (err) {
    if (ZosError.is(err) && err.code === 'NOT_FOUND') throw zerr('NOT_FOUND', `twin ${opts.twinId} is not on the ledger: create it with \`zos twin create --relay URL\``, { twin: opts.twinId }, err)
    throw err
  }
  const own = opts.key.publicKey.toString('hex')
  if (!me.pk) throw zerr('INVALID_STATE', `twin ${opts.twinId} has no key (pk) on the ledger: set it with \`zos twin update --relay URL\` (the pk defaults to the key's)`, { twin: opts.twinId })
  if (me.pk.toString('hex') !== own) {
    throw zerr('INVALID_ARGUMENT', `this key (0x${own}) is not twin ${opts.twinId}'s key on the ledger (pk 0x${me.pk.toString('hex')}): use the twin's key, or update its pk`, { twin: opts.twinId })
  }
  const relays = (opts.relays?.length ? opts.relays : me.relays).map(relayUrl)
  if (relays.length === 0) throw zerr('INVALID_ARGUMENT', `twin ${opts.twinId} lists no relay on the ledger: pass relays, or set them with \`zos twin update --relay URL\``, { twin: opts.twinId })
  const peer = new Peer({ ...opts, session, pieceBytes, relays: [...new Set(relays)] })
  if (opts.wait !== false) {
    try {
      await peer.ready(opts.connectTimeoutMs ?? 10_000)
    } catch (err) {
      await peer.close()
      throw err
    }
  }
  return peer
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

function encodePayload(v: unknown, what: string): { bytes: Buffer; binary: boolean } {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength), binary: true }
  let text: string | undefined
  try {
    text = JSON.stringify(v === undefined ? null : v)
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `${what}: payload is not JSON-serialisable: ${errorMessage(err)}`, {}, err)
  }
  return { bytes: Buffer.from(text ?? 'null'), binary: false }
}

function decodePayload(bytes: Buffer, binary: boolean): unknown {
  return binary ? bytes : JSON.parse(bytes.toString('utf8'))
}

function errorBody(code: string, message: string, details?: Readonly<Record<string, unknown>>): { bytes: Buffer; binary: boolean } {
  let text: string
  try {
    text = JSON.stringify({ code, message: message.slice(0, 4000), ...(details && Object.keys(details).length ? { details } : {}) })
  } catch {
    text = JSON.stringify({ code, message: message.slice(0, 4000) })
  }
  return { bytes: Buffer.from(text), binary: false }
}

function remoteError(msg: Incoming, command: string): ZosError {
  let parsed: z.infer<typeof RemoteErrorSchema>
  try {
    parsed = RemoteErrorSchema.parse(JSON.parse(msg.payload.toString('utf8')))
  } catch {
    return zerr('RMB_REMOTE', `twin ${msg.from} answered ${command} with an unreadable error`, { twin: msg.from, remote: true })
  }
  const details = { ...(parsed.details ?? {}), twin: msg.from, remote: true, remoteCode: parsed.code }
  if (isErrorCode(parsed.code)) return zerr(parsed.code, `twin ${msg.from}: ${parsed.message}`, details)
  return zerr('RMB_REMOTE', `twin ${msg.from} failed ${command} with ${parsed.code}: ${parsed.message}`, details)
}
