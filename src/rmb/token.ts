// The auth token a peer presents when it opens its WebSocket to a relay (header `Authorization: Bearer TOKEN`,
// or `?token=TOKEN`): base64url of
//   u8 version (1), u8 flags (0), uint twin, uint session, uint issuedAt (unix s), uint expiresAt (unix s),
//   64-byte signature over sha256("zos/rmb/token/v1" || 0x00 || the bytes before it)
// signed with the twin's key (the `pk` it published on the ledger). Tokens live at most MAX_TOKEN_LIFETIME_S.
import { ZosError, zerr } from '../core/errors.js'
import { SIGNATURE_BYTES, TOKEN_DOMAIN, verifySignature, type Signer } from './crypto.js'
import { fixed, newState, uint, uint8, type State } from './encoding.js'
import { MAX_SESSION, MAX_TWIN_ID } from './envelope.js'

export const TOKEN_VERSION = 1
export const MAX_TOKEN_LIFETIME_S = 300
export const DEFAULT_TOKEN_LIFETIME_S = 60
/** Longest token text accepted (a valid one is about 100 characters). */
export const MAX_TOKEN_CHARS = 512

export interface TokenClaims {
  twin: number
  session: number
  issuedAt: number
  expiresAt: number
}

const sig = fixed(SIGNATURE_BYTES)

const claims = {
  preencode(state: State, c: TokenClaims): void {
    state.end += 2
    uint.preencode(state, c.twin)
    uint.preencode(state, c.session)
    uint.preencode(state, c.issuedAt)
    uint.preencode(state, c.expiresAt)
  },
  encode(state: State, c: TokenClaims): void {
    uint8.encode(state, TOKEN_VERSION)
    uint8.encode(state, 0)
    uint.encode(state, c.twin)
    uint.encode(state, c.session)
    uint.encode(state, c.issuedAt)
    uint.encode(state, c.expiresAt)
  },
  decode(state: State): TokenClaims {
    const version = uint8.decode(state)
    if (version !== TOKEN_VERSION) throw zerr('RMB_MALFORMED', `token version ${version} is not supported (this build reads ${TOKEN_VERSION})`)
    const flags = uint8.decode(state)
    if (flags !== 0) throw zerr('RMB_MALFORMED', `token flags 0x${flags.toString(16)} has unknown bits`)
    const twin = uint.decode(state)
    if (twin < 1 || twin > MAX_TWIN_ID) throw zerr('RMB_MALFORMED', `token twin ${twin} is out of range`)
    const session = uint.decode(state)
    if (session > MAX_SESSION) throw zerr('RMB_MALFORMED', `token session ${session} is out of range`)
    return { twin, session, issuedAt: uint.decode(state), expiresAt: uint.decode(state) }
  },
}

export function createToken(signer: Signer, c: { twin: number; session: number; now?: number; lifetimeS?: number }): string {
  const issuedAt = Math.floor((c.now ?? Date.now()) / 1000)
  const full: TokenClaims = { twin: c.twin, session: c.session, issuedAt, expiresAt: issuedAt + (c.lifetimeS ?? DEFAULT_TOKEN_LIFETIME_S) }
  const state = newState()
  claims.preencode(state, full)
  const bodyEnd = state.end
  state.end += SIGNATURE_BYTES
  state.buffer = Buffer.allocUnsafe(state.end)
  claims.encode(state, full)
  signer.sign(TOKEN_DOMAIN, state.buffer.subarray(0, bodyEnd)).copy(state.buffer, bodyEnd)
  return state.buffer.toString('base64url')
}

export interface DecodedToken extends TokenClaims {
  body: Buffer
  signature: Buffer
}

export function decodeToken(text: string): DecodedToken {
  if (text.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(text)) throw zerr('RMB_MALFORMED', 'auth token is not base64url text of at most 512 characters')
  const buf = Buffer.from(text, 'base64url')
  const state = newState(buf)
  let c: TokenClaims
  try {
    c = claims.decode(state)
  } catch (err) {
    throw ZosError.is(err) && err.code === 'RMB_MALFORMED' ? err : zerr('RMB_MALFORMED', 'auth token is malformed', {}, err)
  }
  const bodyEnd = state.start
  const signature = sig.decode(state)
  if (state.start !== state.end) throw zerr('RMB_MALFORMED', `auth token has ${state.end - state.start} trailing byte(s)`)
  return { ...c, body: buf.subarray(0, bodyEnd), signature }
}

/**
 * Checks a token's times against `now` (with `skewMs` of tolerance) and its signature against the twin's key;
 * throws RMB_UNREACHABLE with the reason.
 */
export function checkToken(t: DecodedToken, publicKey: Buffer, now: number, skewMs: number): void {
  const nowS = now / 1000
  const skewS = skewMs / 1000
  if (t.expiresAt <= t.issuedAt || t.expiresAt - t.issuedAt > MAX_TOKEN_LIFETIME_S) {
    throw zerr('RMB_UNREACHABLE', `auth token lifetime must be in (0, ${MAX_TOKEN_LIFETIME_S}] s, got ${t.expiresAt - t.issuedAt} s`)
  }
  if (t.issuedAt > nowS + skewS) throw zerr('RMB_UNREACHABLE', `auth token is issued ${Math.round(t.issuedAt - nowS)} s in the future: check the clock`)
  if (t.expiresAt < nowS - skewS) throw zerr('RMB_UNREACHABLE', `auth token expired ${Math.round(nowS - t.expiresAt)} s ago`)
  if (!verifySignature(publicKey, TOKEN_DOMAIN, t.body, t.signature)) {
    throw zerr('RMB_UNREACHABLE', `auth token is not signed by twin ${t.twin}'s key on the ledger`)
  }
}
