// Checking an uploaded pack before anything is kept: its bytes hash to its id, every index entry lies inside it
// without overlapping another, and every chunk the hub can decode (not encrypted; for a delta, its base at hand
// in the same pack or verified on the hub) decodes to its id. Encrypted chunks, and deltas whose base is not on
// the hub yet, are recorded as unverified: the hub decodes them when an flist that uses them is uploaded (the
// flist holds the key and lists the base).
//
// PackVerifier checks the chunks while the pack streams in (the hub never holds a whole upload in memory): full
// chunks are decoded as soon as their last byte arrives, deltas once the pack is complete (their base may come
// later in the pack).
import { ERROR_CODES, zerr, ZosError, type ErrorCode } from '../core/errors.js'
import { siblingModule, stopWorker, workerFor } from '../core/worker-pool.js'
import { ChunkDecodeError, CODEC_ZSTD_DELTA, decodeChunk } from '../flist/codec.js'
import type { Worker } from 'node:worker_threads'
import type { ChunkInfo } from '../flist/chunks.js'
import type { ChunkLoc } from './db.js'
import type { PackEntry } from './wire.js'

/** Largest plaintext size of one chunk the hub decodes (a zstd frame cannot make it allocate more). */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024
/** nonce + GCM tag around an encrypted chunk. */
const MIN_ENCRYPTED = 28

export interface PackCheck {
  locs: ChunkLoc[]
  verified: number
}

/** Plaintext of a full chunk the hub already verified, or undefined. */
export type VerifiedBase = (sid: string) => Promise<Buffer | undefined>

export class PackVerifier {
  private readonly sorted: PackEntry[]
  /** Sids of full chunks that a delta of this pack uses as its base: their plaintext is kept. */
  private readonly bases: Set<string>
  private readonly plains = new Map<string, Buffer>()
  private readonly verified = new Set<PackEntry>()
  private readonly deltas: PackEntry[] = []
  /** Index in `sorted` of the next chunk to complete; bytes of the pack seen so far. */
  private next = 0
  private pos = 0
  /** A chunk that spans pieces is gathered here. */
  private scratch = Buffer.alloc(0)
  private filled = 0

  /** Checks the index itself (INVALID_ARGUMENT or CHUNK_TAMPERED); bounds wait for the pack's length. */
  constructor(
    readonly id: string,
    readonly entries: readonly PackEntry[],
  ) {
    if (entries.length === 0) throw zerr('INVALID_ARGUMENT', `pack ${id}: the index lists no chunks`)
    const order = entries.map((e, i) => ({ e, i })).sort((a, b) => a.e.offset - b.e.offset)
    let end = 0
    for (const { e, i } of order) {
      const where = `pack ${id}, index entry ${i} (sid ${e.sid})`
      if (e.offset < end) throw zerr('INVALID_ARGUMENT', `${where}: bytes ${e.offset}+${e.length} overlap the previous chunk`)
      end = e.offset + e.length
      if (e.size > MAX_CHUNK_SIZE) throw zerr('INVALID_ARGUMENT', `${where}: size ${e.size} is larger than the ${MAX_CHUNK_SIZE} bytes a chunk may have`)
      if ((e.codec === CODEC_ZSTD_DELTA) !== (e.base !== undefined)) throw zerr('INVALID_ARGUMENT', `${where}: a delta chunk (codec 2) needs a base, and only a delta has one`)
      if (e.encrypted && e.length < MIN_ENCRYPTED) throw zerr('CHUNK_TAMPERED', `${where}: an encrypted chunk is at least ${MIN_ENCRYPTED} bytes (nonce and tag)`)
    }
    this.sorted = order.map((o) => o.e)
    this.bases = new Set(entries.filter((e) => e.base !== undefined && !e.encrypted).map((e) => e.base!))
  }

  /** INVALID_ARGUMENT when an entry does not lie inside a pack of `length` bytes. */
  checkBounds(length: number): void {
    this.entries.forEach((e, i) => {
      if (e.offset + e.length > length) {
        throw zerr('INVALID_ARGUMENT', `pack ${this.id}, index entry ${i} (sid ${e.sid}): bytes ${e.offset}+${e.length} do not lie inside the ${length}-byte pack`)
      }
    })
  }

