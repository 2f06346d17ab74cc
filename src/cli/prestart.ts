// Work a command can start before the CLI itself is loaded. A worker thread boots in 60–120 ms on a small VM,
// longer than loading commander and the command modules, so `zos flist pack` starts its pack workers first; the
// getfattr helper of a directory source starts before them, while the process is smallest and has no other
// threads (it is a fork of this process: see flist/source/xattrs.ts). This only peeks at argv: commander checks
// everything later, and a wrong guess costs an unused start, nothing else.
import { statSync } from 'node:fs'

/** Options of `zos flist pack` that take a value (the value may be the next argument). */
const PACK_VALUE_OPTIONS = new Set(['-o', '--output', '-s', '--store', '--sign', '--level', '--tag', '--prefetch', '--workers'])

/** For `zos [--json] flist pack …`: its source argument and --workers value as given; undefined for other commands. */
export function packArguments(args: readonly string[]): { source?: string; workers?: string } | undefined {
  const positional: string[] = []
  let workers: string | undefined
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--') {
      positional.push(...args.slice(i + 1))
      break
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a)
      continue
    }
    const eq = a.indexOf('=')
    const name = eq > 0 ? a.slice(0, eq) : a
    let value = eq > 0 ? a.slice(eq + 1) : undefined
    if (value === undefined && PACK_VALUE_OPTIONS.has(name)) value = args[++i]
    if (name === '--workers') workers = value
  }
  if (positional[0] !== 'flist' || positional[1] !== 'pack') return undefined
  return { ...(positional[2] !== undefined ? { source: positional[2] } : {}), ...(workers !== undefined ? { workers } : {}) }
}

export async function prestart(args: readonly string[]): Promise<void> {
  const pack = packArguments(args)
  if (!pack) return
  if (pack.source !== undefined && pack.source !== '-' && statSync(pack.source, { throwIfNoEntry: false })?.isDirectory()) {
    ;(await import('../flist/source/xattrs.js')).startXattrReader()
  }
  const workers = pack.workers === undefined ? undefined : Number(pack.workers)
  try {
    ;(await import('../flist/pack-pool.js')).prestartPackPool(workers)
  } catch {
    // A bad --workers value: the command reports it.
  }
}
