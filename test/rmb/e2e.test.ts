// The relay with a real ledger (anvil) and real processes: two relays started with `zos relay serve --ledger`,
// twins registered on the ledger, `zos rmb serve` and `zos rmb call` talking across the two relays, and every
// kind of bad message dropped and counted on the way.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKey, saveKey, type KeyPair } from '../../src/core/keys.js'
import { openLedger, startLedger, type Hex, type Ledger, type LedgerServer } from '../../src/ledger/index.js'
import { Sealer, Signer } from '../../src/rmb/crypto.js'
import { decodeEnvelope, sealEnvelope } from '../../src/rmb/envelope.js'
import { connect, ledgerDirectory, parseMetrics, type Peer } from '../../src/rmb/index.js'
import { rawClient, until, type TestTwin } from './helpers.js'

// Compiled: dist/test/rmb → dist/src/cli/main.js. From source (tsx): test/rmb → src/cli/main.ts.
const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

interface Proc {
  child: ChildProcess
  firstLine: string
  stderr: () => string
  stop(): Promise<number | null>
}

const procs: Proc[] = []

/** Starts `zos ARGS` and waits for its first stdout line. */
async function zos(args: string[]): Promise<Proc> {
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  const firstLine = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const i = out.indexOf('\n')
      if (i >= 0) resolve(out.slice(0, i))
    })
    void exited.then((c) => reject(new Error(`zos ${args.join(' ')} exited with ${c}: ${err}`)))
  })
  const p: Proc = {
    child,
    firstLine,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5000)
      const c = await exited
      clearTimeout(t)
      return c
    },
  }
  procs.push(p)
  return p
}

/** Runs `zos ARGS` to completion. */
async function zosRun(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const status = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  return { status, stdout, stderr }
}

let dir: string
let srv: LedgerServer
let r1: string
let r2: string
let relayProcs: Proc[] = []
const clients: Ledger[] = []
const twins: Record<string, TestTwin & { keyFile: string }> = {}

async function registerTwin(name: string, relay: string): Promise<TestTwin & { keyFile: string }> {
  const key = generateKey()
  const l = await openLedger({ ledgerDir: dir, privateKey: `0x${key.privateKey.toString('hex')}` as Hex, receiptPollMs: 20 })
  clients.push(l)
  const tw = await l.twins.create({ relay })
  const keyFile = join(dir, `${name}.json`)
  await saveKey(keyFile, key)
  const t = { id: tw.id, key, keyFile, info: { id: tw.id, account: tw.account, pk: key.publicKey, relays: [relay] } }
  twins[name] = t
  return t
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'zos-rmb-e2e-'))
  srv = await startLedger({ dataDir: dir, port: 0 })
  const [a, b] = await Promise.all([
    zos(['relay', 'serve', '--port', '0', '--ledger', dir, '--log-level', 'warn']),
    zos(['relay', 'serve', '--port', '0', '--ledger', dir, '--log-level', 'warn']),
  ])
  r1 = a.firstLine
  r2 = b.firstLine
  relayProcs = [a, b]
  assert.match(r1, /^ws:\/\/127\.0\.0\.1:\d+$/)
  await registerTwin('alice', r1)
  await registerTwin('bob', r2)
  await registerTwin('carol', r2)
  await registerTwin('mallory', r1)
})

after(async () => {
  for (const p of procs.reverse()) await p.stop()
  for (const c of clients) await c.close()
  await srv?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function metrics(relay: string): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(relay.replace(/^ws/, 'http') + '/metrics')).text())
}

test('e2e - two twins on different relays talk securely through the CLI', async () => {
  const { alice, bob } = twins as Record<string, TestTwin & { keyFile: string }>
  const serveBob = await zos(['rmb', 'serve', '--key', bob!.keyFile, '--ledger', dir])
  assert.equal(serveBob.firstLine, `twin ${bob!.id} serving on ${r2}`)
  const serveAlice = await zos(['rmb', 'serve', '--key', alice!.keyFile, '--ledger', dir])
  const call = await zosRun(['rmb', 'call', String(bob!.id), 'rmb.echo', '{"hello":"bob","n":[1,2]}', '--key', alice!.keyFile, '--ledger', dir, '--json'])
  assert.equal(call.status, 0, call.stderr)
  assert.deepEqual(JSON.parse(call.stdout), { twin: bob!.id, command: 'rmb.echo', reply: { hello: 'bob', n: [1, 2] } })
  const back = await zosRun(['rmb', 'call', String(alice!.id), 'rmb.ping', '--key', bob!.keyFile, '--ledger', dir])
  assert.equal(back.status, 0, back.stderr)
  const ping = JSON.parse(back.stdout) as { twin: number; from: number }
  assert.equal(ping.twin, alice!.id)
  assert.equal(ping.from, bob!.id)
  const unknownCommand = await zosRun(['rmb', 'call', String(bob!.id), 'zos.nothing', '--key', alice!.keyFile, '--ledger', dir])
  assert.equal(unknownCommand.status, 33)
  assert.match(unknownCommand.stderr, /has no handler for zos.nothing/)
  assert.equal(await serveBob.stop(), 0)
  assert.equal(await serveAlice.stop(), 0)
  assert.match(serveBob.stderr(), new RegExp(`rmb.echo from twin ${alice!.id}\\n`))
  // Both directions crossed the federation link between the relays.
  const m1 = await metrics(r1)
  const m2 = await metrics(r2)
  assert.ok((m1.get('zos_relay_federation_total{result="ok"}') ?? 0) >= 2)
  assert.ok((m2.get('zos_relay_federation_total{result="ok"}') ?? 0) >= 2)
})

