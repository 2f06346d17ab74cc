// Hub throughput against the plainest ways to move the same bytes, all on 127.0.0.1 in the same run:
//   upload     `pushFlist` of a fresh image (every pack new: hashed, verified chunk by chunk, stored, indexed)
//              vs fs.copyFile of the same pack files, and vs one `curl -T` run PUTting the same pack files to a
//              bare Node sink that writes each body to a file
//   download   every chunk range of the flist through HttpStore (coalesced Range GETs, what mounts and unpack do)
//              vs one `curl` run GETting the same pack files from the same hub
//   version 2  `pushFlist` of a second version sharing most chunks with the first (only its new packs move, plus
//              the queries and the metadata) vs moving only its new bytes: the anchor PUTs exactly those pack files
//              and the version's metadata file (new bytes too: a push sends it) from this process (node:http,
//              keep-alive, 3 in flight like the push, each file read whole like the push reads a pack) to a bare
//              sink in its own process (like the hub; given version 1 first, as the hub is) that streams each body
//              into a file. Target <= 1.2x. Each round pushes VARIANTS second versions (each replacing other files) to
//              one hub holding version 1, each timed between two anchor runs (the faster one counts): the ratio's
//              median and range over all of them. Also shown: `curl -T` of the same bytes (includes starting
//              curl), and `pushFlist` of the changed files alone to a hub holding version 1 (the same new packs
//              through the same checks: what the shared part of the image costs).
//   over a link  the same second versions and anchors again, with the hub and the sink in a network namespace
//              behind a veth pair shaped with tbf to HUB_BENCH_LINK (default 1gbit; `off` skips it; needs root and
//              tc): over loopback the anchor is a memory copy, so the push's fixed costs (its queries, the checks of
//              every new byte on the same two cores) weigh in full; over a link moving the bytes takes time, as
//              between a publisher and a hub on two machines.
// The hub runs as `zos hub serve` in a child process; data lives on tmpfs (/dev/shm) so the figures measure code
// and loopback, not the disk. Best of ROUNDS rounds, each on a fresh hub.
//   npm run bench -- hub [--quick]        HUB_BENCH_LINK=100mbit npm run bench -- hub
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { Agent, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKey, saveKey } from '../src/core/keys.js'
import { createPackPool, pack } from '../src/flist/pack.js'
import { FlistReader } from '../src/flist/reader.js'
import { openSource } from '../src/flist/source/open.js'
import { HubClient } from '../src/hub/client.js'
import { pushFlist } from '../src/hub/push.js'
import { DirStore, packPath } from '../src/store/dir.js'
import { HttpStore } from '../src/store/http.js'
import { urlFromStdout } from './lib/child.js'

const quick = process.argv.includes('--quick')
/** HUB_BENCH_TRACE=1: each second-version push's phases and each side's CPU, on stderr. */
const trace = process.env.HUB_BENCH_TRACE !== undefined
const FILES = quick ? 32 : 128
const FILE_SIZE = 512 * 1024
/** Files replaced in version 2 (1/8 of the image). */
const CHANGED = FILES / 8
const ROUNDS = quick ? 1 : 3
/** Second versions pushed per round (each replacing CHANGED other files of version 1). */
const VARIANTS = quick ? 2 : 4

interface Child {
  url: string
  pid?: number
  stop(): Promise<void>
}

/**
 * A link of a given rate between this process and a network namespace: a veth pair shaped with tbf in both
 * directions. Over loopback, moving 8 MB is a memory copy (~30 ms on this machine's two cores), so the push's
 * checks show at full weight; over a link the bytes take time, as between a publisher and a hub on two machines.
 * (Only the rate: this kernel has no netem for delay, so every round trip is a loopback one.)
 */
interface Link {
  netns: string
  /** The namespace's address, where the hub and the sink listen. */
  far: string
  rate: string
  close(): void
}

