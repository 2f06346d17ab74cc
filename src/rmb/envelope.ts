// The relay envelope, version 1 (byte layout in docs/rmb.md):
//
//   header   u8 version, u8 flags, u8 kind, id(16), uint from, uint fromSession, uint to, uint toSession,
//            uint timestamp (ms), uint ttl (ms), string command, [replyTo(16)], [streamId(16), uint index, uint count]
//   payload  uint length, ephemeralPub(33) || nonce(12) || AES-256-GCM ciphertext || tag(16)
//   sig      64 bytes: ECDSA over sha256("zos/rmb/envelope/v1" || 0x00 || header || payload)
//
// The header is the GCM additional data. Relays decode (and so validate) every envelope but cannot read the
// payload; receivers open it, then check the signature. Decoding never throws anything but RMB_MALFORMED.
import { ZosError, zerr } from '../core/errors.js'
import { ENVELOPE_DOMAIN, SEAL_OVERHEAD, SIGNATURE_BYTES, type Sealer, type Signer } from './crypto.js'
import { bytes, fixed, newState, uint, uint8, utf8, type State } from './encoding.js'

export const ENVELOPE_VERSION = 1
export const FLAG_REPLY_TO = 0x01
export const FLAG_STREAM = 0x02
/** The plaintext is raw bytes (otherwise UTF-8 JSON). */
export const FLAG_BINARY = 0x04
const KNOWN_FLAGS = FLAG_REPLY_TO | FLAG_STREAM | FLAG_BINARY

export type Kind = 'request' | 'response' | 'error'
const KIND_CODE: Record<Kind, number> = { request: 1, response: 2, error: 3 }
const KIND_OF: Record<number, Kind> = { 1: 'request', 2: 'response', 3: 'error' }

export const ID_BYTES = 16
export const MAX_TWIN_ID = 0xffffffff
export const MAX_SESSION = 0xffffffff
export const MAX_COMMAND_BYTES = 128
export const COMMAND_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
export const MAX_TTL_MS = 24 * 3600 * 1000
/** Largest plaintext one envelope carries; bigger payloads travel as a stream of pieces. */
export const MAX_PIECE_BYTES = 1024 * 1024
export const MAX_SEALED_BYTES = MAX_PIECE_BYTES + SEAL_OVERHEAD
export const MAX_STREAM_PIECES = 65_536
/** Upper bound of an encoded envelope (the relay's WebSocket frame limit). */
export const MAX_ENVELOPE_BYTES = MAX_SEALED_BYTES + 512

export interface StreamPart {
  /** Id of the whole (logical) message, shared by its pieces. */
  id: Buffer
  index: number
  count: number
}

export interface EnvelopeHeader {
  kind: Kind
  id: Buffer
  from: number
  fromSession: number
  to: number
  toSession: number
  /** Unix milliseconds at the sender. */
  timestamp: number
  /** Milliseconds after `timestamp` at which the message expires. */
  ttl: number
  command: string
  /** Response and error: the (logical) id of the request answered. */
  replyTo: Buffer | null
  stream: StreamPart | null
  binary: boolean
}

export interface Envelope extends EnvelopeHeader {
  /** Sealed payload (a view into `raw`). */
  payload: Buffer
  signature: Buffer
  /** The encoded envelope: [0, headerEnd) is the header (GCM additional data), [0, bodyEnd) what is signed. */
  raw: Buffer
  headerEnd: number
  bodyEnd: number
}

const id16 = fixed(ID_BYTES)
const command = utf8(MAX_COMMAND_BYTES)
const sealed = bytes(MAX_SEALED_BYTES)
const signature = fixed(SIGNATURE_BYTES)

function flagsOf(h: EnvelopeHeader): number {
  return (h.replyTo ? FLAG_REPLY_TO : 0) | (h.stream ? FLAG_STREAM : 0) | (h.binary ? FLAG_BINARY : 0)
}

