// Unpacks an flist into a directory. Everything is written into a fresh sibling directory that only this
// process has touched, and renamed to the target at the end: an interrupted or failed unpack never leaves a
// tree at the target path. Nothing is ever written through a symlink: files and hard links come first,
// symlinks last, so no parent of anything we create can be a symlink.
import { spawnSync } from 'node:child_process'
import { mkdir, open, link, symlink, lchown, chmod, lutimes, rename, rm, readdir, rmdir, stat, writeFile, unlink } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { zerr } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { ChunkFetcher } from './fetch.js'
import type { FlistReader, Inode } from './reader.js'
import { decodeDev } from './schema.js'

export interface UnpackOptions {
  /** Parallel fetch batches (default 4). */
  concurrency?: number
  onProgress?: (bytesWritten: number) => void
}

export interface UnpackResult {
  target: string
  files: number
  bytes: number
  warnings: string[]
}

const BATCH_BYTES = 16 * 1024 * 1024
const BATCH_CHUNKS = 512

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

function toSeconds(ns: bigint): number {
  // Node's utimes takes doubles: microseconds survive, the last nanosecond digits do not.
  return Number(ns / 1000n) / 1e6
}

async function prepareTarget(target: string): Promise<void> {
  const st = await stat(target).catch(() => undefined)
  if (!st) return
  if (!st.isDirectory()) throw zerr('EXISTS', `${target} exists and is not a directory`, { path: target })
  if ((await readdir(target)).length > 0) throw zerr('EXISTS', `${target} is not empty: unpack into a new or empty directory`, { path: target })
}