  /** The next bytes of the pack: full chunks they complete are decoded now (CHUNK_TAMPERED when one is wrong). */
  push(piece: Buffer): void {
    let p = 0
    while (p < piece.length && this.next < this.sorted.length) {
      const e = this.sorted[this.next]!
      const at = this.pos + p
      if (at < e.offset) {
        p += Math.min(e.offset - at, piece.length - p) // bytes between chunks
        continue
      }
      const take = Math.min(e.offset + e.length - at, piece.length - p)
      if (this.filled === 0 && take === e.length) {
        this.complete(e, piece.subarray(p, p + take)) // the whole chunk in this piece: no copy
      } else {
        if (this.scratch.length < e.length) this.scratch = Buffer.allocUnsafe(e.length)
        piece.copy(this.scratch, this.filled, p, p + take)
        this.filled += take
        if (this.filled === e.length) {
          this.filled = 0
          this.complete(e, this.scratch.subarray(0, e.length))
        }
      }
      p += take
    }
    this.pos += piece.length
  }

  private complete(e: PackEntry, data: Buffer): void {
    this.next++
    if (e.encrypted) return
    if (e.codec === CODEC_ZSTD_DELTA) {
      this.deltas.push(e)
      return
    }
    const plain = decodeEntry(this.id, e, data, undefined, true)
    this.verified.add(e)
    if (this.bases.has(e.sid)) this.plains.set(e.sid, Buffer.from(plain)) // a copy: `data` is reused
  }

  /**
   * Once every byte was pushed and the pack hashed to its id: checks the bounds, then decodes the deltas whose
   * base is in the pack (`read` returns pack bytes). Returns every chunk's location, verified or not; deltas whose
   * base lies elsewhere are left to verifyDeltas.
   */
  async finish(length: number, read: (offset: number, length: number) => Promise<Buffer>): Promise<PackCheck> {
    this.checkBounds(length)
    for (const e of this.deltas) {
      const base = this.plains.get(e.base!)
      if (!base) continue
      decodeEntry(this.id, e, await read(e.offset, e.length), base)
      this.verified.add(e)
    }
    const locs = this.entries.map((e) => {
      const loc: ChunkLoc = { pack: this.id, offset: e.offset, length: e.length, sid: e.sid, size: e.size, codec: e.codec, verified: this.verified.has(e) }
      if (e.base !== undefined) loc.base = e.base
      return loc
    })
    return { locs, verified: this.verified.size }
  }
}

/**
 * Decodes the deltas of a checked pack whose base the pack did not hold, against a base the hub already verified
 * (those without one are verified when an flist that lists the base is uploaded). Updates `check` in place.
 */
export async function verifyDeltas(id: string, entries: readonly PackEntry[], check: PackCheck, read: (offset: number, length: number) => Promise<Buffer>, verifiedBase: VerifiedBase): Promise<void> {
  for (const [i, e] of entries.entries()) {
    const loc = check.locs[i]!
    if (e.codec !== CODEC_ZSTD_DELTA || e.encrypted || loc.verified) continue
    const base = await verifiedBase(e.base!)
    if (!base) continue
    decodeEntry(id, e, await read(e.offset, e.length), base)
    loc.verified = true
    check.verified++
  }
}

function decodeEntry(id: string, e: PackEntry, data: Buffer, base?: Buffer, checkOnly = false): Buffer {
  try {
    return decodeChunk({ data, codec: e.codec, size: e.size, sid: e.sid, checkOnly, ...(base ? { base } : {}) })
  } catch (err) {
    if (err instanceof ChunkDecodeError) {
      throw zerr('CHUNK_TAMPERED', `pack ${id}: chunk ${e.sid} at offset ${e.offset} does not decode to its id (${err.message}); nothing was stored`, { pack: id, sid: e.sid, offset: e.offset })
    }
    throw err
  }
}

/** CHUNK_TAMPERED unless the pack's bytes hash to its id. */
export function checkPackHash(id: string, actual: string): void {
  if (actual !== id) {
    throw zerr('CHUNK_TAMPERED', `pack bytes hash to ${actual}, not to the id ${id} they were uploaded as (truncated or altered in transit); nothing was stored`, { pack: id, actual })
  }
}

