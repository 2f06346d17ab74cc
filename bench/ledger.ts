// Ledger benchmark: createNodeContract on the embedded ledger (anvil on 127.0.0.1, automine, state dumped every
// 2 s as `zos ledger up` runs it), through the same Ledger client the node agent and CLI use.
//  1. latency: one contract at a time, from sending the transaction to holding its receipt (estimateGas + sign
//     + eth_sendRawTransaction + receipt), and the whole `ledger.contracts.createNode` call (which also reads
//     the created contract back);
//  2. throughput: sustained contract creations per second with several senders (twins) and several
//     transactions of each sender in flight.
// Anchor: TFChain, the chain the reference grid runs on, produces a block every 6 s (grid-chain-rmb.md §1.1);
// an extrinsic is in the chain no sooner than the next block, and its client waits for that block before it
// sends the next one, so one sender gets at most one contract per 6 s block.
//   npm run bench -- ledger [--quick]
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePrivateKey } from 'viem/accounts'
import { gridContractsAbi } from '../src/ledger/abi.js'
import type { EvmLedger } from '../src/ledger/client.js'
import { openLedger, startLedger, type Hex, type Ledger } from '../src/ledger/index.js'

const quick = process.argv.includes('--quick')
const LATENCY_N = quick ? 50 : 300
const THROUGHPUT_N = quick ? 300 : 3000
const SENDERS = 8
const IN_FLIGHT_PER_SENDER = 4
const TFCHAIN_BLOCK_MS = 6000

/** User + system CPU time of a process in ms (Linux /proc; 0 elsewhere). */
async function anvilCpuMs(pid: number): Promise<number> {
  try {
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
    return ((Number(stat[11]) + Number(stat[12])) * 1000) / 100 // fields 14, 15 in clock ticks (100 Hz)
  } catch {
    return 0
  }
}

let hashes = 0
function hash(): Hex {
  hashes++
  return `0x${hashes.toString(16).padStart(16, '0')}${'ee'.repeat(24)}` as Hex
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

function stats(ms: number[]): { median: number; p95: number; mean: number } {
  const s = [...ms].sort((a, b) => a - b)
  return { median: percentile(s, 50), p95: percentile(s, 95), mean: s.reduce((a, b) => a + b, 0) / s.length }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'zos-bench-ledger-'))
  const srv = await startLedger({ dataDir: dir, port: 0 })
  const clients: Ledger[] = []
  try {
    const open = async (): Promise<Ledger> => {
      const l = await openLedger({ ledgerDir: dir, privateKey: generatePrivateKey(), receiptPollMs: 5 })
      clients.push(l)
      return l
    }
    const farmer = await open()
    await farmer.token.faucet(100n * 10n ** 7n)
    await farmer.twins.create({ relay: 'bench' })
    const farm = await farmer.farms.create({ name: 'bench-farm' })
    const nodeClient = await open()
    await nodeClient.twins.create({ relay: 'bench' })
    const node = await nodeClient.nodes.create({ farmId: farm.id, resources: { cru: 64, mru: 256 * 2 ** 30, sru: 8 * 2 ** 40, hru: 0 } })
    const users: Ledger[] = []
    for (let i = 0; i < SENDERS; i++) {
      const u = await open()
      await u.token.faucet(1000n * 10n ** 7n)
      await u.twins.create({ relay: 'bench' })
      users.push(u)
    }
    const u0 = users[0]! as EvmLedger
    const gc = u0.addressBook.contracts.gridContracts
    // warm-up (JIT, connection pool)
    for (let i = 0; i < 20; i++) await u0.chain.write(gc, gridContractsAbi, 'createNodeContract', [node.id, hash(), '0x', 0, 0n])

    // 1. latency, one at a time
    const toReceipt: number[] = []
    for (let i = 0; i < LATENCY_N; i++) {
      const t0 = performance.now()
      await u0.chain.write(gc, gridContractsAbi, 'createNodeContract', [node.id, hash(), '0x', 0, 0n])
      toReceipt.push(performance.now() - t0)
    }
    const full: number[] = []
    for (let i = 0; i < LATENCY_N; i++) {
      const t0 = performance.now()
      await u0.contracts.createNode({ nodeId: node.id, deploymentHash: hash() })
      full.push(performance.now() - t0)
    }

    // 2. throughput: SENDERS twins, IN_FLIGHT_PER_SENDER transactions each in flight
    let next = 0
    const before = await u0.contracts.count()
    const cpu0 = process.cpuUsage()
    const anvil0 = await anvilCpuMs(srv.pid)
    const t0 = performance.now()
    await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: IN_FLIGHT_PER_SENDER }, async () => {
          const c = u as EvmLedger
          while (next < THROUGHPUT_N) {
            next++
            await c.chain.write(gc, gridContractsAbi, 'createNodeContract', [node.id, hash(), '0x', 0, 0n])
          }
        }),
      ),
    )
    const seconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    const anvilCpu = (await anvilCpuMs(srv.pid)) - anvil0
    const created = (await u0.contracts.count()) - before
    if (created !== THROUGHPUT_N) throw new Error(`expected ${THROUGHPUT_N} contracts, the ledger holds ${created} more`)
    const perSecond = created / seconds

    const lat = stats(toReceipt)
    const fl = stats(full)
    const anchorPerSender = 1000 / TFCHAIN_BLOCK_MS
    const rows: [string, string, string, string][] = [
      ['createNodeContract → receipt, median', `${lat.median.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / lat.median).toFixed(0)}× faster`],
      ['createNodeContract → receipt, p95', `${lat.p95.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / lat.p95).toFixed(0)}× faster`],
      ['contracts.createNode (+ read back), median', `${fl.median.toFixed(2)} ms`, `${TFCHAIN_BLOCK_MS} ms`, `${(TFCHAIN_BLOCK_MS / fl.median).toFixed(0)}× faster`],
      [
        `sustained creations (${SENDERS} senders × ${IN_FLIGHT_PER_SENDER} in flight)`,
        `${perSecond.toFixed(0)} /s`,
        `${(anchorPerSender * SENDERS).toFixed(2)} /s`,
        `${(perSecond / (anchorPerSender * SENDERS)).toFixed(0)}×`,
      ],
    ]
    const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['measure', 'zos ledger', 'TFChain anchor', 'ratio'][i]!.length))
    const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ')
    process.stdout.write(`ledger: ${LATENCY_N} sequential + ${THROUGHPUT_N} concurrent createNodeContract on anvil (${srv.url})\n`)
    process.stdout.write(line(['measure', 'zos ledger', 'TFChain anchor', 'ratio']) + '\n')
    for (const r of rows) process.stdout.write(line(r) + '\n')
    process.stdout.write(`CPU during the throughput run (2 cores shared): client ${((cpu.user + cpu.system) / 1000 / seconds / 10).toFixed(0)} %, anvil ${(anvilCpu / seconds / 10).toFixed(0)} % of one core\n`)
    process.stdout.write(`targets: median latency <= 50 ms: ${lat.median <= 50 ? 'met' : 'NOT met'}; >= 200 contracts/s: ${perSecond >= 200 ? 'met' : 'NOT met'}\n`)
    process.stdout.write(JSON.stringify({ latencyMs: lat, createNodeMs: fl, contractsPerSecond: perSecond, senders: SENDERS, inFlightPerSender: IN_FLIGHT_PER_SENDER, tfchainBlockMs: TFCHAIN_BLOCK_MS }) + '\n')
  } finally {
    for (const c of clients) await c.close()
    await srv.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