/** Checks a header built by this process; INVALID_ARGUMENT naming the field. */
export function checkHeader(h: EnvelopeHeader): void {
  const bad = (field: string, why: string): never => {
    throw zerr('INVALID_ARGUMENT', `envelope ${field} ${why}`, { field })
  }
  if (!(h.kind in KIND_CODE)) bad('kind', `must be request, response or error, got ${String(h.kind)}`)
  if (h.id.length !== ID_BYTES) bad('id', `must be ${ID_BYTES} bytes`)
  for (const [f, v, min, max] of [
    ['from', h.from, 1, MAX_TWIN_ID],
    ['to', h.to, 1, MAX_TWIN_ID],
    ['fromSession', h.fromSession, 0, MAX_SESSION],
    ['toSession', h.toSession, 0, MAX_SESSION],
    ['ttl', h.ttl, 1, MAX_TTL_MS],
    ['timestamp', h.timestamp, 0, Number.MAX_SAFE_INTEGER],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < min || v > max) bad(f, `must be an integer in [${min}, ${max}], got ${v}`)
  }
  if (Buffer.byteLength(h.command) > MAX_COMMAND_BYTES || !COMMAND_RE.test(h.command)) {
    bad('command', `must be 1-${MAX_COMMAND_BYTES} characters of [A-Za-z0-9._-] starting with a letter or digit, got "${h.command}"`)
  }
  if ((h.kind === 'request') !== (h.replyTo === null)) bad('replyTo', h.kind === 'request' ? 'must be absent in a request' : `is required in a ${h.kind}`)
  if (h.replyTo && h.replyTo.length !== ID_BYTES) bad('replyTo', `must be ${ID_BYTES} bytes`)
  if (h.stream) {
    const s = h.stream
    if (s.id.length !== ID_BYTES) bad('stream.id', `must be ${ID_BYTES} bytes`)
    if (!Number.isInteger(s.count) || s.count < 2 || s.count > MAX_STREAM_PIECES) bad('stream.count', `must be in [2, ${MAX_STREAM_PIECES}], got ${s.count}`)
    if (!Number.isInteger(s.index) || s.index < 0 || s.index >= s.count) bad('stream.index', `must be in [0, ${s.count - 1}], got ${s.index}`)
  }
}

export const header = {
  preencode(state: State, h: EnvelopeHeader): void {
    state.end += 3 // version, flags, kind
    id16.preencode(state, h.id)
    uint.preencode(state, h.from)
    uint.preencode(state, h.fromSession)
    uint.preencode(state, h.to)
    uint.preencode(state, h.toSession)
    uint.preencode(state, h.timestamp)
    uint.preencode(state, h.ttl)
    command.preencode(state, h.command)
    if (h.replyTo) id16.preencode(state, h.replyTo)
    if (h.stream) {
      id16.preencode(state, h.stream.id)
      uint.preencode(state, h.stream.index)
      uint.preencode(state, h.stream.count)
    }
  },
  encode(state: State, h: EnvelopeHeader): void {
    uint8.encode(state, ENVELOPE_VERSION)
    uint8.encode(state, flagsOf(h))
    uint8.encode(state, KIND_CODE[h.kind])
    id16.encode(state, h.id)
    uint.encode(state, h.from)
    uint.encode(state, h.fromSession)
    uint.encode(state, h.to)
    uint.encode(state, h.toSession)
    uint.encode(state, h.timestamp)
    uint.encode(state, h.ttl)
    command.encode(state, h.command)
    if (h.replyTo) id16.encode(state, h.replyTo)
    if (h.stream) {
      id16.encode(state, h.stream.id)
      uint.encode(state, h.stream.index)
      uint.encode(state, h.stream.count)
    }
  },
  /** Reads and validates a header; RMB_MALFORMED naming the field otherwise. */
  decode(state: State): EnvelopeHeader {
    let field = 'version'
    const malformed = (why: string): never => {
      throw zerr('RMB_MALFORMED', `envelope ${field} ${why}`, { field })
    }
    try {
      const version = uint8.decode(state)
      if (version !== ENVELOPE_VERSION) malformed(`${version} is not supported (this build reads version ${ENVELOPE_VERSION})`)
      field = 'flags'
      const flags = uint8.decode(state)
      if (flags & ~KNOWN_FLAGS) malformed(`0x${flags.toString(16)} has unknown bits`)
      field = 'kind'
      const kind = KIND_OF[uint8.decode(state)] ?? malformed('is not request (1), response (2) or error (3)')
      field = 'id'
      const id = id16.decode(state)
      field = 'from'
      const from = uint.decode(state)
      if (from < 1 || from > MAX_TWIN_ID) malformed(`twin ${from} is out of range`)
      field = 'fromSession'
      const fromSession = uint.decode(state)
      if (fromSession > MAX_SESSION) malformed(`${fromSession} is out of range`)
      field = 'to'
      const to = uint.decode(state)
      if (to < 1 || to > MAX_TWIN_ID) malformed(`twin ${to} is out of range`)
      field = 'toSession'
      const toSession = uint.decode(state)
      if (toSession > MAX_SESSION) malformed(`${toSession} is out of range`)
      field = 'timestamp'
      const timestamp = uint.decode(state)
      field = 'ttl'
      const ttl = uint.decode(state)
      if (ttl < 1 || ttl > MAX_TTL_MS) malformed(`${ttl} ms is outside [1, ${MAX_TTL_MS}]`)
      field = 'command'
      const cmd = command.decode(state)
      if (!COMMAND_RE.test(cmd)) malformed('has characters outside [A-Za-z0-9._-]')
      let replyTo: Buffer | null = null
      if (flags & FLAG_REPLY_TO) {
        field = 'replyTo'
        replyTo = id16.decode(state)
      }
      if ((kind === 'request') !== (replyTo === null)) {
        field = 'replyTo'
        malformed(kind === 'request' ? 'is not allowed in a request' : `is required in a ${kind}`)
      }
      let stream: StreamPart | null = null
      if (flags & FLAG_STREAM) {
        field = 'stream'
        const sid = id16.decode(state)
        const index = uint.decode(state)
        const count = uint.decode(state)
        if (count < 2 || count > MAX_STREAM_PIECES) malformed(`count ${count} is outside [2, ${MAX_STREAM_PIECES}]`)
        if (index >= count) malformed(`index ${index} is not below count ${count}`)
        stream = { id: sid, index, count }
      }
      return { kind, id, from, fromSession, to, toSession, timestamp, ttl, command: cmd, replyTo, stream, binary: (flags & FLAG_BINARY) !== 0 }
    } catch (err) {
      if (ZosError.is(err) && err.code === 'RMB_MALFORMED' && err.details.field === undefined) malformed(err.message)
      throw err
    }
  },
}

