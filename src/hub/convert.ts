// Server-side conversion: an uploaded tar (plain, gzip, zstd), `docker save` tarball or OCI archive becomes an
// flist signed with the hub's key. Uploads are sniffed before they are accepted (an upload that is not an
// archive is refused at once), then converted one job at a time; clients poll GET /api/v1/jobs/<id>.
// A job packs into a staging store (staging.ts) and commits only when everything passed: a failed job leaves
// nothing behind but its record, which says why.
import { mkdir, readFile, rename, rm } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, constants as zlibConstants } from 'node:zlib'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import type { WorkerPool } from '../core/worker-pool.js'
import { createPackPool, pack } from '../flist/pack.js'
import type { WorkerRequest, WorkerResponse } from '../flist/pack-worker.js'
import { openSource } from '../flist/source/open.js'
import { DirStore } from '../store/dir.js'
import type { Identity } from './auth.js'
import type { JobRecord } from './db.js'
import { newId, type Hub } from './hub.js'
import { checkName, checkTag, normalizeNs } from './names.js'
import { sha256Hex } from './auth.js'
import { StagingStore } from './staging.js'
import type { JobInfo } from './wire.js'

/** Jobs waiting at most; more uploads are refused until some finish. */
export const MAX_QUEUED = 16
const PROGRESS_WRITE_MS = 1000

export type ArchiveKind = 'tar' | 'gzip' | 'zstd'

function tarHeaderValid(block: Buffer): boolean {
  if (block.length < 512) return false
  if (block.subarray(0, 512).every((b) => b === 0)) return true // an empty archive
  const stored = Number.parseInt(block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').trim(), 8)
  if (!Number.isInteger(stored)) return false
  let sum = 0
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!
  return sum === stored
}

/** What kind of archive the first bytes of an upload are, or BAD_ARCHIVE. */
export function sniffArchive(head: Buffer): ArchiveKind {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    let inner: Buffer
    try {
      inner = gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH })
    } catch (err) {
      throw zerr('BAD_ARCHIVE', `the upload starts like gzip but does not inflate (${errorMessage(err)}): not an archive`)
    }
    if (inner.length >= 512 && !tarHeaderValid(inner)) throw zerr('BAD_ARCHIVE', 'the upload is gzip, but what it holds is not a tar archive')
    return 'gzip'
  }
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  if (tarHeaderValid(head)) return 'tar'
  throw zerr('BAD_ARCHIVE', 'the upload is not an archive: send a tar (plain, gzip or zstd), a `docker save` tarball or an OCI image archive')
}

export interface ConvertRequest {
  ns: string
  name: string
  tag: string
  latest: boolean
}

export interface ConverterOptions {
  /** Worker threads per conversion (default: cores - 1, at least 1, at most 4). */
  workers?: number
  onEvent?: (event: { job: string; state: string; error?: string }) => void
}

export class Converter {
  private readonly jobs = new Map<string, JobRecord>()
  private readonly queue: { job: JobRecord; identity: Identity; archive: string }[] = []
  private running: Promise<void> | undefined
  private pool: WorkerPool<WorkerRequest, WorkerResponse> | undefined
  private closing = false
  private readonly workers: number

