// Compiles contracts/*.sol with the solc npm package (solc-js, offline) and caches the artifacts (ABI +
// bytecode) keyed by a hash of the compiler version, settings and sources, so only the first deploy after a
// change pays the ~10 s compile. The typed ABIs the client uses are generated from the same output into
// src/ledger/abi.ts (`zos ledger compile --abi-out src/ledger/abi.ts`); test/ledger/abi.test.ts keeps them in step.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { zerr } from '../core/errors.js'

/** The deployable contracts, by their Solidity name. */
export const CONTRACT_NAMES = ['ZosToken', 'Council', 'Twins', 'Farms', 'Nodes', 'Pricing', 'GridContracts', 'Billing'] as const
export type ContractName = (typeof CONTRACT_NAMES)[number]

export interface CompiledContract {
  readonly abi: readonly Record<string, unknown>[]
  readonly bytecode: `0x${string}`
  /** Runtime code size in bytes (must stay under the EIP-170 limit of 24 576). */
  readonly codeSize: number
}

export interface Artifacts {
  /** sha256 over compiler version, settings and sources: the cache key. */
  readonly sourceHash: string
  /** sha256 over the ABIs only: clients check it against the address book. */
  readonly abiHash: string
  readonly solcVersion: string
  readonly contracts: Readonly<Record<ContractName, CompiledContract>>
}

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
} as const

export const CODE_SIZE_LIMIT = 24_576

/** The repository's contracts/ directory, found by walking up from this module (works from src/ and dist/src/). */
export function contractsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'contracts', 'Types.sol'))) return join(dir, 'contracts')
    dir = dirname(dir)
  }
  throw zerr('NOT_FOUND', 'cannot find the contracts/ directory (with Types.sol) above the zos install; reinstall zos')
}

async function readSources(dir: string): Promise<Record<string, { content: string }>> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sol')).sort()
  if (files.length === 0) throw zerr('NOT_FOUND', `no .sol files in ${dir}`)
  const sources: Record<string, { content: string }> = {}
  for (const f of files) sources[f] = { content: await readFile(join(dir, f), 'utf8') }
  return sources
}

function solcVersionOf(): string {
  const require = createRequire(import.meta.url)
  const pkg = require('solc/package.json') as { version: string }
  return pkg.version
}

function cacheDirs(): string[] {
  const root = dirname(contractsDir())
  return [join(root, 'dist', 'contracts'), join(tmpdir(), 'zos-solc-cache')]
}

/** sha256 of the canonical JSON of the ABIs, in CONTRACT_NAMES order. */
export function abiHashOf(abis: Record<ContractName, readonly unknown[]>): string {
  const h = createHash('sha256')
  for (const name of CONTRACT_NAMES) h.update(name).update(JSON.stringify(abis[name]))
  return h.digest('hex')
}

let memo: Promise<Artifacts> | undefined

/** Compiled artifacts of contracts/, from the cache when the sources did not change. */
export function loadArtifacts(): Promise<Artifacts> {
  memo ??= loadUncached().catch((err: unknown) => {
    memo = undefined
    throw err
  })
  return memo
}

async function loadUncached(): Promise<Artifacts> {
  const sources = await readSources(contractsDir())
  const solcVersion = solcVersionOf()
  const sourceHash = createHash('sha256').update(JSON.stringify({ solcVersion, SETTINGS, sources })).digest('hex')
  for (const dir of cacheDirs()) {
    const file = join(dir, `${sourceHash}.json`)
    const cached = await readFile(file, 'utf8').then((t) => parseCached(t, sourceHash), () => undefined)
    if (cached) return cached
  }
  const artifacts = await compile(sources, solcVersion, sourceHash)
  for (const dir of cacheDirs()) {
    try {
      await mkdir(dir, { recursive: true })
      const file = join(dir, `${sourceHash}.json`)
      const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
      await writeFile(tmp, JSON.stringify(artifacts))
      await rename(tmp, file)
      break
    } catch {
      // not writable: try the next cache directory; the artifacts are still returned
    }
  }
  return artifacts
}

function parseCached(text: string, sourceHash: string): Artifacts | undefined {
  try {
    const a = JSON.parse(text) as Artifacts
    if (a.sourceHash !== sourceHash) return undefined
    for (const name of CONTRACT_NAMES) if (!a.contracts[name]?.bytecode?.startsWith('0x')) return undefined
    return a
  } catch {
    return undefined
  }
}

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[]
  contracts?: Record<string, Record<string, { abi: Record<string, unknown>[]; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>>
}

async function compile(sources: Record<string, { content: string }>, solcVersion: string, sourceHash: string): Promise<Artifacts> {
  const solc = (await import('solc')).default as { compile(input: string): string }
  const input = { language: 'Solidity', sources, settings: SETTINGS }
  const out = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput
  const errors = (out.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) {
    throw zerr('INTERNAL', `the ledger contracts do not compile:\n${errors.map((e) => e.formattedMessage).join('\n')}`)
  }
  const contracts = {} as Record<ContractName, CompiledContract>
  const abis = {} as Record<ContractName, readonly unknown[]>
  for (const name of CONTRACT_NAMES) {
    const c = out.contracts?.[`${name}.sol`]?.[name]
    if (!c) throw zerr('INTERNAL', `solc produced no contract ${name} (expected in contracts/${name}.sol)`)
    const codeSize = c.evm.deployedBytecode.object.length / 2
    if (codeSize > CODE_SIZE_LIMIT) {
      throw zerr('INTERNAL', `contract ${name} is ${codeSize} bytes, over the EVM limit of ${CODE_SIZE_LIMIT}: split it`)
    }
    contracts[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}`, codeSize }
    abis[name] = c.abi
  }
  return { sourceHash, abiHash: abiHashOf(abis), solcVersion, contracts }
}

/** TypeScript source of src/ledger/abi.ts: each ABI `as const` (so viem types every call) and the ABI hash. */
export function renderAbiModule(artifacts: Artifacts): string {
  const lines = [
    '// GENERATED by `zos ledger compile --abi-out src/ledger/abi.ts` from contracts/*.sol. Do not edit:',
    '// test/ledger/abi.test.ts fails when this file and the contracts drift apart.',
    '',
    `export const ABI_HASH = '${artifacts.abiHash}'`,
    '',
  ]
  for (const name of CONTRACT_NAMES) {
    const ident = name[0]!.toLowerCase() + name.slice(1) + 'Abi'
    lines.push(`export const ${ident} = ${JSON.stringify(artifacts.contracts[name].abi, null, 2)} as const`, '')
  }
  return lines.join('\n')
}
