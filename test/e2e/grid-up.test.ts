// End to end on `zos grid up`, driven from the CLI like a newcomer: bring a 3-node grid up (ledger, relay,
// hub, nodes in network namespaces), push an image to the hub, deploy it on every node and read its output,
// cancel one deployment, bring the grid down (no mount, namespace or process left), up again (the deployments
// come back and run again), and down with --purge. ZOS_HOME is a temp dir, so the user's own grid context is
// never touched.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLI_ENTRY } from '../../src/grid/procs.js'
import { buildDemoRoot } from '../../src/grid/demo.js'
import { gridDown, type GridStatus } from '../../src/grid/grid.js'
import { netnsList } from '../../src/grid/net.js'
import { mountsUnder } from '../../src/node/storage/mounts.js'
import type { Deployment } from '../../src/node/types/index.js'
import { cannotRun, until } from '../node/helpers.js'

const skip = await cannotRun()
const NODE_ARGS = CLI_ENTRY.endsWith('.ts') ? ['--import', 'tsx'] : []

interface Ran {
  code: number
  stdout: string
  stderr: string
}

test('e2e grid - up, push, deploy on each node, cancel, down leaves nothing, up brings deployments back, purge', { skip, timeout: 600_000 }, async (t) => {
  const home = await mkdtemp(join(tmpdir(), 'zos-grid-home-'))
  const dir = join(home, 'grid')
  const env: NodeJS.ProcessEnv = { ...process.env, ZOS_HOME: home }
  for (const k of ['ZOS_LEDGER', 'ZOS_KEY', 'ZOS_HUB', 'ZOS_STORE']) delete env[k]
  const zos = (args: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [...NODE_ARGS, CLI_ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
      let stdout = ''
      let stderr = ''
      p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    })
  const json = <T>(r: Ran): T => {
    assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr.slice(-3000)}`)
    return JSON.parse(r.stdout) as T
  }
  t.after(async () => {
    // Whatever happened above, nothing of the grid may outlive the test.
    if (existsSync(join(dir, 'grid.json'))) await gridDown(dir, { purge: true }).catch((err: unknown) => console.error('cleanup:', err))
    await rm(home, { recursive: true, force: true })
  })

  // Bad arguments change nothing.
  assert.equal((await zos(['grid', 'up', '--data', dir, '--nodes', '0'])).code, 2)
  assert.equal(existsSync(dir), false)
  assert.equal((await zos(['grid', 'status', '--data', dir])).code, 4)

  // Up: three nodes, each in its own namespace with its own address.
  const up = json<GridStatus>(await zos(['grid', 'up', '--data', dir, '--nodes', '3', '--cache-size', '128M', '--json']))
  assert.equal(up.up, true)
  assert.equal(up.nodes.length, 3)
  assert.equal(new Set(up.nodes.map((n) => n.ip)).size, 3)
  const ours = await netnsList()
  for (const n of up.nodes) assert.ok(ours.includes(n.netns), `namespace ${n.netns}`)
  assert.equal(up.demo, 'hub://demo')
  const nodeIds = up.nodes.map((n) => n.nodeId!)
  assert.equal(nodeIds.every((id) => Number.isInteger(id)), true)

  // The demo image runs with no flags but the node: the grid context supplies ledger, key and hub.
  const demo = json<{ contract: number; output: string }>(await zos(['deploy', 'container', '--node', String(nodeIds[0]), '--flist', 'hub://demo', '--logs', '--json']))
  assert.match(demo.output, /hello from zos!/)

  // Push an image of our own and deploy it on every node.
  const root = join(home, 'image')
  await buildDemoRoot(root)
  await writeFile(join(root, 'greet.sh'), '#!/bin/sh\necho "greetings from $1, boot $(date +%s%N)"\nwhile true; do sleep 1; done\n')
  await chmod(join(root, 'greet.sh'), 0o755)
  const pushed = json<{ ref: string }>(await zos(['hub', 'push', root, '--name', 'greeter:v1', '--json']))
  assert.match(pushed.ref, /^hub:\/\//)
  const contracts: number[] = []
  for (const id of nodeIds) {
    const r = json<{ contract: number; deployment: Deployment; output: string }>(
      await zos(['deploy', 'container', '--node', String(id), '--flist', 'hub://greeter:v1', '--memory', '64M', '--entrypoint', `/greet.sh node-${id}`, '--logs', '--json']),
    )
    assert.equal(r.deployment.workloads[0]!.result?.state, 'ok')
    assert.match(r.output, new RegExp(`greetings from node-${id}`))
    assert.match((r.deployment.workloads[0]!.data as { flist: string }).flist, /\/api\/v1\/blobs\/[0-9a-f]{64}$/, 'the deployment pins the hub tag to a digest')
    contracts.push(r.contract)
  }

  // Cancel the last one.
  const cancelled = contracts.pop()!
  assert.equal((await zos(['deployment', 'cancel', String(cancelled)])).code, 0)
  const listed = json<{ contractId: number; state: string }[]>(await zos(['deployment', 'list', '--json']))
  assert.equal(listed.find((l) => l.contractId === cancelled)?.state ?? 'Deleted', 'Deleted')

  // Down: no process, mount or namespace left; the state stays.
  const down = json<{ stopped: string[] }>(await zos(['grid', 'down', '--data', dir, '--json']))
  assert.ok(down.stopped.includes('ledger') && down.stopped.includes('hub') && down.stopped.includes('relay'))
  assert.deepEqual(await mountsUnder(dir), [])
  const left = await netnsList()
  for (const n of up.nodes) assert.ok(!left.includes(n.netns), `namespace ${n.netns} removed`)
  const pids = [...up.nodes.map((n) => n.pid!), up.relay.pid!, up.hub.pid!, up.ledger.pid!]
  for (const pid of pids) assert.equal(await isOurs(pid, dir), false, `process ${pid} stopped`)
  assert.equal((await zos(['grid', 'status', '--data', dir])).code, 3)

  // Up again: the same grid, with its deployments running again.
  const again = json<GridStatus>(await zos(['grid', 'up', '--data', dir, '--json']))
  assert.deepEqual(again.nodes.map((n) => n.nodeId), nodeIds)
  for (const [i, contract] of contracts.entries()) {
    const shown = json<Deployment>(await zos(['deployment', 'show', String(contract), '--json']))
    assert.equal(shown.workloads[0]!.result?.state, 'ok')
    await until(async () => ((await zos(['deployment', 'logs', String(contract)])).stdout.match(new RegExp(`greetings from node-${nodeIds[i]}`, 'g')) ?? []).length >= 2, 60_000, `a second boot of contract ${contract}`)
  }

  // Down with --purge: everything gone, the context forgotten.
  json(await zos(['grid', 'down', '--data', dir, '--purge', '--json']))
  assert.equal(existsSync(dir), false)
  assert.equal(existsSync(join(home, 'grid-context.json')), false)
  assert.deepEqual(await mountsUnder(home), [])
})

/** The process is alive and one of the grid's (its command line names the grid's directory). */
async function isOurs(pid: number, dir: string): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(dir)
}
