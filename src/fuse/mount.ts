// Mounting and unmounting: opens /dev/fuse, has mount(8) attach it (`mount -i -t fuse.<subtype> -o fd=3,…`, the
// descriptor inherited as fd 3), starts the session, waits for INIT, and raises the mount's readahead. Handles the
// lifecycle around it: a stale mountpoint left by a killed daemon ("Transport endpoint is not connected") is
// detached before mounting again; unmount() is idempotent and falls back to a lazy unmount plus a connection abort
// when the mount is busy; an unmount from outside ends the session; a process exit detaches its live mounts.
import { openSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { stat, statfs, realpath } from 'node:fs/promises'
import { spawn, spawnSync } from 'node:child_process'
import { resolve as resolvePath } from 'node:path'
import { constants as osConstants } from 'node:os'
import { zerr } from '../core/errors.js'
import { FuseSession, prepareReader, type InitInfo, type SessionEnd } from './session.js'
import type { DevReader } from './reader.js'
import type { FuseOps, FuseLogger } from './types.js'

export interface MountOptions {
  /** Source shown in /proc/mounts and df (default 'zos'). */
  fsname?: string
  /** Filesystem type becomes `fuse.<subtype>` (default 'zos'). */
  subtype?: string
  /** Mount read-only (default true; writable mounts are not supported yet). */
  readOnly?: boolean
  /** Let users other than root access the mount (default true; containers run as other users). */
  allowOther?: boolean
  /** Let the kernel check permissions from the mode bits (default true); without it, access() is asked. */
  defaultPermissions?: boolean
  /** Default TTL of cached lookups, ms (default 1000). */
  entryTtlMs?: number
  /** Default TTL of cached attributes, ms (default 1000). */
  attrTtlMs?: number
  /** Requests the reader thread may queue ahead of the filesystem (default 16, 2..1024). */
  queueDepth?: number
  /** Largest READ request in 4 KiB pages (default 256 = 1 MiB; 1..256). */
  maxPages?: number
  /** Background requests (readahead) in flight (default 64). */
  maxBackground?: number
  /** read_ahead_kb set on the mount's bdi after mounting (default 1024; 0 leaves the kernel's default). */
  readAheadKb?: number
  /** How long to wait for the kernel's INIT after mount(8) returns (default 10000 ms). */
  initTimeoutMs?: number
  /** Detach this mount when the process exits normally (default true). */
  cleanupOnExit?: boolean
  /**
   * Work run while mount(8) runs (the filesystem's own checks), synchronous or not. No request is read from the
   * connection before it has returned (or its promise settled); if it throws (or rejects), the new mount is
   * aborted and detached and mountFuse rejects with that error, so nothing is ever answered from a filesystem
   * that failed its checks.
   */
  whileMounting?: () => void | Promise<void>
  logger?: FuseLogger
}

export interface FuseMount {
  /** Absolute, symlink-free path of the mountpoint. */
  readonly mountpoint: string
  /** The mount's device as "major:minor" (also its /sys/class/bdi name). */
  readonly device: string
  /** The negotiated protocol and limits. */
  readonly init: InitInfo
  /** Resolves when the session ends: unmounted (by us or from outside), aborted, or the kernel went away. */
  readonly closed: Promise<SessionEnd>
  /**
   * Unmounts and waits for the session to end. Idempotent. A busy mount (open files, a shell inside) is detached
   * lazily and its connection aborted, so open files fail with ENOTCONN instead of keeping the daemon alive.
   */
  unmount(): Promise<void>
  /**
   * Puts `total` bytes of file `ino`, from `offset` on, into the kernel's page cache without being asked
   * (FUSE_NOTIFY_STORE; see FuseSession.store): whole pages only, never past the end of the file. For content a
   * filesystem fetched anyway (the rest of a chunk, read-ahead, a prefetch list). The kernel must hold the inode
   * (it has looked it up; an open file surely): `done` gets ENOENT otherwise. False once the session ended.
   */
  notifyStore(ino: bigint, offset: number, parts: readonly Uint8Array[], total: number, done?: (err: Error | null) => void): boolean
}

const stderrLogger: FuseLogger = {
  warn: (obj, msg) => process.stderr.write(`${msg} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`${msg} ${JSON.stringify(obj)}\n`),
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/
const FSNAME_RE = /^[^\s,\\]{1,200}$/

function intOption(v: number | undefined, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v < min || v > max) {
    throw zerr('INVALID_ARGUMENT', `mount option ${name} must be an integer in ${min}..${max}, got ${String(v)}`, { option: name })
  }
  return v
}

function ttlOption(v: number | undefined, name: string): number {
  if (v === undefined) return 1000
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) {
    throw zerr('INVALID_ARGUMENT', `mount option ${name} must be a number of milliseconds >= 0, got ${String(v)}`, { option: name })
  }
  return v
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/self/mountinfo

export interface MountInfo {
  mountpoint: string
  device: string
  fstype: string
  source: string
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
}

/** The mounts of this process's mount namespace. */
export function listMounts(): MountInfo[] {
  const out: MountInfo[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (line === '') continue
    const f = line.split(' ')
    const dash = f.indexOf('-', 6)
    if (dash < 0 || f.length < dash + 3) continue
    out.push({
      mountpoint: unescapeMountinfo(f[4] ?? ''),
      device: f[2] ?? '',
      fstype: f[dash + 1] ?? '',
      source: unescapeMountinfo(f[dash + 2] ?? ''),
    })
  }
  return out
}

/** The topmost mount at exactly `path`, if any. */
export function mountAt(path: string): MountInfo | undefined {
  let found: MountInfo | undefined
  for (const m of listMounts()) if (m.mountpoint === path) found = m
  return found
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers around mount(8), umount(8) and fusectl

interface RunResult {
  code: number
  stderr: string
}

/** Runs a command without blocking the event loop (our own filesystem may have to answer it). */
function run(cmd: string, args: string[], extraFd?: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe']
    if (extraFd !== undefined) stdio.push(extraFd)
    const child = spawn(cmd, args, { stdio })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.on('error', (err) => resolve({ code: -1, stderr: err.message }))
    child.on('close', (code) => resolve({ code: code ?? -1, stderr: stderr.trim() }))
  })
}

function parseDevice(device: string): { major: number; minor: number } {
  const m = /^(\d+):(\d+)$/.exec(device)
  if (!m) throw zerr('INTERNAL', `cannot parse device "${device}" from /proc/self/mountinfo`)
  return { major: Number(m[1]), minor: Number(m[2]) }
}

const FUSECTL = '/sys/fs/fuse/connections'

/** The fusectl directory of a connection ("0:53" → /sys/fs/fuse/connections/53; the kernel names it by its dev_t). */
function connectionDir(device: string): string {
  const { major, minor } = parseDevice(device)
  return `${FUSECTL}/${major * 2 ** 20 + minor}`
}

function ensureFusectl(): boolean {
  if (listMounts().some((m) => m.mountpoint === FUSECTL)) return true
  if (!existsSync(FUSECTL)) return false
  const r = spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { stdio: 'ignore' })
  return r.status === 0
}

/** Aborts a FUSE connection: every pending and future request fails, and the daemon's reads see ENODEV. */
export function abortConnection(device: string): boolean {
  try {
    if (!ensureFusectl()) return false
    writeFileSync(`${connectionDir(device)}/abort`, '1')
    return true
  } catch {
    return false
  }
}

async function statErrno(path: string): Promise<{ code?: string; isDir?: boolean }> {
  try {
    // statfs first: FUSE answers stat from its attribute cache for a while after the daemon died, but statfs
    // always asks the daemon, so a dead connection shows up at once as ENOTCONN.
    await statfs(path)
    const st = await stat(path)
    return { isDir: st.isDirectory() }
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code ?? 'EIO' }
  }
}

/**
 * Checks the mountpoint: it must exist and be a directory. A stale FUSE mount there (its daemon died: ENOTCONN)
 * is detached first. Returns the canonical path.
 */
export async function prepareMountpoint(mountpoint: string, logger: FuseLogger = stderrLogger): Promise<string> {
  const abs = resolvePath(mountpoint)
  let s = await statErrno(abs)
  if (s.code === 'ENOTCONN' || s.code === 'ECONNABORTED') {
    logger.warn({ mountpoint: abs }, 'fuse: stale mount found (its daemon is gone); detaching it')
    const r = await run('umount', ['-l', abs])
    if (r.code !== 0) {
      throw zerr('MOUNT_FAILED', `cannot detach the stale mount at ${abs}: umount -l said: ${r.stderr || `exit ${r.code}`}`, { mountpoint: abs })
    }
    s = await statErrno(abs)
  }
  if (s.code === 'ENOENT') throw zerr('INVALID_ARGUMENT', `mountpoint ${abs} does not exist: create the directory first`, { mountpoint: abs })
  if (s.code !== undefined) throw zerr('INVALID_ARGUMENT', `mountpoint ${abs} cannot be used: stat failed with ${s.code}`, { mountpoint: abs })
  if (!s.isDir) throw zerr('INVALID_ARGUMENT', `mountpoint ${abs} is not a directory`, { mountpoint: abs })
  return realpath(abs)
}

// ---------------------------------------------------------------------------------------------------------------
// Exit cleanup: a process that exits normally detaches its live mounts (kill -9 cannot be helped: the next
// mountFuse on that path finds the stale mount and detaches it).

const liveMounts = new Set<{ mountpoint: string; device: string }>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const m of liveMounts) {
      // Abort first: umount's own stat of the path must not wait on this (now stopped) event loop, and the reader
      // thread, blocked in read(2), must see ENODEV or the process cannot finish exiting.
      if (abortConnection(m.device)) {
        spawnSync('umount', ['-l', m.mountpoint], { stdio: 'ignore', timeout: 5000 })
      } else {
        const r = spawnSync('umount', [m.mountpoint], { stdio: 'ignore', timeout: 5000 })
        if (r.status !== 0) spawnSync('umount', ['-l', m.mountpoint], { stdio: 'ignore', timeout: 5000 })
      }
    }
  })
}

// ---------------------------------------------------------------------------------------------------------------

interface Settings {
  fsname: string
  subtype: string
  queueDepth: number
  maxPages: number
  maxBackground: number
  readAheadKb: number
  initTimeoutMs: number
  entryTtlMs: number
  attrTtlMs: number
  allowOther: boolean
  defaultPermissions: boolean
  cleanupOnExit: boolean
}

function settingsOf(options: MountOptions): Settings {
  const fsname = options.fsname ?? 'zos'
  const subtype = options.subtype ?? 'zos'
  if (!FSNAME_RE.test(fsname)) throw zerr('INVALID_ARGUMENT', `mount option fsname ${JSON.stringify(fsname)} must be 1..200 characters without spaces, commas or backslashes`, { option: 'fsname' })
  if (!NAME_RE.test(subtype)) throw zerr('INVALID_ARGUMENT', `mount option subtype ${JSON.stringify(subtype)} must match ${String(NAME_RE)}`, { option: 'subtype' })
  if (options.readOnly === false) throw zerr('UNSUPPORTED', 'writable FUSE mounts are not supported yet: mount read-only', { option: 'readOnly' })
  return {
    fsname,
    subtype,
    queueDepth: intOption(options.queueDepth, 'queueDepth', 16, 2, 1024),
    maxPages: intOption(options.maxPages, 'maxPages', 256, 1, 256),
    maxBackground: intOption(options.maxBackground, 'maxBackground', 64, 1, 65535),
    readAheadKb: intOption(options.readAheadKb, 'readAheadKb', 1024, 0, 1 << 20),
    initTimeoutMs: intOption(options.initTimeoutMs, 'initTimeoutMs', 10_000, 1, 600_000),
    entryTtlMs: ttlOption(options.entryTtlMs, 'entryTtlMs'),
    attrTtlMs: ttlOption(options.attrTtlMs, 'attrTtlMs'),
    allowOther: options.allowOther ?? true,
    defaultPermissions: options.defaultPermissions ?? true,
    cleanupOnExit: options.cleanupOnExit ?? true,
  }
}

/** A connection being attached at a mountpoint: /dev/fuse open, mount(8) running, the reader thread booting. */
interface Attaching {
  mnt: string
  fd: number
  reader: DevReader
  mounting: Promise<RunResult>
  settings: Settings
  /** Taken over by mountFuse (until then, exit cleanup of a made mount is this attachment's own). */
  adopted: boolean
  exitEntry?: { mountpoint: string; device: string }
}

async function attach(mountpoint: string, settings: Settings, logger: FuseLogger): Promise<Attaching> {
  if (typeof mountpoint !== 'string' || mountpoint === '') throw zerr('INVALID_ARGUMENT', 'mountFuse: mountpoint must be a non-empty path')
  const uid = process.getuid?.() ?? -1
  const gid = process.getgid?.() ?? -1
  if (uid !== 0) {
    throw zerr('PERMISSION', `mounting a FUSE filesystem needs root (this process runs as uid ${uid}): run it as root`, { uid })
  }
  if (!existsSync('/dev/fuse')) {
    throw zerr('FUSE_UNAVAILABLE', '/dev/fuse does not exist: load the fuse kernel module (modprobe fuse), or give the container the device (--device /dev/fuse)')
  }
  const mnt = await prepareMountpoint(mountpoint, logger)
  const existing = mountAt(mnt)
  if (existing !== undefined) {
    // prepareMountpoint's stat succeeded, so this mount is alive (or not FUSE at all).
    throw zerr('EXISTS', `${mnt} is already a mount point (${existing.fstype} from ${existing.source}): unmount it first`, { mountpoint: mnt })
  }

  let fd: number
  try {
    fd = openSync('/dev/fuse', 'r+')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM') throw zerr('PERMISSION', `cannot open /dev/fuse (${code}): run as root`, {}, err)
    throw zerr('FUSE_UNAVAILABLE', `cannot open /dev/fuse (${code ?? 'error'}): is FUSE enabled in this kernel?`, {}, err)
  }
  // The reader thread boots (40-60 ms) while mount(8) runs.
  const reader = prepareReader(fd, settings.queueDepth)
  const opts = [`fd=3`, `rootmode=40000`, `user_id=${uid}`, `group_id=${gid}`, 'ro']
  if (settings.allowOther) opts.push('allow_other')
  if (settings.defaultPermissions) opts.push('default_permissions')
  const mounting = run('mount', ['-i', '-c', '-t', `fuse.${settings.subtype}`, '-o', opts.join(','), settings.fsname, mnt], fd)
  return { mnt, fd, reader, mounting, settings, adopted: false }
}

/** A mount started by startMount, for mountFuse to finish. */
export interface PendingMount {
  /** The mountpoint as given to startMount. */
  readonly mountpoint: string
  /** @internal */
  readonly attaching: Promise<Attaching>
}

/**
 * Starts mounting at `mountpoint` before the filesystem that will answer exists: checks the mountpoint, opens
 * /dev/fuse, runs mount(8) and boots the reader thread, all in the background. Pass the result to mountFuse as
 * `pending` (with the same mountpoint); its mount options are the ones given here. The kernel queues every
 * request, INIT included, until mountFuse starts the session, so the mount can appear in the mount table before
 * its filesystem serves. Errors (those of mountFuse) surface from mountFuse. A process that exits before
 * mountFuse took the mount over detaches it on the way out, as it does its other mounts.
 */
export function startMount(mountpoint: string, options: Omit<MountOptions, 'whileMounting'> = {}): PendingMount {
  const logger = options.logger ?? stderrLogger
  const attaching = Promise.resolve().then(() => attach(mountpoint, settingsOf(options), logger))
  attaching.then((a) => a.mounting.then((r) => {
    if (r.code !== 0 || a.adopted || !a.settings.cleanupOnExit) return
    const device = mountAt(a.mnt)?.device
    if (device === undefined) return
    a.exitEntry = { mountpoint: a.mnt, device }
    liveMounts.add(a.exitEntry)
    installExitHook()
  })).catch(() => {}) // mountFuse reports failures
  return { mountpoint, attaching }
}

/**
 * Mounts `ops` at `mountpoint` and resolves once the kernel's INIT has been answered. Needs root and /dev/fuse.
 * With `pending` (startMount for the same mountpoint) it finishes that mount instead of starting one; the
 * options that shape the mount are then the ones given to startMount.
 * Errors: PERMISSION (not root, or /dev/fuse refused), FUSE_UNAVAILABLE (no /dev/fuse), INVALID_ARGUMENT
 * (mountpoint missing or not a directory, bad option), EXISTS (something is already mounted there),
 * MOUNT_FAILED (mount(8) failed or INIT never came).
 */
export async function mountFuse(mountpoint: string, ops: FuseOps, options: MountOptions & { pending?: PendingMount } = {}): Promise<FuseMount> {
  if (typeof ops?.lookup !== 'function' || typeof ops?.getattr !== 'function') {
    throw zerr('INVALID_ARGUMENT', 'mountFuse: ops must implement at least lookup() and getattr()')
  }
  const logger = options.logger ?? stderrLogger
  if (options.pending && options.pending.mountpoint !== mountpoint) {
    throw zerr('INVALID_ARGUMENT', `mountFuse: the pending mount is for ${options.pending.mountpoint}, not ${mountpoint}`)
  }
  const a = await (options.pending?.attaching ?? attach(mountpoint, settingsOf(options), logger))
  a.adopted = true
  const { mnt, settings } = a
  const { initTimeoutMs, readAheadKb } = settings

  const session = new FuseSession(a.fd, ops, { ...settings, logger, reader: a.reader })
  // mount(8) is running in its own process now (or is done): the filesystem's checks overlap with it.
  let checkFailed: { err: unknown } | undefined
  let checking: Promise<void> | void = undefined
  if (options.whileMounting) {
    try {
      checking = options.whileMounting()
      checking?.catch(() => {}) // settled below, once mount(8) is done
    } catch (err) {
      checkFailed = { err }
    }
  }
  const r = await a.mounting
  try {
    await checking
  } catch (err) {
    checkFailed = { err }
  }
  if (a.exitEntry) liveMounts.delete(a.exitEntry) // this function's own cleanup takes over below
  if (r.code !== 0) {
    session.closeUnstarted()
    if (checkFailed) throw checkFailed.err
    throw zerr('MOUNT_FAILED', `mount of ${mnt} failed: ${r.stderr || `mount exited with ${r.code}`}`, { mountpoint: mnt })
  }
  const info = mountAt(mnt)
  const device = info?.device ?? ''
  if (checkFailed) {
    // The session never started: not one request (INIT included) has been read, let alone answered.
    if (device !== '') abortConnection(device)
    await run('umount', ['-l', mnt])
    session.closeUnstarted()
    throw checkFailed.err
  }
  session.start()

  let init: InitInfo
  let timer: NodeJS.Timeout | undefined
  try {
    init = await Promise.race([
      session.initialized,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no INIT from the kernel within ${initTimeoutMs} ms`)), initTimeoutMs)
      }),
    ])
  } catch (err) {
    if (device !== '') abortConnection(device)
    await run('umount', ['-l', mnt])
    throw zerr('MOUNT_FAILED', `FUSE mount of ${mnt} did not start: ${(err as Error).message}`, { mountpoint: mnt }, err)
  } finally {
    clearTimeout(timer)
  }
  if (device === '') {
    logger.warn({ mountpoint: mnt }, 'fuse: the new mount is not in /proc/self/mountinfo (another mount namespace?)')
  } else if (readAheadKb > 0) {
    try {
      writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, String(readAheadKb))
    } catch (err) {
      logger.warn({ device, err: (err as Error).message }, 'fuse: could not raise read_ahead_kb (reads stay at the kernel default size)')
    }
  }

  const entry = { mountpoint: mnt, device }
  if (settings.cleanupOnExit) {
    liveMounts.add(entry)
    installExitHook()
  }

  const stillMounted = (): boolean => {
    const m = mountAt(mnt)
    return m !== undefined && m.device === device
  }

  // If the session ends while the mount is still there (its connection was aborted), detach the dead mount.
  const closed = session.closed.then(async (end) => {
    liveMounts.delete(entry)
    if (device !== '' && stillMounted()) await run('umount', ['-l', mnt])
    return end
  })

  let unmounting: Promise<void> | null = null
  const doUnmount = async (): Promise<void> => {
    if (!session.isEnded && stillMounted()) {
      const u = await run('umount', [mnt])
      if (u.code !== 0 && stillMounted()) {
        logger.warn({ mountpoint: mnt, umount: u.stderr }, 'fuse: umount failed (busy?); detaching lazily and aborting the connection')
        await run('umount', ['-l', mnt])
        abortConnection(device)
      }
    }
    // The session ends when the kernel drops the connection; if something keeps it (a lazily detached mount
    // with open files), abort it.
    let t: NodeJS.Timeout | undefined
    const ended = await Promise.race([closed.then(() => true), new Promise<boolean>((res) => { t = setTimeout(() => res(false), 3000) })])
    clearTimeout(t)
    if (!ended) {
      abortConnection(device)
      await closed
    }
    if (stillMounted()) {
      const u = await run('umount', ['-l', mnt])
      if (u.code !== 0 && stillMounted()) throw zerr('MOUNT_FAILED', `cannot unmount ${mnt}: ${u.stderr}`, { mountpoint: mnt })
    }
  }

  return {
    mountpoint: mnt,
    device,
    init,
    closed,
    unmount(): Promise<void> {
      unmounting ??= doUnmount()
      return unmounting
    },
    notifyStore: (ino, offset, parts, total, done) => session.store(ino, offset, parts, total, done),
  }
}

