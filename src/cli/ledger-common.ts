// Options and helpers shared by the ledger command groups (ledger, twin, farm, node, contract, token, council):
//   --rpc URL      JSON-RPC endpoint (default: the address book's rpcUrl)
//   --ledger DIR   directory holding addressbook.json (default: $ZOS_LEDGER, else $ZOS_HOME/ledger)
//   --key FILE     the caller's secp256k1 key file from `zos key new` (default: $ZOS_KEY, else $ZOS_HOME/key.json)
//   --json         machine-readable output
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { Ledger } from '../ledger/types.js'

export interface LedgerCliOptions {
  rpc?: string
  ledger?: string
  key?: string
}

export function defaultLedgerDirText(): string {
  return '$ZOS_LEDGER, else $ZOS_HOME/ledger, i.e. ~/.zos/ledger'
}

/** Adds --rpc, --ledger, --key and --json to a command. */
export function withLedgerOptions(cmd: Command, opts: { key?: 'required' | 'optional' | 'none' } = {}): Command {
  cmd.option('--rpc <url>', 'ledger JSON-RPC URL (default: the address book\'s)')
  cmd.option('--ledger <dir>', `directory of the ledger address book (default ${defaultLedgerDirText()})`)
  if (opts.key !== 'none') cmd.option('--key <file>', 'secp256k1 key file from `zos key new` (default $ZOS_KEY, else $ZOS_HOME/key.json)')
  cmd.option('--json', 'print machine-readable JSON on stdout')
  return cmd
}

/**
 * Opens the ledger named by the command's options. With `needKey` the key file must exist; otherwise the
 * default key is used when present, else the ledger is read-only.
 */
export async function ledgerFrom(cmd: Command, needKey: boolean): Promise<Ledger> {
  const o = cmd.opts<LedgerCliOptions>()
  const [{ openLedger, defaultLedgerDir }, { defaultKeyPath }] = await Promise.all([import('../ledger/index.js'), import('../core/keys.js')])
  const ledgerDir = o.ledger ?? defaultLedgerDir()
  let keyFile = o.key
  if (!keyFile) {
    const def = defaultKeyPath()
    if (needKey || existsSync(def)) keyFile = def
  }
  return openLedger({ ledgerDir, rpcUrl: o.rpc, keyFile })
}

/** Runs `fn` with an open ledger and closes it afterwards. */
export async function withLedger<T>(cmd: Command, needKey: boolean, fn: (ledger: Ledger) => Promise<T>): Promise<T> {
  const ledger = await ledgerFrom(cmd, needKey)
  try {
    return await fn(ledger)
  } finally {
    await ledger.close()
  }
}

export function parseId(text: string, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) throw zerr('INVALID_ARGUMENT', `${what} must be a positive integer id, got "${text}"`)
  return Number(text)
}

export function parseUint(text: string, what: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw zerr('INVALID_ARGUMENT', `${what} must be a non-negative integer, got "${text}"`)
  return Number(text)
}

/** "12.5" tokens → base units (7 decimals). */
export function parseTokens(text: string, what = 'amount'): bigint {
  const m = /^(\d+)(?:\.(\d{1,7}))?$/.exec(text.trim())
  if (!m) throw zerr('INVALID_ARGUMENT', `${what} must be a token amount like 10 or 0.5 (at most 7 decimals), got "${text}"`)
  return BigInt(m[1]!) * 10_000_000n + BigInt((m[2] ?? '').padEnd(7, '0'))
}

/** Sizes such as 512M, 2G, 1T or plain bytes. */
export function parseBytes(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim())
  if (!m) throw zerr('INVALID_ARGUMENT', `${what} must be a size like 512M, 8G or 1T, got "${text}"`)
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't']
  return Math.floor(Number(m[1]) * mult)
}

export function parseHash(text: string, what = 'hash'): `0x${string}` {
  if (!/^0x[0-9a-fA-F]{64}$/.test(text)) throw zerr('INVALID_ARGUMENT', `${what} must be 32 bytes of 0x-prefixed hex, got "${text}"`)
  return text as `0x${string}`
}

export function parseAddress(text: string, what = 'address'): `0x${string}` {
  if (!/^0x[0-9a-fA-F]{40}$/.test(text)) throw zerr('INVALID_ARGUMENT', `${what} must be a 0x-prefixed 20-byte address, got "${text}"`)
  return text as `0x${string}`
}

/** Aligned "key  value" lines. */
export function kv(rows: [string, unknown][]): string {
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v === null || v === undefined || v === '' ? '-' : String(v)}`).join('\n')
}

/** A left-aligned table with a header row. */
export function table(header: string[], rows: unknown[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function when(ts: number): string {
  return ts === 0 ? '-' : new Date(ts * 1000).toISOString().replace('.000Z', 'Z')
}

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 === 0 ? 0 : 1)} GiB`
}
