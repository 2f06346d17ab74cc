// End to end: a contract the twin cannot pay enters its grace period on the ledger (billed by the node's
// hourly trigger, here every 2 s); the node pauses its workloads (the container is frozen). When the twin pays,
// the grace period ends and the node resumes them.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { loadKey } from '../../src/core/keys.js'
import { containerDeployment } from '../../src/client/build.js'
import { RuncRuntime } from '../../src/node/runtime/runc.js'
import { containerId } from '../../src/node/primitives/services.js'
import { NodePaths, nodeTag } from '../../src/node/storage/paths.js'
import { TOKEN } from '../ledger/helpers.js'
import { cannotRun, until } from '../node/helpers.js'
import { startGrid } from './grid.js'

const MIB = 2 ** 20
const skip = await cannotRun()

test('e2e node - grace period pauses the workloads, payment resumes them', { skip, timeout: 300_000 }, async (t) => {
  const grid = await startGrid(t)
  const state = join(grid.dir, 'node1')
  const node = await grid.startNode(state, ['--bill-interval', '2'])
  const carol = await grid.user(0n) // no tokens: the first bill cannot be paid
  const d = containerDeployment({ twinId: carol.twinId, flist: grid.flist.fl, cpu: 1, memory: 64 * MIB, rootSize: 256 * MIB, entrypoint: '/bin/sh -c "while true; do echo tick; sleep 1; done"' })
  const r = await carol.client.deploy(node.nodeId, d)
  assert.equal(r.deployment.workloads[0]!.result?.state, 'ok')
  const paths = new NodePaths(state)
  const cid = containerId(nodeTag((await loadKey(paths.keyFile)).address), `${carol.twinId}-${r.contractId}-vm`)
  const runtime = new RuncRuntime(paths.runcRoot)

  await until(async () => (await carol.ledger.contracts.get(r.contractId)).state === 'GracePeriod', 60_000, 'the grace period')
  await until(async () => (await carol.client.get(r.contractId)).workloads[0]!.result?.state === 'paused', 30_000, 'the paused workload')
  assert.equal((await runtime.state(cid))?.status, 'paused')
  assert.match((await carol.client.get(r.contractId)).workloads[0]!.result?.message ?? '', /grace period/)

  await carol.ledger.token.faucet(100n * TOKEN)
  await until(async () => (await carol.ledger.contracts.get(r.contractId)).state === 'Created', 60_000, 'the end of the grace period')
  await until(async () => (await carol.client.get(r.contractId)).workloads[0]!.result?.state === 'ok', 30_000, 'the resumed workload')
  assert.equal((await runtime.state(cid))?.status, 'running')
  await carol.client.cancel(r.contractId)
  await until(async () => (await carol.client.get(r.contractId)).workloads[0]!.result?.state === 'deleted', 30_000, 'deprovisioning')
  assert.equal(await runtime.state(cid), null)
})
