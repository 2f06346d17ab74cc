// Exponential backoff with jitter for reconnects; defaults are named constants so tests can shrink them.

export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 200, maxMs: 10_000, factor: 2, jitter: 0.25 })

export interface BackoffOptions {
  /** First delay (default 200 ms). */
  initialMs?: number
  /** Largest delay (default 10 s). */
  maxMs?: number
  factor?: number
  /** Fraction of each delay drawn at random, so peers that lost one relay do not return in lock step. */
  jitter?: number
}

export class Backoff {
  private attempt = 0
  private readonly o: Required<BackoffOptions>

  constructor(opts: BackoffOptions = {}) {
    this.o = { ...DEFAULT_BACKOFF, ...opts }
  }

  /** The next delay in ms. */
  next(): number {
    const base = Math.min(this.o.maxMs, this.o.initialMs * this.o.factor ** this.attempt)
    this.attempt++
    return Math.round(base * (1 - this.o.jitter * Math.random()))
  }

  reset(): void {
    this.attempt = 0
  }
}
