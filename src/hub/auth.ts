// Request tokens: every write to the hub carries `Authorization: ZosHub <payload>.<signature>` where
//   payload   = base64url of the JSON {"v":1,"m":METHOD,"p":PATH?QUERY,"b":sha256(body) hex,"e":expiry (unix s),
//               "n":nonce (32 hex),"k":compressed secp256k1 public key (66 hex)}
//   signature = base64url of a 64-byte low-s ECDSA signature r || s over sha256("zos-hub-request-v1" || 0x00 ||
//               payload bytes) (core/keys.ts domainDigest), made and checked with libsecp256k1 (tiny-secp256k1)
// so a token is good for one request (method, target and exact body), for at most MAX_TOKEN_LIFETIME_S, once.
// The signer's account is the identity: its twin on the ledger (namespace = twin id) or, when the hub runs
// without a ledger, the address itself (namespace = lowercase address).
import { createHash, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { zerr } from '../core/errors.js'
import { addressOf, domainDigest, type KeyPair } from '../core/keys.js'
import { ecc, verifyDigest } from '../core/secp.js'

export const TOKEN_SCHEME = 'ZosHub'
export const TOKEN_DOMAIN = 'zos-hub-request-v1'
export const TOKEN_VERSION = 1
export const MAX_TOKEN_LIFETIME_S = 300
export const DEFAULT_TOKEN_LIFETIME_S = 60
/** Clock difference tolerated between client and hub. */
export const CLOCK_SKEW_S = 30
const MAX_TOKEN_CHARS = 2048

const ClaimsSchema = z
  .object({
    v: z.literal(TOKEN_VERSION),
    m: z.string().regex(/^[A-Z]{3,7}$/),
    p: z.string().min(1).max(1024).startsWith('/'),
    b: z.string().regex(/^[0-9a-f]{64}$/),
    e: z.number().int().positive(),
    n: z.string().regex(/^[0-9a-f]{32}$/),
    k: z.string().regex(/^0[23][0-9a-f]{64}$/),
  })
  .strict()

export type TokenClaims = z.infer<typeof ClaimsSchema>

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export const EMPTY_BODY_HASH = sha256Hex('')

/** Builds the Authorization header value for one request. */
export function createToken(key: KeyPair, request: { method: string; path: string; bodyHash: string; lifetimeS?: number; now?: number }): string {
  const now = Math.floor((request.now ?? Date.now()) / 1000)
  const claims: TokenClaims = {
    v: TOKEN_VERSION,
    m: request.method.toUpperCase(),
    p: request.path,
    b: request.bodyHash,
    e: now + (request.lifetimeS ?? DEFAULT_TOKEN_LIFETIME_S),
    n: randomBytes(16).toString('hex'),
    k: key.publicKey.toString('hex'),
  }
  const payload = Buffer.from(JSON.stringify(claims))
  const signature = Buffer.from(ecc().sign(domainDigest(TOKEN_DOMAIN, payload), key.privateKey))
  return `${TOKEN_SCHEME} ${payload.toString('base64url')}.${signature.toString('base64url')}`
}

/** Addresses of the keys seen lately (deriving one decompresses a point: worth remembering). */
const addresses = new Map<string, `0x${string}`>()

function addressOfKey(hex: string): `0x${string}` {
  let a = addresses.get(hex)
  if (a === undefined) {
    a = addressOf(Buffer.from(hex, 'hex'))
    if (addresses.size >= 4096) addresses.delete(addresses.keys().next().value!)
    addresses.set(hex, a)
  }
  return a
}

export interface VerifiedToken {
  claims: TokenClaims
  /** Checksummed address of the signing key. */
  address: `0x${string}`
}

/**
 * Checks a token's form, signature, lifetime and binding to the request (method and target; the body hash is
 * checked by the caller once the body is read). Throws HUB_AUTH with the reason.
 */
export function verifyToken(header: string | undefined, request: { method: string; path: string }, now: number = Date.now()): VerifiedToken {
  if (header === undefined || header === '') {
    throw zerr('HUB_AUTH', `this request needs an Authorization: ${TOKEN_SCHEME} token signed with your key (the zos hub client adds it; pass --key)`)
  }
  const m = /^ZosHub ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(header.trim())
  if (!m || header.length > MAX_TOKEN_CHARS) throw zerr('HUB_AUTH', `malformed Authorization header: expected "${TOKEN_SCHEME} <payload>.<signature>" in base64url`)
  const payload = Buffer.from(m[1]!, 'base64url')
  const signature = Buffer.from(m[2]!, 'base64url')
  let parsed: unknown
  try {
    parsed = JSON.parse(payload.toString('utf8'))
  } catch {
    throw zerr('HUB_AUTH', 'malformed token: the payload is not JSON')
  }
  const r = ClaimsSchema.safeParse(parsed)
  if (!r.success) throw zerr('HUB_AUTH', `malformed token: ${r.error.issues.map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`).join('; ')}`)
  const claims = r.data
  let address: `0x${string}`
  try {
    address = addressOfKey(claims.k)
  } catch {
    throw zerr('HUB_AUTH', 'token key is not a valid secp256k1 public key')
  }
  const valid = verifyDigest(domainDigest(TOKEN_DOMAIN, payload), Buffer.from(claims.k, 'hex'), signature)
  if (!valid) throw zerr('HUB_AUTH', `token signature does not verify for key ${address}`)
  const nowS = now / 1000
  if (claims.e < nowS - CLOCK_SKEW_S) throw zerr('HUB_AUTH', `token expired ${Math.round(nowS - claims.e)} s ago: check the clock, or retry`)
  if (claims.e > nowS + MAX_TOKEN_LIFETIME_S + CLOCK_SKEW_S) {
    throw zerr('HUB_AUTH', `token lives too long (expires in ${Math.round(claims.e - nowS)} s; at most ${MAX_TOKEN_LIFETIME_S} s): check the clock`)
  }
  if (claims.m !== request.method.toUpperCase() || claims.p !== request.path) {
    throw zerr('HUB_AUTH', `token was signed for ${claims.m} ${claims.p}, not for ${request.method} ${request.path}`)
  }
  return { claims, address }
}

/** Remembers the nonces of accepted tokens until they expire, so that a token is used once. */
export class ReplayCache {
  private readonly seen = new Map<string, number>()
  private sweepAt = 0
  constructor(private readonly max = 100_000) {}

  /** Throws HUB_AUTH when the nonce was seen; records it otherwise. */
  use(nonce: string, expiresS: number, now: number = Date.now()): void {
    if (now >= this.sweepAt || this.seen.size >= this.max) {
      const cut = now / 1000 - CLOCK_SKEW_S
      for (const [n, e] of this.seen) if (e < cut) this.seen.delete(n)
      this.sweepAt = now + 10_000
      if (this.seen.size >= this.max) throw zerr('HUB_AUTH', 'too many requests in flight: retry in a few seconds')
    }
    if (this.seen.has(nonce)) throw zerr('HUB_AUTH', 'token was already used (replay): sign each request anew')
    this.seen.set(nonce, expiresS)
  }
}

/** Who made a request. */
export interface Identity {
  /** The namespace the caller owns: a twin id or a lowercase address. */
  ns: string
  address: `0x${string}`
  twin?: number
}

/**
 * How the hub turns an account into an identity. With a ledger, accounts must have a twin and namespaces
 * are twin ids; without one, the account is the identity.
 */
export interface TwinDirectory {
  readonly mode: 'ledger' | 'address'
  /** The identity of an account; HUB_AUTH when it may not write (no twin), HUB_UNAVAILABLE if the ledger fails. */
  identify(address: `0x${string}`): Promise<Identity>
  close?(): Promise<void>
}

export class AddressDirectory implements TwinDirectory {
  readonly mode = 'address' as const
  async identify(address: `0x${string}`): Promise<Identity> {
    return { ns: address.toLowerCase(), address }
  }
}

/** The part of the Ledger interface the hub needs. */
export interface TwinLookup {
  byAccount(account: `0x${string}`): Promise<{ id: number } | null>
}

/** Twins from the ledger, cached briefly (found for 60 s, not found for 5 s). */
export class LedgerDirectory implements TwinDirectory {
  readonly mode = 'ledger' as const
  private readonly cache = new Map<string, { id: number | null; until: number }>()
  constructor(
    private readonly twins: TwinLookup,
    private readonly onClose?: () => Promise<void>,
  ) {}

  async identify(address: `0x${string}`): Promise<Identity> {
    const key = address.toLowerCase()
    const now = Date.now()
    let hit = this.cache.get(key)
    if (!hit || hit.until < now) {
      let twin: { id: number } | null
      try {
        twin = await this.twins.byAccount(address)
      } catch (err) {
        throw zerr('HUB_UNAVAILABLE', `cannot look up the twin of ${address} on the ledger: ${err instanceof Error ? err.message : String(err)}`, {}, err)
      }
      hit = { id: twin ? twin.id : null, until: now + (twin ? 60_000 : 5_000) }
      if (this.cache.size > 10_000) this.cache.clear()
      this.cache.set(key, hit)
    }
    if (hit.id === null) throw zerr('HUB_AUTH', `account ${address} has no twin on the ledger: create one with \`zos twin create\``)
    return { ns: String(hit.id), address, twin: hit.id }
  }

  async close(): Promise<void> {
    await this.onClose?.()
  }
}
