// The hub's state and rules, without HTTP: packs come in verified, flist metadata is accepted only when it is
// sealed, signed by the namespace's twin (or a signer it listed) and every chunk it names is on the hub and
// checked; tags are movable links with history; quotas bound what each twin stores.
//
//   DATA/store/        the dir store of packs (docs/store.md), served at /packs/<id>
//   DATA/hub.db        namespaces, versions, tags, history, chunk locations, jobs (SQLite, WAL)
//   DATA/flists/<d[0:2]>/<digest>.fl   metadata files, named by the SHA-256 of their bytes
//   DATA/tmp/          uploads being received (removed at start: a crash leaves nothing behind)
//   DATA/jobs/<id>/    scratch of conversion jobs
//   DATA/hub-key.json  the key converted flists are signed with (created on first start)
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DirHandles } from '../core/dir-handles.js'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import { generateKey, loadKey, saveKey, type KeyPair } from '../core/keys.js'
import { ChunkDecodeError, CODEC_ZSTD_DELTA, decodeChunk } from '../flist/codec.js'
import { ChunkFetcher } from '../flist/fetch.js'
import { FlistReader } from '../flist/reader.js'
import Database from 'better-sqlite3'
import { DirStore, packPath } from '../store/dir.js'
import type { Identity } from './auth.js'
import { HubDb, type ChunkLoc, type Version } from './db.js'
import { checkDigest, checkName, checkTag, DEFAULT_TAG, normalizeNs } from './names.js'
import { PackChecks, PackVerifier, verifyDeltas, type FlistCheck, type FlistChunk, type PackCheckJob } from './packs.js'
import { MAX_INDEX_BYTES, parsePackIndex, type HubLocation, type PackEntry, type MissingAnswer, type NameDetail, type NameSummary, type PackAnswer, type PushAnswer, type TagAnswer, type VersionInfo, type WhoAmI } from './wire.js'

export const GIB = 1024 ** 3
export const MIB = 1024 ** 2

export interface HubLimits {
  /** Largest pack upload (bytes). */
  pack: number
  /** Largest flist metadata upload. */
  flist: number
  /** Largest archive uploaded for conversion. */
  archive: number
}

export const DEFAULT_LIMITS: HubLimits = { pack: 64 * MIB, flist: 512 * MIB, archive: 4 * GIB }
export const DEFAULT_QUOTA = 10 * GIB
/** Packs no flist refers to are kept this long (a push uploads its packs before its metadata). */
export const DEFAULT_GC_GRACE_MS = 24 * 3600 * 1000

export interface HubOptions {
  /** Data directory (created if missing). */
  data: string
  /** Bytes each namespace may store (default 10 GiB). */
  quota?: number
  /** Per-namespace quotas that replace the default. */
  quotaFor?: ReadonlyMap<string, number>
  limits?: Partial<HubLimits>
  /** How long a pack no flist refers to is kept (default 24 h). */
  gcGraceMs?: number
}

/** Who commits an flist: a twin's upload, or the hub itself for a conversion it ran for that twin. */
export interface Committer {
  identity: Identity
  converted: boolean
}

export interface CommitRequest {
  ns: string
  name: string
  tag: string
  /** Also point `latest` at the new version. */
  latest: boolean
  /** The metadata file (a temp file the hub takes over: moved into place or removed). */
  path: string
  /** SHA-256 of its bytes. */
  digest: string
  size: number
  /** Settles once the file's fsync is done (it may still run while the file is checked); awaited before the rename. */
  durable?: Promise<void>
}

const VERIFY_BATCH = 256
/** Pack bytes gathered before a write to the upload's temp file, and most bytes received but not yet written. */
const WRITE_BATCH = 1024 * 1024
const WRITE_AHEAD = 8 * 1024 * 1024
/** Longest an flist upload waits for the packs it names that are still arriving. */
const PACK_WAIT_MS = 120_000
/** Longest an flist upload may ask to wait for packs that have not begun to arrive (CommitOptions.waitMs). */
export const MAX_PACK_WAIT_MS = 120_000

export interface CommitOptions {
  /**
   * How long to wait for packs the flist names that are neither on the hub nor arriving yet (default 0: refuse
   * with CHUNK_MISSING at once). A push sends its metadata first and its packs next; the hub checks the flist
   * meanwhile and commits as soon as the last pack is stored. Packs already arriving are waited for regardless.
   */
  waitMs?: number
  /** Aborted when the uploader goes away: stop waiting (CHUNK_MISSING). */
  signal?: AbortSignal
}

