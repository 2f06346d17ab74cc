// The ledger from the command line, as a user runs it: `zos ledger up` in the foreground, a twin, a farm, a
// node and a contract created with the CLI, billed, cancelled, the ledger restarted and everything read back.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tmp.js'

// Compiled: dist/test/ledger → dist/src/cli/main.js. From source (tsx): test/ledger → src/cli/main.ts.
const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

interface Run {
  status: number | null
  stdout: string
  stderr: string
  json: unknown
}

function zos(home: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, [...nodeArgs, ...args], { encoding: 'utf8', env: { ...process.env, ZOS_HOME: home } })
  let json: unknown = null
  try {
    json = JSON.parse(r.stdout)
  } catch {
    // human output
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json }
}

function ok(r: Run): Record<string, unknown> {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`)
  return r.json as Record<string, unknown>
}

async function ledgerUp(home: string, data: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [...nodeArgs, 'ledger', 'up', '--port', '0', '--data', data], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ZOS_HOME: home } })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\n/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', (code) => reject(new Error(`ledger up exited with ${code}: ${stderr}`)))
  })
  return { child, url, stderr: () => stderr }
}

async function stopByPid(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  return exited
}

test('cli ledger - up, twin, farm, node, contract, bill, cancel, restart and read back; coded errors', async (t) => {
  const home = await tempDir(t)
  const data = join(home, 'ledger')
  let up = await ledgerUp(home, data)
  t.after(() => stopByPid(up.child))

  const user = join(home, 'user.json')
  const nodeKey = join(home, 'node.json')
  ok(zos(home, 'key', 'new', '-o', user, '--json'))
  ok(zos(home, 'key', 'new', '-o', nodeKey, '--json'))
  const L = ['--ledger', data, '--json']

  const minted = ok(zos(home, 'token', 'faucet', '100', '--key', user, ...L))
  assert.equal(minted.balance, '1000000000')
  const twin = ok(zos(home, 'twin', 'create', '--relay', 'relay.local', '--key', user, ...L))
  assert.equal(twin.id, 1)
  const farm = ok(zos(home, 'farm', 'create', 'cli-farm', '--ip', '185.30.0.10/24=185.30.0.1', '--key', user, ...L))
  assert.equal(farm.id, 1)
  assert.equal((farm.publicIps as unknown[]).length, 1)
  ok(zos(home, 'twin', 'create', '--key', nodeKey, ...L))
  const node = ok(zos(home, 'node', 'register', '--farm', '1', '--cru', '4', '--mru', '8G', '--sru', '500G', '--city', 'Ghent', '--key', nodeKey, ...L))
  assert.equal(node.id, 1)
  const nodes = zos(home, 'node', 'list', ...L).json as { id: number; resources: { mru: number } }[]
  assert.deepEqual(nodes.map((n) => [n.id, n.resources.mru]), [[1, 8 * 2 ** 30]])

  const hash = `0x${'cd'.repeat(32)}`
  const c = ok(zos(home, 'contract', 'create', 'node', '--node', '1', '--hash', hash, '--public-ips', '1', '--key', user, ...L))
  assert.equal(c.id, 1)
  assert.equal(c.state, 'Created')
  assert.equal(c.deploymentHash, hash)
  assert.equal((c.ips as unknown[]).length, 1)
  const billed = zos(home, 'contract', 'bill', '1', '--key', nodeKey, ...L)
  assert.equal((ok(billed) as unknown as { state: string }[])[0]!.state, 'Created')

  const stolen = zos(home, 'contract', 'cancel', '1', '--key', nodeKey, ...L)
  assert.equal(stolen.status, 20)
  assert.equal((stolen.json as { error: { code: string } }).error.code, 'NOT_OWNER')
  assert.match(stolen.stderr, /does not own contract 1/)
  const cancelled = ok(zos(home, 'contract', 'cancel', '1', '--key', user, ...L))
  assert.equal(cancelled.state, 'Deleted')
  assert.equal(cancelled.cause, 'CanceledByUser')

  // the council approves a release with the development council keys
  const propose = ok(zos(home, 'council', 'propose', 'release', '--network', 'dev', '--zos-version', '1.0.0', '--flist-hash', `0x${'ee'.repeat(32)}`, '--safe-to-upgrade', '--key', join(data, 'keys', 'council-1.json'), ...L))
  assert.equal(propose.executed, false)
  const approved = ok(zos(home, 'council', 'approve', '1', '--key', join(data, 'keys', 'council-2.json'), ...L))
  assert.equal(approved.executed, true)

  // restart: stop the foreground ledger with SIGTERM, start it again, read everything back
  assert.equal(await stopByPid(up.child), 0)
  assert.match(up.stderr(), /state saved/)
  up = await ledgerUp(home, data)
  assert.doesNotMatch(up.stderr(), /deployed and up/)
  const again = ok(zos(home, 'contract', 'show', '1', ...L))
  assert.equal(again.state, 'Deleted')
  assert.equal(again.deploymentHash, hash)
  assert.equal(ok(zos(home, 'twin', 'show', '1', ...L)).relay, 'relay.local')
  assert.equal(ok(zos(home, 'farm', 'show', 'cli-farm', ...L)).id, 1)
  assert.equal(ok(zos(home, 'node', 'show', '1', ...L)).farmId, 1)
  assert.equal(ok(zos(home, 'council', 'release', ...L)).version, '1.0.0')
  const status = ok(zos(home, 'ledger', 'status', ...L))
  assert.deepEqual(status.counts, { twins: 2, farms: 1, nodes: 1, contracts: 1 })
  assert.equal(status.rpcUrl, up.url)
  const events = zos(home, 'ledger', 'events', '--type', 'ContractCreated', '--type', 'ContractCanceled', ...L).json as { type: string }[]
  assert.deepEqual(events.map((e) => e.type), ['ContractCreated', 'ContractCanceled'])
  const human = zos(home, 'contract', 'list', '--key', user, '--ledger', data)
  assert.equal(human.status, 0, human.stderr)
  assert.match(human.stdout, /^ID\s+KIND\s+STATE/)
  assert.match(human.stdout, /Deleted\(CanceledByUser\)/)

  // malformed input: exit 2 before anything is sent; unknown ids: NOT_FOUND
  const bad = zos(home, 'contract', 'show', 'abc', ...L)
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /contract id/)
  const missing = zos(home, 'contract', 'show', '42', ...L)
  assert.equal(missing.status, 4)
  assert.equal((missing.json as { error: { code: string } }).error.code, 'NOT_FOUND')
  const noLedger = zos(home, 'twin', 'show', '1', '--ledger', join(home, 'nowhere'), '--json')
  assert.equal(noLedger.status, 4)
  assert.match(noLedger.stderr, /zos ledger up/)
})
