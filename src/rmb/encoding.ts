// Compact binary encoding for relay records (envelopes, auth tokens): stateless preencode/encode/decode triples
// over a cursor, in the manner of compact-encoding. `preencode` adds the exact size, one buffer is allocated,
// `encode` writes at the cursor, `decode` reads and advances and never reads past `end`.
//
// uint: 1 byte below 0xfd; 0xfd + u16 LE; 0xfe + u32 LE; 0xff + u64 LE (values up to 2^53 - 1). Decoding
// rejects non-canonical forms (a value written with more bytes than it needs), so every value has one encoding.
import { zerr } from '../core/errors.js'

export interface State {
  start: number
  end: number
  buffer: Buffer
}

export interface Codec<T> {
  preencode(state: State, value: T): void
  encode(state: State, value: T): void
  decode(state: State): T
}

const EMPTY = Buffer.alloc(0)
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export function newState(buffer: Buffer = EMPTY): State {
  return { start: 0, end: buffer.length, buffer }
}

function outOfBounds(state: State, need: number): never {
  throw zerr('RMB_MALFORMED', `out of bounds: need ${need} byte(s) at offset ${state.start}, only ${state.end - state.start} left`)
}

export const uint8: Codec<number> = {
  preencode(state) {
    state.end += 1
  },
  encode(state, v) {
    state.buffer[state.start++] = v
  },
  decode(state) {
    if (state.start >= state.end) outOfBounds(state, 1)
    return state.buffer[state.start++]!
  },
}

export const uint: Codec<number> = {
  preencode(state, v) {
    state.end += v < 0xfd ? 1 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9
  },
  encode(state, v) {
    if (!Number.isSafeInteger(v) || v < 0) throw zerr('INTERNAL', `uint out of range: ${v}`)
    const b = state.buffer
    if (v < 0xfd) {
      b[state.start++] = v
    } else if (v <= 0xffff) {
      b[state.start++] = 0xfd
      b.writeUInt16LE(v, state.start)
      state.start += 2
    } else if (v <= 0xffffffff) {
      b[state.start++] = 0xfe
      b.writeUInt32LE(v, state.start)
      state.start += 4
    } else {
      b[state.start++] = 0xff
      b.writeBigUInt64LE(BigInt(v), state.start)
      state.start += 8
    }
  },
  decode(state) {
    if (state.start >= state.end) outOfBounds(state, 1)
    const b = state.buffer
    const a = b[state.start++]!
    if (a < 0xfd) return a
    if (a === 0xfd) {
      if (state.end - state.start < 2) outOfBounds(state, 2)
      const v = b.readUInt16LE(state.start)
      state.start += 2
      if (v < 0xfd) throw zerr('RMB_MALFORMED', `non-canonical uint ${v} at offset ${state.start - 3}`)
      return v
    }
    if (a === 0xfe) {
      if (state.end - state.start < 4) outOfBounds(state, 4)
      const v = b.readUInt32LE(state.start)
      state.start += 4
      if (v <= 0xffff) throw zerr('RMB_MALFORMED', `non-canonical uint ${v} at offset ${state.start - 5}`)
      return v
    }
    if (state.end - state.start < 8) outOfBounds(state, 8)
    const big = b.readBigUInt64LE(state.start)
    state.start += 8
    if (big <= 0xffffffffn) throw zerr('RMB_MALFORMED', `non-canonical uint ${big} at offset ${state.start - 9}`)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw zerr('RMB_MALFORMED', `uint ${big} at offset ${state.start - 9} is above 2^53`)
    return Number(big)
  },
}

/** A fixed number of raw bytes. Decoding returns a view into the input (no copy). */
export function fixed(n: number): Codec<Buffer> {
  return {
    preencode(state) {
      state.end += n
    },
    encode(state, v) {
      if (v.length !== n) throw zerr('INTERNAL', `fixed(${n}) given ${v.length} bytes`)
      v.copy(state.buffer, state.start)
      state.start += n
    },
    decode(state) {
      if (state.end - state.start < n) outOfBounds(state, n)
      const v = state.buffer.subarray(state.start, state.start + n)
      state.start += n
      return v
    },
  }
}

/** uint length + bytes, the length bounded by `max` on decode. Decoding returns a view into the input. */
export function bytes(max: number): Codec<Buffer> {
  return {
    preencode(state, v) {
      uint.preencode(state, v.length)
      state.end += v.length
    },
    encode(state, v) {
      uint.encode(state, v.length)
      v.copy(state.buffer, state.start)
      state.start += v.length
    },
    decode(state) {
      const len = uint.decode(state)
      if (len > max) throw zerr('RMB_MALFORMED', `length ${len} at offset ${state.start} is above the limit of ${max} bytes`)
      if (state.end - state.start < len) outOfBounds(state, len)
      const v = state.buffer.subarray(state.start, state.start + len)
      state.start += len
      return v
    },
  }
}

/** uint byte length + UTF-8, at most `max` bytes; decoding rejects invalid UTF-8. */
export function utf8(max: number): Codec<string> {
  const raw = bytes(max)
  return {
    preencode(state, v) {
      const len = Buffer.byteLength(v)
      uint.preencode(state, len)
      state.end += len
    },
    encode(state, v) {
      const len = Buffer.byteLength(v)
      uint.encode(state, len)
      state.start += state.buffer.write(v, state.start, len, 'utf8')
    },
    decode(state) {
      const b = raw.decode(state)
      try {
        return STRICT_UTF8.decode(b)
      } catch {
        throw zerr('RMB_MALFORMED', `string before offset ${state.start} is not valid UTF-8`)
      }
    },
  }
}

/** Encodes one value into an exactly-sized buffer. */
export function encodeOne<T>(codec: Codec<T>, value: T): Buffer {
  const state = newState()
  codec.preencode(state, value)
  state.buffer = Buffer.allocUnsafe(state.end)
  codec.encode(state, value)
  if (state.start !== state.end) throw zerr('INTERNAL', `encoder wrote ${state.start} bytes, preencode said ${state.end}`)
  return state.buffer
}

/** Decodes one value that must fill the whole buffer. */
export function decodeOne<T>(codec: Codec<T>, buffer: Buffer): T {
  const state = newState(buffer)
  const v = codec.decode(state)
  if (state.start !== state.end) throw zerr('RMB_MALFORMED', `${state.end - state.start} trailing byte(s) after the record`)
  return v
}