/** The flist's chunks against the hub's records (Hub.placeChunks). */
interface Placement {
  /** Chunks in the flist. */
  count: number
  packIds: string[]
  storedBytes: number
  missing: FlistChunk[]
  toVerify: FlistChunk[]
}

export class Hub {
  readonly store: DirStore
  readonly db: HubDb
  readonly key: KeyPair
  readonly limits: HubLimits
  private readonly quota: number
  private readonly quotaFor: ReadonlyMap<string, number>
  readonly gcGraceMs: number
  private closed = false
  /** Pack uploads being received, by pack id: an flist that names one of them waits for it (see awaitPacks). */
  private readonly arriving = new Map<string, number>()
  /** Flist uploads waiting for packs, by pack id: told when an upload of that pack ends (stored or refused). */
  private readonly packWaiters = new Map<string, Set<(pack: string) => void>>()
  /**
   * Metadata files moved into place by uploads neither committed nor refused yet, by digest (placeFlist): kept
   * while any of them may still commit, even when no version names the digest.
   */
  private readonly placing = new Map<string, number>()
  /** Directories of metadata files, open for the fsync after each rename into them. */
  private readonly flistDirs = new DirHandles()
  /** Checks pack uploads and metadata files off this thread. */
  private readonly checks: PackChecks

  private constructor(readonly root: string, store: DirStore, db: HubDb, key: KeyPair, options: HubOptions) {
    this.store = store
    this.db = db
    this.key = key
    this.limits = { ...DEFAULT_LIMITS, ...options.limits }
    this.quota = options.quota ?? DEFAULT_QUOTA
    this.quotaFor = options.quotaFor ?? new Map()
    this.gcGraceMs = options.gcGraceMs ?? DEFAULT_GC_GRACE_MS
    this.checks = new PackChecks(db.path)
  }

  static async open(options: HubOptions): Promise<Hub> {
    const root = options.data
    if (typeof root !== 'string' || root === '') throw zerr('INVALID_ARGUMENT', 'the hub needs a data directory')
    try {
      for (const d of ['store', 'flists', 'tmp', 'jobs']) await mkdir(join(root, d), { recursive: true })
    } catch (err) {
      throw zerr('STORE_UNAVAILABLE', `cannot create the hub data directory ${root}: ${errorMessage(err)}`, { path: root }, err)
    }
    // Uploads that were being received when the hub stopped are incomplete: drop them.
    for (const f of await readdir(join(root, 'tmp'))) await rm(join(root, 'tmp', f), { recursive: true, force: true })
    const keyPath = join(root, 'hub-key.json')
    let key: KeyPair
    if (existsSync(keyPath)) key = await loadKey(keyPath)
    else {
      key = generateKey()
      await saveKey(keyPath, key)
    }
    const store = await DirStore.open(join(root, 'store'), { create: true })
    const db = new HubDb(join(root, 'hub.db'))
    const hub = new Hub(root, store, db, key, options)
    await hub.sweepFlistFiles()
    return hub
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.checks.close()
    await this.flistDirs.close()
    await this.store.close()
    this.db.close()
  }

  get tmpDir(): string {
    return join(this.root, 'tmp')
  }

  get jobsDir(): string {
    return join(this.root, 'jobs')
  }

  flistPath(digest: string): string {
    return join(this.root, 'flists', digest.slice(0, 2), `${digest}.fl`)
  }

  quotaOf(ns: string): number {
    return this.quotaFor.get(ns) ?? this.quota
  }

  /** Removes metadata files no version refers to (left by a crash between the rename and the commit). */
  private async sweepFlistFiles(): Promise<void> {
    const base = join(this.root, 'flists')
    for (const dir of await readdir(base)) {
      for (const f of await readdir(join(base, dir)).catch(() => [] as string[])) {
        const m = /^([0-9a-f]{64})\.fl$/.exec(f)
        if (!m || !this.db.digestInUse(m[1]!)) await rm(join(base, dir, f), { force: true })
      }
    }
  }

  private checkWrite(identity: Identity, ns: string): string {
    const n = normalizeNs(ns)
    if (n !== identity.ns) {
      throw zerr('HUB_FORBIDDEN', `namespace ${n} belongs to another twin; you (${identity.address}) may write only to ${identity.ns}`, { ns: n, yours: identity.ns })
    }
    return n
  }

  private checkQuota(ns: string, adding: number, what: string): void {
    const used = this.db.usage(ns)
    const quota = this.quotaOf(ns)
    if (used + adding > quota) {
      throw zerr('HUB_QUOTA', `${what} needs ${adding} bytes, but namespace ${ns} uses ${used} of its ${quota}-byte quota; remove old flists with \`zos hub rm\` or ask the hub operator for more`, {
        ns, used, quota, adding,
      })
    }
  }

