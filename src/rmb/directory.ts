// Where peers and relays learn a twin's key and relays. The relay code depends only on the small TwinDirectory
// interface; LedgerDirectory reads the ledger, CachingDirectory keeps answers for a while (and coalesces
// concurrent lookups), StaticDirectory serves a fixed list (tests, benchmarks, isolated setups).
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { ZosError, zerr } from '../core/errors.js'
import type { Twin, TwinsApi } from '../ledger/types.js'
import { compressPublicKey } from './crypto.js'

export interface TwinInfo {
  id: number
  /** The twin's ledger account (EVM address). */
  account: string
  /** Compressed secp256k1 key the twin signs with and receives encrypted payloads for; null when unset or invalid. */
  pk: Buffer | null
  /** Normalised relay URLs (see relayUrl), in the twin's order. */
  relays: string[]
}

export interface TwinDirectory {
  /** The twin, or a ZosError NOT_FOUND when the ledger does not know it (other codes: lookup failed). */
  get(twinId: number): Promise<TwinInfo>
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i

/**
 * Normalises a relay address to the URL a peer dials: `ws://` or `wss://` URLs are kept (lower-case host,
 * default port and trailing slash dropped); a bare `host[:port]` becomes `ws://` for loopback hosts and
 * `wss://` otherwise.
 */
export function relayUrl(address: string): string {
  const a = address.trim()
  const withScheme = /^[a-z]+:\/\//i.test(a) ? a : `${LOOPBACK.test(a.replace(/:\d+$/, '')) ? 'ws' : 'wss'}://${a}`
  let u: URL
  try {
    u = new URL(withScheme)
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `relay address "${address}" is not a host, host:port or ws(s):// URL`, {}, err)
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw zerr('INVALID_ARGUMENT', `relay address "${address}" must use ws:// or wss://`)
  if (u.username || u.password || u.search || u.hash) throw zerr('INVALID_ARGUMENT', `relay address "${address}" must not carry credentials, a query or a fragment`)
  const path = u.pathname.replace(/\/+$/, '')
  return `${u.protocol}//${u.host}${path}`
}

/** The relay list of a ledger twin record ('_'-joined addresses); unusable entries are skipped. */
export function parseRelays(relay: string): string[] {
  const out: string[] = []
  for (const part of relay.split('_')) {
    if (part.trim() === '') continue
    try {
      const u = relayUrl(part)
      if (!out.includes(u)) out.push(u)
    } catch {
      // a twin's bad entry must not make its good ones unusable
    }
  }
  return out
}

/** The HTTP(S) URL of a relay's federation endpoint. */
export function federationUrl(relay: string): string {
  return relay.replace(/^ws/, 'http') + '/federation'
}

function pkOf(hex: string): Buffer | null {
  const h = hex.replace(/^0x/, '')
  if (h.length !== 66 && h.length !== 130) return null
  try {
    return compressPublicKey(Buffer.from(h, 'hex'))
  } catch {
    return null
  }
}

export function twinInfoOf(t: Pick<Twin, 'id' | 'account' | 'relay' | 'pk'>): TwinInfo {
  return { id: t.id, account: t.account, pk: pkOf(t.pk), relays: parseRelays(t.relay) }
}

/** Reads twins from the ledger (wrap it in a CachingDirectory). */
export class LedgerDirectory implements TwinDirectory {
  constructor(private readonly ledger: { readonly twins: Pick<TwinsApi, 'get'> }) {}

  async get(twinId: number): Promise<TwinInfo> {
    return twinInfoOf(await this.ledger.twins.get(twinId))
  }
}

export interface CacheOptions {
  /** How long a found twin is kept (default 60 s). */
  ttlMs?: number
  /** How long "not found" is kept (default 5 s), so a flood of unknown ids does not hammer the ledger. */
  negativeTtlMs?: number
  /** Most twins kept (default 10,000). */
  maxEntries?: number
}

interface Entry {
  at: number
  value?: TwinInfo
  error?: ZosError
  pending?: Promise<TwinInfo>
}

export class CachingDirectory implements TwinDirectory {
  private readonly entries = new Map<number, Entry>()
  private readonly ttlMs: number
  private readonly negativeTtlMs: number
  private readonly maxEntries: number

