// Counting semaphore with weighted acquisition: bounds the bytes (or tasks) a pipeline holds at once.
export class Semaphore {
  private available: number
  private readonly waiters: { weight: number; resolve(): void }[] = []

  constructor(readonly capacity: number) {
    this.available = capacity
  }

  /** Waits until `weight` units are free (a weight above capacity is clamped so it can still run alone). */
  async acquire(weight = 1): Promise<void> {
    const w = Math.min(weight, this.capacity)
    if (this.waiters.length === 0 && this.available >= w) {
      this.available -= w
      return
    }
    await new Promise<void>((resolve) => this.waiters.push({ weight: w, resolve }))
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
