#!/usr/bin/env node
// The zos CLI: a thin shell over the typed APIs. Each command group lives in its own file and imports its
// subsystem lazily inside actions, so `zos --help` stays fast. Errors are caught once, here.
import { Command, CommanderError } from 'commander'
import { ZosError, errorMessage } from '../core/errors.js'
import { registerFlist } from './flist.js'
import { registerKey } from './key.js'
import { registerStore } from './store.js'
import { registerLedger } from './ledger.js'
import { registerTwin } from './twin.js'
import { registerFarm } from './farm.js'
import { registerNode } from './node.js'
import { registerContract } from './contract.js'
import { registerToken } from './token.js'
import { registerCouncil } from './council.js'
import { registerRelay } from './relay.js'
import { registerRmb } from './rmb.js'
import { registerDeploy } from './deploy.js'
import { registerDeployment } from './deployment.js'
import { registerHub } from './hub.js'
import { registerGrid } from './grid.js'
import { applyGridContext } from '../grid/context.js'

const [major] = process.versions.node.split('.').map(Number)
if ((major ?? 0) < 20) {
  process.stderr.write(`zos needs Node.js 20 or newer; this is ${process.version}\n`)
  process.exit(1)
}

export function buildProgram(): Command {
  const program = new Command('zos')
    .description('Zero-OS in TypeScript: verified flists, signed IT contracts, stateless nodes')
    .version('0.1.0')
    .option('--json', 'print machine-readable JSON on stdout')
    .showHelpAfterError()
    // Before any command is added: subcommands copy these settings when they are created.
    .exitOverride()
  registerFlist(program)
  registerKey(program)
  registerStore(program)
  registerLedger(program)
  registerTwin(program)
  registerFarm(program)
  registerNode(program)
  registerContract(program)
  registerToken(program)
  registerCouncil(program)
  registerRelay(program)
  registerRmb(program)
  registerDeploy(program)
  registerDeployment(program)
  registerHub(program)
  registerGrid(program)
  return program
}

async function main(): Promise<void> {
  // The current local grid (if any) supplies default ledger, hub and key: see src/grid/context.ts.
  applyGridContext()
  const program = buildProgram()
  try {
    await program.parseAsync(process.argv)
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2
      return
    }
    const json = process.argv.includes('--json')
    if (ZosError.is(err)) {
      if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }) + '\n')
      process.stderr.write(`zos: ${err.message}\n`)
      process.exitCode = err.exitCode
      return
    }
    if (json) process.stdout.write(JSON.stringify({ error: { code: 'INTERNAL', message: errorMessage(err) } }) + '\n')
    process.stderr.write(`zos: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exitCode = 70
  }
}

await main()