  constructor(private readonly inner: TwinDirectory, opts: CacheOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 60_000
    this.negativeTtlMs = opts.negativeTtlMs ?? 5_000
    this.maxEntries = opts.maxEntries ?? 10_000
  }

  get(twinId: number): Promise<TwinInfo> {
    const now = Date.now()
    const e = this.entries.get(twinId)
    if (e) {
      if (e.pending) return e.pending
      if (e.value && now - e.at < this.ttlMs) return Promise.resolve(e.value)
      if (e.error && now - e.at < this.negativeTtlMs) return Promise.reject(e.error)
    }
    return this.fetch(twinId)
  }

  /** Age in ms of the cached answer for the twin (Infinity when none). */
  age(twinId: number): number {
    const e = this.entries.get(twinId)
    return e && !e.pending ? Date.now() - e.at : Infinity
  }

  /** Forgets the twin: the next get reads the inner directory. */
  invalidate(twinId: number): void {
    const e = this.entries.get(twinId)
    if (e && !e.pending) this.entries.delete(twinId)
  }

  private fetch(twinId: number): Promise<TwinInfo> {
    if (this.entries.size >= this.maxEntries && !this.entries.has(twinId)) this.entries.delete(this.entries.keys().next().value as number)
    const pending = this.inner.get(twinId).then(
      (value) => {
        this.entries.set(twinId, { at: Date.now(), value })
        return value
      },
      (err: unknown) => {
        if (ZosError.is(err) && err.code === 'NOT_FOUND') this.entries.set(twinId, { at: Date.now(), error: err })
        else this.entries.delete(twinId)
        throw err
      },
    )
    this.entries.set(twinId, { at: Date.now(), pending })
    return pending
  }
}

/** A fixed set of twins. */
export class StaticDirectory implements TwinDirectory {
  private readonly twins = new Map<number, TwinInfo>()

  constructor(twins: Iterable<TwinInfo> = []) {
    for (const t of twins) this.set(t)
  }

  set(t: TwinInfo): void {
    this.twins.set(t.id, t)
  }

  delete(twinId: number): void {
    this.twins.delete(twinId)
  }

  async get(twinId: number): Promise<TwinInfo> {
    const t = this.twins.get(twinId)
    if (!t) throw zerr('NOT_FOUND', `twin ${twinId} is not in the directory`, { twin: twinId })
    return t
  }

  list(): TwinInfo[] {
    return [...this.twins.values()]
  }
}

const TwinFileSchema = z
  .array(
    z
      .object({
        id: z.number().int().min(1).max(0xffffffff),
        account: z.string().regex(/^0x[0-9a-fA-F]{40}$/).default('0x0000000000000000000000000000000000000000'),
        pk: z.string().regex(/^(0x)?([0-9a-fA-F]{66}|[0-9a-fA-F]{130})$/, 'pk must be a 33- or 65-byte secp256k1 public key in hex'),
        relay: z.string().default(''),
      })
      .strict(),
  )
  .max(1_000_000)

/**
 * Reads a twins file: a JSON array of {id, pk, relay?, account?} (relay '_'-joined like on the ledger), for a
 * relay or peer that runs without a ledger.
 */
export async function readTwinsFile(path: string): Promise<StaticDirectory> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `cannot read twins file ${path}: ${err instanceof Error ? err.message : String(err)}`, { path }, err)
  }
  const r = TwinFileSchema.safeParse(parsed)
  if (!r.success) {
    throw zerr('INVALID_ARGUMENT', `twins file ${path}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { path })
  }
  return new StaticDirectory(
    r.data.map((t) => ({ id: t.id, account: t.account, pk: pkOf(t.pk), relays: parseRelays(t.relay) })),
  )
}
