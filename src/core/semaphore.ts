// Counting semaphore with weighted acquisition: bounds the bytes (or tasks) a pipeline holds at once.
export class Semaphore {
  private available: number
  /** Waiters in the order they are served: those that asked to go first, then the rest, each in arrival order. */
  private readonly waiters: { weight: number; first: boolean; resolve(): void }[] = []

  constructor(readonly capacity: number) {
    this.available = capacity
  }

  /**
   * Waits until `weight` units are free (a weight above capacity is clamped so it can still run alone). `first`
   * goes ahead of every waiter that did not ask for it.
   */
  async acquire(weight = 1, options: { first?: boolean } = {}): Promise<void> {
    const w = Math.min(weight, this.capacity)
    if (this.waiters.length === 0 && this.available >= w) {
      this.available -= w
      return
    }
    const first = options.first === true
    await new Promise<void>((resolve) => {
      const waiter = { weight: w, first, resolve }
      if (!first) this.waiters.push(waiter)
      else {
        const at = this.waiters.findIndex((x) => !x.first)
        this.waiters.splice(at < 0 ? this.waiters.length : at, 0, waiter)
      }
    })
  }

  release(weight = 1): void {
    this.available += Math.min(weight, this.capacity)
    while (this.waiters.length > 0 && this.available >= this.waiters[0]!.weight) {
      const next = this.waiters.shift()!
      this.available -= next.weight
      next.resolve()
    }
  }
}