  /**
   * Deletes packs that no flist refers to and that were uploaded more than the grace period ago (pushes upload
   * packs before their metadata; removed flists leave their packs behind). Frees the uploaders' quota.
   * `onDelete` is told each pack file removed (to drop cached file handles).
   */
  async gc(options: { graceMs?: number; onDelete?: (path: string) => void } = {}): Promise<{ packs: number; bytes: number }> {
    const cutoff = Date.now() - (options.graceMs ?? this.gcGraceMs)
    let packs = 0
    let bytes = 0
    const doomed = this.db.unreferencedPacks(cutoff)
    if (doomed.length === 0) return { packs, bytes }
    await this.store.stats() // makes sure the store index exists with its tables
    const index = new Database(join(this.store.root, 'index.db'))
    try {
      index.pragma('busy_timeout = 5000')
      const delChunks = index.prepare('DELETE FROM chunks WHERE pack = ?')
      const delPack = index.prepare('DELETE FROM packs WHERE id = ?')
      for (const p of doomed) {
        // Rows first (nothing will offer the pack any more), then the file.
        if (!this.db.dropPack(p.id)) continue
        index.transaction(() => {
          delChunks.run(p.id)
          delPack.run(p.id)
        })()
        const path = packPath(this.store.root, p.id)
        options.onDelete?.(path)
        await rm(path, { force: true })
        packs++
        bytes += p.size
      }
    } finally {
      index.close()
    }
    return { packs, bytes }
  }

  whoami(identity: Identity): WhoAmI {
    const out: WhoAmI = { ns: identity.ns, address: identity.address, quota: this.quotaOf(identity.ns), used: this.db.usage(identity.ns), signers: this.db.signers(identity.ns) }
    if (identity.twin !== undefined) out.twin = identity.twin
    return out
  }

  // ---- chunks and packs ----

  /** Which of the asked packs and chunks the hub lacks, and where the chunks it has are (for this caller). */
  missing(identity: Identity, query: { sids: readonly string[]; packs: readonly string[] }): MissingAnswer {
    const found = this.db.usableLocations(query.sids, identity.ns)
    const locations: Record<string, HubLocation> = {}
    const missing: string[] = []
    for (const sid of new Set(query.sids)) {
      const l = found.get(sid)
      if (!l) {
        missing.push(sid)
        continue
      }
      const loc: HubLocation = { pack: l.pack, offset: l.offset, length: l.length, size: l.size, codec: l.codec }
      if (l.base !== undefined) loc.base = l.base
      locations[sid] = loc
    }
    const missingPacks = [...new Set(query.packs)].filter((p) => this.db.packSize(p) === undefined)
    return { ns: identity.ns, missing, missingPacks, locations }
  }

  /**
   * Announces a pack upload whose request was authenticated and whose body is on its way; call the returned
   * function when it is stored or refused. A push sends its metadata while its last packs are still in flight
   * (saving a round trip and the metadata's verification time), so commitFlist waits for packs it names that are
   * arriving instead of refusing the flist at once.
   */
  packArriving(id: string): () => void {
    this.arriving.set(id, (this.arriving.get(id) ?? 0) + 1)
    let ended = false
    return () => {
      if (ended) return
      ended = true
      const n = this.arriving.get(id)! - 1
      if (n === 0) this.arriving.delete(id)
      else this.arriving.set(id, n)
      this.packEnded(id)
    }
  }

  /** Tells the flist uploads waiting for this pack that an upload of it ended (they look again). */
  private packEnded(id: string): void {
    for (const wake of this.packWaiters.get(id) ?? []) wake(id)
  }

  /** Plaintext of a full chunk the hub has verified, or undefined. */
  private async verifiedPlain(sid: string): Promise<Buffer | undefined> {
    const loc = this.db.usableLocations([sid], '').get(sid)
    if (!loc || !loc.verified || loc.codec === CODEC_ZSTD_DELTA) return undefined
    try {
      const [data] = await this.store.readRanges([loc])
      return decodeChunk({ data: data!, codec: loc.codec, size: loc.size, sid })
    } catch (err) {
      if (err instanceof ChunkDecodeError || (ZosError.is(err) && err.code === 'CHUNK_MISSING')) return undefined
      throw err
    }
  }