test('e2e - calls to an unknown twin, from a key without a twin, or while the twin is offline fail with their codes', async () => {
  const { alice, bob } = twins as Record<string, TestTwin & { keyFile: string }>
  const unknown = await zosRun(['rmb', 'call', '99999', 'rmb.ping', '--key', alice!.keyFile, '--ledger', dir, '--json'])
  assert.equal(unknown.status, 4)
  assert.equal((JSON.parse(unknown.stdout) as { error: { code: string } }).error.code, 'NOT_FOUND')
  assert.match(unknown.stderr, /twin 99999 is not on the ledger/)
  const stranger = join(dir, 'stranger.json')
  await saveKey(stranger, generateKey())
  const noTwin = await zosRun(['rmb', 'call', String(bob!.id), 'rmb.ping', '--key', stranger, '--ledger', dir])
  assert.equal(noTwin.status, 20)
  assert.match(noTwin.stderr, /has no twin/)
  const offline = await zosRun(['rmb', 'call', String(bob!.id), 'rmb.ping', '--key', alice!.keyFile, '--ledger', dir, '--timeout', '1'])
  assert.equal(offline.status, 15)
  assert.match(offline.stderr, /no reply from twin \d+ to rmb.ping within 1000 ms/)
  const badJson = await zosRun(['rmb', 'call', String(bob!.id), 'rmb.ping', '{x', '--key', alice!.keyFile, '--ledger', dir])
  assert.equal(badJson.status, 2)
})

test('e2e - forged, replayed, tampered, unknown-twin, spoofed and expired messages are dropped and counted', async () => {
  const { alice, carol, mallory } = twins as Record<string, TestTwin & { keyFile: string }>
  const ledger = await openLedger({ ledgerDir: dir })
  clients.push(ledger)
  const calls: unknown[] = []
  const peer: Peer = await connect({
    twinId: carol!.id,
    key: carol!.key,
    directory: ledgerDirectory(ledger),
    handlers: { 'test.echo': (p, ctx) => (calls.push([p, ctx.twinId]), p) },
  })
  try {
    const sealer = new Sealer()
    const build = (from: number, signWith: KeyPair, over: { timestamp?: number } = {}) =>
      sealEnvelope(
        { kind: 'request', id: randomBytes(16), from, fromSession: 0, to: carol!.id, toSession: 0, timestamp: over.timestamp ?? Date.now(), ttl: 20_000, command: 'test.echo', replyTo: null, stream: null, binary: false },
        Buffer.from('"hi"'),
        carol!.key.publicKey,
        sealer,
        new Signer(signWith),
      )
    // Through alice's own connection to r1, forwarded to r2 by federation.
    const a = await rawClient({ after: () => undefined }, r1, alice!)
    const valid = build(alice!.id, alice!.key)
    a.ws.send(valid)
    await until(() => calls.length === 1, 10_000, 'the valid call')
    a.ws.send(valid) // replayed
    const tampered = build(alice!.id, alice!.key)
    tampered[decodeEnvelope(tampered).headerEnd + 40]! ^= 0x10
    a.ws.send(tampered)
    // Mallory cannot send as alice through her own connection: the relay refuses it.
    const m = await rawClient({ after: () => undefined }, r1, mallory!)
    m.ws.send(build(alice!.id, mallory!.key))
    await until(() => m.notices.length === 1, 5000, 'spoofing notice')
    assert.match(m.notices[0]!.message, /cannot send as twin/)
    // Posted straight to carol's relay (as a rogue relay would): forged, unknown twin, expired.
    const post = (body: Buffer) => fetch(r2.replace(/^ws/, 'http') + '/federation', { method: 'POST', body })
    assert.equal((await post(build(alice!.id, mallory!.key))).status, 202)
    const ghost = generateKey()
    assert.equal((await post(build(424_242, ghost))).status, 202)
    const expiredBefore = (await metrics(r2)).get('zos_relay_drops_total{reason="expired"}') ?? 0
    const expired = await post(build(alice!.id, alice!.key, { timestamp: Date.now() - 60_000 }))
    assert.equal(expired.status, 410)
    // (the count can also include the earlier test's call to offline bob expiring in r2's queue)
    assert.ok(((await metrics(r2)).get('zos_relay_drops_total{reason="expired"}') ?? 0) >= expiredBefore + 1)
    await until(() => Object.values(peer.stats().drops).reduce((x, y) => x + y, 0) >= 4, 10_000, 'drops')
    assert.deepEqual(peer.stats().drops, { replayed: 1, tampered: 1, forged: 1, 'unknown-twin': 1 })
    assert.deepEqual(calls, [['hi', alice!.id]], 'only the valid message reached the handler')
    assert.equal((await metrics(r1)).get('zos_relay_drops_total{reason="spoofed"}'), 1)
    a.ws.close()
    m.ws.close()
  } finally {
    await peer.close()
  }
})

test('e2e - relays that federated stop cleanly on SIGTERM', async () => {
  for (const p of relayProcs) {
    const t0 = Date.now()
    assert.equal(await p.stop(), 0, p.stderr())
    assert.ok(Date.now() - t0 < 4000, 'stopped without needing SIGKILL')
  }
})
