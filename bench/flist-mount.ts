// bench/flist-mount: what `zos flist mount` gives a workload, each figure against its anchor in the same run.
//   1. warm sequential read (dd bs=1M, buffered and iflag=direct) of a 256 MiB file through the mount, after one
//      full read, against the same file on local disk;
//   2. warm random 4 KiB O_DIRECT read IOPS (fio, or python preadv readers when fio is missing), same anchor;
//   3. cold start: a large flist (a Debian root filesystem + node + a 256 MiB data file) served over HTTP from
//      localhost by `zos store serve`, empty chunk cache: time from starting `zos flist mount --daemon` to the
//      first output of a program run from the mount with chroot, and bytes fetched against bytes read; anchors:
//      `zos flist unpack` from the same store, and curl | zstd -d | tar -x of the same tree, then the same program.
// The mounts are made by `zos flist mount --daemon` as users run it (bin/zos, npm's `zos`), whose serving
// processes are children (a FUSE filesystem must never be read with synchronous calls from the process serving it). Every mount, daemon and
// server the benchmark starts is stopped at the end, also on failure or Ctrl-C.
// Usage: npm run bench -- flist-mount [--quick] [--rounds N] [--work DIR] [--json]
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync, openSync, writeSync, closeSync, chmodSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { FORMAT_VERSION } from '../src/flist/schema.js'
import { median } from './lib/stats.js'

const args = process.argv.slice(2)
const flag = (name: string): boolean => args.includes(name)
const option = (name: string): string | undefined => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const quick = flag('--quick')
const ROUNDS = Number(option('--rounds') ?? (quick ? 1 : 3))
const root = resolve(new URL('../..', import.meta.url).pathname)
const work = resolve(option('--work') ?? join(root, 'bench', '.work', 'flist-mount'))
const cli = join(root, 'dist', 'src', 'cli', 'main.js')
/** The command users run (npm's `zos`): it starts a daemon mount's serving process itself (bin/zos). */
const zosCommand = join(root, 'bin', 'zos')
const debianCorpus = join(root, 'bench', '.work', 'flist-pack', 'corpus', 'debian-bookworm-minbase')
const BLOB_BYTES = 256 * 1024 * 1024
const BLOB = 'srv/data/blob.bin'
const IMAGE_VERSION = 1

const MiB = 1024 * 1024
const log = (msg: string): void => void process.stderr.write(`flist-mount: ${msg}\n`)

// ---------------------------------------------------------------------------------------------------------------
// Processes, mounts and cleanup

const startedPids = new Set<number>()
const mountpoints = new Set<string>()
const servers: Server[] = []

interface RunResult {
  code: number | null
  stdout: string
  stderr: string
  ms: number
  firstOutputMs?: number
}