  /**
   * Receives a pack upload (framed as in wire.ts) as it arrives: the frame head is checked with `checkHead` (the
   * request token's body hash) before any pack byte is looked at; the pack bytes are written to a temp file, and
   * the check worker (PackChecks) hashes them and decodes each chunk from that file as it is written, so the hub
   * holds little of the pack in memory and neither the checks nor the hashing hold up this thread. Only when
   * everything holds (id, index, chunks, quota) is the file moved into the store; otherwise it is removed.
   * `length` is the announced Content-Length (checked), `limit` the largest body.
   */
  async receivePack(
    identity: Identity,
    id: string,
    body: AsyncIterable<Buffer> | Iterable<Buffer>,
    options: { length?: number; limit: number; checkHead: (sha256: string) => void },
  ): Promise<PackAnswer & { received: number }> {
    const tmp = join(this.tmpDir, `pack-${id}-${randomBytes(6).toString('hex')}.tmp`)
    const fh = await open(tmp, 'wx', 0o644)
    let kept = false
    let check: PackCheckJob | undefined
    try {
      const headHash = createHash('sha256')
      let head: Buffer[] = []
      let headBytes = 0
      let indexEnd = -1 // 4 + index length, once known
      let entries: PackEntry[] | undefined
      let received = 0
      let packBytes = 0
      // Pieces are gathered into batches written with one writev each, in the background: the body keeps flowing
      // while a batch is written, up to WRITE_AHEAD bytes not yet on file. The worker checks each batch once it
      // is on file.
      let pending: Buffer[] = []
      let pendingBytes = 0
      let writing: Promise<void> = Promise.resolve()
      let unwritten = 0
      const flush = (): void => {
        if (pendingBytes === 0) return
        const batch = pending
        const bytes = pendingBytes
        const at = packBytes - pendingBytes
        pending = []
        pendingBytes = 0
        unwritten += bytes
        writing = writing.then(async () => {
          let done = (await fh.writev(batch, at)).bytesWritten
          // A short write (rare on a regular file): the rest one buffer at a time.
          for (let i = 0, off = 0; done < bytes; off += batch[i++]!.length) {
            const b = batch[i]!
            if (off + b.length <= done) continue
            const from = Math.max(0, done - off)
            done += (await fh.write(b, from, b.length - from, at + off + from)).bytesWritten
            if (done < off + b.length) i-- // this buffer again
          }
          unwritten -= bytes
          check!.written(at + bytes)
        })
        writing.catch(() => {}) // awaited below; a failure surfaces there
      }
      const takePack = async (piece: Buffer): Promise<void> => {
        if (check!.failed) throw check!.failed // a bad chunk: refuse without reading the rest
        pending.push(piece)
        pendingBytes += piece.length
        packBytes += piece.length
        if (pendingBytes >= WRITE_BATCH) flush()
        if (unwritten > WRITE_AHEAD) await writing
      }
      for await (const piece of body) {
        received += piece.length
        if (received > options.limit) throw zerr('HUB_TOO_LARGE', `pack ${id} is larger than this hub accepts (${options.limit} bytes)`, { limit: options.limit })
        if (options.length !== undefined && received > options.length) throw zerr('INVALID_ARGUMENT', `pack ${id} is longer than its Content-Length`)
        if (check) {
          await takePack(piece)
          continue
        }
        head.push(piece)
        headBytes += piece.length
        if (indexEnd < 0 && headBytes >= 4) {
          const n = Buffer.concat(head).readUInt32BE(0)
          if (n > MAX_INDEX_BYTES || (options.length !== undefined && 4 + n > options.length)) {
            throw zerr('INVALID_ARGUMENT', `pack upload announces a ${n}-byte index, but the body has ${(options.length ?? 4) - 4} bytes after the length (truncated?)`)
          }
          indexEnd = 4 + n
        }
        if (indexEnd < 0 || headBytes < indexEnd) continue
        const all = Buffer.concat(head)
        head = []
        headHash.update(all.subarray(0, indexEnd))
        options.checkHead(headHash.digest('hex'))
        entries = parsePackIndex(all.subarray(4, indexEnd))
        new PackVerifier(id, entries) // the index's own checks, before any pack byte is taken
        check = this.checks.start(id, entries, tmp)
        // Bounds are checked once the pack is whole and hashed: a truncated upload is CHUNK_TAMPERED, as before.
        if (all.length > indexEnd) await takePack(all.subarray(indexEnd))
      }
      if (options.length !== undefined && received !== options.length) throw zerr('INVALID_ARGUMENT', `pack ${id} is truncated: ${received} of ${options.length} bytes arrived`)
      if (!check || !entries) {
        throw zerr('INVALID_ARGUMENT', indexEnd < 0 ? 'pack upload is shorter than its 4-byte index length' : `pack upload announces a ${indexEnd - 4}-byte index, but the body ends before it (truncated?)`)
      }
      flush()
      await writing
      // Made durable while the worker hashes the last bytes (a refused pack only wasted an fsync).
      const synced = fh.sync()
      synced.catch(() => {}) // awaited by putPackFile
      const result = await check.end(packBytes)
      const read = async (offset: number, length: number): Promise<Buffer> => {
        const buf = Buffer.allocUnsafe(length)
        await fh.read(buf, 0, length, offset)
        return buf
      }
      await verifyDeltas(id, entries, result, read, (sid) => this.verifiedPlain(sid))
      const had = this.db.packSize(id) !== undefined && (await this.store.statPack(id)) === packBytes
      if (!had) this.checkQuota(identity.ns, packBytes, `pack ${id}`)
      await this.store.putPackFile(
        id,
        tmp,
        result.locs.map((l) => ({ sid: l.sid, pack: id, offset: l.offset, length: l.length, size: l.size, codec: l.codec, ...(l.base ? { base: l.base } : {}) })),
        { sha256: id, synced: { size: packBytes, done: synced } },
      )
      kept = true
      this.db.addPack(id, packBytes, identity.ns, result.locs)
      this.packEnded(id)
      return { pack: id, size: packBytes, chunks: entries.length, verified: result.verified, stored: !had, received }
    } finally {
      check?.drop()
      await fh.close().catch(() => {})
      if (!kept) await rm(tmp, { force: true })
    }
  }

