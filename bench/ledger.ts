// Ledger benchmark: createNodeContract on the embedded ledger as `zos ledger up` runs it (anvil on 127.0.0.1
// behind the miner proxy, state dumped every 2 s), through the Ledger client the node agent and CLI use.
//  1. latency: one contract at a time, from sending the transaction to holding its receipt (sign +
//     eth_sendRawTransaction + mining + receipt), and the whole `ledger.contracts.createNode` call (which also
//     reads the created contract back);
//  2. throughput: sustained contract creations per second with 8 senders (twins), 4 transactions of each in
//     flight; the first and the last third of the run are reported apart to show whether it holds up as the
//     ledger grows;
//  3. the same throughput on plain anvil with instant mining (one block per transaction), which is what the
//     miner proxy replaces (anvil 1.7.1 rebuilds the whole state trie for every block).
// Anchor: TFChain, the chain the reference grid runs on, produces a block every 6 s (grid-chain-rmb.md §1.1):
// an extrinsic is in the chain no sooner than the next block, and its client waits for that block before it
// sends the next one, so one sender gets at most one contract per 6 s block.
//   npm run bench -- ledger [--quick]
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { gridContractsAbi } from '../src/ledger/abi.js'
import { startAnvil } from '../src/ledger/anvil.js'
import { EvmLedger } from '../src/ledger/client.js'
import { DEV_ROLES, deployGrid, devPrivateKey, startLedger, type AddressBookData, type Hex } from '../src/ledger/index.js'

const quick = process.argv.includes('--quick')
const LATENCY_N = quick ? 50 : 300
const THROUGHPUT_N = quick ? 300 : 3000
const INSTANT_N = quick ? 300 : 1500
const SENDERS = 8
const IN_FLIGHT_PER_SENDER = 4
const TFCHAIN_BLOCK_MS = 6000

/** User + system CPU time of a process in ms (Linux /proc; 0 elsewhere). */
async function cpuMsOf(pid: number): Promise<number> {
  try {
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
    return ((Number(stat[11]) + Number(stat[12])) * 1000) / 100 // utime + stime, in 100 Hz ticks
  } catch {
    return 0
  }
}

let hashes = 0
function hash(): Hex {
  hashes++
  return `0x${hashes.toString(16).padStart(16, '0')}${'ee'.repeat(24)}` as Hex
}

function stats(ms: number[]): { median: number; p95: number; mean: number } {
  const s = [...ms].sort((a, b) => a - b)
  const at = (p: number): number => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
  return { median: at(50), p95: at(95), mean: s.reduce((a, b) => a + b, 0) / s.length }
}

interface Grid {
  users: EvmLedger[]
  nodeId: number
  close(): Promise<void>
}

async function setupGrid(book: AddressBookData): Promise<Grid> {
  const clients: EvmLedger[] = []
  const open = async (): Promise<EvmLedger> => {
    const l = new EvmLedger({ addressBook: book, privateKey: generatePrivateKey() })
    clients.push(l)
    await l.token.faucet(1000n * 10n ** 7n)
    await l.twins.create({ relay: 'bench' })
    return l
  }
  const farmer = await open()
  const farm = await farmer.farms.create({ name: 'bench-farm' })
  const node = await (await open()).nodes.create({ farmId: farm.id, resources: { cru: 64, mru: 256 * 2 ** 30, sru: 8 * 2 ** 40, hru: 0 } })
  const users: EvmLedger[] = []
  for (let i = 0; i < SENDERS; i++) users.push(await open())
  return { users, nodeId: node.id, close: async () => Promise.all(clients.map((c) => c.close())).then(() => undefined) }
}

function create(l: EvmLedger, nodeId: number): Promise<unknown> {
  return l.chain.write(l.addressBook.contracts.gridContracts, gridContractsAbi, 'createNodeContract', [nodeId, hash(), '0x', 0, 0n])
}

interface Throughput {
  perSecond: number
  firstThird: number
  lastThird: number
  txPerBlock: number
  seconds: number
}

