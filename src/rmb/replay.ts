// Replay protection for a receiver: the ids of accepted messages are remembered until the messages expire (an
// expired copy is refused as expired anyway). Memory is bounded: when full, the oldest ids are forgotten and
// the floor rises to their timestamp, so any message at or below the floor is refused as outside the window.

export interface ReplayOptions {
  /** Ids remembered at most (default 100,000). */
  maxEntries?: number
  /** Expired ids are swept at most this often (default 5 s). */
  sweepEveryMs?: number
}

interface Seen {
  timestamp: number
  expiresAt: number
}

export class ReplayWindow {
  private readonly seen = new Map<string, Seen>()
  private readonly maxEntries: number
  private readonly sweepEveryMs: number
  private lastSweep = 0
  /** Messages with a timestamp at or below this (unix ms) are outside the window. */
  floor = 0

  constructor(opts: ReplayOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 100_000
    this.sweepEveryMs = opts.sweepEveryMs ?? 5_000
  }

  /** True when the id was accepted before, or the timestamp is at or below the floor. */
  rejects(id: string, timestamp: number): boolean {
    return timestamp <= this.floor || this.seen.has(id)
  }

  add(id: string, timestamp: number, expiresAt: number, now = Date.now()): void {
    if (now - this.lastSweep >= this.sweepEveryMs) this.sweep(now)
    while (this.seen.size >= this.maxEntries) {
      const [oldId, old] = this.seen.entries().next().value as [string, Seen]
      this.seen.delete(oldId)
      if (old.timestamp > this.floor) this.floor = old.timestamp
    }
    this.seen.set(id, { timestamp, expiresAt })
  }

  sweep(now = Date.now()): void {
    this.lastSweep = now
    for (const [id, s] of this.seen) if (s.expiresAt < now) this.seen.delete(id)
  }

  get size(): number {
    return this.seen.size
  }
}
