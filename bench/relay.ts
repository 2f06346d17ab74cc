// The relay: round-trip latency, messages per second through one relay, and relay memory per connected peer,
// against the targets (p50 <= 2 ms on loopback, >= 10k messages/s, 1,000 peers under 100 MB) and an
// anchor: a bare `ws` forwarder (no authentication, validation, rate limits or queues: it routes each binary
// frame by a 4-byte destination prefix), run the same way, in its own process. Both servers run as child
// processes (ours is `zos relay serve --twins FILE`); clients run here, on 127.0.0.1.
//
//   rtt, full peers      Peer.request → Peer.handle → reply: sign, seal, open and verify on both sides
//   rtt, raw frames      pre-built envelopes bounced by two bare clients through the relay (relay cost only)
//   msgs/s, raw frames   4 senders → 1 receiver, pre-built envelopes, bounded window: what the relay forwards
//   msgs/s, full peers   64 requests in flight between two peers (each request is 2 messages, all crypto here)
//   memory               relay RSS and heap before and after 1,000 authenticated peers connect
//
//   npm run bench -- relay [--quick]
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket, { WebSocketServer } from 'ws'
import { generateKey, type KeyPair } from '../src/core/keys.js'
import { Sealer, Signer } from '../src/rmb/crypto.js'
import { StaticDirectory } from '../src/rmb/directory.js'
import { sealEnvelope } from '../src/rmb/envelope.js'
import { parseMetrics } from '../src/rmb/metrics.js'
import { connect, type Peer } from '../src/rmb/peer.js'
import { createToken } from '../src/rmb/token.js'

const quick = process.argv.includes('--quick')
const RTT_SAMPLES = quick ? 300 : 3000
const RAW_MESSAGES = quick ? 20_000 : 200_000
const SENDERS = 4
const WINDOW = 4000
const PEER_SECONDS = quick ? 2 : 5
const MEMORY_PEERS = 1000
const PAYLOAD = Buffer.from(JSON.stringify({ contract_id: 1234, hint: 'a small zos.deployment.get-sized request' }))

const TARGET = { rttMs: 2, msgsPerSec: 10_000, memoryMb: 100 }

// ---- the anchor: a bare ws forwarder (run as a child process with --anchor-server) ----

async function anchorServer(): Promise<void> {
  const conns = new Map<number, WebSocket>()
  const server = createServer((req, res) => {
    const m = process.memoryUsage()
    res.end(`process_resident_memory_bytes ${m.rss}\nnodejs_heap_used_bytes ${m.heapUsed}\nconnections ${conns.size}\n`)
  })
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 2 * 1024 * 1024 })
  wss.on('connection', (ws, req) => {
    const id = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('id'))
    conns.set(id, ws)
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary && data.length >= 4) conns.get(data.readUInt32LE(0))?.send(data)
    })
    ws.on('close', () => conns.get(id) === ws && conns.delete(id))
  })
  server.listen(0, '127.0.0.1', () => process.stdout.write(`ws://127.0.0.1:${(server.address() as AddressInfo).port}\n`))
  const stop = (): void => {
    for (const ws of conns.values()) ws.terminate()
    wss.close()
    server.close(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

// ---- helpers ----

interface Child {
  url: string
  proc: ChildProcess
  stop(): Promise<void>
}

async function spawnServer(args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const i = out.indexOf('\n')
      if (i >= 0) resolve(out.slice(0, i).trim())
    })
    proc.on('close', (c) => reject(new Error(`server exited with ${c}`)))
  })
  return {
    url,
    proc,
    stop: async () => {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(t)
    },
  }
}