  /** Verifies and stores an uploaded pack held in memory (body framed as in wire.ts, head already authenticated). */
  async putPack(identity: Identity, id: string, body: Buffer): Promise<PackAnswer> {
    const { received: _, ...answer } = await this.receivePack(identity, id, [body], { length: body.length, limit: body.length, checkHead: () => {} })
    return answer
  }

  // ---- flists ----

  /**
   * Checks an uploaded metadata file and, when it passes, stores it as a version of `ns/name` and points the
   * tag (and `latest`) at it. The file at `req.path` is moved into place or removed, whatever happens.
   */
  async commitFlist(who: Committer, req: CommitRequest, options: CommitOptions = {}): Promise<PushAnswer> {
    let reader: FlistReader | undefined
    let placement: Promise<string> | undefined
    try {
      const ns = who.converted ? normalizeNs(req.ns) : this.checkWrite(who.identity, req.ns)
      const name = checkName(req.name)
      const tag = checkTag(req.tag)
      checkDigest(req.digest)
      // FlistReader.open's checks run in a check worker, which also compares the chunk rows with the hub's
      // records and hands back only those that differ (this thread, busy receiving packs, does not open the
      // file). Only a sealed flist signed by someone the namespace accepts is placed, and waits for packs.
      const check = await this.checks.flist(req.path)
      const { summary } = check
      const signers = this.checkSigners(check.signers, ns, who)
      const placed = this.placeChunks(check)
      // The file passed its checks: it goes into place now, while the packs it names arrive, so that only the
      // commit follows the last of them (it is removed again if the upload is refused).
      placement = this.placeFlist(req)
      placement.catch(() => {}) // awaited below
      await this.awaitPacks(placed, options)
      if (placed.toVerify.length > 0) reader = FlistReader.open(await placement, { deferVerify: true }) // checked above
      const { packs, verifiedNow, storedBytes } = await this.verifyChunks(reader, placed)
      reader?.close()
      reader = undefined
      const existing = this.db.versionByDigest(ns, name, req.digest)
      if (!existing) this.checkQuota(ns, req.size, `flist ${name}:${tag}`)
      await placement
      let previous: string | undefined
      const version = this.db.transaction(() => {
        const v = this.db.addVersion({
          ns, name, digest: req.digest, root: summary.root, fileSize: req.size, bytes: summary.bytes, files: summary.files,
          chunks: summary.chunks, storedBytes, signers, encrypted: summary.encrypted, converted: who.converted,
          uploader: who.identity.address, created: Date.now(), packs,
        })
        previous = this.db.setTag(ns, name, tag, v, who.identity.address)
        if (req.latest && tag !== DEFAULT_TAG) this.db.setTag(ns, name, DEFAULT_TAG, v, who.identity.address)
        return v
      })
      const answer: PushAnswer = { ns, name, tag, latest: req.latest || tag === DEFAULT_TAG, version: this.versionInfo(version), verifiedNow }
      if (previous !== undefined) answer.previous = previous
      this.unplaceFlist(req.digest) // committed: the version keeps the file
      return answer
    } catch (err) {
      reader?.close()
      await placement?.catch(() => {})
      await rm(req.path, { force: true }) // not placed, or placement failed
      if (placement) await this.dropPlaced(req.digest)
      throw err
    }
  }