/** The link, or why there is none (needs root, ip and tc with tbf). HUB_BENCH_LINK=RATE (tc syntax) or off. */
function makeLink(): Link | string {
  const rate = process.env.HUB_BENCH_LINK ?? '1gbit'
  if (rate === 'off') return 'HUB_BENCH_LINK=off'
  if (process.getuid?.() !== 0) return 'needs root (a network namespace and tc)'
  const netns = `zos-bench-hub-${process.pid}`
  const [near, far, veth, peer] = ['10.254.213.1', '10.254.213.2', `zbh${process.pid}a`, `zbh${process.pid}b`]
  const run = (...args: string[]): void => void execFileSync(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  const inNs = (...args: string[]): void => run('ip', 'netns', 'exec', netns, ...args)
  const close = (): void => {
    spawnSync('ip', ['link', 'del', veth], { stdio: 'ignore' }) // and its peer
    spawnSync('ip', ['netns', 'del', netns], { stdio: 'ignore' })
  }
  try {
    run('ip', 'netns', 'add', netns)
    run('ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', peer, 'netns', netns)
    run('ip', 'addr', 'add', `${near}/30`, 'dev', veth)
    run('ip', 'link', 'set', veth, 'up')
    inNs('ip', 'addr', 'add', `${far}/30`, 'dev', peer)
    inNs('ip', 'link', 'set', peer, 'up')
    inNs('ip', 'link', 'set', 'lo', 'up')
    const tbf = ['root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms']
    run('tc', 'qdisc', 'add', 'dev', veth, ...tbf)
    inNs('tc', 'qdisc', 'add', 'dev', peer, ...tbf)
  } catch (err) {
    close()
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim()
    return `could not make a ${rate} link (${stderr || (err as Error).message})`
  }
  return { netns, far, rate, close }
}

/** Spawns node with these arguments: here, or inside the link's namespace (`ip netns exec` execs it: same pid). */
function spawnNode(args: string[], link: Link | undefined, env?: NodeJS.ProcessEnv): ChildProcess {
  const [cmd, ...rest] = link ? ['ip', 'netns', 'exec', link.netns, process.execPath, ...args] : [process.execPath, ...args]
  return spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'inherit'], ...(env ? { env } : {}) })
}

async function startHubProcess(data: string, home: string, link?: Link): Promise<Child> {
  const fromSource = import.meta.url.endsWith('.ts')
  const main = fileURLToPath(new URL(`../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
  // HUB_BENCH_HUB_ARGS: node options for the hub process only (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
  const nodeArgs = (process.env.HUB_BENCH_HUB_ARGS ?? '').split(' ').filter(Boolean)
  const serve = ['hub', 'serve', '--data', data, '--port', '0', '--log-level', 'warn', '--workers', '1', '--host', link?.far ?? '127.0.0.1']
  const child = spawnNode([...nodeArgs, ...(fromSource ? ['--import', 'tsx'] : []), main, ...serve], link, { ...process.env, ZOS_HOME: home })
  const url = await urlFromStdout(child, 'zos hub serve')
  return { url, pid: child.pid, stop: () => new Promise<void>((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))) }
}

/** Nanoseconds of CPU a process's threads have run (for HUB_BENCH_TRACE; 0 when unknown). */
function cpuNs(pid: number | undefined): number {
  if (pid === undefined) return 0
  let n = 0
  for (const t of readdirSync(`/proc/${pid}/task`)) n += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0])
  return n
}

/** A bare upload sink: each PUT body goes to a file (the anchor for "just moving the bytes"). */
async function startSink(dir: string): Promise<Child> {
  let n = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      void writeFile(join(dir, `up-${n++}`), Buffer.concat(chunks)).then(() => {
        res.writeHead(201, { 'content-length': 0 })
        res.end()
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return { url: `http://127.0.0.1:${port}`, stop: () => new Promise<void>((r) => (server.close(() => r()), server.closeAllConnections())) }
}

/**
 * The anchor's sink, in its own process like the hub: each PUT body is streamed into a file, which is fsynced and
 * closed before the answer (the hub does at least that with a pack), nothing else.
 */
const SINK = `
const { createServer } = require('node:http'); const fs = require('node:fs'); const { join } = require('node:path')
let n = 0
const server = createServer((req, res) => {
  const path = join(process.argv[1], 'up-' + n++)
  const out = fs.createWriteStream(path)
  req.pipe(out)
  out.on('finish', () => fs.fsync(out.fd ?? -1, () => { res.writeHead(201, { 'content-length': 0 }); res.end() }))
})
const host = process.argv[2]
server.listen(0, host, () => process.stdout.write('http://' + host + ':' + server.address().port + '\\n'))
process.on('SIGTERM', () => process.exit(0))
`

async function startSinkProcess(dir: string, link?: Link): Promise<Child> {
  const child = spawnNode(['-e', SINK, dir, link?.far ?? '127.0.0.1'], link)
  const url = await urlFromStdout(child, 'the sink')
  return { url, pid: child.pid, stop: () => new Promise<void>((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))) }
}

/** The anchor: PUTs these files to the sink, 3 at a time over keep-alive connections; returns seconds. */
async function putFiles(url: string, files: readonly string[]): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 3 })
  const t0 = performance.now()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++
      const data = await readFile(files[i]!)
      await new Promise<void>((resolve, reject) => {
        const req = request(`${url}/a${i}`, { method: 'PUT', agent, headers: { 'content-length': data.length } }, (res) => {
          res.resume()
          res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`the sink answered ${res.statusCode}`))))
        })
        req.on('error', reject)
        req.end(data)
      })
    }
  }
  await Promise.all(Array.from({ length: Math.min(3, files.length) }, worker))
  const s = (performance.now() - t0) / 1000
  agent.destroy()
  return s
}

