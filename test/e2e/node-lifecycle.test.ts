// End to end, with a real anvil ledger, relay, store, FUSE and runc, driven from the CLI like a user: deploy a
// container that writes to its volume, read its result and log, update it (version + 1), restart the node
// agent (the container keeps running), "reboot" (everything stopped and unmounted: the agent brings it back,
// the volume kept its data), kill the container process (restarted), check usage reports and billing on the
// ledger, cancel the contract (everything removed: mounts, overlay dirs, disks, cgroups).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { loadKey } from '../../src/core/keys.js'
import { RuncRuntime } from '../../src/node/runtime/runc.js'
import { containerId } from '../../src/node/primitives/services.js'
import { NodePaths, nodeTag } from '../../src/node/storage/paths.js'
import { mountsUnder } from '../../src/node/storage/mounts.js'
import type { Deployment } from '../../src/node/types/index.js'
import { cannotRun, loopsUnder, until } from '../node/helpers.js'
import { startGrid } from './grid.js'

const MIB = 2 ** 20
const skip = await cannotRun()

test('e2e node - deploy, inspect, update, agent restart, reboot, crash restart, usage, billing, cancel', { skip, timeout: 300_000 }, async (t) => {
  const grid = await startGrid(t)
  const state = join(grid.dir, 'node1')
  const extra = ['--bill-interval', '2', '--report-interval', '2']
  let node = await grid.startNode(state, extra)
  const alice = await grid.user()
  const auth = ['--ledger', grid.ledger.dir, '--key', alice.keyFile]
  const json = <T>(r: { code: number; stdout: string; stderr: string }): T => {
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout) as T
  }

  // The node registered its capacity and reported its uptime.
  const registered = await alice.ledger.nodes.get(node.nodeId)
  assert.deepEqual(registered.resources, { cru: 2, mru: 4 * 2 ** 30, sru: 20 * 2 ** 30, hru: 0 })
  assert.equal(registered.farmId, grid.farmId)
  assert.ok(registered.lastUptimeReport > 0, 'an uptime report')
  assert.equal((await alice.ledger.twins.get(node.twinId)).relay, grid.relayUrl)

  // Deploy from the CLI.
  const script = `echo "$GREETING boot"; date >> /data/boots; while true; do sleep 1; done`
  const deployed = json<{ contract: number; node: number; deployment: Deployment }>(
    await grid.cli(['deploy', 'container', '--node', String(node.nodeId), '--flist', grid.flist.fl, '--cpu', '1', '--memory', '128M', '--disk', '256M', '--volume', '32M:/data', '--env', 'GREETING=hello', '--entrypoint', `/bin/sh -c '${script}'`, ...auth, '--json']),
  )
  const contract = deployed.contract
  assert.deepEqual(deployed.deployment.workloads.map((w) => [w.name, w.result?.state]), [['vm_vol1', 'ok'], ['vm', 'ok']])
  const wid = `${alice.twinId}-${contract}-vm`
  const paths = new NodePaths(state)
  const tag = nodeTag((await loadKey(paths.keyFile)).address)
  const cid = containerId(tag, wid)
  const runtime = new RuncRuntime(paths.runcRoot)
  const boots = async (): Promise<number> => (await readFile(join(paths.volumeMount(`${alice.twinId}-${contract}-vm_vol1`), 'boots'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length

  // Inspect: show and logs.
  const shown = json<Deployment>(await grid.cli(['deployment', 'show', String(contract), ...auth, '--json']))
  assert.equal(shown.version, 0)
  const human = await grid.cli(['deployment', 'show', String(contract), ...auth])
  assert.match(human.stdout, /vm\s+zmachine\s+0\s+ok/)
  await until(async () => (await alice.client.logs(contract, 'vm')).log.includes('hello boot'), 30_000, 'the first log line')
  assert.match((await grid.cli(['deployment', 'logs', String(contract), ...auth])).stdout, /hello boot/)
  await until(async () => (await boots()) === 1, 10_000, 'the first boot on the volume')
  const listed = json<{ contractId: number; state: string }[]>(await grid.cli(['deployment', 'list', ...auth, '--json']))
  assert.deepEqual(listed.map((l) => [l.contractId, l.state]), [[contract, 'Created']])

  // The node reported the contract's usage and bills it.
  await until(async () => (await alice.ledger.billing.record(contract)).used.mru === 128 * MIB, 30_000, 'usage report')
  const used = (await alice.ledger.billing.record(contract)).used
  assert.deepEqual(used, { cru: 1, mru: 128 * MIB, sru: 32 * MIB + 256 * MIB, hru: 0 })
  await until(async () => (await alice.ledger.billing.record(contract)).lastBilled > 0, 30_000, 'a bill')

  // Update: more memory, a new greeting (version + 1).
  const updated = json<Deployment>(await grid.cli(['deployment', 'update', String(contract), '--memory', '192M', '--env', 'GREETING=again', '--add-volume', '16M:/extra', ...auth, '--json']))
  assert.equal(updated.version, 1)
  assert.deepEqual(updated.workloads.map((w) => [w.name, w.version, w.result?.state]), [['vm_vol2', 1, 'ok'], ['vm_vol1', 0, 'ok'], ['vm', 1, 'ok']])
  await until(async () => (await alice.client.logs(contract, 'vm')).log.includes('again boot'), 30_000, 'the updated container')
  await until(async () => (await boots()) === 2, 10_000, 'the second boot on the volume')
  await until(async () => (await alice.ledger.billing.record(contract)).used.mru === 192 * MIB, 30_000, 'usage after the update')
  assert.equal((await alice.ledger.billing.record(contract)).used.sru, 32 * MIB + 16 * MIB + 256 * MIB)
  const history = json<{ name: string; result: { state: string } }[]>(await grid.cli(['deployment', 'show', String(contract), '--changes', ...auth, '--json']))
  assert.ok(history.filter((h) => h.name === 'vm' && h.result.state === 'ok').length >= 2)

  // Crash of the agent: the container keeps running, the new agent finds it.
  const pidBefore = (await runtime.state(cid))!.pid
  await node.stop('SIGKILL')
  assert.equal((await runtime.state(cid))?.status, 'running')
  node = await grid.startNode(state, extra)
  const afterRestart = await alice.client.get(contract)
  assert.deepEqual(afterRestart.workloads.map((w) => w.result?.state), ['ok', 'ok', 'ok'])
  assert.equal((await runtime.state(cid))!.pid, pidBefore)
  assert.equal(await boots(), 2)

  // A "reboot": the agent stops, every container and mount goes; the next agent brings them back.
  await node.stop('SIGTERM')
  const down = await grid.cli(['node', 'teardown', '--state', state, '--json'])
  assert.equal(down.code, 0, down.stderr)
  assert.deepEqual(await mountsUnder(state), [])
  assert.equal(await runtime.state(cid), null)
  node = await grid.startNode(state, extra)
  await until(async () => (await runtime.state(cid))?.status === 'running', 30_000, 'the container after the reboot')
  await until(async () => (await boots()) === 3, 30_000, 'a third boot')
  assert.deepEqual((await alice.client.get(contract)).workloads.map((w) => w.result?.state), ['ok', 'ok', 'ok'])

  // Kill the container's process: the supervisor restarts it.
  const pid = (await runtime.state(cid))!.pid
  process.kill(pid, 'SIGKILL')
  await until(async () => {
    const s = await runtime.state(cid)
    return s?.status === 'running' && s.pid !== pid
  }, 30_000, 'the restarted container')
  await until(async () => (await boots()) === 4, 30_000, 'a fourth boot')
  const logs = await alice.client.logs(contract, 'vm')
  assert.match(logs.log, /\[zos\] .* the container exited/)
  assert.equal(logs.container?.restarts, 1)

  // Cancel: everything is removed.
  const cancelled = await grid.cli(['deployment', 'cancel', String(contract), ...auth])
  assert.equal(cancelled.code, 0, cancelled.stderr)
  await until(async () => (await alice.client.get(contract)).workloads.every((w) => w.result?.state === 'deleted'), 30_000, 'deprovisioning')
  assert.equal(await runtime.state(cid), null)
  assert.deepEqual(await mountsUnder(state), [])
  assert.deepEqual(await loopsUnder(state), [])
  assert.equal(existsSync(paths.zmachine(wid)), false)
  assert.equal(existsSync(paths.volumeImage(`${alice.twinId}-${contract}-vm_vol1`)), false)
  assert.equal(existsSync(paths.volumeImage(`${alice.twinId}-${contract}-vm_vol2`)), false)
  assert.equal(existsSync(`/sys/fs/cgroup/memory/zos-${tag}`), false)
  assert.equal(existsSync(`/sys/fs/cgroup/cpu/zos-${tag}`), false)
  assert.deepEqual(await readdir(join(state, 'flists', 'mounts')).catch(() => []), [])
  assert.deepEqual(json<unknown[]>(await grid.cli(['deployment', 'list', ...auth, '--json'])), [])
})
