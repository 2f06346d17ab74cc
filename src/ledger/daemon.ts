// The supervisor of a detached ledger (`zos ledger up --detach`): runs startLedger in the foreground of its own
// process, records its pid, and stops the ledger cleanly on SIGTERM/SIGINT. Started by server.ts as
//   node [loader flags] daemon.js '<LedgerServerOptions as JSON>'
// Its stdout and stderr go to DATA/ledger.log.
import { errorMessage } from '../core/errors.js'
import { startLedger, type LedgerServerOptions } from './server.js'

async function main(): Promise<void> {
  let opts: LedgerServerOptions
  try {
    opts = JSON.parse(process.argv[2] ?? '') as LedgerServerOptions
    if (typeof opts.dataDir !== 'string') throw new Error('dataDir missing')
  } catch (err) {
    process.stderr.write(`zos ledger daemon: bad options argument: ${errorMessage(err)}\n`)
    process.exit(2)
  }
  const srv = await startLedger({ ...opts, detached: false })
  process.stdout.write(`${new Date().toISOString()} ledger up at ${srv.url} (daemon ${process.pid}, anvil ${srv.anvilPid})\n`)
  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    process.stdout.write(`${new Date().toISOString()} ${signal}: stopping\n`)
    await srv.stop()
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  await srv.exited
  if (!stopping) {
    process.stderr.write(`${new Date().toISOString()} anvil (pid ${srv.anvilPid}) exited on its own; see anvil.log\n`)
    await srv.stop()
    process.exit(1)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`zos ledger daemon: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