const fromSource = import.meta.url.endsWith('.ts')
const tsx = fromSource ? ['--import', 'tsx'] : []
const cliMain = fileURLToPath(new URL(`../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const self = fileURLToPath(import.meta.url)

async function memoryOf(url: string): Promise<{ rss: number; heap: number }> {
  const m = parseMetrics(await (await fetch(url.replace(/^ws/, 'http') + '/metrics')).text())
  return { rss: m.get('process_resident_memory_bytes') ?? NaN, heap: m.get('nodejs_heap_used_bytes') ?? NaN }
}

interface Twin {
  id: number
  key: KeyPair
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })
}

function ourSocket(url: string, t: Twin): Promise<WebSocket> {
  return openSocket(url, { authorization: `Bearer ${createToken(new Signer(t.key), { twin: t.id, session: 0 })}` })
}

function anchorSocket(url: string, id: number): Promise<WebSocket> {
  return openSocket(`${url}/?id=${id}`)
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve()
          ws.once('close', () => resolve())
          ws.close()
          setTimeout(() => ws.terminate(), 1000).unref()
        }),
    ),
  )
}

function envelope(from: Twin, to: Twin, sealer: Sealer, signer: Signer, kind: 'request' | 'response' = 'request'): Buffer {
  return sealEnvelope(
    { kind, id: randomBytes(16), from: from.id, fromSession: 0, to: to.id, toSession: 0, timestamp: Date.now(), ttl: 600_000, command: 'bench.echo', replyTo: kind === 'response' ? randomBytes(16) : null, stream: null, binary: false },
    PAYLOAD,
    to.key.publicKey,
    sealer,
    signer,
  )
}

/** An anchor frame of the same size as `like`, addressed to `to`. */
function anchorFrame(to: number, like: Buffer): Buffer {
  const f = Buffer.from(like)
  f.writeUInt32LE(to, 0)
  return f
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!
}

/** Bounces one frame between two sockets `n` times; returns sorted round trips in ms. */
async function pingPong(a: WebSocket, b: WebSocket, toB: Buffer, toA: Buffer, n: number): Promise<number[]> {
  b.on('message', () => b.send(toA))
  const out: number[] = []
  for (let i = 0; i < n + 100; i++) {
    const t0 = performance.now()
    await new Promise<void>((resolve) => {
      a.once('message', () => resolve())
      a.send(toB)
    })
    if (i >= 100) out.push(performance.now() - t0)
  }
  b.removeAllListeners('message')
  return out.sort((x, y) => x - y)
}

/** Senders blast `total` frames at one receiver with at most WINDOW in flight; returns messages/s. */
async function blast(senders: WebSocket[], receiver: WebSocket, frames: Buffer[][], total: number): Promise<number> {
  let received = 0
  let sent = 0
  let waiters: (() => void)[] = []
  const done = new Promise<void>((resolve) => {
    receiver.on('message', () => {
      received++
      if (waiters.length > 0 && sent - received < WINDOW / 2) {
        const w = waiters
        waiters = []
        for (const f of w) f()
      }
      if (received === total) resolve()
    })
  })
  const t0 = performance.now()
  await Promise.all(
    senders.map(async (ws, s) => {
      const pool = frames[s]!
      let i = 0
      while (sent < total) {
        if (sent - received >= WINDOW) {
          await new Promise<void>((resolve) => waiters.push(resolve))
          continue
        }
        ws.send(pool[i++ % pool.length]!)
        sent++
        if (i % 64 === 0) await new Promise((r) => setImmediate(r))
      }
    }),
  )
  await done
  const s = (performance.now() - t0) / 1000
  receiver.removeAllListeners('message')
  return total / s
}

// ---- the benchmark ----

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zos-bench-relay-'))
  const children: Child[] = []
  const sockets: WebSocket[] = []
  const peers: Peer[] = []
  try {
    const twins: Twin[] = Array.from({ length: MEMORY_PEERS + 10 }, (_, i) => ({ id: i + 1, key: generateKey() }))
    const twinsFile = join(dir, 'twins.json')
    await writeFile(twinsFile, JSON.stringify(twins.map((t) => ({ id: t.id, pk: t.key.publicKey.toString('hex'), account: t.key.address }))))
    const ours = await spawnServer([...tsx, cliMain, 'relay', 'serve', '--port', '0', '--twins', twinsFile, '--rate', '1000000000', '--burst', '1000000000', '--log-level', 'warn'])
    children.push(ours)
    const anchor = await spawnServer([...tsx, self, '--anchor-server'])
    children.push(anchor)
    const [a, b, ...rest] = twins as [Twin, Twin, ...Twin[]]
    const senders = rest.slice(0, SENDERS)

    // Memory first, on fresh processes: 1,000 authenticated peers.
    await new Promise((r) => setTimeout(r, 500))
    const memory: Record<string, { before: { rss: number; heap: number }; after: { rss: number; heap: number } }> = {}
    for (const [name, srv, open] of [
      ['ours', ours, (t: Twin) => ourSocket(ours.url, t)],
      ['anchor', anchor, (t: Twin) => anchorSocket(anchor.url, t.id)],
    ] as const) {
      const before = await memoryOf(srv.url)
      const opened: WebSocket[] = []
      for (let i = 0; i < MEMORY_PEERS; i += 100) opened.push(...(await Promise.all(twins.slice(i, i + 100).map((t) => open(t)))))
      await new Promise((r) => setTimeout(r, 1000))
      const after = await memoryOf(srv.url)
      memory[name] = { before, after }
      await closeAll(opened)
    }

    process.stderr.write('relay bench: memory done\n')
    // Round trips.
    const sealer = new Sealer()
    const req = envelope(a, b, sealer, new Signer(a.key))
    const rep = envelope(b, a, sealer, new Signer(b.key), 'response')
    const [oa, ob] = await Promise.all([ourSocket(ours.url, a), ourSocket(ours.url, b)])
    const [xa, xb] = await Promise.all([anchorSocket(anchor.url, a.id), anchorSocket(anchor.url, b.id)])
    sockets.push(oa, ob, xa, xb)
    const rttAnchor = await pingPong(xa, xb, anchorFrame(b.id, req), anchorFrame(a.id, rep), RTT_SAMPLES)
    const rttRaw = await pingPong(oa, ob, req, rep, RTT_SAMPLES)
    await closeAll([oa, ob])

    const directory = new StaticDirectory(twins.map((t) => ({ id: t.id, account: t.key.address, pk: t.key.publicKey, relays: [ours.url] })))
    const pa = await connect({ twinId: a.id, key: a.key, directory, relays: [ours.url] })
    const pb = await connect({ twinId: b.id, key: b.key, directory, relays: [ours.url], handlers: { 'bench.echo': (p) => p }, maxConcurrentHandlers: 256 })
    peers.push(pa, pb)
    const payload = JSON.parse(PAYLOAD.toString()) as unknown
    for (let i = 0; i < 200; i++) await pa.request(b.id, 'bench.echo', payload)
    const rttPeer: number[] = []
    for (let i = 0; i < RTT_SAMPLES; i++) {
      const t0 = performance.now()
      await pa.request(b.id, 'bench.echo', payload)
      rttPeer.push(performance.now() - t0)
    }
    rttPeer.sort((x, y) => x - y)

    process.stderr.write('relay bench: round trips done\n')
    // Full peers under load: 64 requests in flight.
    let done = 0
    const deadline = performance.now() + PEER_SECONDS * 1000
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (performance.now() < deadline) {
          await pa.request(b.id, 'bench.echo', payload)
          done++
        }
      }),
    )
    const peerMsgs = (2 * done) / ((performance.now() - t0) / 1000)
    await Promise.all(peers.splice(0).map((p) => p.close()))

    process.stderr.write('relay bench: full-peer load done\n')
    // Raw forwarding rate.
    const sendSocks = await Promise.all(senders.map((s) => ourSocket(ours.url, s)))
    const recv = await ourSocket(ours.url, b)
    sockets.push(...sendSocks, recv)
    const pools = senders.map((s) => Array.from({ length: 250 }, () => envelope(s, b, sealer, new Signer(s.key))))
    await blast(sendSocks, recv, pools, Math.min(20_000, RAW_MESSAGES)) // warm-up
    const rateOurs = await blast(sendSocks, recv, pools, RAW_MESSAGES)
    const xSend = await Promise.all(senders.map((s) => anchorSocket(anchor.url, s.id)))
    const xRecv = await anchorSocket(anchor.url, 999_999)
    sockets.push(...xSend, xRecv)
    const xPools = pools.map((p) => p.map((f) => anchorFrame(999_999, f)))
    await blast(xSend, xRecv, xPools, Math.min(20_000, RAW_MESSAGES))
    const rateAnchor = await blast(xSend, xRecv, xPools, RAW_MESSAGES)

    // Report.
    const mb = (n: number) => n / 1024 / 1024
    const rows: [string, string, string, string, string][] = []
    const ratio = (x: number, y: number) => (y > 0 && Number.isFinite(x / y) ? (x / y).toFixed(2) : '-')
    const p50 = (s: number[]) => percentile(s, 50)
    rows.push(['rtt p50, full peers (ms)', p50(rttPeer).toFixed(3), p50(rttAnchor).toFixed(3), ratio(p50(rttPeer), p50(rttAnchor)), `${ratio(p50(rttPeer), TARGET.rttMs)} of <= ${TARGET.rttMs}`])
    rows.push(['rtt p99, full peers (ms)', percentile(rttPeer, 99).toFixed(3), percentile(rttAnchor, 99).toFixed(3), ratio(percentile(rttPeer, 99), percentile(rttAnchor, 99)), ''])
    rows.push(['rtt p50, raw frames (ms)', p50(rttRaw).toFixed(3), p50(rttAnchor).toFixed(3), ratio(p50(rttRaw), p50(rttAnchor)), `${ratio(p50(rttRaw), TARGET.rttMs)} of <= ${TARGET.rttMs}`])
    rows.push(['msgs/s, raw frames, 1 relay', rateOurs.toFixed(0), rateAnchor.toFixed(0), ratio(rateOurs, rateAnchor), `${ratio(rateOurs, TARGET.msgsPerSec)} of >= ${TARGET.msgsPerSec}`])
    rows.push(['msgs/s, full peers (2 peers)', peerMsgs.toFixed(0), rateAnchor.toFixed(0), ratio(peerMsgs, rateAnchor), `${ratio(peerMsgs, TARGET.msgsPerSec)} of >= ${TARGET.msgsPerSec}`])
    const mo = memory.ours!
    const ma = memory.anchor!
    rows.push(['relay RSS idle (MB)', mb(mo.before.rss).toFixed(1), mb(ma.before.rss).toFixed(1), ratio(mo.before.rss, ma.before.rss), ''])
    rows.push([`relay RSS with ${MEMORY_PEERS} peers (MB)`, mb(mo.after.rss).toFixed(1), mb(ma.after.rss).toFixed(1), ratio(mo.after.rss, ma.after.rss), `${ratio(mb(mo.after.rss), TARGET.memoryMb)} of < ${TARGET.memoryMb}`])
    rows.push(['RSS per peer (KiB)', ((mo.after.rss - mo.before.rss) / MEMORY_PEERS / 1024).toFixed(1), ((ma.after.rss - ma.before.rss) / MEMORY_PEERS / 1024).toFixed(1), ratio(mo.after.rss - mo.before.rss, ma.after.rss - ma.before.rss), ''])
    rows.push(['heap per peer (KiB)', ((mo.after.heap - mo.before.heap) / MEMORY_PEERS / 1024).toFixed(1), ((ma.after.heap - ma.before.heap) / MEMORY_PEERS / 1024).toFixed(1), ratio(mo.after.heap - mo.before.heap, ma.after.heap - ma.before.heap), ''])
    process.stdout.write(
      `relay: ${RTT_SAMPLES} round trips, ${RAW_MESSAGES} raw messages from ${SENDERS} senders (window ${WINDOW}), ${PEER_SECONDS} s of full-peer load, ${MEMORY_PEERS} peers for memory; payload ${PAYLOAD.length} B (envelope ${req.length} B)\n`,
    )
    const header: [string, string, string, string, string] = ['measure', 'zos relay', 'bare ws', 'vs bare ws', 'vs target']
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    for (const r of [header, ...rows]) process.stdout.write(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ') + '\n')
  } finally {
    await Promise.all(peers.map((p) => p.close()))
    await closeAll(sockets)
    for (const c of children) await c.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv.includes('--anchor-server')) await anchorServer()
else await main()
