// Output for every command: --json prints one JSON document on stdout; otherwise a human rendering.
import { firstEvent } from '../core/drain.js'
import type { Command } from 'commander'

export function wantsJson(cmd: Command): boolean {
  return Boolean(cmd.optsWithGlobals().json)
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (Buffer.isBuffer(value)) return value.toString('hex')
  if (value instanceof Map) return Object.fromEntries(value)
  return value
}

/** Prints `result` as JSON when --json was given, else the text `human` returns (if any). */
export function emit<T>(cmd: Command, result: T, human: (r: T) => string | undefined): void {
  process.stdout.write(rendered(cmd, result, human))
}

/** What emit prints. */
export function rendered<T>(cmd: Command, result: T, human: (r: T) => string | undefined): string {
  if (wantsJson(cmd)) return JSON.stringify(result, jsonReplacer, 2) + '\n'
  const text = human(result)
  return text === undefined || text === '' ? '' : text.endsWith('\n') ? text : text + '\n'
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`
}

/** Parses sizes such as 512M, 2G, 1048576, 10GiB. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(text.trim())
  if (!m) throw new Error(`not a size: ${text} (use e.g. 512M, 2G)`)
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  return Math.floor(Number(m[1]) * mult)
}

/** Resolves at the first SIGINT or SIGTERM: how a foreground daemon command waits to be stopped. */
export function untilStopped(): Promise<void> {
  return firstEvent(process, ['SIGINT', 'SIGTERM'])
}
