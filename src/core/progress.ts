// Progress bars for long operations: drawn on stderr only when it is a terminal and --json is off,
// so scripts and CI logs stay clean.
import { createRequire } from 'node:module'

// cli-progress takes ~20 ms to load: only when a bar is drawn (scripts and benchmarks run without a terminal).
const load = (): typeof import('cli-progress') => createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress')

export interface Progress {
  /** Sets the total (e.g. bytes to process) once it is known. */
  setTotal(total: number): void
  increment(delta: number, note?: string): void
  /** Sets the absolute value (for callbacks that report totals so far). */
  update(value: number, note?: string): void
  stop(): void
}

const silent: Progress = { setTotal() {}, increment() {}, update() {}, stop() {} }

export function createProgress(label: string, options: { enabled?: boolean; unit?: 'bytes' | 'items' } = {}): Progress {
  const enabled = (options.enabled ?? true) && process.stderr.isTTY === true
  if (!enabled) return silent
  const bytes = (options.unit ?? 'bytes') === 'bytes'
  const cliProgress = load()
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done}/{all} | {note}`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  )
  const fmt = (n: number): string => (bytes ? `${(n / 1048576).toFixed(1)} MiB` : String(n))
  let total = 0
  let value = 0
  bar.start(1, 0, { done: fmt(0), all: '?', note: '' })
  return {
    setTotal(t) {
      total = t
      bar.setTotal(Math.max(1, t))
      bar.update(value, { all: fmt(total) })
    },
    increment(delta, note) {
      this.update(value + delta, note)
    },
    update(v, note) {
      value = v
      bar.update(Math.min(value, Math.max(1, total)), { done: fmt(value), note: note ?? '' })
    },
    stop() {
      bar.stop()
    },
  }
}
