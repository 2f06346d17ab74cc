// Random 64 KiB range reads from packs: DirStore and HttpStore (against `zos store serve` in a child process on
// 127.0.0.1) versus plain fs.read of the same pack files (the anchor), one read at a time (QD1) and 8 in flight
// (QD8). A bare `fetch` with a Range header against the same server is a second anchor: it shows what HttpStore
// itself costs on top of the HTTP stack. The packs live on tmpfs (/dev/shm when present) so every path reads from memory: this measures the
// store code paths, not the disk (the VM's page cache is reclaimed too eagerly for a disk-backed run to be stable).
//   npm run bench -- store-read [--quick]
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DirStore, packPath } from '../src/store/dir.js'
import { HttpStore } from '../src/store/http.js'
import type { PackRange, Store } from '../src/store/types.js'
import { urlFromStdout } from './lib/child.js'

const quick = process.argv.includes('--quick')
const PACKS = 8
const PACK_SIZE = 4 * 1024 * 1024
const READ = 64 * 1024
// Reads per round: many for the local paths (a round must last long enough not to be one scheduler hiccup),
// fewer for HTTP, which is about 20 times slower.
const LOCAL_READS = quick ? 500 : 4000
const HTTP_READS = quick ? 100 : 600
const ROUNDS = quick ? 1 : 9
const BATCH = 16

function randomRanges(ids: string[], n: number): PackRange[] {
  return Array.from({ length: n }, () => ({
    pack: ids[Math.floor(Math.random() * ids.length)]!,
    offset: Math.floor(Math.random() * (PACK_SIZE - READ)),
    length: READ,
  }))
}

/** Runs `read` over `ranges` with `depth` reads in flight; returns MB/s. */
async function measure(ranges: PackRange[], depth: number, read: (r: PackRange) => Promise<number>): Promise<number> {
  let next = 0
  let bytes = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: depth }, async () => {
      while (next < ranges.length) {
        const n = await read(ranges[next++]!) // not `bytes += await ...`: that reads `bytes` before the await
        bytes += n
      }
    }),
  )
  const s = (performance.now() - t0) / 1000
  return bytes / 1e6 / s
}

async function startServer(root: string): Promise<{ url: string; stop(): Promise<void> }> {
  const fromSource = import.meta.url.endsWith('.ts')
  const main = fileURLToPath(new URL(`../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
  const child = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), main, 'store', 'serve', root, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await urlFromStdout(child, 'zos store serve')
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'zos-bench-store-'))
  try {
    const store = await DirStore.open(root, { create: true })
    const ids: string[] = []
    for (let i = 0; i < PACKS; i++) {
      const data = randomBytes(PACK_SIZE)
      const id = createHash('sha256').update(data).digest('hex')
      await store.putPack(id, data, [])
      ids.push(id)
    }
    const server = await startServer(root)
    const http = new HttpStore(server.url)
    const fds = new Map<string, FileHandle>()
    for (const id of ids) fds.set(id, await open(packPath(root, id), 'r'))
    const viaFs = async (r: PackRange): Promise<number> => {
      const buf = Buffer.allocUnsafe(r.length)
      return (await fds.get(r.pack)!.read(buf, 0, r.length, r.offset)).bytesRead
    }
    const via = (s: Store) => async (r: PackRange): Promise<number> => (await s.readRanges([r]))[0]!.length
    // 16 neighbouring 64 KiB ranges in one call, as a reader fetching a file's next chunks does: coalesced into
    // one 1 MiB read / request.
    const batched = (s: Store) => async (r: PackRange): Promise<number> => {
      const start = Math.min(r.offset, PACK_SIZE - BATCH * READ)
      const bufs = await s.readRanges(Array.from({ length: BATCH }, (_, i) => ({ pack: r.pack, offset: start + i * READ, length: READ })))
      return bufs.reduce((n, b) => n + b.length, 0)
    }

    const viaFetch = async (r: PackRange): Promise<number> => {
      const res = await fetch(`${server.url}/packs/${r.pack}`, { headers: { range: `bytes=${r.offset}-${r.offset + r.length - 1}` } })
      return (await res.arrayBuffer()).byteLength
    }
    // Two groups, local then HTTP, each measured on its own (mixing them in one loop let the HTTP client's
    // garbage slow the local rounds down). Within a group the rounds alternate the paths over the same ranges and
    // the best round of each counts, so a burst of load from other processes does not land on one path only.
    type Path = [name: string, read: (r: PackRange) => Promise<number>, reads: number]
    const groups: Path[][] = [
      [
        ['fs.read (anchor)', viaFs, LOCAL_READS],
        ['DirStore', via(store), LOCAL_READS],
        [`DirStore, ${BATCH} neighbours/call`, batched(store), LOCAL_READS / BATCH],
      ],
      [
        ['fetch Range GET (http anchor)', viaFetch, HTTP_READS],
        ['HttpStore', via(http), HTTP_READS],
        [`HttpStore, ${BATCH} neighbours/call`, batched(http), HTTP_READS / 4],
      ],
    ]
    const rows: Array<{ name: string; depth: number; mbps: number; anchor: number; httpAnchor?: number }> = []
    for (const [g, paths] of groups.entries()) {
      for (const depth of [1, 8]) {
        const ranges = randomRanges(ids, LOCAL_READS)
        for (const [, read] of paths) await measure(ranges.slice(0, 100), depth, read) // warm-up: JIT, keep-alive
        const best = paths.map(() => 0)
        for (let round = 0; round < ROUNDS; round++) {
          for (const [i, [, read, reads]] of paths.entries()) best[i] = Math.max(best[i]!, await measure(ranges.slice(0, reads), depth, read))
        }
        const fsAnchor = g === 0 ? best[0]! : rows.find((r) => r.depth === depth && r.name.startsWith('fs.read'))!.mbps
        paths.forEach(([name], i) => rows.push({ name, depth, mbps: best[i]!, anchor: fsAnchor, httpAnchor: g === 1 && i > 0 ? best[0]! : undefined }))
      }
    }
    process.stdout.write(`store-read: best of ${ROUNDS} rounds of ${LOCAL_READS} (HTTP: ${HTTP_READS}) random ${READ / 1024} KiB reads over ${PACKS} packs of ${PACK_SIZE / 1048576} MiB in ${root}\n`)
    process.stdout.write('path                                depth   MB/s  vs fs.read  vs fetch\n')
    for (const r of rows) {
      const vsFetch = r.httpAnchor === undefined ? '' : (r.mbps / r.httpAnchor).toFixed(2).padStart(10)
      process.stdout.write(`${r.name.padEnd(36)}${String(r.depth).padStart(5)}${r.mbps.toFixed(0).padStart(7)}${(r.mbps / r.anchor).toFixed(2).padStart(12)}${vsFetch}\n`)
    }
    for (const fh of fds.values()) await fh.close()
    await http.close()
    await store.close()
    await server.stop()
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
