// Large payloads travel as a stream of pieces: every piece is a complete envelope (its own id, signature and
// sealed payload) carrying the stream id, its index and the piece count. The receiver keeps pieces per
// (sender, session, stream id) until all have arrived, within bounds on bytes per stream, streams per sender and
// bytes overall; a stream that does not complete before its pieces expire is dropped.
import type { EnvelopeHeader, Kind } from './envelope.js'

export interface StreamLimits {
  /** Largest reassembled payload (default 64 MiB). */
  maxStreamBytes?: number
  /** Streams one sender session may have open at once (default 8). */
  maxStreamsPerSender?: number
  /** Bytes held in open streams overall (default 256 MiB). */
  maxTotalBytes?: number
}

/** Splits a payload into pieces of at most `pieceBytes` (views, no copies). */
export function splitPayload(payload: Buffer, pieceBytes: number): Buffer[] {
  const out: Buffer[] = []
  for (let off = 0; off < payload.length; off += pieceBytes) out.push(payload.subarray(off, off + pieceBytes))
  return out
}

interface Open {
  kind: Kind
  command: string
  replyTo: string | null
  binary: boolean
  count: number
  pieces: (Buffer | undefined)[]
  received: number
  bytes: number
  expiresAt: number
  sender: string
}

export interface Assembled {
  payload: Buffer
  expiresAt: number
}

export type AddResult = { state: 'partial' } | { state: 'complete'; message: Assembled } | { state: 'dropped'; reason: 'too-large' | 'inconsistent' }

export class StreamAssembler {
  private readonly open = new Map<string, Open>()
  private readonly perSender = new Map<string, number>()
  private total = 0
  readonly maxStreamBytes: number
  private readonly maxStreamsPerSender: number
  private readonly maxTotalBytes: number

  constructor(limits: StreamLimits = {}) {
    this.maxStreamBytes = limits.maxStreamBytes ?? 64 * 1024 * 1024
    this.maxStreamsPerSender = limits.maxStreamsPerSender ?? 8
    this.maxTotalBytes = limits.maxTotalBytes ?? 256 * 1024 * 1024
  }

  /** Adds a verified, opened piece. `h.stream` must be set. */
  add(h: EnvelopeHeader, plaintext: Buffer, now = Date.now()): AddResult {
    const s = h.stream!
    const sender = `${h.from}:${h.fromSession}`
    const key = `${sender}:${s.id.toString('hex')}`
    const expiresAt = h.timestamp + h.ttl
    let o = this.open.get(key)
    if (!o) {
      if ((this.perSender.get(sender) ?? 0) >= this.maxStreamsPerSender) return { state: 'dropped', reason: 'too-large' }
      o = {
        kind: h.kind,
        command: h.command,
        replyTo: h.replyTo?.toString('hex') ?? null,
        binary: h.binary,
        count: s.count,
        pieces: new Array<Buffer | undefined>(s.count),
        received: 0,
        bytes: 0,
        expiresAt,
        sender,
      }
      this.open.set(key, o)
      this.perSender.set(sender, (this.perSender.get(sender) ?? 0) + 1)
    }
    if (o.kind !== h.kind || o.command !== h.command || o.count !== s.count || o.binary !== h.binary || o.replyTo !== (h.replyTo?.toString('hex') ?? null)) {
      this.discard(key, o)
      return { state: 'dropped', reason: 'inconsistent' }
    }
    if (o.pieces[s.index] !== undefined) return { state: 'partial' } // a duplicate piece (already counted as replayed upstream)
    if (o.bytes + plaintext.length > this.maxStreamBytes || this.total + plaintext.length > this.maxTotalBytes) {
      this.discard(key, o)
      return { state: 'dropped', reason: 'too-large' }
    }
    o.pieces[s.index] = Buffer.from(plaintext)
    o.received++
    o.bytes += plaintext.length
    this.total += plaintext.length
    o.expiresAt = Math.min(o.expiresAt, expiresAt)
    if (o.received < o.count) return { state: 'partial' }
    this.discard(key, o)
    return { state: 'complete', message: { payload: Buffer.concat(o.pieces as Buffer[], o.bytes), expiresAt: o.expiresAt } }
  }

  /** Drops streams whose pieces expired; returns how many. */
  sweep(now = Date.now()): number {
    let n = 0
    for (const [key, o] of this.open) {
      if (o.expiresAt < now) {
        this.discard(key, o)
        n++
      }
    }
    return n
  }

  private discard(key: string, o: Open): void {
    if (!this.open.delete(key)) return
    this.total -= o.bytes
    const left = (this.perSender.get(o.sender) ?? 1) - 1
    if (left <= 0) this.perSender.delete(o.sender)
    else this.perSender.set(o.sender, left)
  }

  get streams(): number {
    return this.open.size
  }

  get bytes(): number {
    return this.total
  }
}