export async function unpack(reader: FlistReader, store: Store, target: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  await prepareTarget(target)
  const isRoot = process.getuid?.() === 0
  const entries = [...reader.walk()]
  const devices = entries.filter((e) => e.inode.type === 'char' || e.inode.type === 'block')
  if (devices.length > 0 && !isRoot) {
    throw zerr('PERMISSION', `the flist holds ${devices.length} device file(s) (e.g. /${devices[0]!.path}); only root can create them: run the unpack as root`)
  }
  await mkdir(dirname(target), { recursive: true })
  const work = join(dirname(target), `.${basename(target)}.unpack-${process.pid}`)
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { mode: 0o700 })
  const warnings: string[] = []
  const fetcher = new ChunkFetcher(reader, store)
  const at = (p: string): string => (p === '' ? work : join(work, p))
  const firstPath = new Map<number, string>()
  let bytes = 0
  let files = 0
  try {
    // 1. directories, 2. regular files (content fetched in batches across files), 3. hard links,
    // 4. specials, 5. symlinks, 6. owners, modes, xattrs, times (directories last, deepest first).
    for (const { path, inode } of entries) if (inode.type === 'dir' && path !== '') await mkdir(at(path), { mode: 0o700 })

    const fileEntries = entries.filter((e) => e.inode.type === 'file')
    const jobs: { path: string; inode: Inode; from: number; to: number }[] = []
    for (const { path, inode } of fileEntries) {
      if (firstPath.has(inode.ino)) continue
      firstPath.set(inode.ino, path)
      await (await open(at(path), 'wx', 0o600)).close()
      files++
      const n = reader.extents(inode.ino).length
      for (let from = 0; from < n; from += BATCH_CHUNKS) jobs.push({ path, inode, from, to: Math.min(n, from + BATCH_CHUNKS) })
    }
    // Group extent ranges of several files into one fetch so that small files share coalesced reads.
    const batches: (typeof jobs)[] = []
    let cur: typeof jobs = []
    let curBytes = 0
    for (const job of jobs) {
      cur.push(job)
      curBytes += Math.min(job.inode.size, (job.to - job.from) * reader.chunker.max)
      if (curBytes >= BATCH_BYTES || cur.length >= BATCH_CHUNKS) {
        batches.push(cur)
        cur = []
        curBytes = 0
      }
    }
    if (cur.length) batches.push(cur)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const batch = batches[next++]!
        const parts = batch.map((job) => ({ job, extents: reader.extents(job.inode.ino).slice(job.from, job.to) }))
        const plains = await fetcher.fetch(parts.flatMap((p) => p.extents.map((e) => e.chunk)))
        let i = 0
        for (const { job, extents } of parts) {
          const fh = await open(at(job.path), 'r+')
          try {
            for (const e of extents) {
              const data = plains[i++]!
              await fh.write(data, 0, data.length, e.offset)
              bytes += data.length
            }
          } finally {
            await fh.close()
          }
        }
        options.onProgress?.(bytes)
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker))
    // One syncfs for the whole tree instead of an fsync per file.
    spawnSync('sync', ['-f', work])

    for (const { path, inode } of fileEntries) {
      const first = firstPath.get(inode.ino)!
      if (first !== path) await link(at(first), at(path))
    }

    const fifos = entries.filter((e) => e.inode.type === 'fifo').map((e) => at(e.path))
    const script = [
      ...devices.map(({ path, inode }) => {
        const { major, minor } = decodeDev(inode.rdev)
        return `mknod ${shellQuote(at(path))} ${inode.type === 'char' ? 'c' : 'b'} ${major} ${minor}`
      }),
      ...(fifos.length ? [`mkfifo ${fifos.map(shellQuote).join(' ')}`] : []),
    ]
    if (script.length) {
      const r = spawnSync('sh', ['-e', '-c', script.join('\n')], { encoding: 'utf8' })
      if (r.status !== 0) throw zerr('PERMISSION', `cannot create special files: ${r.stderr.trim() || r.error?.message}`)
    }
    const sockets = entries.filter((e) => e.inode.type === 'socket').map((e) => at(e.path))
    if (sockets.length) {
      const r = spawnSync('python3', ['-c', 'import socket,sys\nfor p in sys.argv[1:]: socket.socket(socket.AF_UNIX).bind(p)', ...sockets], { encoding: 'utf8' })
      if (r.status !== 0) warnings.push(`${sockets.length} socket file(s) not created (needs python3): ${r.stderr?.trim() ?? ''}`)
    }
    for (const { path, inode } of entries) {
      if (inode.type === 'symlink') await symlink(inode.target ?? Buffer.alloc(0), at(path))
    }

    const xattrLines: string[] = []
    const ordered = [...entries].reverse() // children before parents: directory times are set last
    for (const { path, inode } of ordered) {
      const p = at(path)
      if (inode.type === 'file' && firstPath.get(inode.ino) !== path) continue // hard link: attributes set once
      if (isRoot) await lchown(p, inode.uid, inode.gid)
      if (inode.type !== 'symlink') await chmod(p, inode.mode & 0o7777)
      const xattrs = reader.xattrs(inode.ino)
      if (xattrs.size > 0 && inode.type !== 'symlink') {
        xattrLines.push(`# file: ${p}`, ...[...xattrs].map(([k, v]) => `${k}=0x${v.toString('hex')}`), '')
      }
    }
    if (xattrLines.length) {
      const dump = join(dirname(target), `.${basename(target)}.xattrs-${process.pid}`)
      await writeFile(dump, xattrLines.join('\n') + '\n', { mode: 0o600 })
      const r = spawnSync('setfattr', [`--restore=${dump}`], { encoding: 'utf8' })
      await unlink(dump).catch(() => {})
      if (r.error) warnings.push('extended attributes not restored: setfattr is not installed (Debian package attr)')
      else if (r.status !== 0) warnings.push(`some extended attributes were not restored: ${r.stderr.trim().split('\n')[0] ?? ''}`)
    }
    for (const { path, inode } of ordered) {
      if (inode.type === 'file' && firstPath.get(inode.ino) !== path) continue
      await lutimes(at(path), toSeconds(inode.atime), toSeconds(inode.mtime))
    }

    const existing = await stat(target).catch(() => undefined)
    if (existing) await rmdir(target)
    await rename(work, target)
  } catch (err) {
    await rm(work, { recursive: true, force: true }).catch(() => {})
    throw err
  }
  return { target, files, bytes, warnings }
}
