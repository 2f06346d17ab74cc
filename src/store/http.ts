// HttpStore: a read-only store behind HTTP(S), e.g. `zos store serve` or the hub. Packs are read with one
// `Range: bytes=a-b` GET per coalesced span of `{base}/packs/<id>`, at most `concurrency` requests at a time, with a
// per-request timeout and retries with backoff on network errors, timeouts and 5xx/429 answers. Pack ranges over
// plain HTTP go through a small client of our own (http1.ts); the rest, and whatever answer that client does not
// frame itself, through node:http(s) with a keep-alive agent per store (`fetch`/undici cost more per request than a
// cold mount's read: docs/flist-mount.md, "where a cold start's time goes").
import { defaultMaxListeners, getMaxListeners, setMaxListeners } from 'node:events'
import type * as http from 'node:http'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { ZosError, errorMessage, zerr } from '../core/errors.js'
import { tlsCaOptions } from '../core/tls.js'
import { Http1Pool, MAX_DISCARD, STALE_CODES, type Http1Answer } from './http1.js'
import { coalesce, isPackId, splitSpan, type CoalesceOptions, type Span } from './coalesce.js'
import type { PackRange, Store, StoreStats } from './types.js'

export const DEFAULT_TIMEOUT_MS = 10_000
export const DEFAULT_RETRIES = 3
export const DEFAULT_BACKOFF_MS: readonly number[] = [100, 300, 900]
export const DEFAULT_CONCURRENCY = 8

export interface HttpStoreOptions extends CoalesceOptions {
  /** Time allowed for one request, answer and body included (ms, default 10 000). */
  timeoutMs?: number
  /** Retries after the first attempt on network errors, timeouts, 5xx and 429 (default 3). */
  retries?: number
  /** Wait before retry n is backoffMs[n] (the last value repeats); default 100, 300, 900 ms. */
  backoffMs?: readonly number[]
  /** Requests in flight at once for this store (default 8). */
  concurrency?: number
}

interface Resolved {
  readonly timeoutMs: number
  readonly retries: number
  readonly backoffMs: readonly number[]
  readonly concurrency: number
  readonly coalesce: CoalesceOptions
}

/** A failure worth retrying (network error, timeout, 5xx, truncated body). */
class Transient extends Error {}

/** A pooled connection found closed by the server before it answered. */
class StaleSocket extends Error {
  constructor(readonly original: Error) {
    super(original.message)
  }
}

function positiveInt(name: string, v: number | undefined, dflt: number, min: number): number {
  const x = v ?? dflt
  if (!Number.isSafeInteger(x) || x < min) throw zerr('INVALID_ARGUMENT', `http store option ${name} must be an integer >= ${min}, got ${String(v)}`)
  return x
}

function resolveOptions(o: HttpStoreOptions): Resolved {
  const backoffMs = o.backoffMs ?? DEFAULT_BACKOFF_MS
  if (!Array.isArray(backoffMs) || backoffMs.length === 0 || !backoffMs.every((n) => Number.isFinite(n) && n >= 0)) {
    throw zerr('INVALID_ARGUMENT', 'http store option backoffMs must be a non-empty list of non-negative milliseconds')
  }
  return {
    timeoutMs: positiveInt('timeoutMs', o.timeoutMs, DEFAULT_TIMEOUT_MS, 1),
    retries: positiveInt('retries', o.retries, DEFAULT_RETRIES, 0),
    backoffMs,
    concurrency: positiveInt('concurrency', o.concurrency, DEFAULT_CONCURRENCY, 1),
    coalesce: { maxGap: o.maxGap, maxSpan: o.maxSpan },
  }
}

/** A counting semaphore: at most `max` holders. */
class Limiter {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r))
    else this.active++
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.active--
    }
  }
}

/** An answer whose body has not been read yet (from node:http, or from Http1Pool for pack ranges). */
type Answer = Http1Answer

/**
 * Reads a response body into one buffer of at most `cap` bytes. With `stopAtCap` the rest of a longer body is
 * dropped with its connection (a 200 answer to a Range request); without it a longer body is an error.
 */
