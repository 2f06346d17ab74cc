// `zos relay serve`: run a relay. Twins dial out to it over WebSocket; other relays POST to /federation;
// Prometheus scrapes GET /metrics. Twins are read from the ledger (cached), or from a --twins file.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import { emit, untilStopped } from './output.js'

interface ServeOptions {
  port: string
  host: string
  ledger?: string
  rpc?: string
  twins?: string
  advertise?: string[]
  rate: string
  burst: string
  maxConnections: string
  queueMb: string
  logLevel: string
}

function parseNumber(text: string, what: string, min: number, max: number): number {
  const n = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || n < min || n > max) throw zerr('INVALID_ARGUMENT', `${what} must be a number in [${min}, ${max}], got "${text}"`)
  return n
}

export function registerRelay(program: Command): void {
  const relay = program.command('relay').description('the message relay twins dial out to (RMB)')

  relay
    .command('serve')
    .description('run a relay until SIGINT/SIGTERM: WebSocket for twins, POST /federation for relays, GET /metrics')
    .option('--port <n>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--ledger <dir>', 'directory of the ledger address book (default $ZOS_HOME/ledger, i.e. ~/.zos/ledger)')
    .option('--rpc <url>', "ledger JSON-RPC URL (default: the address book's)")
    .option('--twins <file>', 'read twins from a JSON file [{id, pk, relay}] instead of the ledger (tests, isolated setups)')
    .option('--advertise <url...>', "this relay's addresses as twins list them on the ledger (default ws://HOST:PORT)")
    .option('--rate <n>', 'messages per second each twin may sustain', '1000')
    .option('--burst <n>', 'messages each twin may send at once', '2000')
    .option('--max-connections <n>', 'most connected twins', '10000')
    .option('--queue-mb <n>', 'MiB held for offline twins, overall', '256')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: ServeOptions, cmd: Command) => {
      const port = parseNumber(opts.port, '--port', 0, 65535)
      if (!Number.isInteger(port)) throw zerr('INVALID_ARGUMENT', `--port must be an integer, got ${opts.port}`)
      const rate = parseNumber(opts.rate, '--rate', 0.001, 1e9)
      const burst = parseNumber(opts.burst, '--burst', 1, 1e9)
      const maxConnections = parseNumber(opts.maxConnections, '--max-connections', 1, 1e7)
      const queueMb = parseNumber(opts.queueMb, '--queue-mb', 1, 1e6)
      if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(opts.logLevel)) throw zerr('INVALID_ARGUMENT', `--log-level must be one of fatal, error, warn, info, debug, silent`)
      if (opts.twins && (opts.ledger || opts.rpc)) throw zerr('INVALID_ARGUMENT', '--twins replaces the ledger: give either --twins or --ledger/--rpc')
      const { pino } = await import('pino')
      const log = pino({ level: opts.logLevel, base: { svc: 'relay' } }, pino.destination(2))
      const { startRelay, readTwinsFile, ledgerDirectory, relayUrl } = await import('../rmb/index.js')
      const advertise = (opts.advertise ?? []).map(relayUrl)
      let close: () => Promise<void> = async () => {}
      let directory
      if (opts.twins) {
        directory = await readTwinsFile(opts.twins)
      } else {
        const { openLedger, defaultLedgerDir } = await import('../ledger/index.js')
        const ledger = await openLedger({ ledgerDir: opts.ledger ?? defaultLedgerDir(), rpcUrl: opts.rpc })
        directory = ledgerDirectory(ledger)
        close = () => ledger.close()
      }
      const server = await startRelay({
        directory,
        host: opts.host,
        port,
        advertise,
        limits: { messagesPerSecond: rate, burstMessages: burst },
        queue: { maxBytes: queueMb * 1024 * 1024 },
        maxConnections,
        log,
      })
      emit(cmd, { url: server.url, advertise: server.advertise, metrics: `${server.url.replace(/^ws/, 'http')}/metrics` }, (r) => r.url)
      log.info({ url: server.url, advertise: server.advertise, twins: opts.twins ? 'file' : 'ledger' }, 'relay listening')
      await untilStopped()
      await server.close()
      await close()
      log.info({ url: server.url }, 'relay stopped')
      log.flush()
    })
}