async function throughput(g: Grid, n: number): Promise<Throughput> {
  const u0 = g.users[0]!
  const before = await u0.contracts.count()
  const block0 = await u0.chain.client.getBlockNumber({ cacheTime: 0 })
  const done: number[] = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    g.users.flatMap((u) =>
      Array.from({ length: IN_FLIGHT_PER_SENDER }, async () => {
        while (next < n) {
          next++
          await create(u, g.nodeId)
          done.push(performance.now())
        }
      }),
    ),
  )
  const seconds = (performance.now() - t0) / 1000
  const created = (await u0.contracts.count()) - before
  if (created !== n) throw new Error(`expected ${n} new contracts, the ledger holds ${created}`)
  const blocks = Number((await u0.chain.client.getBlockNumber({ cacheTime: 0 })) - block0)
  done.sort((a, b) => a - b)
  const third = Math.floor(n / 3)
  const rate = (from: number, to: number): number => (to - from) / ((done[to - 1]! - (from === 0 ? t0 : done[from - 1]!)) / 1000)
  return { perSecond: n / seconds, firstThird: rate(0, third), lastThird: rate(n - third, n), txPerBlock: n / Math.max(1, blocks), seconds }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zos-bench-ledger-'))
  const srv = await startLedger({ dataDir: dir, port: 0 })
  const out: string[] = []
  try {
    const g = await setupGrid(srv.addressBook)
    const u0 = g.users[0]!
    for (let i = 0; i < 20; i++) await create(u0, g.nodeId) // warm-up (JIT, connection pool)

    const toReceipt: number[] = []
    for (let i = 0; i < LATENCY_N; i++) {
      const t0 = performance.now()
      await create(u0, g.nodeId)
      toReceipt.push(performance.now() - t0)
    }
    const full: number[] = []
    for (let i = 0; i < LATENCY_N; i++) {
      const t0 = performance.now()
      await u0.contracts.createNode({ nodeId: g.nodeId, deploymentHash: hash() })
      full.push(performance.now() - t0)
    }

    const cpu0 = process.cpuUsage()
    const anvil0 = await cpuMsOf(srv.anvilPid)
    const tp = await throughput(g, THROUGHPUT_N)
    const cpu = process.cpuUsage(cpu0)
    const anvilCpu = (await cpuMsOf(srv.anvilPid)) - anvil0
    await g.close()

    // plain anvil, instant mining: one block per transaction
    const anvil = await startAnvil({ port: 0, logFile: join(dir, 'instant-anvil.log'), mining: 'instant' })
    let instant: Throughput
    try {
      const dev = (i: number): `0x${string}` => privateKeyToAccount(devPrivateKey(i)).address
      const book = await deployGrid({
        rpcUrl: anvil.url,
        deployerKey: devPrivateKey(0),
        network: 'bench',
        council: { members: [dev(1)], threshold: 1 },
        foundation: dev(DEV_ROLES.foundation),
        sales: dev(DEV_ROLES.sales),
        stakingPool: dev(DEV_ROLES.stakingPool),
        faucet: true,
        gasFree: true,
      })
      const gi = await setupGrid(book)
      instant = await throughput(gi, INSTANT_N)
      await gi.close()
    } finally {
      await anvil.stop()
    }

    const lat = stats(toReceipt)
    const fl = stats(full)
    const perSender = 1000 / TFCHAIN_BLOCK_MS
    const anchorRate = perSender * SENDERS
    const rows: string[][] = [
      ['createNodeContract → receipt, median', `${lat.median.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / lat.median).toFixed(0)}× faster`],
      ['createNodeContract → receipt, p95', `${lat.p95.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / lat.p95).toFixed(0)}× faster`],
      ['contracts.createNode (+ read back), median', `${fl.median.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / fl.median).toFixed(0)}× faster`],
      [`creations/s, ${THROUGHPUT_N} contracts`, `${tp.perSecond.toFixed(0)} /s`, `${anchorRate.toFixed(2)} /s`, `${(tp.perSecond / anchorRate).toFixed(0)}×`],
      ['  first third of the run', `${tp.firstThird.toFixed(0)} /s`, '', ''],
      ['  last third of the run', `${tp.lastThird.toFixed(0)} /s`, '', ''],
      [`plain anvil, instant mining, ${INSTANT_N} contracts`, `${instant.perSecond.toFixed(0)} /s`, `${anchorRate.toFixed(2)} /s`, `${(instant.perSecond / anchorRate).toFixed(0)}×`],
      ['  first third / last third', `${instant.firstThird.toFixed(0)} / ${instant.lastThird.toFixed(0)} /s`, '', ''],
    ]
    const header = ['measure', 'zos ledger', 'TFChain anchor', 'ratio']
    const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()
    out.push(`ledger: ${LATENCY_N} sequential + ${THROUGHPUT_N} concurrent createNodeContract (${SENDERS} senders × ${IN_FLIGHT_PER_SENDER} in flight), anvil behind the miner proxy`)
    out.push(line(header), ...rows.map(line))
    out.push(`transactions per block: ${tp.txPerBlock.toFixed(1)} (miner proxy), ${instant.txPerBlock.toFixed(1)} (instant mining)`)
    const cpuSeconds = (cpu.user + cpu.system) / 1e6 + anvilCpu / 1000
    out.push(
      `CPU during the throughput run (2 shared cores): client + proxy ${((cpu.user + cpu.system) / 1000 / tp.seconds / 10).toFixed(0)} %, anvil ${(anvilCpu / tp.seconds / 10).toFixed(0)} % of one core; ` +
        `${(THROUGHPUT_N / cpuSeconds).toFixed(0)} creations per CPU-second (client + anvil)`,
    )
    out.push(`targets: median latency <= 50 ms ${lat.median <= 50 ? 'met' : 'NOT met'}; >= 200 contracts/s ${tp.perSecond >= 200 ? 'met' : 'NOT met'}`)
    out.push(JSON.stringify({ latencyMs: lat, createNodeMs: fl, throughput: tp, creationsPerCpuSecond: THROUGHPUT_N / cpuSeconds, instantMining: instant, tfchainBlockMs: TFCHAIN_BLOCK_MS }))
    process.stdout.write(out.join('\n') + '\n')
  } finally {
    await srv.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