  /**
   * Moves an upload's metadata file into place (DATA/flists), once its fsync is done: renamed, then its directory
   * fsynced; when a file with that digest is there already, the upload's copy is removed instead. Returns the
   * path. Counted in `placing` until the upload commits (unplaceFlist) or is refused (dropPlaced).
   */
  private async placeFlist(req: CommitRequest): Promise<string> {
    this.placing.set(req.digest, (this.placing.get(req.digest) ?? 0) + 1)
    await req.durable
    const final = this.flistPath(req.digest)
    if (existsSync(final)) await rm(req.path, { force: true })
    else {
      const dir = join(final, '..')
      await this.flistDirs.get(dir) // created (and opened) once
      await rename(req.path, final)
      await this.flistDirs.sync(dir)
    }
    return final
  }

  /** An upload that placed its file is done with it. */
  private unplaceFlist(digest: string): void {
    const n = (this.placing.get(digest) ?? 1) - 1
    if (n > 0) this.placing.set(digest, n)
    else this.placing.delete(digest)
  }

  /** An upload that placed its file was refused: the file goes unless a version or another upload still uses it. */
  private async dropPlaced(digest: string): Promise<void> {
    this.unplaceFlist(digest)
    if (!this.placing.has(digest) && !this.db.digestInUse(digest)) await rm(this.flistPath(digest), { force: true })
  }

  /** Signers of an upload: all valid, and one of them the namespace's twin, a signer it listed, or (conversions) the hub. */
  private checkSigners(signers: readonly { address: string; valid: boolean }[], ns: string, who: Committer): string[] {
    if (signers.length === 0) throw zerr('UNTRUSTED_SIGNER', `${who.converted ? 'converted flist' : 'the flist'} is not signed: sign it with \`zos flist pack --sign KEY\` (zos hub push does)`)
    const bad = signers.find((s) => !s.valid)
    if (bad) throw zerr('SIGNATURE_INVALID', `the signature by ${bad.address} does not verify: the flist was altered after signing`, { signer: bad.address })
    const allowed = new Set(who.converted ? [this.key.address.toLowerCase()] : [who.identity.address.toLowerCase(), ...this.db.signers(ns)])
    if (!signers.some((s) => allowed.has(s.address.toLowerCase()))) {
      throw zerr('UNTRUSTED_SIGNER', `the flist is signed by ${signers.map((s) => s.address).join(', ')}, but namespace ${ns} accepts only ${[...allowed].join(', ')} (add signers with \`zos hub signers --add\`)`, {
        ns,
      })
    }
    return signers.map((s) => s.address)
  }

  /**
   * Where the flist's chunks stand on the hub (read only): those not on the hub at the place the flist says, and
   * those there but not yet verified at exactly that place. Only the rows the check worker did not find in place
   * and verified are looked at (FlistCheck.chunks).
   */
  private placeChunks(check: FlistCheck): Placement {
    const { missing, toVerify } = this.compareChunks(check.chunks)
    return { count: check.summary.chunks, packIds: check.packs, storedBytes: check.summary.storedBytes, missing, toVerify }
  }

  /** Which of these chunks are not on the hub, and which are but not yet verified at exactly that place. */
  private compareChunks(list: readonly FlistChunk[]): { missing: FlistChunk[]; toVerify: FlistChunk[] } {
    const wanted = [...new Set(list.map((c) => c.pack))]
    const sizes = this.db.packSizes(wanted)
    const locs = this.db.locationsIn(wanted.filter((p) => sizes.has(p)))
    const missing: FlistChunk[] = []
    const toVerify: FlistChunk[] = []
    for (const c of list) {
      const size = sizes.get(c.pack)
      if (size === undefined || c.offset + c.length > size) {
        missing.push(c)
        continue
      }
      const loc = locs.get(c.pack)?.get(c.offset)
      const same = loc && loc.sid === c.sid && loc.length === c.length && loc.size === c.size && loc.codec === c.codec && loc.base === c.baseSid
      if (!same || !loc.verified) toVerify.push(c)
    }
    return { missing, toVerify }
  }

