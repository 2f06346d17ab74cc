// The current local grid, as kind and minikube set a kubectl context: `zos grid up` records its directory in
// $ZOS_HOME/grid-context.json, and every later `zos` command takes that grid's ledger, hub and user key as its
// defaults, so `zos deploy container --node 1 --flist hub://demo` needs no flags. Precedence, highest first:
// a command-line flag, an environment variable already set (ZOS_LEDGER, ZOS_KEY, ZOS_HUB), the current grid,
// then $ZOS_HOME's own files. `zos grid down --purge` forgets the context.
import { readFileSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'

export function contextFile(): string {
  return join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'grid-context.json')
}

export interface GridDefaults {
  dir: string
  ledgerDir: string
  keyFile: string
  hubUrl: string
}

/** The current grid's defaults, or undefined when there is none (or its directory is gone). Synchronous: it runs at every CLI start. */
function contextDir(): string | undefined {
  try {
    const { dir } = JSON.parse(readFileSync(contextFile(), 'utf8')) as { dir?: unknown }
    return typeof dir === 'string' ? dir : undefined
  } catch {
    return undefined
  }
}

export function currentGrid(): GridDefaults | undefined {
  const dir = contextDir()
  if (dir === undefined) return undefined
  try {
    const spec = JSON.parse(readFileSync(join(dir, 'grid.json'), 'utf8')) as { hostIp?: unknown; ports?: { hub?: unknown }; userKey?: unknown }
    if (typeof spec.hostIp !== 'string' || typeof spec.ports?.hub !== 'number' || typeof spec.userKey !== 'string') return undefined
    return { dir, ledgerDir: join(dir, 'ledger'), keyFile: spec.userKey, hubUrl: `http://${spec.hostIp}:${spec.ports.hub}` }
  } catch {
    return undefined
  }
}

/** Fills ZOS_LEDGER, ZOS_KEY and ZOS_HUB from the current grid where they are not set. */
export function applyGridContext(env: NodeJS.ProcessEnv = process.env): GridDefaults | undefined {
  const grid = currentGrid()
  if (!grid) return undefined
  env.ZOS_LEDGER ??= grid.ledgerDir
  env.ZOS_KEY ??= grid.keyFile
  env.ZOS_HUB ??= grid.hubUrl
  return grid
}

export async function setCurrentGrid(dir: string): Promise<void> {
  await mkdir(join(contextFile(), '..'), { recursive: true })
  const { writeJsonAtomic } = await import('./state.js')
  await writeJsonAtomic(contextFile(), { dir })
}

/** Forgets the context if it names `dir`. */
export async function clearCurrentGrid(dir: string): Promise<void> {
  if (contextDir() === dir) await rm(contextFile(), { force: true })
}
