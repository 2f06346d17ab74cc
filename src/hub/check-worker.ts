// Worker thread of the hub (two run this module: one for packs, one for metadata files): checks uploaded packs
// while they arrive (their SHA-256 against the id, and every chunk it can decode against its id), reading each
// from the temp file the main thread writes it to, and opens uploaded metadata files with all of FlistReader's
// checks, then compares their chunk rows with the hub's database (read only). The main thread then only moves
// bytes and looks things up in its database; the hashing and the flist checks, most of a push's CPU on the hub,
// run beside it (PackChecks).
import { createHash, type Hash } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { ZosError } from '../core/errors.js'
import Database from 'better-sqlite3'
import { storeId } from '../flist/chunks.js'
import { FlistReader } from '../flist/reader.js'
import { S_IFMT, S_IFREG } from '../flist/schema.js'
import { checkPackHash, PackVerifier, type CheckNotice, type CheckRequest, type FlistCheck, type FlistChunk, type FlistTotals, type PackCheck } from './packs.js'
import type { PackEntry } from './wire.js'

const READ_SIZE = 1024 * 1024

interface Job {
  id: string
  fd: number
  hash: Hash
  verifier: PackVerifier
  /** Bytes of the file checked so far. */
  pos: number
}

const jobs = new Map<number, Job | { failed: unknown }>()
const buf = Buffer.allocUnsafe(READ_SIZE)

function readBytes(fd: number, length: number, position: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  let done = 0
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done)
    if (n === 0) throw new Error(`the pack file ends at byte ${position + done}`)
    done += n
  }
  return out
}

/** Checks the file's bytes up to `end`. */
function take(job: Job, end: number): void {
  while (job.pos < end) {
    const n = readSync(job.fd, buf, 0, Math.min(READ_SIZE, end - job.pos), job.pos)
    if (n === 0) throw new Error(`the pack file ends at byte ${job.pos}, before ${end}`)
    const piece = buf.subarray(0, n)
    job.hash.update(piece)
    job.verifier.push(piece)
    job.pos += n
  }
}

function drop(key: number): void {
  const job = jobs.get(key)
  if (job && 'fd' in job) closeSync(job.fd)
  jobs.delete(key)
}

function errorNotice(err: unknown): { ok: false; error: string; code?: string; details?: Record<string, unknown> } {
  return { ok: false, error: err instanceof Error ? err.message : String(err), ...(ZosError.is(err) ? { code: err.code, details: err.details } : {}) }
}

/** The hub's database, read only (WAL: it sees what the hub's thread has committed). */
let hub: { path: string; db: Database.Database } | undefined

function hubDb(path: string): Database.Database {
  if (hub?.path !== path) {
    hub?.db.close()
    const db = new Database(path, { readonly: true, fileMustExist: true })
    db.pragma('busy_timeout = 5000')
    hub = { path, db }
  }
  return hub.db
}

/**
 * The chunk rows of the flist at `path` (opened and checked already) that the hub has to look at, and its totals: with `hubDb`,
 * only those not at exactly that place, verified, in a pack the hub holds (the comparison runs in SQLite, so the
 * rows of a large image that the hub has already cost no JavaScript objects and no copying to the main thread).
 */