  /**
   * Waits for the packs of the flist's missing chunks: those being uploaded now (a push sends its metadata while
   * its last packs are in flight) for up to PACK_WAIT_MS, and, when the uploader asked (`waitMs`), those not begun
   * yet too (a push may send its metadata first). Each time an upload of one of them ends, its chunks are looked
   * at again; `placed` is updated. Returns when none is missing, or when there is nothing more to wait for.
   */
  private async awaitPacks(placed: Placement, options: CommitOptions): Promise<void> {
    if (placed.missing.length === 0) return
    const waitMs = Math.min(Math.max(0, options.waitMs ?? 0), MAX_PACK_WAIT_MS)
    const pending = new Map<string, FlistChunk[]>()
    for (const c of placed.missing) {
      const list = pending.get(c.pack)
      if (list) list.push(c)
      else pending.set(c.pack, [c])
    }
    const ended = new Set<string>()
    let wake: (() => void) | undefined
    const listener = (pack: string): void => {
      ended.add(pack)
      wake?.()
    }
    for (const p of pending.keys()) {
      let set = this.packWaiters.get(p)
      if (!set) this.packWaiters.set(p, (set = new Set()))
      set.add(listener)
    }
    const started = Date.now()
    const look = (packs: Iterable<string>): void => {
      const again = this.compareChunks([...packs].flatMap((p) => pending.get(p) ?? []))
      placed.toVerify.push(...again.toVerify)
      for (const p of packs) pending.delete(p)
      for (const c of again.missing) {
        const list = pending.get(c.pack)
        if (list) list.push(c)
        else pending.set(c.pack, [c])
      }
    }
    try {
      // Packs may have been stored while the flist was being checked.
      look([...pending.keys()])
      while (pending.size > 0) {
        if (ended.size > 0) {
          const packs = [...ended].filter((p) => pending.has(p))
          ended.clear()
          look(packs)
          continue
        }
        const arriving = [...pending.keys()].some((p) => this.arriving.has(p))
        const left = started + Math.max(waitMs, arriving ? PACK_WAIT_MS : 0) - Date.now()
        if (left <= 0) break
        const signal = options.signal
        if (signal?.aborted) break
        let timer: NodeJS.Timeout | undefined
        let onAbort: (() => void) | undefined
        await new Promise<void>((resolve) => {
          wake = resolve
          timer = setTimeout(resolve, left).unref()
          if (signal) signal.addEventListener('abort', (onAbort = () => resolve()), { once: true })
        })
        wake = undefined
        clearTimeout(timer)
        if (onAbort) signal!.removeEventListener('abort', onAbort)
      }
    } finally {
      for (const p of new Set([...placed.missing.map((c) => c.pack)])) {
        const set = this.packWaiters.get(p)
        set?.delete(listener)
        if (set?.size === 0) this.packWaiters.delete(p)
      }
    }
    placed.missing = [...pending.values()].flat()
  }

  /**
   * Every chunk the flist names must be on the hub, at the place it says, and verified: chunks the hub could not
   * decode at pack upload (encrypted, or a delta sent before its base) are decoded now with what the flist knows.
   * Call only once the flist passed FlistReader's checks.
   */
  private async verifyChunks(reader: FlistReader | undefined, placed: Placement): Promise<{ packs: string[]; verifiedNow: number; storedBytes: number }> {
    const { count, packIds, storedBytes, missing, toVerify } = placed
    if (missing.length > 0) {
      const first = missing[0]!
      throw zerr('CHUNK_MISSING', `${missing.length} of the flist's ${count} chunks are not on the hub (first: ${first.sid} in pack ${first.pack}): upload their packs first (zos hub push does)`, {
        missing: missing.length,
        first: first.sid,
        pack: first.pack,
      })
    }
    if (toVerify.length > 0) {
      const fetcher = new ChunkFetcher(reader!, this.store, { memoryBytes: 16 * MIB })
      for (let i = 0; i < toVerify.length; i += VERIFY_BATCH) {
        const batch = toVerify.slice(i, i + VERIFY_BATCH)
        await fetcher.fetch(batch.map((c) => c.id)) // throws CHUNK_TAMPERED naming the chunk
        for (const c of batch) {
          const loc: Omit<ChunkLoc, 'verified'> = { pack: c.pack, offset: c.offset, length: c.length, sid: c.sid, size: c.size, codec: c.codec }
          if (c.baseSid !== undefined) loc.base = c.baseSid
          this.db.markVerified(loc)
        }
      }
    }
    return { packs: packIds, verifiedNow: toVerify.length, storedBytes }
  }

  versionInfo(v: Version): VersionInfo {
    const tags = (this.db.db.prepare('SELECT tag FROM tags WHERE version = ? ORDER BY tag').all(v.id) as { tag: string }[]).map((r) => r.tag)
    return {
      ns: v.ns, name: v.name, digest: v.digest, root: v.root, fileSize: v.fileSize, bytes: v.bytes, files: v.files, chunks: v.chunks,
      storedBytes: v.storedBytes, signers: v.signers, encrypted: v.encrypted, converted: v.converted, uploader: v.uploader, created: v.created, tags,
    }
  }