async function readBody(res: http.IncomingMessage, cap: number, stopAtCap = false): Promise<Buffer> {
  const declared = Number(res.headers['content-length'])
  // One piece (the usual case for a chunk-sized span) is handed over as is; several are gathered into one buffer.
  let buf: Buffer | undefined
  let first: Buffer | undefined
  let got = 0
  const take = (piece: Buffer): void => {
    if (got === 0 && buf === undefined && first === undefined && (piece.length === cap || (Number.isSafeInteger(declared) && piece.length === declared))) {
      first = piece
      got = piece.length
      return
    }
    if (buf === undefined) {
      buf = Buffer.allocUnsafe(cap)
      if (first) first.copy(buf, 0)
      first = undefined
    }
    piece.copy(buf, got)
    got += piece.length
  }
  try {
    for await (const p of res) {
      const piece = p as Buffer
      if (got + piece.length > cap) {
        if (!stopAtCap) throw new Transient(`the answer holds more than the ${cap} bytes expected`)
        take(piece.subarray(0, cap - got))
        break
      }
      take(piece)
      if (stopAtCap && got === cap) break
    }
  } finally {
    // Leaving early (a longer body, an error) drops the connection rather than reading the rest.
    if (!res.complete) res.destroy()
  }
  if (first) return first
  return buf ? buf.subarray(0, got) : Buffer.alloc(0)
}

async function discard(res: http.IncomingMessage): Promise<void> {
  // A body-less answer (HEAD, 404, 416 with no content) leaves the connection reusable; a body we do not want
  // is read away if it is small, otherwise the connection is dropped.
  const len = Number(res.headers['content-length'] ?? 'NaN')
  if (res.complete) return
  if (Number.isSafeInteger(len) && len <= MAX_DISCARD) {
    try {
      for await (const _ of res) void _
    } catch {
      // nothing to free
    }
    return
  }
  res.destroy()
}

export class HttpStore implements Store {
  /** The base URL without credentials, query or fragment. */
  readonly url: string
  readonly writable = false
  private readonly base: string
  private readonly headers: Record<string, string>
  private readonly opts: Resolved
  private readonly limiter: Limiter
  private readonly closing = new AbortController()
  private readonly secure: boolean
  /**
   * node:http or node:https with a keep-alive agent, loaded on first use: a mount's ranges go through `ranges`,
   * and loading node:https (with tls) and node:http cost its serving process ~15 ms of start-up.
   */
  private client: { agent: http.Agent; request: typeof http.request } | undefined
  /** Pack ranges over plain HTTP (the requests a cold mount waits on); everything else goes through node:http. */
  private readonly ranges: Http1Pool | undefined
  /** The URL path below which packs are, e.g. /hub/packs/. */
  private readonly packsPath: string

