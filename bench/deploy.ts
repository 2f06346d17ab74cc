// Deployment latency: from creating the node contract to the container's first output, split by phase, for a
// small image (busybox, ~1 MB) and a large one (busybox + 200 MB of incompressible data), against issue 6's
// target (<= 1.5 s for the small image). Everything is real and local: an anvil ledger, a relay, a dir:// store,
// the node agent (in this process, so its phase timings can be read from its log), FUSE, overlayfs, runc.
//
//   contract   the client's createNodeContract transaction, mined
//   message    zos.deployment.deploy through the relay until the node's reply; includes
//     verify   on the node: schema, signatures, contract and hash on the ledger, admission, SQLite
//   queue      from the node's reply until the engine starts the zmachine (0 when it started before the reply
//              reached the client)
//   mount      flist resolve + flist mount (helper process) + root image (mkfs) + overlay + entrypoint read
//   start      runc run (detached)
//   output     from runc's return until the first line is in the console log (0: it was there before runc
//              returned, since `runc run --detach` returns after the process started)
//
// Anchor: `runc run` of the same busybox root from a plain directory (no ledger, relay, flist or overlay), time
// to its first output, measured the same way in the same run.
//
//   npm run bench -- deploy [--quick]
import { closeSync, openSync, readFileSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { generatePrivateKey } from 'viem/accounts'
import { generateKey } from '../src/core/keys.js'
import { openLedger, startLedger } from '../src/ledger/index.js'
import { ledgerDirectory, startRelay } from '../src/rmb/index.js'
import { pack } from '../src/flist/pack.js'
import { openDir } from '../src/flist/source/dir.js'
import { openWritableStore } from '../src/store/open.js'
import { startNodeAgent } from '../src/node/agent.js'
import type { NodeLogger } from '../src/node/log.js'
import { GridClient } from '../src/client/client.js'
import { containerDeployment } from '../src/client/build.js'
import { exec } from '../src/core/exec.js'
import { teardownNode } from '../src/node/storage/teardown.js'
import { median } from './lib/stats.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 3 : 7
const LARGE_BYTES = 200 * 2 ** 20
const TARGET_MS = 1500
const BUSYBOX = existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox'

interface Sample {
  contract: number
  message: number
  verify: number
  queue: number
  mount: number
  start: number
  output: number
  total: number
  detail: Record<string, number>
}

const fmt = (ms: number): string => `${ms.toFixed(0)} ms`

async function busyboxRoot(dir: string): Promise<void> {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'data']) await mkdir(join(dir, d), { recursive: true })
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'))
  await chmod(join(dir, 'bin/busybox'), 0o755)
  for (const app of ['sh', 'echo', 'sleep', 'cat']) await symlink('busybox', join(dir, 'bin', app))
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
}

/** Waits until `file` contains `text`; returns the time it was seen. */
async function waitFor(file: string, text: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if (readFileSync(file, 'utf8').includes(text)) return performance.now()
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`no "${text}" in ${file} after ${timeoutMs} ms`)
    await sleep(2)
  }
}