  /** The version a tag or digest names; NOT_FOUND naming what is missing. */
  lookup(ns: string, name: string, ref: { tag?: string; digest?: string }): Version {
    const n = normalizeNs(ns)
    checkName(name)
    const v = ref.digest !== undefined ? this.db.versionByDigest(n, name, checkDigest(ref.digest)) : this.db.versionByTag(n, name, checkTag(ref.tag ?? DEFAULT_TAG))
    if (!v) throw zerr('NOT_FOUND', `no flist ${n}/${name}${ref.digest ? `@${ref.digest}` : `:${ref.tag ?? DEFAULT_TAG}`} on this hub`, { ns: n, name })
    return v
  }

  /** Resolves a reference without a namespace: the namespace must be unique. */
  resolve(name: string, tag: string): Version {
    checkName(name)
    checkTag(tag)
    const nss = this.db.namespacesWith(name, tag)
    if (nss.length === 0) throw zerr('NOT_FOUND', `no namespace on this hub has ${name}:${tag}`, { name, tag })
    if (nss.length > 1) throw zerr('INVALID_ARGUMENT', `${name}:${tag} exists in several namespaces (${nss.slice(0, 10).join(', ')}): write NS/${name}:${tag}`, { namespaces: nss })
    return this.db.versionByTag(nss[0]!, name, tag)!
  }

  moveTag(identity: Identity, ns: string, name: string, tag: string, digest: string): TagAnswer {
    const n = this.checkWrite(identity, ns)
    checkTag(tag)
    const v = this.lookup(n, name, { digest })
    const previous = this.db.transaction(() => this.db.setTag(n, name, tag, v, identity.address))
    const out: TagAnswer = { ns: n, name, tag, digest: v.digest }
    if (previous !== undefined) out.previous = previous
    return out
  }

  /** Removes a tag, then the versions no tag points to any more; returns the digests removed. */
  async removeTag(identity: Identity, ns: string, name: string, tag: string): Promise<{ removed: string[] }> {
    const n = this.checkWrite(identity, ns)
    checkName(name)
    checkTag(tag)
    const removed = this.db.transaction(() => {
      if (!this.db.removeTag(n, name, tag, identity.address)) throw zerr('NOT_FOUND', `no tag ${n}/${name}:${tag} on this hub`)
      return this.db.pruneUntagged(n, name)
    })
    await this.dropFiles(removed)
    return { removed }
  }

  /** Removes a name: every tag (history keeps the removals) and every version. */
  async removeName(identity: Identity, ns: string, name: string): Promise<{ removed: string[]; tags: string[] }> {
    const n = this.checkWrite(identity, ns)
    checkName(name)
    const { removed, tags } = this.db.transaction(() => {
      const tags = this.db.tags(n, name).map((t) => t.tag)
      for (const t of tags) this.db.removeTag(n, name, t, identity.address)
      const removed = this.db.pruneUntagged(n, name)
      if (tags.length === 0 && removed.length === 0) throw zerr('NOT_FOUND', `no flist named ${n}/${name} on this hub`)
      return { removed, tags }
    })
    await this.dropFiles(removed)
    return { removed, tags }
  }

  private async dropFiles(digests: readonly string[]): Promise<void> {
    // Not a file an upload has placed and may still commit (placeFlist).
    for (const d of digests) if (!this.db.digestInUse(d) && !this.placing.has(d)) await rm(this.flistPath(d), { force: true })
  }

  list(options: { ns?: string; q?: string; limit: number; offset: number }): { items: NameSummary[]; total: number } {
    const ns = options.ns !== undefined ? normalizeNs(options.ns) : undefined
    const { items, total } = this.db.names({ ...options, ...(ns !== undefined ? { ns } : {}) })
    return {
      total,
      items: items.map((it) => ({ ns: it.ns, name: it.name, updated: it.updated, tags: this.db.tags(it.ns, it.name), newest: this.versionInfo(this.db.versions(it.ns, it.name)[0]!) })),
    }
  }

  detail(ns: string, name: string): NameDetail {
    const n = normalizeNs(ns)
    checkName(name)
    const versions = this.db.versions(n, name)
    if (versions.length === 0) throw zerr('NOT_FOUND', `no flist named ${n}/${name} on this hub`)
    return { ns: n, name, tags: this.db.tags(n, name), versions: versions.map((v) => this.versionInfo(v)) }
  }
}

export function newId(): string {
  return randomBytes(16).toString('hex')
}
