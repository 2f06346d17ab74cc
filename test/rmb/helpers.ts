// Shared pieces of the relay tests: twins with fresh keys in a StaticDirectory, relays and peers on 127.0.0.1
// that are closed when the test (or file) ends.
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { generateKey, type KeyPair } from '../../src/core/keys.js'
import { Signer } from '../../src/rmb/crypto.js'
import { StaticDirectory, type TwinInfo } from '../../src/rmb/directory.js'
import { connect, type ConnectOptions, type Peer } from '../../src/rmb/peer.js'
import { startRelay, type Relay, type RelayOptions } from '../../src/rmb/relay.js'
import { createToken } from '../../src/rmb/token.js'

export interface TestTwin {
  id: number
  key: KeyPair
  info: TwinInfo
}

/** `n` twins with ids first..first+n-1, all listing `relays`. */
export function makeTwins(n: number, relays: string[] = [], first = 1): TestTwin[] {
  return Array.from({ length: n }, (_, i) => {
    const key = generateKey()
    const id = first + i
    return { id, key, info: { id, account: key.address, pk: key.publicKey, relays } }
  })
}

export function directoryOf(twins: TestTwin[]): StaticDirectory {
  return new StaticDirectory(twins.map((t) => t.info))
}

type Closer = { after(fn: () => unknown): void }

export async function testRelay(t: Closer, opts: RelayOptions): Promise<Relay> {
  const relay = await startRelay({ host: '127.0.0.1', port: 0, ...opts })
  t.after(() => relay.close())
  return relay
}

/** Small reconnect delays so restarts are tested in milliseconds. */
export const FAST_BACKOFF = { initialMs: 20, maxMs: 200, factor: 2, jitter: 0.1 }

export async function testPeer(t: Closer, twin: TestTwin, directory: ConnectOptions['directory'], relays: string[], opts: Partial<ConnectOptions> = {}): Promise<Peer> {
  const peer = await connect({ twinId: twin.id, key: twin.key, directory, relays, backoff: FAST_BACKOFF, ...opts })
  t.after(() => peer.close())
  return peer
}

/** Polls `cond` every 10 ms until it holds (or fails after `ms`). */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

export function code(c: string): (err: unknown) => boolean {
  return (err: unknown) => {
    const e = err as { code?: unknown; message?: unknown }
    if (e?.code !== c) throw new Error(`expected code ${c}, got ${String(e?.code)}: ${String(e?.message)}`)
    return true
  }
}

export type { TestContext }

export interface RawClient {
  ws: WebSocket
  frames: Buffer[]
  notices: { type: string; id: string | null; code: string; message: string }[]
  closed: Promise<{ code: number; reason: string }>
}

/** A bare WebSocket authenticated as `twin` (a token signed by `signWith`, the twin's key by default). */
export async function rawClient(t: Closer, url: string, twin: TestTwin, opts: { session?: number; signWith?: KeyPair } = {}): Promise<RawClient> {
  const token = createToken(new Signer(opts.signWith ?? twin.key), { twin: twin.id, session: opts.session ?? 0 })
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
  t.after(() => ws.terminate())
  const frames: Buffer[] = []
  const notices: RawClient['notices'] = []
  ws.on('message', (data, isBinary) => {
    if (isBinary) frames.push(data as Buffer)
    else notices.push(JSON.parse(String(data)) as RawClient['notices'][number])
  })
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (c, r) => resolve({ code: c, reason: r.toString() })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
  return { ws, frames, notices, closed }
}

/** Opens a WebSocket with the given headers and returns the HTTP status and body of the refusal. */
export async function refusal(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const ws = new WebSocket(url, { headers })
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the relay accepted the connection'))
    })
    ws.once('error', () => undefined)
    ws.once('unexpected-response', (req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => {
        req.destroy()
        ws.terminate()
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
  })
}
