// Flists for workloads: resolve a URL to a verified local metadata file, and keep one read-only mount per flist
// (shared by every workload that uses it) served by a detached helper process (mount-helper.ts), so mounts
// survive a restart of the agent. Which workloads use a mount is recorded on disk (one file per holder), so
// the last one to let go unmounts it, across restarts too.
//
// URL schemes are pluggable (`resolvers`): built in are local paths (/abs/x.fl, file:///abs/x.fl) and
// http(s):// URLs of the .fl file (a hub's /blobs/<sha256> URL is checked against its digest); chunks come from
// the node's store (--store). Clients pin `hub://` references to such blob URLs before they sign a deployment.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, openSync, closeSync } from 'node:fs'
import { mkdir, open, readFile, readdir, rename, rm, rmdir, stat, writeFile, copyFile, unlink } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { ZosError, errorMessage, zerr } from '../../core/errors.js'
import { FlistReader } from '../../flist/reader.js'
import { awaitReady, readyPipeOptions } from '../../flist/ready.js'
import { parseTrust } from '../../core/keys.js'
import type { NodeLogger } from '../log.js'
import { findMount, lazyUnmount, unmountAll } from './mounts.js'
import type { NodePaths } from './paths.js'

export interface ResolvedFlist {
  url: string
  /** The verified metadata file under the node's state dir. */
  file: string
  /** Root hash (hex). */
  root: string
  tags: Record<string, string>
  /** Store the chunks come from. */
  store: string
}

/** Turns a URL into bytes of an .fl file (written to `dest`); NOT_FOUND when there is none. */
export type FlistFetcher = (url: string, dest: string) => Promise<void>

export interface FlistManagerOptions {
  paths: NodePaths
  /** Store of flist chunks (dir:// or http(s)://). */
  store?: string
  /** Trusted publisher keys (hex public keys, addresses or key files); empty = any signature or none. */
  trust?: readonly string[]
  cacheBytes?: number
  /** Extra URL schemes, e.g. { 'hub:': fetcher }. */
  fetchers?: Record<string, FlistFetcher>
  /** Largest .fl file accepted (default 256 MiB). */
  maxMetadataBytes?: number
  log: NodeLogger
}

const DEFAULT_CACHE_BYTES = 2 * 2 ** 30

export class FlistManager {
  private readonly paths: NodePaths
  private readonly locks = new Map<string, Promise<unknown>>()
  private readonly fetchers: Record<string, FlistFetcher>

  constructor(private readonly opts: FlistManagerOptions) {
    this.paths = opts.paths
    this.fetchers = {
      'http:': (u, d) => this.download(u, d),
      'https:': (u, d) => this.download(u, d),
      'file:': (u, d) => copyLocal(u, d, this.maxBytes),
      ...opts.fetchers,
    }
  }

  /** Fetches (or copies) the flist, checks it (seal, signatures, tables) and returns where it is. */
  async resolve(url: string): Promise<ResolvedFlist> {
    const store = this.opts.store
    if (!store) throw zerr('INVALID_ARGUMENT', `this node has no store to fetch flist chunks from; start it with --store URL`)
    const dir = this.paths.flistFiles()
    await mkdir(dir, { recursive: true })
    const tmp = join(dir, `.fetch-${process.pid}-${Math.random().toString(16).slice(2)}`)
    try {
      if (url.startsWith('/')) await copyLocal(pathToFileURL(url).href, tmp, this.maxBytes)
      else {
        let scheme: string
        try {
          scheme = new URL(url).protocol
        } catch {
          throw zerr('INVALID_ARGUMENT', `flist "${url}" is neither an absolute path nor a URL`)
        }
        const fetcher = this.fetchers[scheme]
        if (!fetcher) throw zerr('UNSUPPORTED', `flist URLs with ${scheme} are not supported by this node (use an absolute path or an http(s):// URL of the .fl file)`)
        await fetcher(url, tmp)
      }
      const size = (await stat(tmp)).size
      if (size > this.maxBytes) throw zerr('INVALID_ARGUMENT', `flist ${url} is ${size} bytes, more than this node accepts`)
      const sha = createHash('sha256').update(await readFile(tmp)).digest('hex')
      const file = join(dir, `${sha}.fl`)
      if (existsSync(file)) await unlink(tmp)
      else await rename(tmp, file)
      const trust = await Promise.all((this.opts.trust ?? []).map(parseTrust))
      let reader: FlistReader
      try {
        reader = FlistReader.open(file, { trust })
      } catch (err) {
        await rm(file, { force: true })
        throw err
      }
      try {
        return { url, file, root: reader.root.toString('hex'), tags: reader.tags(), store }
      } finally {
        reader.close()
      }
    } finally {
      await rm(tmp, { force: true })
    }
  }