/** Runs curl once over many transfers (asynchronously: the sink lives in this process); returns seconds. */
async function curl(args: string[]): Promise<number> {
  const t0 = performance.now()
  const child = spawn('curl', ['-sS', '--fail', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`curl failed (${code}): ${err}`)
  return (performance.now() - t0) / 1000
}

function packsOf(file: string): { packs: string[]; ranges: { pack: string; offset: number; length: number }[] } {
  const reader = FlistReader.open(file)
  try {
    const chunks = reader.allChunks()
    return { packs: [...new Set(chunks.map((c) => c.pack))], ranges: chunks.map((c) => ({ pack: c.pack, offset: c.offset, length: c.length })) }
  } finally {
    reader.close()
  }
}

interface Variant {
  file: string
  /** Its packs that neither version 1 nor an earlier variant has: what its push moves. */
  packs: string[]
}

interface Sample {
  push: number
  anchor: number
  bytes: number
}

/**
 * Pushes each second version to `hub` (which holds version 1), each timed between two anchor runs to `sink` (the
 * faster one counts): the version's new pack files and its metadata file (new bytes too: a push sends it).
 */
async function pushVariants(client: HubClient, hub: Child, sink: Child, variants: readonly Variant[], store: DirStore, label: string): Promise<Sample[]> {
  const out: Sample[] = []
  for (const [k, v] of variants.entries()) {
    const files = [...v.packs.map((p) => packPath(store.root, p)), v.file]
    const cpu0 = trace ? [cpuNs(process.pid), cpuNs(sink.pid)] : []
    const before = await putFiles(sink.url, files)
    const cpu1 = trace ? [cpuNs(process.pid), cpuNs(sink.pid), cpuNs(hub.pid)] : []
    const t0 = performance.now()
    const marks: string[] = []
    let phase = ''
    const r2 = await pushFlist(client, v.file, {
      name: 'img',
      tag: `v2-${k}`,
      store,
      onProgress: (p) => {
        if (p.phase !== phase) marks.push(`${p.phase}@${(performance.now() - t0).toFixed(0)}`)
        phase = p.phase
      },
    })
    const tPush = (performance.now() - t0) / 1000
    if (trace) {
      const ms = (ns: number): string => (ns / 1e6).toFixed(1)
      const cpu2 = [cpuNs(process.pid), cpuNs(hub.pid)]
      process.stderr.write(`${label}v2-${k} phases: ${marks.join(' ')} end@${(tPush * 1000).toFixed(0)}; CPU ms: client ${ms(cpu2[0]! - cpu1[0]!)}, hub ${ms(cpu2[1]! - cpu1[2]!)}; anchor before it ${(before * 1000).toFixed(0)} ms, CPU ms: client ${ms(cpu1[0]! - cpu0[0]!)}, sink ${ms(cpu1[1]! - cpu0[1]!)}\n`)
    }
    if (r2.uploadedPacks !== v.packs.length) throw new Error(`version 2 (variant ${k}) moved ${r2.uploadedPacks} packs, expected ${v.packs.length}`)
    out.push({ push: tPush, anchor: Math.min(before, await putFiles(sink.url, files)), bytes: r2.uploadedBytes })
  }
  return out
}

const mbps = (bytes: number, s: number): number => bytes / 1e6 / s

async function main(): Promise<void> {
  const root = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'zos-bench-hub-'))
  try {
    const home = join(root, 'home')
    // This process's hub client too (its hub-cache of resolved flists): nothing goes to the user's ~/.zos.
    process.env.ZOS_HOME = home
    const key = generateKey()
    await saveKey(join(home, 'key.json'), key)
    // Two versions of a tree of incompressible files; version 2 replaces 1/8 of them.
    const v1dir = join(root, 'v1')
    const v2dir = join(root, 'v2')
    const newDir = join(root, 'v2-new-only')
    await mkdir(v1dir)
    await mkdir(v2dir)
    await mkdir(newDir)
    const v1files: Buffer[] = []
    for (let i = 0; i < FILES; i++) {
      const data = randomBytes(FILE_SIZE)
      v1files.push(data)
      await writeFile(join(v1dir, `f${i}`), data)
      const changed = i < CHANGED ? randomBytes(FILE_SIZE) : data
      await writeFile(join(v2dir, `f${i}`), changed)
      if (i < CHANGED) await writeFile(join(newDir, `f${i}`), changed)
    }
    // More second versions, each replacing another CHANGED files of version 1 (variant 0 is v2 itself).
    const variantDirs = [v2dir]
    for (let k = 1; k < VARIANTS; k++) {
      const d = join(root, `v2-${k}`)
      await mkdir(d)
      for (let i = 0; i < FILES; i++) await writeFile(join(d, `f${i}`), Math.floor(i / CHANGED) === k ? randomBytes(FILE_SIZE) : v1files[i]!)
      variantDirs.push(d)
    }
    const store = await DirStore.open(join(root, 'local'), { create: true })
    const pool = createPackPool(2)
    const v1 = await pack({ source: await openSource(v1dir), output: join(root, 'v1.fl'), store, signers: [key], pool })
    const v2 = await pack({ source: await openSource(v2dir), output: join(root, 'v2.fl'), store, signers: [key], pool })
    // The changed files alone: their chunks are v2's new chunks, found in the same local store, so this flist
    // points at exactly v2's new packs.
    const v2new = await pack({ source: await openSource(newDir), output: join(root, 'v2-new.fl'), store, signers: [key], pool })
    const variants: Variant[] = [{ file: v2.output, packs: [] }]
    for (const d of variantDirs.slice(1)) variants.push({ file: (await pack({ source: await openSource(d), output: `${d}.fl`, store, signers: [key], pool })).output, packs: [] })
    await pool.close()
    const p1 = packsOf(v1.output)
    const p2 = packsOf(v2.output)
    const newPacks = p2.packs.filter((p) => !p1.packs.includes(p))
    // Each variant's new packs: those neither version 1 nor an earlier variant (pushed before it) has.
    const seen = new Set(p1.packs)
    for (const v of variants) {
      v.packs = packsOf(v.file).packs.filter((p) => !seen.has(p))
      for (const p of packsOf(v.file).packs) seen.add(p)
    }
    const v1Bytes = (await Promise.all(p1.packs.map((p) => store.statPack(p)))).reduce((n: number, s) => n + s!, 0)

    if (packsOf(v2new.output).packs.some((p) => !newPacks.includes(p))) throw new Error('the new-files-only image does not point at v2\'s new packs')
    const best = { up: 0, copy: 0, curlUp: 0, down: 0, curlDown: 0, v2: Infinity, v2Anchor: Infinity, v2Curl: Infinity, v2Bytes: 0, v2Alone: Infinity }
    /** Every second-version push, with its anchor. */
    const samples: Sample[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const hub = await startHubProcess(join(root, `hub-${round}`), home)
      const sinkDir = join(root, `sink-${round}`)
      await mkdir(sinkDir)
      const sink = await startSink(sinkDir)
      const sinkProcess = await startSinkProcess(sinkDir)
      const client = new HubClient(hub.url, { key })
      try {
        // Upload: our push of a fresh image, against a copy and a bare curl upload of the same pack files.
        let t0 = performance.now()
        const r1 = await pushFlist(client, v1.output, { name: 'img', tag: 'v1', store })
        best.up = Math.max(best.up, mbps(r1.uploadedBytes, (performance.now() - t0) / 1000))
        const copyDir = join(root, `copy-${round}`)
        await mkdir(copyDir)
        t0 = performance.now()
        for (const p of p1.packs) await copyFile(packPath(store.root, p), join(copyDir, p))
        best.copy = Math.max(best.copy, mbps(v1Bytes, (performance.now() - t0) / 1000))
        const upArgs = p1.packs.flatMap((p, i) => ['-T', packPath(store.root, p), `${sink.url}/p${i}`])
        best.curlUp = Math.max(best.curlUp, mbps(v1Bytes, await curl(upArgs)))
        // The anchor's sink gets version 1 too (untimed), as the hub did: both answer the second versions warm.
        await putFiles(sinkProcess.url, [...p1.packs.map((p) => packPath(store.root, p)), v1.output])

        // Download: every chunk through HttpStore vs curl of the same packs.
        const http = new HttpStore(hub.url)
        t0 = performance.now()
        let got = 0
        for (let i = 0; i < p1.ranges.length; i += 256) for (const b of await http.readRanges(p1.ranges.slice(i, i + 256))) got += b.length
        best.down = Math.max(best.down, mbps(got, (performance.now() - t0) / 1000))
        await http.close()
        const downArgs = p1.packs.flatMap((p) => ['-o', '/dev/null', `${hub.url}/packs/${p}`])
        best.curlDown = Math.max(best.curlDown, mbps(v1Bytes, await curl(downArgs)))

        // Version 2 (and the other variants): only the new packs move. Each push between two anchor runs.
        const pushed = await pushVariants(client, hub, sinkProcess, variants, store, '')
        samples.push(...pushed)
        best.v2 = Math.min(best.v2, pushed[0]!.push)
        best.v2Anchor = Math.min(best.v2Anchor, pushed[0]!.anchor)
        best.v2Bytes = pushed[0]!.bytes
        best.v2Curl = Math.min(best.v2Curl, await curl(newPacks.flatMap((p, i) => ['-T', packPath(store.root, p), `${sink.url}/v2-${i}`])))
        // The same new packs pushed alone, to a hub holding version 1 (pushed first, untimed: it also warms up).
        const empty = await startHubProcess(join(root, `hub-empty-${round}`), home)
        const c2 = new HubClient(empty.url, { key })
        try {
          await pushFlist(c2, v1.output, { name: 'img', tag: 'v1', store })
          t0 = performance.now()
          const alone = await pushFlist(c2, v2new.output, { name: 'new', store })
          best.v2Alone = Math.min(best.v2Alone, (performance.now() - t0) / 1000)
          if (alone.uploadedBytes !== best.v2Bytes) throw new Error(`the new files alone moved ${alone.uploadedBytes} bytes, version 2 ${best.v2Bytes}`)
        } finally {
          c2.close()
          await empty.stop()
          await rm(join(root, `hub-empty-${round}`), { recursive: true, force: true })
        }
      } finally {
        client.close()
        await sink.stop()
        await sinkProcess.stop()
        await hub.stop()
        await rm(join(root, `hub-${round}`), { recursive: true, force: true })
        await rm(sinkDir, { recursive: true, force: true })
        await rm(join(root, `copy-${round}`), { recursive: true, force: true })
      }
    }
    // The second versions again, with the hub and the sink behind a shaped link.
    const link = makeLink()
    const linkSamples: Sample[] = []
    if (typeof link === 'string') process.stderr.write(`hub: no measurement over a link: ${link}\n`)
    else {
      try {
        for (let round = 0; round < ROUNDS; round++) {
          const hub = await startHubProcess(join(root, `hub-link-${round}`), home, link)
          const sinkDir = join(root, `sink-link-${round}`)
          await mkdir(sinkDir)
          const sinkProcess = await startSinkProcess(sinkDir, link)
          const client = new HubClient(hub.url, { key })
          try {
            await pushFlist(client, v1.output, { name: 'img', tag: 'v1', store })
            await putFiles(sinkProcess.url, [...p1.packs.map((p) => packPath(store.root, p)), v1.output])
            linkSamples.push(...(await pushVariants(client, hub, sinkProcess, variants, store, `${link.rate} link: `)))
          } finally {
            client.close()
            await sinkProcess.stop()
            await hub.stop()
            await rm(join(root, `hub-link-${round}`), { recursive: true, force: true })
            await rm(sinkDir, { recursive: true, force: true })
          }
        }
      } finally {
        link.close()
      }
    }
    const MB = (n: number): string => (n / 1e6).toFixed(1)
    const ms = (xs: number[]): string => ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! * 1000).toFixed(0)
    /** The per-push ratios' median and range, and the median times. */
    const spread = (xs: readonly Sample[]): string => {
      const ratios = xs.map((x) => x.push / x.anchor).sort((a, b) => a - b)
      const ratio = (q: number): string => ratios[Math.round(q * (ratios.length - 1))]!.toFixed(2)
      return `median ${ratio(0.5)}, range ${ratio(0)}-${ratio(1)}; push median ${ms(xs.map((x) => x.push))} ms, anchor median ${ms(xs.map((x) => x.anchor))} ms`
    }
    process.stdout.write(
      [
        `hub: image of ${FILES} x ${FILE_SIZE / 1024} KiB incompressible files (${MB(v1Bytes)} MB in ${p1.packs.length} packs); version 2 replaces ${CHANGED} files; best of ${ROUNDS} rounds on ${root.startsWith('/dev/shm') ? 'tmpfs' : 'disk'}`,
        '',
        '| path | MB/s | ratio to anchor |',
        '|------|------|-----------------|',
        `| upload: zos hub push (fresh image) | ${best.up.toFixed(0)} | ${(best.up / best.curlUp).toFixed(2)} of curl, ${(best.up / best.copy).toFixed(2)} of copy |`,
        `| upload anchor: curl -T to a bare sink | ${best.curlUp.toFixed(0)} | 1.00 |`,
        `| anchor: fs.copyFile of the packs | ${best.copy.toFixed(0)} | |`,
        `| download: HttpStore, every chunk range | ${best.down.toFixed(0)} | ${(best.down / best.curlDown).toFixed(2)} of curl |`,
        `| download anchor: curl GET of the packs | ${best.curlDown.toFixed(0)} | 1.00 |`,
        '',
        `version 2: push moved ${MB(best.v2Bytes)} MB in ${newPacks.length} packs (of ${p2.packs.length}) in ${(best.v2 * 1000).toFixed(0)} ms (best of ${ROUNDS})`,
        `  anchor, node:http PUT of the same pack files and the metadata file to a bare sink process: ${(best.v2Anchor * 1000).toFixed(0)} ms, ratio ${(best.v2 / best.v2Anchor).toFixed(2)} (target <= 1.20)`,
        `  over all ${samples.length} second versions (${VARIANTS} per round), push / anchor measured around it: ${spread(samples)}`,
        ...(typeof link === 'string' ? [] : [`  over a ${link.rate}/s link (tbf on a veth pair; hub and sink in a network namespace), all ${linkSamples.length}: ${spread(linkSamples)}`]),
        `  vs curl -T of the same new packs to a bare sink (includes starting curl): ${(best.v2Curl * 1000).toFixed(0)} ms, ratio ${(best.v2 / best.v2Curl).toFixed(2)}`,
        `  vs pushing the changed files alone (same new packs, a hub holding v1): ${(best.v2Alone * 1000).toFixed(0)} ms, ratio ${(best.v2 / best.v2Alone).toFixed(2)}`,
        '',
      ].join('\n'),
    )
    await store.close()
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
