// FUSE driver read throughput: a 512 MiB in-memory file served through src/fuse, read with dd (sequential, 1 MiB,
// buffered and O_DIRECT) and fio (random 4 KiB O_DIRECT, 1 and 4 jobs), against the same file on tmpfs
// (/dev/shm) as the anchor. Prints each figure, the ratio to the anchor, and the targets
// (>= 2 GB/s sequential, >= 25k random 4 KiB IOPS). Needs root; fio is used when installed (apt-get install fio),
// otherwise a python O_DIRECT reader measures IOPS.
// Run: npm run bench -- fuse-read   (options: --size-mib=N --seconds=N)
import { spawn } from 'node:child_process'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { randomFillSync } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  mountFuse, FuseError, S_IFDIR, S_IFREG,
  type FuseOps, type Attr, type Entry, type DirAdder, type DirEntry,
} from '../src/fuse/index.js'

const arg = (name: string, dflt: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`))
  return a === undefined ? dflt : Number(a.slice(name.length + 3))
}
const SIZE = arg('size-mib', 512) * 1024 * 1024
const SECONDS = arg('seconds', 5)
const RUNS = 3

/** One directory with one file, served from a Buffer; counts the bytes it serves. */
class OneFile implements FuseOps {
  served = 0
  reads = 0
  constructor(private readonly data: Buffer) {}
  private attr(ino: bigint): Attr {
    return ino === 1n
      ? { ino, mode: S_IFDIR | 0o755, nlink: 2, uid: 0, gid: 0, size: 4096 }
      : { ino, mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, size: this.data.length }
  }
  async lookup(parent: bigint, name: Buffer): Promise<Entry> {
    if (parent !== 1n || name.toString() !== 'big') throw new FuseError('ENOENT')
    return { ino: 2n, attr: this.attr(2n), entryTtlMs: 60_000, attrTtlMs: 60_000 }
  }
  async getattr(ino: bigint): Promise<Attr> {
    if (ino !== 1n && ino !== 2n) throw new FuseError('ENOENT')
    return this.attr(ino)
  }
  async open(): Promise<{ fh: bigint; keepCache: boolean }> {
    return { fh: 0n, keepCache: false } // every open drops the page cache: each pass goes through the driver
  }
  async read(_ino: bigint, _fh: bigint, offset: number, size: number): Promise<Buffer> {
    const out = this.data.subarray(Math.min(offset, this.data.length), Math.min(offset + size, this.data.length))
    this.served += out.length
    this.reads++
    return out
  }
  async readdir(_ino: bigint, _fh: bigint, offset: number, add: DirAdder<DirEntry>): Promise<void> {
    const all: DirEntry[] = [{ name: '.', ino: 1n, mode: S_IFDIR }, { name: '..', ino: 1n, mode: S_IFDIR }, { name: 'big', ino: 2n, mode: S_IFREG }]
    for (const e of all.slice(offset)) if (!add(e)) break
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Sequential read with dd bs=1M; returns bytes per second. */
async function dd(file: string, direct: boolean): Promise<number> {
  const t0 = process.hrtime.bigint()
  const r = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', ...(direct ? ['iflag=direct'] : [])])
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.code !== 0) throw new Error(`dd failed: ${r.stderr}`)
  const m = /^(\d+) bytes/m.exec(r.stderr)
  if (!m || Number(m[1]) !== SIZE) throw new Error(`dd read ${m?.[1] ?? '?'} bytes, expected ${SIZE}`)
  return SIZE / secs
}

let haveFio: boolean | undefined
async function fioAvailable(): Promise<boolean> {
  haveFio ??= (await run('fio', ['--version']).catch(() => ({ code: 1 }))).code === 0
  return haveFio
}

/** Random 4 KiB O_DIRECT reads for SECONDS with `jobs` parallel readers; returns total IOPS. */
async function randomIops(file: string, jobs: number): Promise<number> {
  if (await fioAvailable()) {
    const r = await run('fio', ['--name=rand', `--filename=${file}`, '--rw=randread', '--bs=4k', '--direct=1', '--ioengine=psync',
      `--numjobs=${jobs}`, '--group_reporting', `--runtime=${SECONDS}`, '--time_based', '--readonly', '--output-format=json'])
    if (r.code !== 0) throw new Error(`fio failed: ${r.stderr}`)
    const j = JSON.parse(r.stdout) as { jobs: Array<{ read: { iops: number } }> }
    return j.jobs[0]?.read.iops ?? 0
  }
  const py = [
    'import os, mmap, random, time, sys',
    'from multiprocessing import Process, Value',
    'path, secs, jobs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])',
    'def work(total):',
    '  fd = os.open(path, os.O_RDONLY | os.O_DIRECT); buf = mmap.mmap(-1, 4096); n = 0',
    '  blocks = os.fstat(fd).st_size // 4096; end = time.time() + secs',
    '  while time.time() < end:',
    '    for _ in range(256): os.preadv(fd, [buf], random.randrange(blocks) * 4096); n += 1',
    '  with total.get_lock(): total.value += n',
    'total = Value("l", 0); ps = [Process(target=work, args=(total,)) for _ in range(jobs)]',
    '[p.start() for p in ps]; [p.join() for p in ps]; print(total.value / secs)',
  ].join('\n')
  const r = await run('python3', ['-c', py, file, String(SECONDS), String(jobs)])
  if (r.code !== 0) throw new Error(`python reader failed: ${r.stderr}`)
  return Number(r.stdout.trim())
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0
const gbs = (bps: number): string => `${(bps / 1e9).toFixed(2)} GB/s`
const kiops = (n: number): string => `${(n / 1000).toFixed(1)}k IOPS`

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stdout.write('fuse-read: skipped (FUSE mounts need root)\n')
    return
  }
  const data = Buffer.allocUnsafe(SIZE)
  randomFillSync(data)
  const dir = await mkdtemp(join(tmpdir(), 'zos-bench-fuse-'))
  const shm = await mkdtemp('/dev/shm/zos-bench-fuse-')
  const anchorFile = join(shm, 'big')
  await writeFile(anchorFile, data)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const fs = new OneFile(data)
  const m = await mountFuse(mnt, fs, { fsname: 'bench', subtype: 'zosbench' })
  const fuseFile = join(mnt, 'big')
  const rows: Array<{ what: string; ours: number; anchor: number; unit: 'bps' | 'iops'; target?: number; note?: string }> = []
  try {
    process.stdout.write(`fuse-read: ${SIZE >> 20} MiB file; protocol 7.${m.init.minor} (kernel 7.${m.init.kernelMinor}), ` +
      `max read ${m.init.maxPages * 4} KiB, read_ahead_kb 1024, fio ${(await fioAvailable()) ? 'yes' : 'no (python reader)'}\n`)
    await dd(fuseFile, false) // warm-up: JIT, dentry and inode caches
    for (const direct of [false, true]) {
      const ours: number[] = []
      const anchor: number[] = []
      const [served0, reads0] = [fs.served, fs.reads]
      for (let i = 0; i < RUNS; i++) {
        const before = fs.served
        ours.push(await dd(fuseFile, direct))
        if (fs.served - before < SIZE) throw new Error(`only ${fs.served - before} bytes went through the driver: page cache was not bypassed`)
        anchor.push(await dd(anchorFile, direct))
      }
      const avgKib = (fs.served - served0) / Math.max(1, fs.reads - reads0) / 1024
      rows.push({ what: `sequential dd bs=1M${direct ? ' iflag=direct' : ' (buffered)'}`, ours: median(ours), anchor: median(anchor), unit: 'bps', target: 2e9,
        note: `runs ${ours.map((x) => (x / 1e9).toFixed(2)).join('/')} GB/s, avg READ ${avgKib.toFixed(0)} KiB` })
    }
    for (const jobs of [1, 4]) {
      const ours = await randomIops(fuseFile, jobs)
      const anchor = await randomIops(anchorFile, jobs)
      rows.push({ what: `random 4 KiB O_DIRECT, ${jobs} job${jobs > 1 ? 's' : ''}`, ours, anchor, unit: 'iops', ...(jobs === 4 ? { target: 25_000 } : {}) })
    }
  } finally {
    await m.unmount()
    await rm(dir, { recursive: true, force: true })
    await rm(shm, { recursive: true, force: true })
  }
  // The effect of read_ahead_kb: buffered reads with the kernel's default readahead (128 KiB requests).
  const dir2 = await mkdtemp(join(tmpdir(), 'zos-bench-fuse-'))
  const mnt2 = join(dir2, 'mnt')
  await mkdir(mnt2)
  const fs2 = new OneFile(data)
  const m2 = await mountFuse(mnt2, fs2, { fsname: 'bench', subtype: 'zosbench', readAheadKb: 0 })
  try {
    const xs: number[] = []
    for (let i = 0; i < RUNS; i++) xs.push(await dd(join(mnt2, 'big'), false))
    const best = rows[0]
    rows.push({ what: 'sequential buffered, default readahead (128 KiB)', ours: median(xs), anchor: best?.anchor ?? 0, unit: 'bps',
      note: `avg READ ${(fs2.served / Math.max(1, fs2.reads) / 1024).toFixed(0)} KiB` })
  } finally {
    await m2.unmount()
    await rm(dir2, { recursive: true, force: true })
  }

  process.stdout.write('\n| measurement | zos FUSE | tmpfs (anchor) | ratio | target | notes |\n|---|---|---|---|---|---|\n')
  for (const r of rows) {
    const f = r.unit === 'bps' ? gbs : kiops
    const target = r.target === undefined ? '' : `${r.unit === 'bps' ? gbs(r.target) : kiops(r.target)} ${r.ours >= r.target ? 'met' : 'MISSED'}`
    process.stdout.write(`| ${r.what} | ${f(r.ours)} | ${f(r.anchor)} | ${(r.ours / r.anchor).toFixed(2)} | ${target} | ${r.note ?? ''} |\n`)
  }
}

await main()