async function anchor(dir: string, rounds: number): Promise<number[]> {
  const bundle = join(dir, 'anchor')
  await busyboxRoot(join(bundle, 'rootfs'))
  await exec('runc', ['spec', '--bundle', bundle])
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean }; root: { readonly: boolean } }
  spec.process.terminal = false
  spec.process.args = ['/bin/sh', '-c', 'echo first-output; sleep 1000']
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec))
  const root = join(dir, 'anchor-runc')
  const out: number[] = []
  for (let i = 0; i < rounds; i++) {
    const log = join(dir, `anchor-${i}.log`)
    const fd = openSync(log, 'a')
    const id = `zos-bench-anchor-${process.pid}-${i}`
    const t0 = performance.now()
    await exec('runc', ['--root', root, 'run', '--detach', '--bundle', bundle, id], { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    out.push((await waitFor(log, 'first-output')) - t0)
    await exec('runc', ['--root', root, 'delete', '--force', id])
  }
  return out
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the deploy benchmark needs root (FUSE, loop devices, runc)')
  const dir = await mkdtemp(join(tmpdir(), 'zos-bench-deploy-'))
  const stops: (() => Promise<unknown>)[] = []
  try {
    process.stderr.write('starting ledger, relay, store...\n')
    const ledgerSrv = await startLedger({ port: 0, dataDir: join(dir, 'ledger') })
    stops.push(() => ledgerSrv.stop())
    const farmer = await openLedger({ ledgerDir: ledgerSrv.dataDir, privateKey: generatePrivateKey(), receiptPollMs: 10 })
    stops.push(() => farmer.close())
    const relayLedger = await openLedger({ ledgerDir: ledgerSrv.dataDir })
    stops.push(() => relayLedger.close())
    const relay = await startRelay({ directory: ledgerDirectory(relayLedger), host: '127.0.0.1', port: 0 })
    stops.push(() => relay.close())
    await farmer.twins.create({ relay: relay.url })
    const farm = await farmer.farms.create({ name: `bench-${process.pid}` })

    // Images.
    const storeDir = join(dir, 'store')
    const store = await openWritableStore(storeDir)
    const smallRoot = join(dir, 'small')
    await busyboxRoot(smallRoot)
    const largeRoot = join(dir, 'large')
    await busyboxRoot(largeRoot)
    for (let i = 0; i < 4; i++) await writeFile(join(largeRoot, 'data', `blob${i}`), randomBytes(LARGE_BYTES / 4))
    process.stderr.write('packing the images...\n')
    await pack({ source: await openDir(smallRoot), output: join(dir, 'small.fl'), store })
    await pack({ source: await openDir(largeRoot), output: join(dir, 'large.fl'), store })
    await store.close()
    await rm(largeRoot, { recursive: true, force: true })

    // The node agent, with a logger that keeps its timing lines.
    const lines: { msg: string; obj: Record<string, unknown>; at: number }[] = []
    const log: NodeLogger = {
      debug() {},
      info: (obj, msg) => lines.push({ msg: msg ?? '', obj: obj as Record<string, unknown>, at: performance.now() }),
      warn: (obj, msg) => process.stderr.write(`node warn: ${msg} ${JSON.stringify(obj)}\n`),
      error: (obj, msg) => process.stderr.write(`node error: ${msg} ${JSON.stringify(obj)}\n`),
      child: () => log,
    }
    const state = join(dir, 'node')
    const agent = await startNodeAgent({
      farmId: farm.id,
      ledger: { ledgerDir: ledgerSrv.dataDir, receiptPollMs: 10 },
      relays: [relay.url],
      stateDir: state,
      store: `dir://${storeDir}`,
      capacity: { cru: 4, mru: 8 * 2 ** 30, sru: 100 * 2 ** 30 },
      cacheBytes: 1024 * 2 ** 20,
      stopGraceMs: 1000,
      log,
    })
    stops.push(async () => {
      await agent.stop()
      await teardownNode(agent.paths, agent.tag)
    })

    const key = generateKey()
    const user = await openLedger({ ledgerDir: ledgerSrv.dataDir, privateKey: `0x${key.privateKey.toString('hex')}`, receiptPollMs: 10 })
    stops.push(() => user.close())
    await user.token.faucet(1000n * 10n ** 7n)
    await user.twins.create({ relay: relay.url })
    const client = await GridClient.connect({ ledger: user, key })
    stops.push(() => client.close())

    const results: Record<string, Sample[]> = { small: [], large: [] }
    for (const image of ['small', 'large'] as const) {
      for (let round = 0; round < ROUNDS; round++) {
        const d = containerDeployment({ twinId: client.twinId, flist: join(dir, `${image}.fl`), cpu: 1, memory: 128 * 2 ** 20, rootSize: 256 * 2 ** 20, entrypoint: '/bin/sh -c "echo first-output; sleep 1000"' })
        lines.length = 0
        const phases: Record<string, number> = {}
        const t0 = performance.now()
        const r = await client.deploy(agent.nodeId, d, { waitMs: 0, onPhase: (p, ms) => (phases[p] = ms) })
        const tReply = performance.now()
        const wid = `${client.twinId}-${r.contractId}-vm`
        const tOut = await waitFor(join(agent.paths.zmachine(wid), 'console.log'), 'first-output')
        for (let i = 0; i < 500 && !lines.some((l) => l.msg === 'zmachine started'); i++) await sleep(2)
        const accepted = lines.find((l) => l.msg === 'deployment accepted')?.obj ?? {}
        const started = lines.find((l) => l.msg === 'zmachine started')?.obj ?? {}
        const num = (o: Record<string, unknown>, k: string): number => (typeof o[k] === 'number' ? (o[k] as number) : 0)
        const detail = Object.fromEntries(Object.entries(started).filter(([k, v]) => k.endsWith('Ms') && typeof v === 'number')) as Record<string, number>
        const mount = ['resolveMs', 'flistMountMs', 'rootfsMs', 'overlayMs', 'checkMs', 'volumesMs'].reduce((a, k) => a + num(started, k), 0)
        const start = num(started, 'startMs')
        const total = tOut - t0 - (phases.sign ?? 0)
        const contract = phases.contract ?? 0
        const message = phases.message ?? 0
        // From the node's reply to the first output: the engine picking the job up, mount, start, and the first
        // line reaching the log; "queue" is what is left after mount and start.
        const startedAt = lines.find((l) => l.msg === 'zmachine started')?.at ?? tOut
        const sample: Sample = { contract, message, verify: num(accepted, 'verifyMs'), queue: Math.max(0, startedAt - start - mount - tReply), mount, start, output: Math.max(0, tOut - startedAt), total, detail }
        results[image]!.push(sample)
        process.stderr.write(`${image} #${round + 1}: total ${fmt(total)} (contract ${fmt(contract)}, message ${fmt(message)}, verify ${fmt(sample.verify)}, queue ${fmt(sample.queue)}, mount ${fmt(mount)}, start ${fmt(start)}, output ${fmt(sample.output)}) ${JSON.stringify(detail)}\n`)
        await client.cancel(r.contractId)
        const deadline = Date.now() + 60_000
        while (Date.now() < deadline) {
          const got = await client.get(r.contractId)
          if (got.workloads.every((w) => w.result?.state === 'deleted')) break
          await sleep(50)
        }
      }
    }
    process.stderr.write('anchor: runc from a plain directory...\n')
    const anchorMs = await anchor(dir, ROUNDS)

    const rows: string[] = []
    const a = median(anchorMs)
    rows.push('| image | contract | message (verify) | queue | mount | start | output | total (median) | first round | vs anchor | target |')
    rows.push('|---|---|---|---|---|---|---|---|---|---|---|')
    for (const image of ['small', 'large'] as const) {
      const s = results[image]!
      const m = (k: keyof Sample): number => median(s.map((x) => x[k] as number))
      const total = m('total')
      rows.push(
        `| ${image} | ${fmt(m('contract'))} | ${fmt(m('message'))} (${fmt(m('verify'))}) | ${fmt(m('queue'))} | ${fmt(m('mount'))} | ${fmt(m('start'))} | ${fmt(m('output'))} | ${fmt(total)} | ${fmt(s[0]!.total)} | ${(total / a).toFixed(1)}× | ${image === 'small' ? (total <= TARGET_MS ? `met (<= ${TARGET_MS} ms)` : `MISSED (> ${TARGET_MS} ms)`) : '-'} |`,
      )
    }
    rows.push(`| anchor: runc run from a directory | | | | | | | ${fmt(a)} | ${fmt(anchorMs[0]!)} | 1.0× | |`)
    const mountSplit = ['resolveMs', 'flistMountMs', 'rootfsMs', 'overlayMs', 'checkMs']
      .map((k) => `${k.replace('Ms', '')} small ${fmt(median(results.small!.map((x) => x.detail[k] ?? 0)))} / large ${fmt(median(results.large!.map((x) => x.detail[k] ?? 0)))}`)
      .join('; ')
    process.stdout.write(`deploy latency, ${ROUNDS} rounds each (medians)\n${rows.join('\n')}\nmount split: ${mountSplit}\n`)
  } finally {
    for (const s of stops.reverse()) await s().catch((err: unknown) => process.stderr.write(`cleanup: ${String(err)}\n`))
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