/**
 * What the main thread tells the check worker (check-worker.ts). Messages about a pack upload (`job`) are not
 * answered, except `end`; the worker takes them in order and reports the first failure of a job on its own
 * (CheckNotice), so it never waits for this thread between two batches of a pack.
 */
export type CheckRequest =
  | { op: 'begin'; job: number; id: string; path: string; entries: readonly PackEntry[] }
  | { op: 'upto'; job: number; bytes: number }
  | { op: 'end'; job: number; bytes: number; reply: number }
  | { op: 'drop'; job: number }
  | { op: 'flist'; path: string; hubDb?: string; reply: number }

/** What the check worker sends back: the answer to a request with `reply`, or a pack upload's first failure. */
export type CheckNotice = ({ reply: number } | { job: number }) & ({ ok: true; value: unknown } | { ok: false; error: string; code?: string; details?: Record<string, unknown> })

/** A chunk row of an uploaded flist as the hub compares it with its records (no content hash). */
export type FlistChunk = Omit<ChunkInfo, 'hash'> & {
  /** The store id of the delta base (`base`). */
  baseSid?: string
}

/** What the hub records of an uploaded flist (VersionInfo): a few sums, not FlistReader's whole summary. */
export interface FlistTotals {
  root: string
  files: number
  /** Bytes of regular file content. */
  bytes: number
  chunks: number
  /** Encoded bytes of the chunks it references. */
  storedBytes: number
  encrypted: boolean
}

/** What the check worker found in an uploaded metadata file that passed FlistReader.open's checks. */
export interface FlistCheck {
  signers: { address: string; valid: boolean }[]
  summary: FlistTotals
  /** Every pack the flist names. */
  packs: string[]
  /**
   * The chunk rows the hub has to look at, in pack order: those that were not, when the worker read the hub's
   * database, at exactly that place in a pack the hub holds and verified there (every row without a database).
   */
  chunks: FlistChunk[]
}

/**
 * The hub's checks that need no database, in worker threads. Pack uploads are checked from the temp files they
 * are being written to: `start` one per upload, tell it each time more bytes are on file (`written`), then `end`
 * returns the check (or throws CHUNK_TAMPERED, INVALID_ARGUMENT). A failure found earlier shows in `failed` at
 * once, so the upload can be refused without reading the rest. Uploaded metadata files are opened and checked
 * (`flist`) in a second worker, so that a push's metadata, sent before its packs, is checked while the packs are
 * hashed instead of ahead of them; a pack goes to whichever of the two has less to do (the hashing is most of
 * the work, and the metadata worker is idle once the metadata is checked). Each worker starts on first use.
 */
export class PackChecks {
  private packs: CheckThread | undefined
  private flists: CheckThread | undefined
  private jobs = 0

  /**
   * `hubDb`: the hub's database (read by the flist worker, so that only the chunk rows that differ from the hub's
   * records come back to this thread; a few hundred instead of every row of a large image).
   */
  constructor(private readonly hubDb?: string) {}

  start(id: string, entries: readonly PackEntry[], path: string): PackCheckJob {
    this.packs = CheckThread.usable(this.packs)
    this.flists = CheckThread.usable(this.flists)
    // The metadata worker, idle once a push's metadata is checked, takes packs too when it has less to do.
    const thread = this.flists.busy < this.packs.busy ? this.flists : this.packs
    return new PackCheckJob(thread, ++this.jobs, { id, path, entries })
  }

  /**
   * Opens an uploaded metadata file with every check of FlistReader.open (SQLite integrity, root hash against the
   * seal, signatures, invariants) and returns its signers, summary, packs and the chunk rows to look at, or throws
   * as FlistReader.open does.
   */
  flist(path: string): Promise<FlistCheck> {
    this.flists = CheckThread.usable(this.flists)
    return this.flists.call({ op: 'flist', path, ...(this.hubDb !== undefined ? { hubDb: this.hubDb } : {}) }) as Promise<FlistCheck>
  }

