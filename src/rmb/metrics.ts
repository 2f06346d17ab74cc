// A tiny Prometheus registry: counters (optionally with one label) and gauges read at scrape time, rendered in
// the text exposition format (version 0.0.4). No dependency; nothing is computed until someone scrapes.

export class Counter<L extends string = never> {
  private readonly values = new Map<string, number>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly label?: string,
  ) {}

  inc(labelValue?: L, n = 1): void {
    const k = labelValue ?? ''
    this.values.set(k, (this.values.get(k) ?? 0) + n)
  }

  value(labelValue?: L): number {
    return this.values.get(labelValue ?? '') ?? 0
  }

  /** Values by label value. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.values)
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`]
    if (this.values.size === 0 && !this.label) lines.push(`${this.name} 0`)
    for (const [k, v] of this.values) lines.push(this.label && k !== '' ? `${this.name}{${this.label}="${escapeLabel(k)}"} ${v}` : `${this.name} ${v}`)
    return lines.join('\n')
  }
}

export class Gauge {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}

  value(): number {
    return this.read()
  }

  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${this.read()}`
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

export class Metrics {
  private readonly items: (Counter<string> | Gauge)[] = []

  counter<L extends string = never>(name: string, help: string, label?: string): Counter<L> {
    const c = new Counter<L>(name, help, label)
    this.items.push(c as unknown as Counter<string>)
    return c
  }

  gauge(name: string, help: string, read: () => number): Gauge {
    const g = new Gauge(name, help, read)
    this.items.push(g)
    return g
  }

  /** Adds the process's memory gauges (resident set, V8 heap). */
  processGauges(): this {
    this.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => process.memoryUsage.rss())
    this.gauge('nodejs_heap_used_bytes', 'V8 heap in use in bytes.', () => process.memoryUsage().heapUsed)
    this.gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects (buffers) in bytes.', () => process.memoryUsage().external)
    return this
  }

  render(): string {
    return this.items.map((i) => i.render()).join('\n') + '\n'
  }
}

/** Parses the text format back into name{labels} → value (for tests, benchmarks and `zos relay` tooling). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}