  private get maxBytes(): number {
    return this.opts.maxMetadataBytes ?? 256 * 2 ** 20
  }

  /** Downloads an .fl file, at most maxBytes of it (streamed, so a lying server cannot fill the disk). */
  private async download(url: string, dest: string): Promise<void> {
    let res: Response
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(120_000) })
    } catch (err) {
      throw zerr('STORE_UNAVAILABLE', `cannot fetch flist ${url}: ${errorMessage(err)}`, { url }, err)
    }
    if (res.status === 404) throw zerr('NOT_FOUND', `flist ${url} does not exist (HTTP 404)`, { url })
    if (!res.ok || !res.body) throw zerr('STORE_UNAVAILABLE', `cannot fetch flist ${url}: HTTP ${res.status}`, { url })
    const declared = Number(res.headers.get('content-length') ?? '0')
    if (declared > this.maxBytes) throw zerr('INVALID_ARGUMENT', `flist ${url} is ${declared} bytes, more than this node accepts`, { url })
    // A hub blob URL names the SHA-256 of the file's bytes (what `zos deploy` pins a hub:// reference to).
    const pinned = /\/blobs\/([0-9a-f]{64})$/.exec(new URL(url).pathname)?.[1]
    const hash = createHash('sha256')
    const fh = await open(dest, 'w', 0o600)
    let total = 0
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.length
        if (total > this.maxBytes) throw zerr('INVALID_ARGUMENT', `flist ${url} is larger than this node accepts (${this.maxBytes} bytes)`, { url })
        hash.update(chunk)
        await fh.write(chunk)
      }
      if (pinned !== undefined && hash.digest('hex') !== pinned) throw zerr('CHUNK_TAMPERED', `flist ${url} does not hash to the digest its URL names (damaged in transit or a wrong hub)`, { url })
    } catch (err) {
      if (ZosError.is(err)) throw err
      throw zerr('STORE_UNAVAILABLE', `cannot fetch flist ${url}: ${errorMessage(err)}`, { url }, err)
    } finally {
      await fh.close()
    }
  }

  /** Mounts the flist read-only (once per node) and records `holder` as a user; returns the mountpoint. */
  async acquire(f: ResolvedFlist, holder: string): Promise<string> {
    return this.locked(f.root, async () => {
      const refs = this.paths.flistRefs(f.root)
      await mkdir(refs, { recursive: true })
      await writeFile(join(refs, holder), f.url)
      const mountpoint = this.paths.flistMount(f.root)
      if (await this.alive(mountpoint)) return mountpoint
      await this.mount(f, mountpoint)
      return mountpoint
    })
  }

  /** Drops `holder`; the last one unmounts the flist (its helper then exits). */
  async release(root: string, holder: string): Promise<void> {
    await this.locked(root, async () => {
      const refs = this.paths.flistRefs(root)
      await rm(join(refs, holder), { force: true })
      const left = await readdir(refs).catch(() => [] as string[])
      if (left.length > 0) return
      await rm(refs, { recursive: true, force: true })
      const mountpoint = this.paths.flistMount(root)
      await unmountAll(mountpoint).catch(async () => lazyUnmount(mountpoint))
      await this.reapHelper(root)
      await rmdir(mountpoint).catch(() => undefined)
    })
  }

  /** True when an flist mount is there and answers (its helper did not die). */
  async alive(mountpoint: string): Promise<boolean> {
    const m = await findMount(mountpoint)
    if (!m) return false
    try {
      await stat(mountpoint)
      return m.fstype.startsWith('fuse')
    } catch {
      return false
    }
  }

  private async mount(f: ResolvedFlist, mountpoint: string): Promise<void> {
    // A dead mount (helper gone) is detached first.
    if (await findMount(mountpoint)) await lazyUnmount(mountpoint)
    await this.reapHelper(f.root)
    await mkdir(mountpoint, { recursive: true })
    const run = this.paths.flistRun(f.root)
    await mkdir(join(run, '..'), { recursive: true })
    const logFile = `${run}.log`
    const args = {
      flist: f.file,
      mountpoint,
      store: f.store,
      cache: this.paths.cache,
      cacheBytes: this.opts.cacheBytes ?? DEFAULT_CACHE_BYTES,
      trust: [...(this.opts.trust ?? [])],
    }
    const fd = openSync(logFile, 'a')
    const child = spawn(process.execPath, [...helperArgs(), JSON.stringify(args)], { detached: true, ...readyPipeOptions(fd) })
    closeSync(fd)
    await writeFile(`${run}.pid`, String(child.pid))
    const { state } = await awaitReady(child)
    if (state !== 'ready') {
      const tail = await readFile(logFile, 'utf8').then((t) => t.trim().split('\n').slice(-3).join(' '), () => '')
      if (state === 'timeout') child.kill('SIGKILL')
      throw zerr('MOUNT_FAILED', `cannot mount flist ${f.url}: ${tail || 'the mount helper did not come up'}`, { flist: f.url })
    }
    child.unref()
    this.opts.log.info({ flist: f.url, root: f.root, mountpoint, pid: child.pid }, 'flist mounted')
  }

  /** Stops a helper that is still running for `root` (only the pid this node recorded, and only if it is ours). */
  private async reapHelper(root: string): Promise<void> {
    const pidFile = `${this.paths.flistRun(root)}.pid`
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''))
    if (!Number.isInteger(pid) || pid <= 1) return
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmd.includes('mount-helper') && cmd.includes(this.paths.flistMount(root))) {
      try {
        process.kill(pid, 'SIGTERM')
      } catch {
        // gone already
      }
      for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(20)
    }
    await rm(pidFile, { force: true })
  }

  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve()
    const next = prev.then(fn, fn)
    const settled = next.catch(() => undefined)
    this.locks.set(key, settled)
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key)
    })
    return next
  }
}

/** Copies a local .fl file; only regular files up to `max` bytes (never a device or a FIFO). */
async function copyLocal(url: string, dest: string, max: number): Promise<void> {
  const path = fileURLToPath(url)
  let st
  try {
    st = await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw zerr('NOT_FOUND', `flist ${path} does not exist`, { path })
    throw zerr('INVALID_ARGUMENT', `cannot read flist ${path}: ${errorMessage(err)}`, { path }, err)
  }
  if (!st.isFile()) throw zerr('INVALID_ARGUMENT', `flist ${path} is not a regular file`, { path })
  if (st.size > max) throw zerr('INVALID_ARGUMENT', `flist ${path} is ${st.size} bytes, more than this node accepts (${max})`, { path })
  await copyFile(path, dest)
}

/** How to start mount-helper: the compiled .js, or the .ts under tsx when running from source. */
export function helperArgs(): string[] {
  const ext = extname(fileURLToPath(import.meta.url))
  const script = fileURLToPath(new URL(`./mount-helper${ext}`, import.meta.url))
  return ext === '.ts' ? ['--import', 'tsx', script] : [script]
}