/** Runs a command without blocking this process (it may be serving HTTP); optionally times the first stdout byte. */
function run(cmd: string, argv: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return new Promise((done, fail) => {
    const t0 = performance.now()
    const child = spawn(cmd, argv, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    if (child.pid) startedPids.add(child.pid)
    let stdout = ''
    let stderr = ''
    let first: number | undefined
    child.stdout.on('data', (d: Buffer) => {
      first ??= performance.now() - t0
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', fail)
    child.on('close', (code) => {
      if (child.pid) startedPids.delete(child.pid)
      done({ code, stdout, stderr, ms: performance.now() - t0, ...(first !== undefined ? { firstOutputMs: first } : {}) })
    })
  })
}

async function must(cmd: string, argv: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  const r = await run(cmd, argv, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`)
  return r
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (alive(pid)) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 20))
  }
  return true
}

function isMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path)
}

interface Mounted {
  mountpoint: string
  pid: number
  log: string
}

/**
 * `zos flist mount FLIST MNT --store URL --cache DIR --daemon`, as the installed command: returns when mounted
 * (what a user waits for).
 */
async function mount(flist: string, mnt: string, store: string, cache: string, extra: string[] = []): Promise<Mounted & { ms: number }> {
  mkdirSync(mnt, { recursive: true })
  mountpoints.add(mnt)
  const r = await must(zosCommand, ['flist', 'mount', flist, mnt, '--store', store, '--cache', cache, '--daemon', '--json', ...extra])
  const m = JSON.parse(r.stdout) as Mounted
  startedPids.add(m.pid)
  return { ...m, ms: r.ms }
}

interface MountStats {
  fetchedChunks: number
  /** Encoded (compressed) bytes the mount received from the store. */
  fetchedBytes: number
  /** Plaintext bytes of the chunks it fetched. */
  fetchedPlainBytes: number
  /**
   * Bytes the mount gave the kernel: its answers to READs (the program's reads plus the kernel's read-ahead) and
   * the content it stored into the page cache unasked (the rest of the chunks it fetched for those reads, its own
   * read-ahead, the prefetch list), which the program then reads without a request.
   */
  readBytes: number
  /** Of readBytes, what was stored unasked. */
  pushedBytes: number
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB }

/** `zos flist umount MNT`; waits for the daemon to exit and returns the fetch statistics it logged. */
async function unmount(m: Mounted): Promise<MountStats | undefined> {
  await must(process.execPath, [cli, 'flist', 'umount', m.mountpoint])
  mountpoints.delete(m.mountpoint)
  if (!(await waitGone(m.pid, 10_000))) {
    process.kill(m.pid, 'SIGKILL')
    throw new Error(`the mount daemon ${m.pid} did not exit after umount`)
  }
  startedPids.delete(m.pid)
  const text = readFileSync(m.log, 'utf8')
  rmSync(m.log, { force: true })
  const size = '([\\d.]+) (B|KiB|MiB|GiB|TiB)'
  const x = new RegExp(`fetched (\\d+) chunks \\(${size}, ${size} plaintext\\) for ${size} read, ${size} stored into the page cache`).exec(text)
  if (!x) return undefined
  const bytes = (i: number): number => Number(x[i]) * UNITS[x[i + 1]!]!
  return { fetchedChunks: Number(x[1]), fetchedBytes: bytes(2), fetchedPlainBytes: bytes(4), readBytes: bytes(6) + bytes(8), pushedBytes: bytes(8) }
}

let cleaning: Promise<void> | undefined
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const mnt of [...mountpoints].reverse()) {
      if (!isMounted(mnt)) continue
      const r = await run(process.execPath, [cli, 'flist', 'umount', mnt])
      if (r.code !== 0) await run('umount', ['-l', mnt])
    }
    for (const pid of startedPids) if (alive(pid)) process.kill(pid, 'SIGTERM')
    for (const pid of startedPids) if (!(await waitGone(pid, 5000))) process.kill(pid, 'SIGKILL')
    for (const s of servers) s.close()
    // The caches and unpacked trees are big and rebuilt by every run; the image is kept for the next run.
    for (const d of ['cache-warm', 'cache-cold', 'cache-trace', 'unpacked']) rmSync(join(work, d), { recursive: true, force: true })
  })()
  return cleaning
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`)
    void cleanup().finally(() => process.exit(130))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// The image

interface Program {
  name: string
  argv: string[]
}

interface Image {
  tree: string
  flist: string
  store: string
  tarZst: string
  bytes: number
  files: number
  programs: Program[]
}

function duBytes(path: string): { bytes: number; files: number } {
  const r = spawnSync('du', ['-s', '-b', path], { encoding: 'utf8' })
  const files = spawnSync('sh', ['-c', `find '${path}' -type f | wc -l`], { encoding: 'utf8' })
  return { bytes: Number(r.stdout.split('\t')[0]), files: Number(files.stdout.trim()) }
}

/** A synthetic tree when no Debian root is available: busybox plus enough generated files to pass 200 MB. */
function syntheticTree(tree: string): void {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p))
  if (!busybox) throw new Error('no Debian root (run `npm run bench -- flist-pack` with debootstrap) and no busybox-static: nothing to run from the image')
  mkdirSync(join(tree, 'bin'), { recursive: true })
  copyFileSync(busybox, join(tree, 'bin', 'busybox'))
  chmodSync(join(tree, 'bin', 'busybox'), 0o755)
  for (const app of ['sh', 'cat', 'ls', 'echo']) spawnSync('ln', ['-s', 'busybox', join(tree, 'bin', app)])
  mkdirSync(join(tree, 'etc'), { recursive: true })
  writeFileSync(join(tree, 'etc', 'os-release'), 'NAME=synthetic\n')
  // 4,000 files of 1-64 KiB (half text, half random) and 40 of 1 MiB: about 190 MB with the blob added later.
  for (let d = 0; d < 40; d++) {
    const dir = join(tree, 'usr', 'share', `d${d}`)
    mkdirSync(dir, { recursive: true })
    for (let f = 0; f < 100; f++) {
      const size = 1024 + ((d * 100 + f) * 7919) % (63 * 1024)
      const data = f % 2 ? randomBytes(size) : Buffer.from(`line ${d}/${f} `.repeat(Math.ceil(size / 12)).slice(0, size))
      writeFileSync(join(dir, `f${f}`), data)
    }
    writeFileSync(join(dir, 'large'), randomBytes(MiB))
  }
}

async function prepareImage(): Promise<Image> {
  const tree = join(work, 'tree')
  const stampFile = join(work, 'image.json')
  const flist = join(work, 'image.fl')
  const store = join(work, 'store')
  const tarZst = join(work, 'tree.tar.zst')
  const debian = existsSync(join(debianCorpus, 'etc', 'debian_version'))
  // The flist format is in the stamp: an image packed by an older zos would measure the older format's checks.
  const stamp = JSON.stringify({ version: IMAGE_VERSION, format: FORMAT_VERSION, debian, node: process.version })
  const programs: Program[] = debian
    ? [
        { name: 'bash: echo + cat', argv: ['/bin/bash', '-c', 'echo "ready on Debian $(cat /etc/debian_version)"'] },
        { name: 'node: hello.js', argv: ['/usr/local/bin/node', '/app/hello.js'] },
      ]
    : [{ name: 'busybox sh: echo + cat', argv: ['/bin/sh', '-c', 'echo "ready on $(cat /etc/os-release)"'] }]
  const ready = existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(flist) && existsSync(store) && existsSync(tarZst) && existsSync(join(tree, BLOB))
  if (!ready) {
    log('building the image (once): tree, flist, store, tar.zst')
    rmSync(stampFile, { force: true })
    for (const p of [tree, flist, store, tarZst]) rmSync(p, { recursive: true, force: true })
    for (const f of readdirSync(work)) if (f.startsWith('image-prefetch-') || f.startsWith('trace-')) rmSync(join(work, f), { force: true })
    if (debian) {
      await must('cp', ['-a', debianCorpus, tree])
      // node and its script: a large program to start from the mount (the Debian root has its libraries).
      mkdirSync(join(tree, 'usr', 'local', 'bin'), { recursive: true })
      copyFileSync(process.execPath, join(tree, 'usr', 'local', 'bin', 'node'))
      chmodSync(join(tree, 'usr', 'local', 'bin', 'node'), 0o755)
      mkdirSync(join(tree, 'app'), { recursive: true })
      writeFileSync(join(tree, 'app', 'hello.js'), 'console.log(`hello from node ${process.version} in the flist`)\n')
    } else {
      log(`no Debian root at ${debianCorpus}: using a synthetic busybox tree`)
      syntheticTree(tree)
    }
    // A large data file: the sequential and random read tests read it.
    mkdirSync(join(tree, 'srv', 'data'), { recursive: true })
    const fd = openSync(join(tree, BLOB), 'w')
    for (let i = 0; i < BLOB_BYTES / (4 * MiB); i++) writeSync(fd, randomBytes(4 * MiB))
    closeSync(fd)
    log('packing the image into a dir store')
    await must(process.execPath, [cli, 'flist', 'pack', tree, '-o', flist, '--store', `dir://${store}`, '--json'])
    log('making the tar.zst anchor')
    await must('bash', ['-o', 'pipefail', '-c', `tar -cf - -C '${tree}' . | zstd -3 -T0 -q -f -o '${tarZst}'`])
    writeFileSync(stampFile, stamp)
  }
  const { bytes, files } = duBytes(tree)
  return { tree, flist, store, tarZst, bytes, files, programs }
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

async function startStoreServer(store: string): Promise<{ url: string; sentBytes(): Promise<number>; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [cli, 'store', 'serve', store, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid!
  startedPids.add(pid)
  let out = ''
  const url = await new Promise<string>((done, fail) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find((l) => l.startsWith('http'))
      if (line) done(line.trim())
    })
    child.on('exit', (code) => fail(new Error(`zos store serve exited (${code})`)))
  })
  child.stderr.resume()
  return {
    url,
    async sentBytes() {
      const text = await (await fetch(`${url}/metrics`)).text()
      return Number(/^zos_store_http_sent_bytes_total (\d+)/m.exec(text)?.[1] ?? NaN)
    },
    async stop() {
      process.kill(pid, 'SIGTERM')
      await waitGone(pid, 5000)
      startedPids.delete(pid)
    },
  }
}

/** Serves one file over HTTP (the tar.zst anchor's "registry"). */
async function serveFile(path: string): Promise<string> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/zstd', 'content-length': statSync(path).size })
    createReadStream(path).pipe(res)
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/tree.tar.zst`
}

// ---------------------------------------------------------------------------------------------------------------
// Measures

/** dd of a whole file to /dev/null; returns MB/s (10^6 bytes per second). */
async function dd(file: string, direct: boolean): Promise<number> {
  const r = await must('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', ...(direct ? ['iflag=direct'] : []), 'status=none'])
  return statSync(file).size / 1e6 / (r.ms / 1000)
}

const best = (xs: number[]): number => Math.max(...xs)

const PY_READERS = `
import os, sys, time, random
path, jobs, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
size = os.stat(path).st_size
def reader(seed):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    import mmap
    buf = mmap.mmap(-1, 4096)
    rnd = random.Random(seed)
    n = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for _ in range(64):
            os.preadv(fd, [buf], rnd.randrange(size // 4096) * 4096)
        n += 64
    os.write(1, b"%d\\n" % n)
pids = []
for j in range(jobs):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1); reader(j); os._exit(0)
    os.close(w); pids.append((pid, r))
total = 0
for pid, r in pids:
    total += int(os.read(r, 64)); os.waitpid(pid, 0)
print(total / secs)
`

/** Random 4 KiB O_DIRECT reads, `jobs` readers for `secs` seconds: IOPS. */
async function randomIops(file: string, jobs: number, secs: number): Promise<{ iops: number; tool: string }> {
  if (have('fio')) {
    const r = await must('fio', ['--name=rand4k', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k', '--direct=1', '--ioengine=psync', `--numjobs=${jobs}`,
      '--group_reporting', `--runtime=${secs}`, '--time_based', '--output-format=json'])
    const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: { read: { iops: number } }[] }
    return { iops: j.jobs[0]!.read.iops, tool: 'fio psync' }
  }
  const r = await must('python3', ['-c', PY_READERS, file, String(jobs), String(secs)])
  return { iops: Number(r.stdout.trim()), tool: 'python preadv' }
}

interface ColdRun {
  mountMs: number
  firstOutputMs: number
  httpBytes: number
  stats: MountStats | undefined
}

async function chrootFirstOutput(dir: string, program: Program): Promise<RunResult> {
  const r = await run('chroot', [dir, ...program.argv])
  if (r.code !== 0 || r.firstOutputMs === undefined) throw new Error(`chroot ${dir} ${program.argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r
}

const slug = (name: string): string => name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()

/**
 * The image again with a prefetch list: the files `program` opened in a traced run (`zos flist mount --trace`),
 * packed with `zos flist pack --prefetch` (the chunks are in the store already, so only metadata is written).
 */
async function prefetchImage(image: Image, program: Program, storeUrl: string): Promise<string> {
  // Named for the trace format (byte ranges since December 2026): lists recorded before are not reused.
  const fl = join(work, `image-prefetch-ranges-${slug(program.name)}.fl`)
  if (existsSync(fl)) return fl
  const trace = join(work, `trace-ranges-${slug(program.name)}.txt`)
  const mnt = join(work, 'mnt-trace')
  const cache = join(work, 'cache-trace')
  rmSync(cache, { recursive: true, force: true })
  const m = await mount(image.flist, mnt, storeUrl, cache, ['--trace', trace, '--no-prefetch'])
  await chrootFirstOutput(mnt, program)
  await unmount(m)
  rmSync(cache, { recursive: true, force: true })
  await must(process.execPath, [cli, 'flist', 'pack', image.tree, '-o', fl, '--store', `dir://${image.store}`, '--prefetch', trace, '--json'])
  log(`${program.name}: prefetch list of ${readFileSync(trace, 'utf8').trim().split('\n').length} ranges recorded`)
  return fl
}

type StoreServer = Awaited<ReturnType<typeof startStoreServer>>

/** Mount with an empty cache, run the program, unmount: one cold start. */
async function coldRun(flist: string, program: Program, server: StoreServer): Promise<ColdRun> {
  const mnt = join(work, 'mnt-cold')
  const cache = join(work, 'cache-cold')
  rmSync(cache, { recursive: true, force: true })
  const before = await server.sentBytes()
  const m = await mount(flist, mnt, server.url, cache)
  const r = await chrootFirstOutput(mnt, program)
  const firstOutputMs = m.ms + r.firstOutputMs!
  // Give a background prefetch a moment to finish, so that the bytes it fetched are counted.
  await new Promise((done) => setTimeout(done, 500))
  const httpBytes = (await server.sentBytes()) - before
  const stats = await unmount(m)
  return { mountMs: m.ms, firstOutputMs, httpBytes, stats }
}

interface WarmFigures {
  seq: Record<string, number[]>
  iops: Record<string, number>
  tool: string
}

/** Warm reads of the big file through a mount (already read once) and from local disk, alternating. */
async function warmReads(blob: string, localBlob: string, withLocal: boolean, secs: number): Promise<WarmFigures> {
  const seq: Record<string, number[]> = { mountBuffered: [], mountDirect: [], ...(withLocal ? { localBuffered: [], localDirect: [] } : {}) }
  for (let i = 0; i < ROUNDS; i++) {
    seq.mountBuffered!.push(await dd(blob, false))
    if (withLocal) seq.localBuffered!.push(await dd(localBlob, false))
    seq.mountDirect!.push(await dd(blob, true))
    if (withLocal) seq.localDirect!.push(await dd(localBlob, true))
  }
  const iops: Record<string, number> = {}
  let tool = ''
  for (const jobs of [1, 4]) {
    const a = await randomIops(blob, jobs, secs)
    iops[`mount${jobs}`] = a.iops
    tool = a.tool
    if (withLocal) iops[`local${jobs}`] = (await randomIops(localBlob, jobs, secs)).iops
  }
  return { seq, iops, tool }
}

const summary = (xs: number[]): { best: number; median: number; all: number[] } => ({ best: best(xs), median: median(xs), all: xs })

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<Record<string, unknown>> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) throw new Error('needs root and /dev/fuse (FUSE mounts)')
  if (!existsSync(cli)) throw new Error('build first: npm run build')
  mkdirSync(work, { recursive: true })
  const image = await prepareImage()
  log(`image: ${(image.bytes / 1e6).toFixed(0)} MB in ${image.files} files; flist ${(statSync(image.flist).size / 1e6).toFixed(1)} MB`)
  const server = await startStoreServer(image.store)
  const tarUrl = await serveFile(image.tarZst)
  const results: Record<string, unknown> = { imageBytes: image.bytes, imageFiles: image.files, rounds: ROUNDS, load: readFileSync('/proc/loadavg', 'utf8').trim() }
  const localBlob = join(image.tree, BLOB)
  const secs = quick ? 2 : 5

  // 1 + 2: warm reads, after one full read. First with the default settings (a memory cache sized from the RAM:
  // 1 GiB here, which holds the 256 MiB file), then a mount with the old default of 64 MiB, which cannot: the file
  // is then served from the disk cache, every chunk re-hashed.
  {
    const cache = join(work, 'cache-warm')
    rmSync(cache, { recursive: true, force: true })
    const m = await mount(image.flist, join(work, 'mnt-warm'), server.url, cache)
    const blob = join(m.mountpoint, BLOB)
    const cold = await dd(blob, false)
    log(`first (cold, over HTTP) read of the 256 MiB file through the mount: ${cold.toFixed(0)} MB/s`)
    await dd(localBlob, false)
    const def = await warmReads(blob, localBlob, true, secs)
    await unmount(m)
    // Same disk cache (warm), 64 MiB of memory cache: one read fills this mount's page cache.
    const m2 = await mount(image.flist, join(work, 'mnt-warm'), server.url, cache, ['--memory-cache', '64M'])
    await dd(blob, false)
    const big = await warmReads(blob, localBlob, false, secs)
    await unmount(m2)
    results.sequential = {
      coldOverHttpMBs: cold,
      ...Object.fromEntries(Object.entries(def.seq).map(([k, v]) => [k, summary(v)])),
      memory64: Object.fromEntries(Object.entries(big.seq).map(([k, v]) => [k, summary(v)])),
    }
    results.random = { tool: def.tool, seconds: secs, ...def.iops, memory64: big.iops }
  }

  // 3: cold start over HTTP with an empty cache, against full download-and-unpack.
  const cold: Record<string, unknown> = {}
  for (const program of image.programs) {
    const withPrefetch = await prefetchImage(image, program, server.url)
    const variants: Record<string, ColdRun[]> = { plain: [], prefetch: [] }
    for (let i = 0; i < ROUNDS; i++) {
      for (const [variant, flist] of [['plain', image.flist], ['prefetch', withPrefetch]] as const) {
        const c = await coldRun(flist, program, server)
        variants[variant]!.push(c)
        log(`cold ${program.name}${variant === 'prefetch' ? ' (prefetch list)' : ''}: first output ${c.firstOutputMs.toFixed(0)} ms (mount ${c.mountMs.toFixed(0)} ms), ${(c.httpBytes / 1e6).toFixed(1)} MB over HTTP, ${((c.stats?.fetchedPlainBytes ?? NaN) / 1e6).toFixed(1)} MB plaintext fetched for ${((c.stats?.readBytes ?? NaN) / 1e6).toFixed(1)} MB read (${((c.stats?.pushedBytes ?? NaN) / 1e6).toFixed(1)} MB of it stored into the page cache unasked)`)
      }
    }
    const unpackRuns: number[] = []
    const tarRuns: number[] = []
    for (let i = 0; i < Math.min(ROUNDS, 2); i++) {
      const dir = join(work, 'unpacked')
      rmSync(dir, { recursive: true, force: true })
      const t0 = performance.now()
      await must(process.execPath, [cli, 'flist', 'unpack', image.flist, dir, '--store', server.url, '--json'])
      await chrootFirstOutput(dir, program)
      unpackRuns.push(performance.now() - t0)
      rmSync(dir, { recursive: true, force: true })
      mkdirSync(dir)
      const t1 = performance.now()
      await must('bash', ['-o', 'pipefail', '-c', `curl -sf '${tarUrl}' | zstd -d -q | tar -xf - -C '${dir}'`])
      await chrootFirstOutput(dir, program)
      tarRuns.push(performance.now() - t1)
      rmSync(dir, { recursive: true, force: true })
      log(`anchors ${program.name}: zos flist unpack ${unpackRuns.at(-1)!.toFixed(0)} ms, curl|zstd|tar ${tarRuns.at(-1)!.toFixed(0)} ms`)
    }
    const med = (runs: ColdRun[], f: (c: ColdRun) => number): number => median(runs.map(f))
    cold[program.name] = {
      unpackMs: median(unpackRuns),
      tarMs: median(tarRuns),
      ...Object.fromEntries(Object.entries(variants).map(([k, runs]) => [k, {
        runs,
        firstOutputMs: med(runs, (c) => c.firstOutputMs),
        mountMs: med(runs, (c) => c.mountMs),
        httpBytes: med(runs, (c) => c.httpBytes),
        fetchedPlainBytes: med(runs, (c) => c.stats?.fetchedPlainBytes ?? NaN),
        readBytes: med(runs, (c) => c.stats?.readBytes ?? NaN),
      }])),
    }
  }
  results.cold = cold
  await server.stop()
  return results
}

