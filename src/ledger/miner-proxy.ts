// The embedded ledger's JSON-RPC front: forwards every request to anvil (which runs with --no-mining) and
// mines a block as soon as a transaction has entered the pool, with all transactions that arrived meanwhile.
//
// Why: anvil 1.7.1 recomputes the whole state trie for every block (fixed upstream in foundry PR #15715, not in
// an npm release yet), so a block costs time proportional to everything the ledger holds. Instant mining makes
// one block per transaction and its throughput falls as the ledger grows (measured: 450 → 30 creations/s over
// the first 3 000 contracts); mining whatever is pending, one block at a time, keeps throughput flat (~600/s)
// at the same latency for a single transaction. Idle, it costs nothing: it mines only after a transaction.
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { zerr } from '../core/errors.js'

export interface MinerProxy {
  readonly url: string
  readonly port: number
  /** Blocks mined and transactions forwarded so far. */
  stats(): { blocks: number; transactions: number }
  close(): Promise<void>
}

export interface MinerProxyOptions {
  host: string
  port: number
  /** anvil's own URL (http://127.0.0.1:PORT). */
  upstream: string
  /** Largest request body accepted (default 8 MiB). */
  maxBody?: number
}

const SEND_METHODS = new Set(['eth_sendRawTransaction', 'eth_sendTransaction'])

export async function startMinerProxy(opts: MinerProxyOptions): Promise<MinerProxy> {
  const up = new URL(opts.upstream)
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const maxBody = opts.maxBody ?? 8 * 1024 * 1024
  let blocks = 0
  let transactions = 0
  let mining: Promise<void> | null = null
  let again = false
  let closed = false

  const forward = (body: Buffer): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: up.hostname, port: up.port, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ status: res.statusCode ?? 502, body: Buffer.concat(chunks) }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(body)
    })

  const call = async (method: string): Promise<unknown> => {
    const r = await forward(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 0, method, params: [] })))
    return (JSON.parse(r.body.toString('utf8')) as { result?: unknown }).result
  }

  /** Mines one block; returns how many ready transactions are still pending (a full block leaves some). */
  const mineOnce = async (): Promise<number> => {
    const before = await call('eth_blockNumber')
    await call('evm_mine')
    blocks++
    const status = (await call('txpool_status')) as { pending?: string } | undefined
    const pending = Number(status?.pending ?? 0)
    // no progress (the block did not move) with transactions still pending: stop rather than spin
    return (await call('eth_blockNumber')) === before ? 0 : pending
  }

  /** Mines now, or again right after the block being mined, until nothing ready is left pending. */
  const scheduleMine = (): void => {
    if (closed) return
    if (mining) {
      again = true
      return
    }
    mining = (async () => {
      do {
        again = false
        try {
          if ((await mineOnce()) > 0) again = true
        } catch {
          // anvil is gone or restarting: the next transaction schedules a new attempt
        }
      } while (again && !closed)
      mining = null
    })()
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && (req.url === '/' || req.url === '/healthz')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('zos ledger\n')
      return
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBody) {
        res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `request body over ${maxBody} bytes` } }))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => {
      if (res.writableEnded) return
      const body = Buffer.concat(chunks)
      const sends = countSends(body)
      forward(body).then(
        (r) => {
          res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': r.body.length }).end(r.body)
          if (sends > 0) {
            transactions += sends
            scheduleMine()
          }
        },
        (err: unknown) => {
          const message = `the ledger's EVM (anvil) is not answering: ${err instanceof Error ? err.message : String(err)}`
          res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message } }))
        },
      )
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? zerr('EXISTS', `port ${opts.port} on ${opts.host} is in use: pass another --port (0 picks a free one)`) : err),
    )
    server.listen(opts.port, opts.host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `http://${urlHost}:${port}`,
    port,
    stats: () => ({ blocks, transactions }),
    close: async () => {
      closed = true
      await mining
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      agent.destroy()
    },
  }
}

/** Number of transaction submissions in a JSON-RPC body (a single call or a batch). */
function countSends(body: Buffer): number {
  if (!body.includes('eth_send')) return 0
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    const calls = Array.isArray(parsed) ? parsed : [parsed]
    return calls.filter((c) => typeof c === 'object' && c !== null && SEND_METHODS.has(String((c as { method?: unknown }).method))).length
  } catch {
    return 0
  }
}
