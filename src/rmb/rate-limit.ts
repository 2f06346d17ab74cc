// Per-key token buckets on two dimensions (messages and bytes): a key may burst up to `burst*` and then
// sustain `*PerSecond`. Idle keys (buckets full again) are forgotten when the table grows.

export interface RateLimits {
  /** Sustained messages per second per twin (default 1,000). */
  messagesPerSecond?: number
  /** Messages a twin may send at once (default 2,000). */
  burstMessages?: number
  /** Sustained bytes per second per twin (default 32 MiB). */
  bytesPerSecond?: number
  /** Bytes a twin may send at once (default 64 MiB). */
  burstBytes?: number
}

interface Bucket {
  messages: number
  bytes: number
  at: number
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  readonly messagesPerSecond: number
  readonly burstMessages: number
  readonly bytesPerSecond: number
  readonly burstBytes: number

  constructor(limits: RateLimits = {}, private readonly maxKeys = 100_000) {
    this.messagesPerSecond = limits.messagesPerSecond ?? 1_000
    this.burstMessages = limits.burstMessages ?? 2_000
    this.bytesPerSecond = limits.bytesPerSecond ?? 32 * 1024 * 1024
    this.burstBytes = limits.burstBytes ?? 64 * 1024 * 1024
  }

  /** Takes one message of `bytes` from the key's bucket; false (nothing taken) when over the limit. */
  take(key: string, bytes: number, now = Date.now()): boolean {
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= this.maxKeys) this.prune(now)
      b = { messages: this.burstMessages, bytes: this.burstBytes, at: now }
      this.buckets.set(key, b)
    } else if (now > b.at) {
      const dt = (now - b.at) / 1000
      b.messages = Math.min(this.burstMessages, b.messages + dt * this.messagesPerSecond)
      b.bytes = Math.min(this.burstBytes, b.bytes + dt * this.bytesPerSecond)
      b.at = now
    }
    if (b.messages < 1 || b.bytes < bytes) return false
    b.messages -= 1
    b.bytes -= bytes
    return true
  }

  private prune(now: number): void {
    const fullAfter = Math.max(this.burstMessages / this.messagesPerSecond, this.burstBytes / this.bytesPerSecond) * 1000
    for (const [k, b] of this.buckets) if (now - b.at >= fullAfter) this.buckets.delete(k)
    // Still full of active keys: forget the oldest so the table stays bounded.
    while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string)
  }

  get size(): number {
    return this.buckets.size
  }
}