interface ColdSummary {
  firstOutputMs: number
  mountMs: number
  httpBytes: number
  fetchedPlainBytes: number
  readBytes: number
}

function report(r: Record<string, unknown>): void {
  type Fig = { best: number; median: number }
  const out: string[] = []
  const seq = r.sequential as Record<string, Fig> & { coldOverHttpMBs: number; memory64: Record<string, Fig> }
  const rnd = r.random as Record<string, number> & { tool: string; seconds: number; memory64: Record<string, number> }
  const f0 = (n: number): string => n.toFixed(0)
  const f2 = (n: number): string => n.toFixed(2)
  const fig = (x: Fig): string => `${f0(x.best)} / ${f0(x.median)}`
  out.push(`\n## flist mount (image ${(Number(r.imageBytes) / 1e6).toFixed(0)} MB, ${String(r.imageFiles)} files; ${String(r.rounds)} rounds, load ${String(r.load)})`)
  out.push('\nwarm reads of a 256 MiB file after one full read (MB/s: best / median of the rounds; IOPS: one run each)\n')
  out.push('| measure | zos mount, defaults | zos mount, --memory-cache 64M (disk cache) | local disk (anchor) | ratio defaults / 64M | target |', '|---|---|---|---|---|---|')
  out.push(`| sequential dd bs=1M, buffered, MB/s | ${fig(seq.mountBuffered!)} | ${fig(seq.memory64.mountBuffered!)} | ${fig(seq.localBuffered!)} | ${f2(seq.mountBuffered!.best / seq.localBuffered!.best)} / ${f2(seq.memory64.mountBuffered!.best / seq.localBuffered!.best)} | >= 2000 MB/s |`)
  out.push(`| sequential dd bs=1M iflag=direct, MB/s | ${fig(seq.mountDirect!)} | ${fig(seq.memory64.mountDirect!)} | ${fig(seq.localDirect!)} | ${f2(seq.mountDirect!.best / seq.localDirect!.best)} / ${f2(seq.memory64.mountDirect!.best / seq.localDirect!.best)} | >= 2000 MB/s |`)
  for (const jobs of [1, 4]) {
    const a = rnd[`mount${jobs}`]!
    const b = rnd.memory64[`mount${jobs}`]!
    const l = rnd[`local${jobs}`]!
    out.push(`| random 4 KiB O_DIRECT IOPS, ${jobs} reader${jobs > 1 ? 's' : ''} (${rnd.tool}) | ${f0(a)} | ${f0(b)} | ${f0(l)} | ${f2(a / l)} / ${f2(b / l)} | ${jobs > 1 ? '>= 25000' : ''} |`)
  }
  out.push(`\nfirst read of the file through the mount (cold, over HTTP from localhost): ${f0(seq.coldOverHttpMBs)} MB/s`)
  out.push('\ncold start, empty cache, flist over HTTP from localhost (medians)\n')
  out.push('| program | flist | first output | of which mount | unpack + run | curl\\|zstd\\|tar + run | faster than unpack / tar | MB over HTTP | MB fetched (plaintext) | MB read (answered + stored unasked) | fetched / read |')
  out.push('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const [name, v] of Object.entries(r.cold as Record<string, { unpackMs: number; tarMs: number; plain: ColdSummary; prefetch: ColdSummary }>)) {
    for (const variant of ['plain', 'prefetch'] as const) {
      const c = v[variant]
      out.push(`| ${name} | ${variant === 'plain' ? 'no prefetch list' : 'prefetch list (trace)'} | ${f0(c.firstOutputMs)} ms | ${f0(c.mountMs)} ms | ${f0(v.unpackMs)} ms | ${f0(v.tarMs)} ms | ${f2(v.unpackMs / c.firstOutputMs)}x / ${f2(v.tarMs / c.firstOutputMs)}x | ${(c.httpBytes / 1e6).toFixed(1)} | ${(c.fetchedPlainBytes / 1e6).toFixed(1)} | ${(c.readBytes / 1e6).toFixed(1)} | ${f2(c.httpBytes / c.readBytes)} (plaintext ${f2(c.fetchedPlainBytes / c.readBytes)}) |`)
    }
  }
  out.push('\ntargets: cold start <= 1000 ms and >= 10x faster than a full unpack; bytes fetched <= 1.5x bytes read')
  process.stdout.write(out.join('\n') + '\n')
}

try {
  const results = await main()
  writeFileSync(join(work, 'results.json'), JSON.stringify(results, null, 2))
  report(results)
  if (flag('--json')) process.stdout.write(JSON.stringify(results) + '\n')
} catch (err) {
  process.exitCode = 1
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
} finally {
  await cleanup()
}