function chunksToPlace(
  path: string,
  key: Buffer | undefined,
  hubPath: string | undefined,
): { packs: string[]; chunks: FlistChunk[]; sums: Pick<FlistTotals, 'files' | 'bytes' | 'chunks' | 'storedBytes'> } {
  const db = hubPath !== undefined ? hubDb(hubPath) : new Database(path, { readonly: true, fileMustExist: true })
  const fl = hubPath !== undefined ? 'fl.' : ''
  if (hubPath !== undefined) db.prepare('ATTACH DATABASE ? AS fl').run(path)
  try {
    // Store ids as the hub records them: hex of the content hash, keyed under the flist's key when encrypted.
    db.function('zos_sid', { deterministic: true }, (hash: unknown) => (hash === null ? null : storeId(hash as Buffer, key)))
    const sid = (col: string): string => (key ? `zos_sid(${col})` : `lower(hex(${col}))`)
    const differs = hubPath === undefined ? '' : `
      LEFT JOIN main.packs p ON p.id = c.pack
      LEFT JOIN main.chunk_locs l ON l.pack = c.pack AND l.offset = c.offset
      WHERE p.size IS NULL OR c.offset + c.length > p.size OR l.pack IS NULL OR l.verified != 1 OR l.length != c.length
        OR l.size != c.size OR l.codec != c.codec OR l.sid != ${sid('c.hash')}
        OR l.base IS NOT (CASE WHEN b.hash IS NULL THEN NULL ELSE ${sid('b.hash')} END)`
    const rows = db.prepare(`SELECT c.id, ${sid('c.hash')}, c.size, c.pack, c.offset, c.length, c.codec, c.base, CASE WHEN b.hash IS NULL THEN NULL ELSE ${sid('b.hash')} END
      FROM ${fl}chunk c LEFT JOIN ${fl}chunk b ON b.id = c.base ${differs} ORDER BY c.pack, c.offset`).raw(true).all() as [number, string, number, string, number, number, number, number | null, string | null][]
    const chunks = rows.map(([id, sid, size, pack, offset, length, codec, base, baseSid]) => {
      const c: FlistChunk = { id, sid, size, pack, offset, length, codec }
      if (base !== null) c.base = base
      if (baseSid !== null) c.baseSid = baseSid
      return c
    })
    // What the hub records of the flist (FlistReader.summary makes a dozen queries, for more than that).
    const perPack = db.prepare(`SELECT pack, count(*), sum(length) FROM ${fl}chunk GROUP BY pack`).raw(true).all() as [string, number, number][]
    const [files, bytes] = db.prepare(`SELECT count(*), COALESCE(sum(size), 0) FROM ${fl}inode WHERE (mode & ${S_IFMT}) = ${S_IFREG}`).raw(true).get() as [number, number]
    const sums = { files, bytes, chunks: 0, storedBytes: 0 }
    for (const [, n, stored] of perPack) {
      sums.chunks += n
      sums.storedBytes += stored
    }
    return { packs: perPack.map(([pack]) => pack), chunks, sums }
  } finally {
    if (hubPath !== undefined) db.prepare('DETACH DATABASE fl').run()
    else db.close()
  }
}

function flist(path: string, hubPath: string | undefined): FlistCheck {
  const reader = FlistReader.open(path)
  try {
    const signers = reader.signers.map((s) => ({ address: s.address, valid: s.valid }))
    const { packs, chunks, sums } = chunksToPlace(path, reader.encryptionKey, hubPath)
    const summary: FlistTotals = { root: reader.root.toString('hex'), ...sums, encrypted: reader.encryptionKey !== undefined }
    return { signers, summary, packs, chunks }
  } finally {
    reader.close()
  }
}

/** Checks what pack upload `req.job` has on file so far; at `end`, the whole pack (returned). */
async function pack(req: Extract<CheckRequest, { op: 'upto' | 'end' }>): Promise<PackCheck | undefined> {
  const job = jobs.get(req.job)
  if (!job) throw new Error(`no pack check ${req.job}`)
  if ('failed' in job) throw job.failed
  try {
    take(job, req.bytes)
    if (req.op === 'upto') return undefined
    checkPackHash(job.id, job.hash.digest('hex'))
    const check = await job.verifier.finish(req.bytes, async (offset, length) => readBytes(job.fd, length, offset))
    drop(req.job)
    return check
  } catch (err) {
    // Later requests for this pack (already on their way) get the same answer.
    closeSync(job.fd)
    jobs.set(req.job, { failed: err })
    throw err
  }
}

async function handle(req: CheckRequest): Promise<void> {
  const post = (n: CheckNotice): void => parentPort!.postMessage(n)
  switch (req.op) {
    case 'begin':
      try {
        jobs.set(req.job, { id: req.id, fd: openSync(req.path, 'r'), hash: createHash('sha256'), verifier: new PackVerifier(req.id, req.entries as PackEntry[]), pos: 0 })
      } catch (err) {
        jobs.set(req.job, { failed: err })
        post({ job: req.job, ...errorNotice(err) })
      }
      return
    case 'drop':
      drop(req.job)
      return
    case 'upto': {
      const failedBefore = 'failed' in (jobs.get(req.job) ?? {})
      // Only the first failure of a job is told; `end` answers with it too.
      await pack(req).catch((err: unknown) => failedBefore || post({ job: req.job, ...errorNotice(err) }))
      return
    }
    case 'end':
      await pack(req).then(
        (value) => post({ reply: req.reply, ok: true, value }),
        (err: unknown) => post({ reply: req.reply, ...errorNotice(err) }),
      )
      return
    case 'flist':
      try {
        post({ reply: req.reply, ok: true, value: flist(req.path, req.hubDb) })
      } catch (err) {
        post({ reply: req.reply, ...errorNotice(err) })
      }
  }
}

parentPort?.on('message', (req: CheckRequest) => void handle(req))
