// Worker thread of the hub: checks uploaded packs while they arrive (their SHA-256 against the id, and every chunk
// it can decode against its id), reading each from the temp file the main thread writes it to, and opens uploaded
// metadata files with all of FlistReader's checks. The main thread then only moves bytes and looks things up in
// its database; the hashing and the flist checks, most of a push's CPU on the hub, run beside it (PackChecks).
import { createHash, type Hash } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { parentPort } from 'node:worker_threads'
import { ZosError } from '../core/errors.js'
import { FlistReader } from '../flist/reader.js'
import { checkPackHash, PackVerifier, type CheckRequest, type FlistCheck, type FlistChunk } from './packs.js'
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

async function handle(req: CheckRequest): Promise<unknown> {
  if (req.op === 'begin') {
    jobs.set(req.job, { id: req.id, fd: openSync(req.path, 'r'), hash: createHash('sha256'), verifier: new PackVerifier(req.id, req.entries as PackEntry[]), pos: 0 })
    return undefined
  }
  if (req.op === 'flist') {
    const reader = FlistReader.open(req.path)
    try {
      // Chunk rows without their content hash: the hub does not need it, and a Buffer would be copied with its
      // whole backing store.
      const chunks: FlistChunk[] = reader.allChunks().map(({ hash: _, ...c }) => c)
      const check: FlistCheck = { signers: reader.signers.map((s) => ({ address: s.address, valid: s.valid })), summary: reader.summary(), chunks }
      return check
    } finally {
      reader.close()
    }
  }
  if (req.op === 'drop') {
    drop(req.job)
    return undefined
  }
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

parentPort?.on('message', (req: CheckRequest) => {
  handle(req).then(
    (value) => parentPort!.postMessage({ ok: true, value }),
    (err: unknown) =>
      parentPort!.postMessage({
        ok: false,
        error: err instanceof Error ? err.message : String(err),
        ...(ZosError.is(err) ? { code: err.code, details: err.details } : {}),
      }),
  )
})
