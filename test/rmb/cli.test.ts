// `zos relay serve` as a user runs it, without a ledger (--twins FILE): a real process, real signals.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseMetrics } from '../../src/rmb/metrics.js'
import { connect } from '../../src/rmb/peer.js'
import { tempDir } from '../helpers/tmp.js'
import { directoryOf, makeTwins } from './helpers.js'

const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

test('cli relay - serve prints its URL, routes twins from a --twins file, serves metrics, stops on SIGTERM', async (t) => {
  const dir = await tempDir(t)
  const twins = makeTwins(2)
  const file = join(dir, 'twins.json')
  await writeFile(file, JSON.stringify(twins.map((tw) => ({ id: tw.id, pk: tw.key.publicKey.toString('hex') }))))
  const child = spawn(process.execPath, [...nodeArgs, 'relay', 'serve', '--port', '0', '--twins', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  const info = await new Promise<{ url: string; advertise: string[]; metrics: string }>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      try {
        resolve(JSON.parse(out) as { url: string; advertise: string[]; metrics: string })
      } catch {
        // not complete yet
      }
    })
    void closed.then((c) => reject(new Error(`relay exited with ${c}: ${stderr}`)))
  })
  assert.match(info.url, /^ws:\/\/127\.0\.0\.1:\d+$/)
  const dirOf = directoryOf(twins)
  const [a, b] = await Promise.all(twins.map((tw) => connect({ twinId: tw.id, key: tw.key, directory: dirOf, relays: [info.url], handlers: { 'test.echo': (p) => p } })))
  try {
    assert.deepEqual(await a!.request(b!.twinId, 'test.echo', { ok: 1 }), { ok: 1 })
  } finally {
    await a!.close()
    await b!.close()
  }
  const m = parseMetrics(await (await fetch(info.metrics)).text())
  assert.equal(m.get('zos_relay_messages_total{result="delivered"}'), 2)
  assert.equal(((await (await fetch(info.url.replace('ws', 'http') + '/healthz')).json()) as { ok: boolean }).ok, true)
  child.kill('SIGTERM')
  assert.equal(await closed, 0)
  assert.match(stderr, /relay stopped/)
})

test('cli relay - bad arguments exit with INVALID_ARGUMENT', async (t) => {
  const dir = await tempDir(t)
  for (const args of [
    ['--port', 'x'],
    ['--port', '70000'],
    ['--rate', '-1'],
    ['--log-level', 'loud'],
    ['--twins', join(dir, 'missing.json')],
    ['--twins', 'a.json', '--ledger', dir],
    ['--advertise', 'http://nope'],
  ]) {
    const r = spawnSync(process.execPath, [...nodeArgs, 'relay', 'serve', ...args], { encoding: 'utf8' })
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /^zos: /)
  }
})
