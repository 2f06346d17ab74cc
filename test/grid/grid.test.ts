// The local grid's building blocks on their own: its state files (validated, written atomically), the grid
// context's precedence, process records that survive pid reuse, and the private network (real bridge, netns
// and veth, in names of the test's own, removed at the end).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '../../src/core/exec.js'
import { ZosError } from '../../src/core/errors.js'
import { applyGridContext, clearCurrentGrid, currentGrid, setCurrentGrid } from '../../src/grid/context.js'
import { bridgeIp, ensureBridge, ensureNodeNet, netnsList, nodeNet, pickSubnet, removeBridge, removeNodeNet } from '../../src/grid/net.js'
import { isAlive, startTimeOf, stopProc, withGridLock } from '../../src/grid/procs.js'
import { gridIdOf, readRun, readSpec, writeRun } from '../../src/grid/state.js'

async function tempHome(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'zos-grid-unit-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

test('grid state - a damaged grid.json is a clear error; run.json is written atomically', async (t) => {
  const dir = await tempHome(t)
  assert.equal(await readSpec(dir), undefined)
  await writeFile(join(dir, 'grid.json'), JSON.stringify({ version: 1, id: 'zz' }))
  await assert.rejects(readSpec(dir), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_STATE' && /grid\.json is damaged/.test(err.message))
  await writeRun(dir, { nodes: { '1': { pid: 42, startTime: 7, log: '/x' } } })
  assert.deepEqual(await readRun(dir), { nodes: { '1': { pid: 42, startTime: 7, log: '/x' } } })
  assert.deepEqual((await readdir(dir)).sort(), ['grid.json', 'run.json'], 'no temp file left behind')
  assert.match(gridIdOf(dir), /^[0-9a-f]{6}$/)
  assert.equal(gridIdOf(dir), gridIdOf(dir + '/'))
})

test('grid state - overlapping writes of run.json land in the order they were made', async (t) => {
  const dir = await tempHome(t)
  // Like `grid up` starting its nodes in parallel: each start records itself in the same object and writes it.
  const run: { nodes: Record<string, { pid: number; startTime: number; log: string }> } = { nodes: {} }
  const writes = []
  for (let i = 1; i <= 30; i++) {
    run.nodes[String(i)] = { pid: 1000 + i, startTime: i, log: `/logs/${i}` }
    writes.push(writeRun(dir, run))
  }
  await Promise.all(writes)
  assert.equal(Object.keys((await readRun(dir)).nodes).length, 30, 'the last write wins, with every node in it')
  assert.deepEqual(await readdir(dir), ['run.json'], 'no temp file left behind')
})

test('grid context - the current grid fills ZOS_LEDGER, ZOS_KEY and ZOS_HUB, never over a variable already set', async (t) => {
  const home = await tempHome(t)
  const saved = process.env.ZOS_HOME
  process.env.ZOS_HOME = home
  t.after(() => {
    if (saved === undefined) delete process.env.ZOS_HOME
    else process.env.ZOS_HOME = saved
  })
  const dir = join(home, 'g')
  assert.equal(currentGrid(), undefined)
  await setCurrentGrid(dir)
  assert.equal(currentGrid(), undefined, 'a context whose grid.json is missing is ignored')
  await (await import('node:fs/promises')).mkdir(dir)
  await writeFile(join(dir, 'grid.json'), JSON.stringify({ hostIp: '10.77.9.1', ports: { hub: 8123 }, userKey: join(dir, 'keys/user.json') }))
  const env: NodeJS.ProcessEnv = { ZOS_HUB: 'http://elsewhere:1' }
  const got = applyGridContext(env)
  assert.equal(got?.dir, dir)
  assert.equal(env.ZOS_LEDGER, join(dir, 'ledger'))
  assert.equal(env.ZOS_KEY, join(dir, 'keys/user.json'))
  assert.equal(env.ZOS_HUB, 'http://elsewhere:1', 'an explicit variable wins')
  await clearCurrentGrid(join(home, 'other'))
  assert.ok(currentGrid(), 'clearing another grid keeps the context')
  await clearCurrentGrid(dir)
  assert.equal(currentGrid(), undefined)
})

test('grid procs - a record is alive only for the same pid and start time; stopProc stops it', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  const pid = child.pid!
  const startTime = startTimeOf(pid)!
  assert.ok(startTime > 0)
  assert.equal(isAlive({ pid, startTime, log: '' }), true)
  assert.equal(isAlive({ pid, startTime: startTime + 1, log: '' }), false, 'a reused pid is not ours')
  assert.equal(isAlive(undefined), false)
  assert.equal(await stopProc({ pid, startTime: startTime + 1, log: '' }), false, 'never signals a process it did not start')
  assert.equal(await stopProc({ pid, startTime, log: '' }, 5000), true)
  assert.equal(isAlive({ pid, startTime, log: '' }), false)
})

test('grid lock - a second command on the same grid is refused while the first runs; a stale lock is taken over', async (t) => {
  const dir = await tempHome(t)
  let inner: unknown
  await withGridLock(dir, async () => {
    inner = await withGridLock(dir, async () => 'ran').catch((err: unknown) => err)
  })
  assert.ok(ZosError.is(inner) && inner.code === 'EXISTS' && /another `zos grid` command/.test(inner.message), String(inner))
  assert.deepEqual(await readdir(dir), [], 'the lock is released')
  await writeFile(join(dir, '.lock'), JSON.stringify({ pid: 999_999_999, startTime: 1, log: '' }))
  assert.equal(await withGridLock(dir, async () => 'ran'), 'ran')
})

const notRoot = process.getuid?.() !== 0 ? 'needs root (bridges and network namespaces)' : false

test('grid net - bridge, namespace and veth come up idempotently, reach each other, and go away', { skip: notRoot }, async (t) => {
  const id = (0xe00000 + (process.pid & 0xfffff)).toString(16)
  const net = { bridge: `zosbr${id}`, subnet: await pickSubnet(id) }
  const node = nodeNet(id, net, 1)
  t.after(async () => {
    await removeNodeNet(node)
    await removeBridge(net)
  })
  await ensureBridge(net)
  await ensureBridge(net)
  await ensureNodeNet(net, node)
  await ensureNodeNet(net, node)
  assert.ok((await netnsList()).includes(node.netns))
  // The node reaches the bridge address, where the grid's services listen.
  const server = createServer((sock) => sock.end('hello'))
  await new Promise<void>((resolve) => server.listen(0, bridgeIp(net), resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as AddressInfo).port
  const dial = await exec('nsenter', [`--net=/run/netns/${node.netns}`, '--', 'bash', '-c', `exec 3<>/dev/tcp/${bridgeIp(net)}/${port}; cat <&3`])
  assert.equal(dial.stdout, 'hello', `node reaches the bridge: ${dial.stderr}`)
  assert.equal(await pickSubnet(id), net.subnet, 'the same grid finds its bridge\'s subnet again')
  assert.notEqual(await pickSubnet('ffffff'), net.subnet, 'a subnet in use is not picked for another grid')
  await removeNodeNet(node)
  await removeBridge(net)
  assert.ok(!(await netnsList()).includes(node.netns))
  assert.notEqual((await exec('ip', ['link', 'show', 'dev', net.bridge])).code, 0)
})