/**
 * Unmounts on SIGINT/SIGTERM (and SIGHUP), then exits with 128 + the signal number. A second signal while
 * unmounting exits at once. Returns a function that removes the handlers.
 */
export function unmountOnSignals(
  mounts: FuseMount | FuseMount[],
  options: { signals?: NodeJS.Signals[]; exit?: boolean; logger?: FuseLogger } = {},
): () => void {
  const list = Array.isArray(mounts) ? mounts : [mounts]
  const signals = options.signals ?? ['SIGINT', 'SIGTERM', 'SIGHUP']
  const logger = options.logger ?? stderrLogger
  let stopping = false
  const handler = (sig: NodeJS.Signals): void => {
    const code = 128 + (signalNumber(sig) ?? 15)
    if (stopping) {
      if (options.exit ?? true) process.exit(code)
      return
    }
    stopping = true
    void Promise.allSettled(list.map((m) => m.unmount())).then((results) => {
      for (const [i, res] of results.entries()) {
        if (res.status === 'rejected') logger.error({ mountpoint: list[i]?.mountpoint, err: String(res.reason) }, 'fuse: unmount on signal failed')
      }
      if (options.exit ?? true) process.exit(code)
    })
  }
  for (const s of signals) process.on(s, handler)
  return () => {
    for (const s of signals) process.off(s, handler)
  }
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return (osConstants.signals as Partial<Record<string, number>>)[sig]
}
