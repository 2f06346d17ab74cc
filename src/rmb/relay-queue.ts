// Messages a relay holds for a twin session that is not connected (or for a remote relay that did not answer)
// until they can be delivered or expire. Bounded per key and overall, in messages and bytes.

export interface QueueLimits {
  /** Messages held per twin session (default 1,000). */
  maxMessagesPerKey?: number
  /** Bytes held per twin session (default 16 MiB). */
  maxBytesPerKey?: number
  /** Bytes held overall (default 256 MiB). */
  maxBytes?: number
}

export interface Queued {
  bytes: Buffer
  expiresAt: number
  /** Hex id, for notices back to the sender. */
  id: string
  from: number
  fromSession: number
}

interface Slot {
  items: Queued[]
  bytes: number
}

export class MessageQueue {
  private readonly slots = new Map<string, Slot>()
  private total = 0
  private count = 0
  private readonly maxMessagesPerKey: number
  private readonly maxBytesPerKey: number
  private readonly maxBytes: number

  constructor(limits: QueueLimits = {}) {
    this.maxMessagesPerKey = limits.maxMessagesPerKey ?? 1_000
    this.maxBytesPerKey = limits.maxBytesPerKey ?? 16 * 1024 * 1024
    this.maxBytes = limits.maxBytes ?? 256 * 1024 * 1024
  }

  /** False (nothing kept) when a bound would be exceeded. */
  push(key: string, q: Queued): boolean {
    const len = q.bytes.length
    if (this.total + len > this.maxBytes) return false
    let s = this.slots.get(key)
    if ((s?.items.length ?? 0) >= this.maxMessagesPerKey || (s?.bytes ?? 0) + len > this.maxBytesPerKey) return false
    if (!s) {
      s = { items: [], bytes: 0 }
      this.slots.set(key, s)
    }
    s.items.push(q)
    s.bytes += len
    this.total += len
    this.count++
    return true
  }

  /** Removes and returns everything held for `key`, oldest first. */
  take(key: string): Queued[] {
    const s = this.slots.get(key)
    if (!s) return []
    this.slots.delete(key)
    this.total -= s.bytes
    this.count -= s.items.length
    return s.items
  }

  /** Puts items back at the front of `key` (a retry that failed), bounds permitting; returns those not kept. */
  unshift(key: string, items: Queued[]): Queued[] {
    const rest = this.take(key)
    const lost: Queued[] = []
    for (const q of [...items, ...rest]) if (!this.push(key, q)) lost.push(q)
    return lost
  }

  /** Removes expired messages; returns them. */
  sweep(now = Date.now()): Queued[] {
    const gone: Queued[] = []
    for (const [key, s] of this.slots) {
      const keep = s.items.filter((q) => q.expiresAt >= now)
      if (keep.length === s.items.length) continue
      for (const q of s.items) if (q.expiresAt < now) gone.push(q)
      const kept = keep.reduce((n, q) => n + q.bytes.length, 0)
      this.total -= s.bytes - kept
      this.count -= s.items.length - keep.length
      if (keep.length === 0) this.slots.delete(key)
      else this.slots.set(key, { items: keep, bytes: kept })
    }
    return gone
  }

  keys(): string[] {
    return [...this.slots.keys()]
  }

  has(key: string): boolean {
    return this.slots.has(key)
  }

  get messages(): number {
    return this.count
  }

  get bytes(): number {
    return this.total
  }
}