  constructor(
    private readonly hub: Hub,
    private readonly options: ConverterOptions = {},
  ) {
    this.workers = options.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1))
  }

  /** Marks jobs a previous run left unfinished as failed and removes their scratch. */
  async recover(): Promise<void> {
    for (const job of this.hub.db.unfinishedJobs()) {
      this.finish(job, 'failed', { code: 'HUB_UNAVAILABLE', message: 'the hub stopped during the conversion: upload the archive again' })
      await rm(join(this.hub.jobsDir, job.id), { recursive: true, force: true })
    }
  }

  /**
   * Takes an uploaded archive (a temp file the converter now owns) and queues its conversion. Refuses at once
   * (removing the file) what is not an archive, a full queue, or a namespace already over its quota.
   */
  async submit(identity: Identity, req: ConvertRequest, upload: { path: string; size: number; head: Buffer }): Promise<JobInfo> {
    let dir: string | undefined
    try {
      const ns = normalizeNs(req.ns)
      if (ns !== identity.ns) throw zerr('HUB_FORBIDDEN', `namespace ${ns} belongs to another twin; you may write only to ${identity.ns}`)
      checkName(req.name)
      checkTag(req.tag)
      sniffArchive(upload.head)
      if (this.closing) throw zerr('HUB_UNAVAILABLE', 'the hub is shutting down')
      if (this.queue.length >= MAX_QUEUED) throw zerr('HUB_UNAVAILABLE', `${this.queue.length} conversions are waiting: retry later`)
      const used = this.hub.db.usage(ns)
      if (used >= this.hub.quotaOf(ns)) throw zerr('HUB_QUOTA', `namespace ${ns} already uses ${used} bytes, its whole quota`)
      const now = Date.now()
      const job: JobRecord = { id: newId(), ns, name: req.name, tag: req.tag, latest: req.latest, state: 'queued', phase: 'queued', done: 0, total: upload.size, created: now, updated: now }
      dir = join(this.hub.jobsDir, job.id)
      await mkdir(dir, { recursive: true })
      const archive = join(dir, 'archive')
      await rename(upload.path, archive)
      this.hub.db.addJob(job)
      this.jobs.set(job.id, job)
      this.queue.push({ job, identity, archive })
      this.options.onEvent?.({ job: job.id, state: 'queued' })
      this.kick()
      return this.info(job)
    } catch (err) {
      await rm(upload.path, { force: true })
      if (dir) await rm(dir, { recursive: true, force: true })
      throw err
    }
  }

  get(id: string): JobInfo {
    if (!/^[0-9a-f]{32}$/.test(id)) throw zerr('INVALID_ARGUMENT', 'a job id is 32 lowercase hex characters')
    const job = this.jobs.get(id) ?? this.hub.db.job(id)
    if (!job) throw zerr('NOT_FOUND', `no conversion job ${id} on this hub`)
    return this.info(job)
  }

  private info(job: JobRecord): JobInfo {
    const out: JobInfo = { id: job.id, ns: job.ns, name: job.name, tag: job.tag, state: job.state, phase: job.phase, done: job.done, total: job.total, created: job.created, updated: job.updated }
    if (job.error) out.error = job.error
    if (job.digest) out.digest = job.digest
    return out
  }

  private kick(): void {
    if (this.running || this.closing) return
    const next = this.queue.shift()
    if (!next) return
    this.running = this.run(next.job, next.identity, next.archive)
      .catch((err: unknown) => this.options.onEvent?.({ job: next.job.id, state: 'failed', error: errorMessage(err) }))
      .finally(() => {
        this.running = undefined
        this.kick()
      })
  }

  private progress(job: JobRecord, phase: string, done: number, total: number): void {
    const changed = job.phase !== phase
    job.phase = phase
    job.done = done
    job.total = total
    const now = Date.now()
    if (changed || now - job.updated >= PROGRESS_WRITE_MS) {
      job.updated = now
      this.hub.db.updateJob(job)
    }
  }

  private finish(job: JobRecord, state: 'done' | 'failed', error?: { code: string; message: string }): void {
    job.state = state
    job.phase = state
    job.updated = Date.now()
    if (error) job.error = error
    this.hub.db.updateJob(job)
    this.jobs.delete(job.id)
    this.options.onEvent?.({ job: job.id, state, ...(error ? { error: `${error.code}: ${error.message}` } : {}) })
  }

  private async run(job: JobRecord, identity: Identity, archive: string): Promise<void> {
    const dir = join(this.hub.jobsDir, job.id)
    let staging: StagingStore | undefined
    let error: { code: string; message: string } | undefined
    try {
      job.state = 'running'
      this.progress(job, 'reading', 0, job.total)
      staging = new StagingStore(this.hub.store, await DirStore.open(join(dir, 'store'), { create: true }), this.hub.db)
      const source = await openSource(archive)
      this.progress(job, 'packing', 0, 0)
      const output = join(dir, 'out.fl')
      this.pool = createPackPool(this.workers)
      try {
        await pack({
          source,
          output,
          store: staging,
          signers: [this.hub.key],
          pool: this.pool,
          onProgress: (bytes) => this.progress(job, 'packing', bytes, 0),
        })
      } finally {
        await this.pool.close()
        this.pool = undefined
      }
      if (this.closing) throw zerr('HUB_UNAVAILABLE', 'the hub stopped during the conversion: upload the archive again')
      this.progress(job, 'storing', 0, 0)
      const flBytes = await readFile(output)
      const size = flBytes.length
      const adding = staging.newBytes() + size
      const used = this.hub.db.usage(job.ns)
      const quota = this.hub.quotaOf(job.ns)
      if (used + adding > quota) {
        throw zerr('HUB_QUOTA', `the converted image needs ${adding} new bytes, but namespace ${job.ns} uses ${used} of its ${quota}-byte quota`)
      }
      await staging.commit(job.ns)
      const tmp = join(this.hub.tmpDir, `convert-${job.id}.fl`)
      await rename(output, tmp)
      this.progress(job, 'verifying', 0, 0)
      const answer = await this.hub.commitFlist(
        { identity, converted: true },
        { ns: job.ns, name: job.name, tag: job.tag, latest: job.latest, path: tmp, digest: sha256Hex(flBytes), size },
      )
      job.digest = answer.version.digest
    } catch (err) {
      error = ZosError.is(err) ? { code: err.code, message: err.message } : { code: 'INTERNAL', message: `conversion failed: ${errorMessage(err)}` }
    } finally {
      await staging?.close().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
    // Recorded only once the scratch is gone: whoever sees the job finished sees nothing of it left behind.
    if (error) this.finish(job, 'failed', error)
    else this.finish(job, 'done')
  }

  /** Stops taking jobs; a running conversion is stopped (its workers closed) and marked failed. */
  async close(): Promise<void> {
    this.closing = true
    for (const q of this.queue.splice(0)) {
      this.finish(q.job, 'failed', { code: 'HUB_UNAVAILABLE', message: 'the hub stopped before the conversion started: upload the archive again' })
      await rm(join(this.hub.jobsDir, q.job.id), { recursive: true, force: true })
    }
    await this.pool?.close().catch(() => {})
    await this.running
  }
}