  constructor(url: string | URL, options: HttpStoreOptions = {}) {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      throw zerr('INVALID_ARGUMENT', `not a valid store URL: ${String(url)}`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw zerr('INVALID_ARGUMENT', `an http store needs an http:// or https:// URL, got ${u.protocol}//`)
    }
    if (u.search !== '' || u.hash !== '') {
      throw zerr('INVALID_ARGUMENT', `store URL ${u.origin}${u.pathname} must not carry a query or fragment`)
    }
    this.headers = { 'user-agent': 'zos-store/0.1' }
    if (u.username !== '' || u.password !== '') {
      const creds = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`
      this.headers.authorization = `Basic ${Buffer.from(creds).toString('base64')}`
      u.username = ''
      u.password = ''
    }
    this.base = `${u.origin}${u.pathname.replace(/\/+$/, '')}`
    this.url = this.base
    this.opts = resolveOptions(options)
    this.limiter = new Limiter(this.opts.concurrency)
    this.secure = u.protocol === 'https:'
    this.ranges = u.protocol === 'http:' ? new Http1Pool(new URL(u.origin), this.opts.concurrency) : undefined
    this.packsPath = `${u.pathname.replace(/\/+$/, '')}/packs/`
  }

  private nodeClient(): { agent: http.Agent; request: typeof http.request } {
    if (!this.client) {
      const agentOptions: http.AgentOptions = { keepAlive: true, maxSockets: this.opts.concurrency, maxFreeSockets: this.opts.concurrency, scheduling: 'lifo' }
      const require = createRequire(import.meta.url)
      if (this.secure) {
        const https = require('node:https') as typeof import('node:https')
        this.client = { agent: new https.Agent({ ...agentOptions, ...tlsCaOptions() }), request: https.request }
      } else {
        const http = require('node:http') as typeof import('node:http')
        this.client = { agent: new http.Agent(agentOptions), request: http.request }
      }
    }
    return this.client
  }

  /**
   * One request through the keep-alive agent; resolves when the status line and headers are in. A reused
   * connection that the server closed meanwhile (reset before any answer) is retried once at once on a new one.
   */
  private request(method: 'GET' | 'HEAD', target: string, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
    const once = (): Promise<Answer> =>
      new Promise<Answer>((resolve, reject) => {
        let req: http.ClientRequest
        try {
          const client = this.nodeClient()
          req = client.request(target, { method, headers, agent: client.agent, signal })
        } catch (err) {
          reject(err)
          return
        }
        req.on('response', (res) => {
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            header: (name) => {
              const v = res.headers[name.toLowerCase()]
              return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v
            },
            body: (cap, stopAtCap) => readBody(res, cap, stopAtCap),
            discard: () => discard(res),
          })
        })
        req.on('error', (err: Error & { code?: string }) => {
          if (req.reusedSocket && err.code !== undefined && STALE_CODES.has(err.code) && !signal.aborted) reject(new StaleSocket(err))
          else reject(err)
        })
        req.end()
      })
    return once().catch((err) => {
      if (err instanceof StaleSocket) return once()
      throw err
    })
  }

  private packUrl(pack: string): string {
    return `${this.base}/packs/${pack}`
  }

  private checkOpen(): void {
    if (this.closing.signal.aborted) throw zerr('STORE_UNAVAILABLE', `store ${this.url} is closed`, { url: this.url })
  }

  /**
   * Runs `attempt` with retries. `attempt` gets a signal that fires on timeout, caller abort or close; it throws
   * Transient for retryable failures and ZosError for final ones.
   */
  private async withRetry<T>(what: string, target: string, signal: AbortSignal | undefined, attempt: (s: AbortSignal) => Promise<T>): Promise<T> {
    let last = 'no attempt made'
    for (let n = 0; n <= this.opts.retries; n++) {
      if (n > 0) {
        const wait = this.opts.backoffMs[Math.min(n - 1, this.opts.backoffMs.length - 1)]!
        const link = linkSignals([signal, this.closing.signal])
        try {
          await sleep(wait, undefined, { signal: link.signal })
        } catch (err) {
          if (signal?.aborted) throw signal.reason
          this.checkOpen()
          throw err
        } finally {
          link.dispose()
        }
      }
      let timedOut = false
      try {
        // The clock starts once a request slot is free: waiting behind other spans is not a timeout.
        return await this.limiter.run(async () => {
          const link = linkSignals([signal, this.closing.signal])
          const timer = setTimeout(() => {
            timedOut = true
            link.abort()
          }, this.opts.timeoutMs)
          try {
            return await attempt(link.signal)
          } finally {
            clearTimeout(timer)
            link.dispose()
          }
        })
      } catch (err) {
        if (signal?.aborted) throw signal.reason
        this.checkOpen()
        if (ZosError.is(err)) throw err
        if (timedOut) last = `no complete answer within ${this.opts.timeoutMs} ms`
        else if (err instanceof Transient) last = err.message
        else last = describeNetworkError(err)
      }
    }
    throw zerr('STORE_UNAVAILABLE', `${what} ${target} failed after ${this.opts.retries + 1} attempts: ${last}`, { url: target, store: this.url })
  }

  async readRanges(ranges: readonly PackRange[], options: { signal?: AbortSignal } = {}): Promise<Buffer[]> {
    this.checkOpen()
    if (options.signal?.aborted) throw options.signal.reason
    const spans = coalesce(ranges, this.opts.coalesce)
    const out: Buffer[] = ranges.map(() => Buffer.alloc(0))
    if (spans.length === 1) {
      splitSpan(spans[0]!, await this.fetchSpan(spans[0]!, options.signal), out)
      return out
    }
    // The first failure fails the call: stop the other spans' requests and retries too.
    const call = linkSignals([options.signal])
    try {
      await Promise.all(
        spans.map(async (span) => {
          try {
            splitSpan(span, await this.fetchSpan(span, call.signal), out)
          } catch (err) {
            call.abort()
            throw err
          }
        }),
      )
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason
      throw err
    } finally {
      call.dispose()
    }
    return out
  }

  private async fetchSpan(span: Span, signal: AbortSignal | undefined): Promise<Buffer> {
    const target = this.packUrl(span.pack)
    const first = span.offset
    const last = span.offset + span.length - 1
    return this.withRetry(`GET bytes ${first}-${last} of`, target, signal, async (s) => {
      const headers = { ...this.headers, range: `bytes=${first}-${last}` }
      const res = (await this.ranges?.get(this.packsPath + span.pack, headers, s)) ?? (await this.request('GET', target, headers, s))
      if (res.status === 206) {
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.header('content-range') ?? '')
        if (cr && Number(cr[1]) === first && Number(cr[2]) < last && cr[3] === String(Number(cr[2]) + 1)) {
          // The server clipped the range at the end of the pack: the pack is shorter than the caller thinks.
          await res.discard()
          throw zerr('CHUNK_MISSING', `pack ${span.pack} at ${target} has only ${cr[3]} bytes; wanted bytes ${first}-${last}`, {
            pack: span.pack,
            offset: first,
            url: target,
          })
        }
        if (!cr || Number(cr[1]) !== first || Number(cr[2]) !== last) {
          await res.discard()
          throw zerr('STORE_UNAVAILABLE', `${target} answered ${res.header('content-range') ?? 'without Content-Range'} when asked for bytes ${first}-${last}`, {
            url: target,
          })
        }
        const body = await res.body(span.length)
        if (body.length !== span.length) throw new Transient(`the answer was cut short: ${body.length} of ${span.length} bytes`)
        return body
      }
      if (res.status === 200) {
        // The server ignored Range: take the bytes we need from the start of the full body.
        const body = await res.body(last + 1, true)
        if (body.length <= last) {
          throw zerr('CHUNK_MISSING', `pack ${span.pack} at ${target} has only ${body.length} bytes; wanted bytes ${first}-${last}`, {
            pack: span.pack,
            offset: first,
            url: target,
          })
        }
        return Buffer.from(body.subarray(first, last + 1))
      }
      await res.discard()
      if (res.status === 404) {
        throw zerr('CHUNK_MISSING', `pack ${span.pack} is not in store ${this.url} (404 for ${target}, wanted offset ${first})`, {
          pack: span.pack,
          offset: first,
          url: target,
        })
      }
      if (res.status === 416) {
        throw zerr('CHUNK_MISSING', `pack ${span.pack} at ${target} is shorter than asked (416 for bytes ${first}-${last}; ${res.header('content-range') ?? ''})`, {
          pack: span.pack,
          offset: first,
          url: target,
        })
      }
      return this.unexpected(res, target)
    })
  }

  /** Classifies a status other than the expected ones: 5xx and 429 retry, anything else is final. */
  private unexpected(res: Answer, target: string): never {
    if (res.status >= 500 || res.status === 429) throw new Transient(`HTTP ${res.status} ${res.statusText}`)
    throw zerr('STORE_UNAVAILABLE', `${target} answered HTTP ${res.status} ${res.statusText}`, { url: target, status: res.status })
  }

  async statPack(pack: string): Promise<number | undefined> {
    this.checkOpen()
    if (!isPackId(pack)) throw zerr('INVALID_ARGUMENT', `pack id must be 64 lowercase hex characters, got ${JSON.stringify(pack)}`)
    const target = this.packUrl(pack)
    return this.withRetry('HEAD', target, undefined, async (s) => {
      // Over plain HTTP, first as the pack's first byte through the range client: the size is in Content-Range,
      // and the connection and code that a mount's first reads use are then ready (a mount asks this while the
      // kernel mounts). Any other answer than 206 or 404 is asked again with HEAD.
      const probe = await this.ranges?.get(this.packsPath + pack, { ...this.headers, range: 'bytes=0-0' }, s)
      if (probe) {
        const total = /^bytes 0-0\/(\d+)$/.exec(probe.header('content-range') ?? '')?.[1]
        await probe.discard()
        if (probe.status === 404) return undefined
        if (probe.status === 206 && total !== undefined && Number.isSafeInteger(Number(total))) return Number(total)
      }
      const res = await this.request('HEAD', target, this.headers, s)
      await res.discard()
      if (res.status === 404) return undefined
      if (res.status !== 200) return this.unexpected(res, target)
      const header = res.header('content-length')
      const len = Number(header)
      if (header === null || !/^\d+$/.test(header.trim()) || !Number.isSafeInteger(len)) {
        throw zerr('STORE_UNAVAILABLE', `${target} answered HEAD without a valid Content-Length`, { url: target })
      }
      return len
    })
  }

  /** Store totals from `GET {base}/stats` (served by `zos store serve`). */
  async stats(): Promise<StoreStats> {
    this.checkOpen()
    const target = `${this.base}/stats`
    return this.withRetry('GET', target, undefined, async (s) => {
      const res = await this.request('GET', target, { ...this.headers, accept: 'application/json' }, s)
      if (res.status !== 200) {
        await res.discard()
        if (res.status === 404) throw zerr('UNSUPPORTED', `${target} does not exist: this server does not publish store statistics`, { url: target })
        return this.unexpected(res, target)
      }
      let body: unknown
      try {
        body = JSON.parse((await res.body(64 * 1024)).toString('utf8'))
      } catch (err) {
        if (err instanceof Transient) throw err
        throw zerr('STORE_UNAVAILABLE', `${target} did not answer JSON: ${errorMessage(err)}`, { url: target })
      }
      const b = body as Record<string, unknown>
      const ok = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
      if (typeof body !== 'object' || body === null || !ok(b.packs) || !ok(b.bytes) || !ok(b.chunks)) {
        throw zerr('STORE_UNAVAILABLE', `${target} answered JSON without numeric packs, bytes and chunks`, { url: target })
      }
      return { packs: b.packs, bytes: b.bytes, chunks: b.chunks }
    })
  }

  async close(): Promise<void> {
    if (!this.closing.signal.aborted) this.closing.abort()
    this.client?.agent.destroy()
    this.ranges?.close()
  }
}

/**
 * Listeners one signal may hold before Node warns of a leak. Every request in flight or waiting for a slot or a
 * retry holds one on the store's close signal and one on its caller's (a mount shares one signal among all its
 * fetches), all removed when it ends: dozens are normal while a store is down, and Node's default of 10 filled
 * the log of a mount with warnings.
 */
const SIGNAL_LISTENERS = 1000

/**
 * A signal that aborts when any source does (or when `abort()` is called). `dispose()` unhooks it from the
 * sources, so long-lived sources (the store's close signal) do not collect listeners.
 */
function linkSignals(sources: ReadonlyArray<AbortSignal | undefined>): { signal: AbortSignal; abort(): void; dispose(): void } {
  const ctl = new AbortController()
  const live = sources.filter((s): s is AbortSignal => s !== undefined)
  const onAbort = (): void => ctl.abort()
  for (const s of live) {
    if (s.aborted) {
      ctl.abort()
      continue
    }
    // Only a limit nobody chose is raised: a caller's own setting stays.
    if (getMaxListeners(s) === defaultMaxListeners) setMaxListeners(SIGNAL_LISTENERS, s)
    s.addEventListener('abort', onAbort, { once: true })
  }
  return {
    signal: ctl.signal,
    abort: onAbort,
    dispose: () => {
      for (const s of live) s.removeEventListener('abort', onAbort)
    },
  }
}

function describeNetworkError(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined
  const detail = cause?.code ?? cause?.message
  return detail ? `${errorMessage(err)} (${detail})` : errorMessage(err)
}
