// A least-recently-used map of buffers bounded by their total size: hot chunk plaintext, delta bases.
export class BufferLru {
  private readonly map = new Map<string, Buffer>()
  private bytes = 0

  constructor(private readonly limit: number) {}

  get(key: string): Buffer | undefined {
    const v = this.map.get(key)
    if (v) {
      this.map.delete(key)
      this.map.set(key, v)
    }
    return v
  }

  set(key: string, v: Buffer): void {
    if (this.limit <= 0 || this.map.has(key)) return
    this.map.set(key, v)
    this.bytes += v.length
    for (const [k, old] of this.map) {
      if (this.bytes <= this.limit) break
      this.map.delete(k)
      this.bytes -= old.length
    }
  }
}
