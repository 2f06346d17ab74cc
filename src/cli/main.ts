#!/usr/bin/env node
// The zos CLI: a thin shell over the typed APIs. Each command group lives in its own file and imports its
// subsystem lazily inside actions, so `zos --help` stays fast. Errors are caught once, here.
import type { Command as CommandType } from 'commander'
import { ZosError, errorMessage } from '../core/errors.js'
import { applyGridContext } from '../grid/context.js'
import { prestart } from './prestart.js'

const [major] = process.versions.node.split('.').map(Number)
if ((major ?? 0) < 20) {
  process.stderr.write(`zos needs Node.js 20 or newer; this is ${process.version}\n`)
  process.exit(1)
}

// Before commander and the command modules load (see prestart.ts).
await prestart(process.argv.slice(2))
const { Command, CommanderError } = await import('commander')

type Register = (program: CommandType) => void

/**
 * Command groups, each in its own module, in help order. Only the group being run is imported: a
 * `zos flist mount --daemon` starts two node processes on a workload's start path, and neither should load the
 * ledger, deploy or hub commands.
 */
const GROUPS: Record<string, () => Promise<Register>> = {
  flist: async () => (await import('./flist.js')).registerFlist,
  key: async () => (await import('./key.js')).registerKey,
  store: async () => (await import('./store.js')).registerStore,
  ledger: async () => (await import('./ledger.js')).registerLedger,
  twin: async () => (await import('./twin.js')).registerTwin,
  farm: async () => (await import('./farm.js')).registerFarm,
  node: async () => (await import('./node.js')).registerNode,
  contract: async () => (await import('./contract.js')).registerContract,
  token: async () => (await import('./token.js')).registerToken,
  council: async () => (await import('./council.js')).registerCouncil,
  relay: async () => (await import('./relay.js')).registerRelay,
  rmb: async () => (await import('./rmb.js')).registerRmb,
  deploy: async () => (await import('./deploy.js')).registerDeploy,
  deployment: async () => (await import('./deployment.js')).registerDeployment,
  hub: async () => (await import('./hub.js')).registerHub,
  grid: async () => (await import('./grid.js')).registerGrid,
}

/**
 * The program with the command group named in `argv` (only that group's module is loaded: `zos flist pack`
 * does not load the ledger's), or with every group for help, the version and unknown commands.
 */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<CommandType> {
  const program = new Command('zos')
    .description('Zero-OS in TypeScript: verified flists, signed IT contracts, stateless nodes')
    .version('0.1.0')
    .option('--json', 'print machine-readable JSON on stdout')
    .showHelpAfterError()
    // Before any command is added: subcommands copy these settings when they are created.
    .exitOverride()
  const first = argv.slice(2).find((a) => !a.startsWith('-'))
  const names = first !== undefined && Object.hasOwn(GROUPS, first) ? [first] : Object.keys(GROUPS)
  for (const register of await Promise.all(names.map((n) => GROUPS[n]!()))) register(program)
  return program
}

async function main(): Promise<void> {
  // The current local grid (if any) supplies default ledger, hub and key: see src/grid/context.ts.
  applyGridContext()
  const program = await buildProgram()
  try {
    await program.parseAsync(process.argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2
      return
    }
    const printed = errorOutput(err, process.argv.includes('--json'))
    // A mount's serving process tells the command waiting for it why it failed (flist/ready.ts).
    if (process.env.ZOS_MOUNT_READY_FD) (await import('../flist/ready.js')).reportFailure(err, printed)
    process.stdout.write(printed.stdout)
    process.stderr.write(printed.stderr)
    process.exitCode = printed.exitCode
  }
}

/** What the CLI prints for a failed command, and its exit code. */
function errorOutput(err: unknown, json: boolean): { stdout: string; stderr: string; exitCode: number } {
  if (ZosError.is(err)) {
    return { stdout: json ? JSON.stringify({ error: err.toJSON() }) + '\n' : '', stderr: `zos: ${err.message}\n`, exitCode: err.exitCode }
  }
  return {
    stdout: json ? JSON.stringify({ error: { code: 'INTERNAL', message: errorMessage(err) } }) + '\n' : '',
    stderr: `zos: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    exitCode: 70,
  }
}

await main()
