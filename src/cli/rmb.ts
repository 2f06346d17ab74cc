// `zos rmb call|serve`: talk to any twin through its relay, for debugging its API.
//   zos rmb call TWIN COMMAND [JSON|@FILE]   one request, prints the reply
//   zos rmb serve                             answer rmb.ping and rmb.echo as the key's twin until SIGTERM
import { randomInt } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { errorMessage, zerr } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import type { Ledger } from '../ledger/types.js'
import type { Handler, HandlerContext, Peer } from '../rmb/peer.js'
import { emit, wantsJson, untilStopped } from './output.js'
import { parseId, withLedgerOptions } from './ledger-common.js'

interface PeerCliOptions {
  rpc?: string
  ledger?: string
  key?: string
  relay?: string[]
}

async function parsePayload(text: string | undefined): Promise<unknown> {
  if (text === undefined) return null
  let source = text
  if (text.startsWith('@')) {
    try {
      source = await readFile(text.slice(1), 'utf8')
    } catch (err) {
      throw zerr('INVALID_ARGUMENT', `cannot read the payload file ${text.slice(1)}: ${errorMessage(err)}`, {}, err)
    }
  }
  try {
    return JSON.parse(source)
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `the payload must be JSON (or @FILE holding JSON): ${errorMessage(err)}`, {}, err)
  }
}

/** Opens the ledger read-only, loads the key and finds its twin; runs `fn` with a connected peer. */
async function withPeer<T>(opts: PeerCliOptions, session: number, fn: (peer: Peer, ledger: Ledger, key: KeyPair) => Promise<T>, handlers: Record<string, Handler> = {}): Promise<T> {
  const { loadKey, defaultKeyPath } = await import('../core/keys.js')
  const { openLedger, defaultLedgerDir } = await import('../ledger/index.js')
  const { connect, ledgerDirectory } = await import('../rmb/index.js')
  const key = await loadKey(opts.key ?? defaultKeyPath())
  const ledger = await openLedger({ ledgerDir: opts.ledger ?? defaultLedgerDir(), rpcUrl: opts.rpc })
  let peer: Peer | undefined
  try {
    const twin = await ledger.twins.byAccount(key.address)
    if (!twin) throw zerr('NO_TWIN', `the key's account ${key.address} has no twin: create one with \`zos twin create --relay URL --key FILE\``)
    peer = await connect({ twinId: twin.id, key, directory: ledgerDirectory(ledger), relays: opts.relay, session, handlers, builtins: session === 0 })
    return await fn(peer, ledger, key)
  } finally {
    await peer?.close()
    await ledger.close()
  }
}

function printReply(cmd: Command, twin: number, command: string, reply: unknown): void {
  if (Buffer.isBuffer(reply) && !wantsJson(cmd)) {
    process.stdout.write(reply)
    return
  }
  emit(cmd, { twin, command, reply }, (r) => JSON.stringify(r.reply, null, 2))
}

export function registerRmb(program: Command): void {
  const rmb = program.command('rmb').description("talk to twins through the relay (debug any twin's API)")

  withLedgerOptions(
    rmb
      .command('call')
      .description("send COMMAND to TWIN as the key's twin and print the reply")
      .argument('<twin>', 'twin id to call')
      .argument('<command>', 'command, e.g. zos.system.version or rmb.ping')
      .argument('[payload]', 'JSON payload, or @FILE holding JSON (default null)')
      .option('--relay <url...>', "relay(s) to dial (default: the twin's relays on the ledger)")
      .option('--timeout <seconds>', 'how long to wait for the reply', '30'),
  ).action(async (twinText: string, command: string, payloadText: string | undefined, opts: PeerCliOptions & { timeout: string }, cmd: Command) => {
    const twin = parseId(twinText, 'twin')
    const seconds = Number(opts.timeout)
    if (!/^\d+(\.\d+)?$/.test(opts.timeout) || seconds <= 0 || seconds > 86_400) throw zerr('INVALID_ARGUMENT', `--timeout must be seconds in (0, 86400], got "${opts.timeout}"`)
    const payload = await parsePayload(payloadText)
    // A session of its own, so the call does not take over a peer of the same twin that is serving.
    const reply = await withPeer(opts, randomInt(1, 2 ** 32 - 1), (peer) => peer.request(twin, command, payload, { timeout: Math.round(seconds * 1000) }))
    printReply(cmd, twin, command, reply)
  })

  withLedgerOptions(
    rmb
      .command('serve')
      .description("answer rmb.ping and rmb.echo as the key's twin until SIGINT/SIGTERM, logging each call to stderr")
      .option('--relay <url...>', "relay(s) to dial (default: the twin's relays on the ledger)"),
  ).action(async (opts: PeerCliOptions, cmd: Command) => {
    const handlers: Record<string, Handler> = {
      'rmb.echo': (payload: unknown, ctx: HandlerContext) => {
        process.stderr.write(`zos: ${ctx.command} from twin ${ctx.twinId}\n`)
        return payload
      },
    }
    await withPeer(
      opts,
      0,
      async (peer) => {
        const stats = peer.stats()
        emit(cmd, { twin: peer.twinId, relays: stats.relays.map((r) => r.url) }, (r) => `twin ${r.twin} serving on ${r.relays.join(', ')}`)
        await untilStopped()
        process.stderr.write(`zos: stopped; ${JSON.stringify(peer.stats().drops)} dropped\n`)
      },
      handlers,
    )
  })
}