  async close(): Promise<void> {
    await Promise.all([this.packs?.close(), this.flists?.close()])
  }
}

/** One check worker: requests go out without waiting for each other; answers and failure notices come back. */
class CheckThread {
  failed = false
  private readonly worker: Worker
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (err: unknown) => void }>()
  private readonly jobs = new Map<number, (err: unknown) => void>()
  private replies = 0
  private closed = false

  /** Pack uploads and answers it is working on. */
  get busy(): number {
    return this.jobs.size + this.calls.size
  }

  /** `thread`, or a new one when there is none or it died (it failed the checks it was running). */
  static usable(thread: CheckThread | undefined): CheckThread {
    if (thread && !thread.failed) return thread
    void thread?.close()
    return new CheckThread()
  }

  private constructor() {
    this.worker = workerFor(siblingModule(import.meta.url, 'check-worker'))
    this.worker.unref()
    this.worker.on('message', (n: CheckNotice) => {
      const err = n.ok ? undefined : n.code && n.code in ERROR_CODES ? new ZosError(n.code as ErrorCode, n.error, n.details ? { details: n.details } : {}) : new Error(n.error)
      if ('reply' in n) {
        const call = this.calls.get(n.reply)
        this.calls.delete(n.reply)
        if (this.calls.size === 0) this.worker.unref()
        if (n.ok) call?.resolve(n.value)
        else call?.reject(err)
      } else this.jobs.get(n.job)?.(err)
    })
    this.worker.on('error', (err) => this.fail(err))
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the check worker exited with code ${code}`))
    })
  }

  /** Fails every check in flight (answers awaited and uploads being checked): the worker is gone. */
  private fail(err: Error): void {
    this.failed = true
    for (const c of this.calls.values()) c.reject(err)
    for (const f of this.jobs.values()) f(err)
    this.calls.clear()
    this.jobs.clear()
  }

  /** Sends a message about pack upload `job`; `onFailure` hears of its first failure. */
  post(req: CheckRequest, onFailure?: (err: unknown) => void): void {
    if ('job' in req && onFailure) this.jobs.set(req.job, onFailure)
    if (req.op === 'drop') this.forget(req.job)
    if (this.failed) {
      onFailure?.(new Error('the check worker died'))
      return
    }
    this.worker.postMessage(req)
  }

  /** Stops listening for failures of a job the worker is done with. */
  forget(job: number): void {
    this.jobs.delete(job)
  }

  call(req: DistributiveOmit<Extract<CheckRequest, { reply: number }>, 'reply'>): Promise<unknown> {
    if (this.failed) return Promise.reject(new Error('the check worker died'))
    const reply = ++this.replies
    return new Promise((resolve, reject) => {
      this.calls.set(reply, { resolve, reject })
      this.worker.ref() // an answer is awaited
      this.worker.postMessage({ ...req, reply })
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await stopWorker(this.worker)
    // A check still awaited would otherwise never settle (and hold up whoever waits for it, e.g. a closing hub).
    this.fail(new Error('the hub is closing: the check was stopped'))
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

export class PackCheckJob {
  /** The first failure the worker reported, if any. */
  failed: unknown
  private ended = false

  constructor(
    private readonly thread: CheckThread,
    private readonly job: number,
    pack: { id: string; path: string; entries: readonly PackEntry[] },
  ) {
    this.thread.post({ op: 'begin', job, ...pack }, (err) => (this.failed ??= err))
  }

  /** The file now holds the first `bytes` bytes of the pack. */
  written(bytes: number): void {
    if (!this.failed) this.thread.post({ op: 'upto', job: this.job, bytes })
  }

  /** Checks the whole `bytes`-byte pack: its hash, its chunks, and the bounds of its index. */
  async end(bytes: number): Promise<PackCheck> {
    try {
      const check = (await this.thread.call({ op: 'end', job: this.job, bytes })) as PackCheck
      this.ended = true // the worker forgot it
      this.thread.forget(this.job)
      return check
    } catch (err) {
      throw this.failed ?? err
    }
  }

  /** Forgets the upload (its file may be gone). */
  drop(): void {
    if (!this.ended) this.thread.post({ op: 'drop', job: this.job })
  }
}