/**
 * Builds a complete envelope in one allocation: header, payload sealed for `receiverPk` with the header as
 * additional data, signature.
 */
export function sealEnvelope(h: EnvelopeHeader, plaintext: Uint8Array, receiverPk: Buffer, sealer: Sealer, signer: Signer): Buffer {
  checkHeader(h)
  if (plaintext.length > MAX_PIECE_BYTES) throw zerr('INVALID_ARGUMENT', `envelope payload of ${plaintext.length} bytes is above ${MAX_PIECE_BYTES}; send it as a stream`)
  const state = newState()
  header.preencode(state, h)
  const headerEnd = state.end
  const sealedLen = plaintext.length + SEAL_OVERHEAD
  uint.preencode(state, sealedLen)
  state.end += sealedLen
  const bodyEnd = state.end
  state.end += SIGNATURE_BYTES
  const buf = Buffer.allocUnsafe(state.end)
  state.buffer = buf
  header.encode(state, h)
  uint.encode(state, sealedLen)
  sealer.seal(receiverPk, buf.subarray(0, headerEnd), plaintext, buf, state.start)
  signer.sign(ENVELOPE_DOMAIN, buf.subarray(0, bodyEnd)).copy(buf, bodyEnd)
  return buf
}

/** Decodes and validates an encoded envelope (structure and bounds only: nothing is opened or verified). */
export function decodeEnvelope(raw: Buffer): Envelope {
  if (raw.length > MAX_ENVELOPE_BYTES) throw zerr('RMB_MALFORMED', `envelope of ${raw.length} bytes is above the limit of ${MAX_ENVELOPE_BYTES}`)
  const state = newState(raw)
  const h = header.decode(state)
  const headerEnd = state.start
  let payload: Buffer
  let sig: Buffer
  try {
    payload = sealed.decode(state)
    if (payload.length < SEAL_OVERHEAD) throw zerr('RMB_MALFORMED', `${payload.length} bytes is shorter than a sealed payload (${SEAL_OVERHEAD})`)
  } catch (err) {
    throw zerr('RMB_MALFORMED', `envelope payload: ${err instanceof Error ? err.message : String(err)}`, { field: 'payload' })
  }
  const bodyEnd = state.start
  try {
    sig = signature.decode(state)
  } catch (err) {
    throw zerr('RMB_MALFORMED', `envelope signature: ${err instanceof Error ? err.message : String(err)}`, { field: 'signature' })
  }
  if (state.start !== state.end) throw zerr('RMB_MALFORMED', `envelope has ${state.end - state.start} trailing byte(s) after the signature`, { field: 'signature' })
  return { ...h, payload, signature: sig, raw, headerEnd, bodyEnd }
}

/** When the envelope expires (unix ms). */
export function expiresAt(h: Pick<EnvelopeHeader, 'timestamp' | 'ttl'>): number {
  return h.timestamp + h.ttl
}
