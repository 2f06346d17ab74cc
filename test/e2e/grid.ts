// A small real grid for end-to-end tests: an anvil ledger with the contracts, a relay, a farm, a dir:// store
// with flists built at run time, node agents started as real `zos node run` processes (so they can be killed
// and restarted), and users with twins, keys and clients. Everything is stopped and cleaned up by pid and path.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { generateKey, saveKey, type KeyPair } from '../../src/core/keys.js'
import type { Ledger } from '../../src/ledger/types.js'
import { ledgerDirectory, startRelay, type Relay } from '../../src/rmb/index.js'
import { GridClient } from '../../src/client/client.js'
import { NodePaths, nodeTag } from '../../src/node/storage/paths.js'
import { teardownNode } from '../../src/node/storage/teardown.js'
import { loadKey } from '../../src/core/keys.js'
import { startTestLedger, TOKEN, type TestLedger } from '../ledger/helpers.js'
import { mountsUnder } from '../../src/node/storage/mounts.js'
import { busyboxFlist, type BuiltFlist } from '../node/helpers.js'

const ext = extname(fileURLToPath(import.meta.url))
const CLI = fileURLToPath(new URL(`../../src/cli/main${ext}`, import.meta.url))
const NODE_ARGS = ext === '.ts' ? ['--import', 'tsx'] : []

export interface NodeProc {
  proc: ChildProcess
  nodeId: number
  twinId: number
  state: string
  logFile: string
  /** Stops the agent process (SIGTERM waits for a clean stop; SIGKILL is a crash). */
  stop(signal?: NodeJS.Signals): Promise<void>
}

export interface User {
  ledger: Ledger
  key: KeyPair
  keyFile: string
  twinId: number
  client: GridClient
}

export interface Grid {
  dir: string
  ledger: TestLedger
  relay: Relay
  relayUrl: string
  farmer: Ledger
  farmId: number
  flist: BuiltFlist
  /** Starts `zos node run` on `state` and waits until it serves. */
  startNode(state: string, extra?: string[]): Promise<NodeProc>
  user(tokens?: bigint): Promise<User>
  /** Runs the zos CLI; resolves with its exit code and output. */
  cli(args: string[], env?: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }>
}

export async function startGrid(t: TestContext, opts: { flistFiles?: Record<string, string> } = {}): Promise<Grid> {
  // One cleanup hook, registered first, does everything in order (node:test runs after-hooks first-in first-out):
  // stop the agents, tear their workloads down, stop relay and ledger, then remove the directory.
  const dir = await mkdtemp(join(tmpdir(), 'zos-e2e-'))
  const nodes: NodeProc[] = []
  const closers: (() => Promise<unknown>)[] = []
  t.after(async () => {
    for (const n of nodes) await n.stop('SIGTERM')
    for (const n of nodes) {
      const paths = new NodePaths(n.state)
      const key = await loadKey(paths.keyFile).catch(() => undefined)
      await teardownNode(paths, key ? nodeTag(key.address) : undefined)
    }
    for (const c of closers.reverse()) await c().catch(() => undefined)
    if (process.env.ZOS_KEEP_E2E) return
    const left = await mountsUnder(dir)
    if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.map((m) => m.mountpoint).join(', ')}`)
    await rm(dir, { recursive: true, force: true })
  })
  const ledger = await startTestLedger()
  closers.push(() => ledger.stop())
  const relayLedger = await ledger.client()
  const relay = await startRelay({ directory: ledgerDirectory(relayLedger), host: '127.0.0.1', port: 0 })
  closers.push(() => relay.close())
  const farmer = await ledger.client()
  await farmer.token.faucet(100n * TOKEN)
  await farmer.twins.create({ relay: relay.url })
  const farm = await farmer.farms.create({ name: `farm-${process.pid}` })
  const flist = await busyboxFlist(dir, { files: opts.flistFiles ?? {} })

  const startNode = async (state: string, extra: string[] = []): Promise<NodeProc> => {
    const logFile = join(dir, `node-${nodes.length}.log`)
    const fd = openSync(logFile, 'a')
    const args = [...NODE_ARGS, CLI, 'node', 'run', '--farm', String(farm.id), '--ledger', ledger.dir, '--relay', relay.url, '--state', state, '--store', flist.storeUrl, '--cru', '2', '--mru', '4G', '--sru', '20G', '--cache-size', '64M', '--stop-grace', '1', '--log-level', 'debug', '--json', ...extra]
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', fd] })
    closeSync(fd)
    const line = await new Promise<string>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`node agent did not start in 60 s: ${readFileSync(logFile, 'utf8').slice(-2000)}`)), 60_000)
      proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d
        const end = out.indexOf('}\n')
        if (end >= 0) {
          clearTimeout(timer)
          resolve(out.slice(0, end + 1))
        }
      })
      proc.on('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`node agent exited ${code}: ${readFileSync(logFile, 'utf8').slice(-2000)}`))
      })
    })
    const info = JSON.parse(line) as { node: number; twin: number }
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    const n: NodeProc = {
      proc,
      nodeId: info.node,
      twinId: info.twin,
      state,
      logFile,
      async stop(signal = 'SIGTERM') {
        if (proc.exitCode !== null || proc.signalCode !== null) return
        proc.kill(signal)
        const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
        await exited
        clearTimeout(timer)
      },
    }
    nodes.push(n)
    return n
  }

  const user = async (tokens = 1000n): Promise<User> => {
    const key = generateKey()
    const keyFile = join(dir, `user-${key.address}.json`)
    await saveKey(keyFile, key)
    const l = await ledger.client(`0x${key.privateKey.toString('hex')}`)
    if (tokens > 0n) await l.token.faucet(tokens * TOKEN)
    const twin = await l.twins.create({ relay: relay.url })
    const client = await GridClient.connect({ ledger: l, key })
    closers.push(() => client.close())
    return { ledger: l, key, keyFile, twinId: twin.id, client }
  }

  const cli = (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [...NODE_ARGS, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
      let stdout = ''
      let stderr = ''
      p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    })

  await writeFile(join(dir, 'README'), 'zos e2e grid\n')
  return { dir, ledger, relay, relayUrl: relay.url, farmer, farmId: farm.id, flist, startNode, user, cli }
}
