// Pushing to a hub.
//
// An flist (`pushFlist`): ask which of its packs the hub lacks; for the chunks of those packs, ask which the hub
// already has elsewhere. Chunks the hub has as full chunks are pointed at the hub's copy; a local pack whose
// chunks the hub all lacks is uploaded as it is; the few missing chunks of other packs are copied (still
// encoded) into new packs. Chunk locations are not covered by the root hash (docs/flist-format.md §5), so the
// metadata sent may point elsewhere than the local file and its seal and signatures stay valid. Only the
// bytes the hub lacks move. The metadata goes before the packs (once every pack is on its way when it had to be
// rewritten), asking the hub to wait for the packs it lacks: the hub checks it while they are sent and commits it
// as soon as the last one is stored.
//
// A directory or archive (`pushSource`): packed locally into a temporary store, signed with the caller's key,
// then pushed as above (the hub never sees content the publisher did not sign). `convertOnHub` instead uploads
// an archive for the hub to convert (and sign with the hub's key).
//
// Only what pushing an flist file needs is imported up front; packing a source (codecs, worker pool, archive
// readers) and the full flist reader load when they are used, so `zos hub push FILE.fl` starts quickly.
import { createHash } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import Database from 'better-sqlite3'
import { zerr, ZosError } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import type { ChunkInfo } from '../flist/chunks.js'
import type { Store } from '../store/types.js'
import { PushableFlist } from './chunks.js'
import { MAX_READ_WHOLE, type HubClient } from './client.js'
import { DEFAULT_TAG } from './names.js'
import type { HubLocation, MissingAnswer, PackEntry, PushAnswer } from './wire.js'

export const PACK_TARGET = 4 * 1024 * 1024
const READ_BATCH = 256

export interface PushProgress {
  phase: 'packing' | 'query' | 'upload' | 'metadata' | 'converting'
  done: number
  total: number
}

export interface PushOptions {
  /** The namespace to push to (default: the caller's, from /whoami). */
  ns?: string
  name: string
  tag?: string
  /** Also move `latest` (default true). */
  latest?: boolean
  /** The local store holding the flist's packs; needed only when the hub lacks some. */
  store?: Store
  /** Pack uploads in flight (default 3). */
  concurrency?: number
  onProgress?: (p: PushProgress) => void
}

export interface PushResult extends PushAnswer {
  /** Packs and bytes sent (local packs as they were, and packs of copied chunks). */
  uploadedPacks: number
  uploadedBytes: number
  /** Local packs sent whole. */
  wholePacks: number
  /** Chunks copied into new packs because the rest of their pack was on the hub. */
  copiedChunks: number
  /** Chunks pointed at a copy the hub already had. */
  reusedChunks: number
  /** Chunks in packs the hub already had. */
  presentChunks: number
  metadataBytes: number
  seconds: number
}

interface Upload {
  /** Bytes the pack will have. */
  size: number
  /** Reads the pack (a local one, or one built from copied chunks) when its turn comes, so few are in memory. */
  build: () => Promise<{ id: string; entries: PackEntry[]; data: Buffer | { path: string; size: number } }>
}

function entryOf(c: ChunkInfo, byId: ReadonlyMap<number, ChunkInfo>, encrypted: boolean, offset = c.offset): PackEntry {
  const e: PackEntry = { sid: c.sid, offset, length: c.length, size: c.size, codec: c.codec }
  if (c.base !== undefined) e.base = byId.get(c.base)!.sid
  if (encrypted) e.encrypted = true
  return e
}

/** Pushes an flist metadata file (and whatever chunks the hub lacks) as ns/name:tag. */
export async function pushFlist(client: HubClient, file: string, options: PushOptions): Promise<PushResult> {
  const metadata = new MetadataUpload(client, options.name, { tag: options.tag ?? DEFAULT_TAG, latest: options.latest ?? true })
  try {
    return await push(client, file, options, metadata)
  } finally {
    metadata.abandon() // a push that failed: the hub stops waiting for its packs (a no-op once answered)
  }
}

async function push(client: HubClient, file: string, options: PushOptions, metadata: MetadataUpload): Promise<PushResult> {
  const started = performance.now()
  const progress = options.onProgress ?? (() => {})
  // The packs first; chunk rows only for the packs the hub lacks (and the delta bases they need).
  const flist = PushableFlist.open(file)
  let encrypted: boolean
  let chunkCount = 0
  let inMissing: ChunkInfo[]
  const byId = new Map<number, ChunkInfo>()
  // The namespace (needed for the metadata) comes with the missing-pack answer.
  let ns = options.ns
  let early: Promise<void> | undefined
  const sizes = new Map<string, Promise<number | undefined>>()
  let located: Promise<MissingAnswer> | undefined
  try {
    encrypted = flist.encrypted
    const packCounts = flist.packs()
    for (const n of packCounts.values()) chunkCount += n
    progress({ phase: 'query', done: 0, total: chunkCount })
    const packs = [...packCounts.keys()]
    const asked = client.missing({ packs })
    // Read while the first query is out (its request is written already): the metadata then goes as soon as the
    // answer names the namespace (right behind the second query), ahead of the packs. Read synchronously, since an
    // asynchronous read that ends after the second answer sent it among the packs, which delayed its arrival on
    // the hub (and so its checks) until the pack bytes were all in.
    metadata.prepare(file)
    const answer = await asked
    ns ??= answer.ns
    const missingPacks = answer.missingPacks
    // The sizes of the packs that may go whole, asked for while the second query is out.
    for (const p of options.store ? missingPacks : []) {
      const size = options.store!.statPack(p)
      size.catch(() => {}) // awaited below, if the pack goes whole
      sizes.set(p, size)
    }
    inMissing = flist.chunksIn(missingPacks)
    for (const c of inMissing) byId.set(c.id, c)
    for (const c of flist.chunks(inMissing.flatMap((c) => (c.base !== undefined && !byId.has(c.base) ? [c.base] : [])))) byId.set(c.id, c)
    // The second query's request is written before the metadata's: on a link, a query that leaves behind the
    // metadata's bytes waits for them, and the packs wait for its answer (at 100 Mbit/s the 270 KB metadata of
    // the hub benchmark's image held them up ~20 ms).
    located = inMissing.length ? client.missing({ sids: inMissing.map((c) => c.sid) }) : undefined
    located?.catch(() => {}) // awaited below
    // The metadata goes now, unchanged, before the packs: the hub checks it while they are sent. It stands when
    // every chunk the hub lacks is in a pack sent whole (a second version packed into the same store); otherwise
    // it is abandoned below and the rewritten file goes instead.
    early = metadata.send(ns, file)
    early.catch(() => {}) // awaited below
  } finally {
    flist.close()
  }
  const locations = located ? (await located).locations : {}
  progress({ phase: 'query', done: chunkCount, total: chunkCount })

  // Which chunks move: those the hub has no full copy of.
  const rewrites = new Map<number, HubLocation>()
  const needed = new Map<string, ChunkInfo[]>()
  const perPack = new Map<string, number>()
  for (const c of inMissing) {
    perPack.set(c.pack, (perPack.get(c.pack) ?? 0) + 1)
    const loc = locations[c.sid]
    if (loc && loc.codec !== 2) {
      rewrites.set(c.id, loc)
      continue
    }
    const list = needed.get(c.pack)
    if (list) list.push(c)
    else needed.set(c.pack, [c])
  }
  const uploads: Upload[] = []
  const copied: ChunkInfo[] = []
  let wholePacks = 0
  const store = options.store
  const requireStore = (pack: string): Store => {
    if (!store) throw zerr('INVALID_ARGUMENT', `the hub lacks pack ${pack} of ${file}: pass --store with the local store the flist was packed into (or set ZOS_STORE)`)
    return store
  }
  for (const [packId, list] of needed) {
    if (list.length === perPack.get(packId)) {
      // The hub has none of this pack's chunks: send it as it is.
      const s = requireStore(packId)
      const size = await (sizes.get(packId) ?? s.statPack(packId))
      if (size === undefined) throw zerr('CHUNK_MISSING', `pack ${packId} of ${file} is not in the local store ${s.url}`, { pack: packId })
      uploads.push({
        size,
        // Streamed from the store's file when it has one: the first bytes leave at once, and no pack sits in memory.
        build: async () => {
          const path = s.packFile?.(packId)
          const data = path !== undefined ? { path, size } : (await s.readRanges([{ pack: packId, offset: 0, length: size }]))[0]!
          return { id: packId, entries: list.map((c) => entryOf(c, byId, encrypted)), data }
        },
      })
      wholePacks++
    } else {
      copied.push(...list)
    }
  }
  if (copied.length > 0) {
    const s = requireStore(copied[0]!.pack)
    // Full chunks before deltas, so that the hub can check a delta against its base when it arrives.
    copied.sort((a, b) => Number(a.codec === 2) - Number(b.codec === 2) || a.pack.localeCompare(b.pack) || a.offset - b.offset)
    const group = (members: ChunkInfo[]): Upload => ({
      size: members.reduce((n, c) => n + c.length, 0),
      build: async () => {
        const parts: Buffer[] = []
        for (let i = 0; i < members.length; i += READ_BATCH) parts.push(...(await s.readRanges(members.slice(i, i + READ_BATCH))))
        const data = Buffer.concat(parts)
        const id = createHash('sha256').update(data).digest('hex')
        let off = 0
        const entries = members.map((c, i) => {
          const e = entryOf(c, byId, encrypted, off)
          rewrites.set(c.id, { pack: id, offset: off, length: c.length, size: c.size, codec: c.codec, ...(e.base ? { base: e.base } : {}) })
          off += parts[i]!.length
          return e
        })
        return { id, entries, data }
      },
    })
    let members: ChunkInfo[] = []
    let bytes = 0
    for (const c of copied) {
      members.push(c)
      bytes += c.length
      if (bytes >= PACK_TARGET) {
        uploads.push(group(members))
        members = []
        bytes = 0
      }
    }
    if (members.length > 0) uploads.push(group(members))
  }

  // When every chunk the hub lacks is in a pack sent whole, the metadata sent above stands: the hub checks it
  // while the packs are sent and commits it as soon as the last one is stored, so that only a small commit
  // follows the transfer. Otherwise (chunks pointed elsewhere) it is abandoned, and the rewritten file goes as
  // soon as every pack is on its way and the ids of the packs of copied chunks are known, not once they are all
  // stored: the hub waits for the packs an flist names, so its upload and checks still overlap the transfer.
  if (rewrites.size === 0 && copied.length === 0) await early
  else metadata.abandon()

  // Send the packs, a few at a time.
  const total = uploads.reduce((n, u) => n + u.size, 0)
  let done = 0
  progress({ phase: 'upload', done, total })
  let next = 0
  let begun = 0
  let allBegun!: () => void
  const begunAll = new Promise<void>((resolve) => (allBegun = resolve))
  if (uploads.length === 0) allBegun()
  const worker = async (): Promise<void> => {
    while (next < uploads.length) {
      const u = await uploads[next++]!.build()
      let sent = 0
      const onSent = (n: number): void => {
        done += n - sent
        sent = n
        progress({ phase: 'upload', done, total })
      }
      await client.putPack(u.id, u.entries, u.data, onSent, () => {
        if (++begun === uploads.length) allBegun()
      })
    }
  }
  const uploading = Promise.all(Array.from({ length: Math.min(options.concurrency ?? 3, uploads.length) }, worker))
  uploading.catch(() => {}) // awaited below
  await Promise.race([begunAll, uploading])

  // The metadata, pointed at the hub's copies where they differ from the local file (every pack's id is known
  // once its upload has begun).
  let sendFile = file
  let tmpDir: string | undefined
  try {
    if (rewrites.size > 0) {
      tmpDir = await mkdtemp(join(tmpdir(), 'zos-push-'))
      sendFile = join(tmpDir, basename(file))
      await copyFile(file, sendFile)
      rewriteLocations(sendFile, rewrites, byId)
      const { FlistReader } = await import('../flist/reader.js')
      FlistReader.open(sendFile).close() // the seal and signatures must still hold
    }
    // The early metadata stands unless it was abandoned or refused for want of packs (a hub that does not wait
    // for packs that have not begun to arrive, or one that waited long enough).
    if (!metadata.standing) await metadata.send(ns!, sendFile)
    await uploading
    progress({ phase: 'metadata', done: 0, total: 1 })
    let answer: PushAnswer
    try {
      answer = await metadata.answer!
    } catch (err) {
      // Refused for want of packs: every pack is stored now, send it again (the bytes read already).
      if (!(retryable(err) && uploads.length > 0)) throw err
      await metadata.send(ns!, sendFile)
      answer = await metadata.answer!
    }
    progress({ phase: 'metadata', done: 1, total: 1 })
    const metadataBytes = (await stat(sendFile)).size
    const copiedSet = new Set(copied.map((c) => c.id))
    return {
      ...answer,
      uploadedPacks: uploads.length,
      uploadedBytes: total,
      wholePacks,
      copiedChunks: copied.length,
      reusedChunks: [...rewrites.keys()].filter((id) => !copiedSet.has(id)).length,
      presentChunks: chunkCount - inMissing.length,
      metadataBytes,
      seconds: (performance.now() - started) / 1000,
    }
  } finally {
    if (tmpDir) await rm(tmpDir, { recursive: true, force: true })
  }
}

/** A refusal of metadata that arrived before its packs, worth sending again once they are stored. */
function retryable(err: unknown): boolean {
  return ZosError.is(err) && (err.code === 'CHUNK_MISSING' || (err.code === 'HUB_UNAVAILABLE' && err.details.status === undefined))
}

/**
 * The flist's metadata upload, with `wait` (docs/hub.md): the hub checks it while the packs are sent and commits
 * it as soon as the last of them is stored. Abandoned (the request is cut and the hub stops waiting) when the push
 * fails. The file is read while the queries are out (when it is small).
 */
class MetadataUpload {
  answer: Promise<PushAnswer> | undefined
  /** The bytes of the file, read ahead (when it is small). */
  private data: { file: string; bytes: Buffer | undefined } | undefined
  /** The current upload was refused for want of packs (or cut short): send again later. */
  private failed = false
  private cancel = new AbortController()

  constructor(
    private readonly client: HubClient,
    private readonly name: string,
    private readonly options: { tag: string; latest: boolean },
  ) {}

  prepare(file: string): void {
    let bytes: Buffer | undefined
    try {
      if (statSync(file).size <= MAX_READ_WHOLE) bytes = readFileSync(file)
    } catch {
      // the upload reports it
    }
    this.data = { file, bytes }
  }

  /** Starts the upload; resolves once its request is made (the upload goes on: `answer`). */
  async send(ns: string, file: string): Promise<void> {
    this.abandon()
    this.cancel = new AbortController()
    this.failed = false
    const signal = this.cancel.signal
    // Half the client's request timeout (the hub answers once the packs are stored), at most a minute.
    const waitS = Math.max(1, Math.min(60, Math.floor(this.client.timeoutMs / 2000)))
    const data = this.data?.file === file ? this.data.bytes : undefined
    const answer = this.client.uploadFlist(ns, this.name, data ?? file, { ...this.options, waitS, signal })
    answer.catch((err: unknown) => {
      if (this.answer === answer) this.failed = retryable(err)
    }) // awaited by pushFlist, or abandoned
    this.answer = answer
  }

  /** Sent, not abandoned, and not refused for want of packs so far (a refusal for another reason stands). */
  get standing(): boolean {
    return this.answer !== undefined && !this.failed && !this.cancel.signal.aborted
  }

  abandon(): void {
    if (!this.cancel.signal.aborted) this.cancel.abort(zerr('CHUNK_MISSING', 'the push abandoned this metadata upload'))
  }
}

/** Points chunk rows at new locations (the root hash does not cover locations, so the seal still holds). */
function rewriteLocations(file: string, rewrites: ReadonlyMap<number, HubLocation>, byId: ReadonlyMap<number, ChunkInfo>): void {
  const bySid = new Map([...byId.values()].map((c) => [c.sid, c.id] as const))
  const db = new Database(file)
  try {
    const upd = db.prepare('UPDATE chunk SET pack = ?, offset = ?, length = ?, codec = ?, base = ? WHERE id = ?')
    db.transaction(() => {
      for (const [id, l] of rewrites) {
        const base = l.base !== undefined ? bySid.get(l.base) : undefined
        if (l.base !== undefined && base === undefined) throw zerr('INTERNAL', `rewritten chunk ${id} has a base outside the flist`)
        upd.run(l.pack, l.offset, l.length, l.codec, base ?? null, id)
      }
    })()
  } finally {
    db.close()
  }
}

export interface SourcePushOptions extends Omit<PushOptions, 'store'> {
  key: KeyPair
  workers?: number
}

/** Packs a directory or archive locally (signed with `key`) into a temporary store and pushes it. */
export async function pushSource(client: HubClient, source: string, options: SourcePushOptions): Promise<PushResult & { packSeconds: number }> {
  const [{ createPackPool, pack }, { openSource }, { DirStore }] = await Promise.all([import('../flist/pack.js'), import('../flist/source/open.js'), import('../store/dir.js')])
  const dir = await mkdtemp(join(tmpdir(), 'zos-push-'))
  const progress = options.onProgress ?? (() => {})
  try {
    const pool = createPackPool(options.workers)
    const store = await DirStore.open(join(dir, 'store'), { create: true })
    try {
      const output = join(dir, `${options.name}.fl`)
      const packed = await pack({
        source: await openSource(source),
        output,
        store,
        signers: [options.key],
        pool,
        onProgress: (bytes) => progress({ phase: 'packing', done: bytes, total: 0 }),
      })
      const result = await pushFlist(client, output, { ...options, store })
      return { ...result, packSeconds: packed.seconds }
    } finally {
      await pool.close()
      await store.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Uploads an archive for conversion on the hub and waits for the result. */
export async function convertOnHub(client: HubClient, archive: string, options: Omit<PushOptions, 'store' | 'concurrency'>): Promise<{ job: string; version: PushAnswer['version']; seconds: number }> {
  const started = performance.now()
  const progress = options.onProgress ?? (() => {})
  const ns = options.ns ?? (await client.whoami()).ns
  const tag = options.tag ?? DEFAULT_TAG
  const { size } = await stat(archive)
  const job = await client.convert(ns, options.name, archive, { tag, latest: options.latest ?? true, onSent: (n) => progress({ phase: 'upload', done: n, total: size }) })
  const finished = await client.waitJob(job.id, { onProgress: (j) => progress({ phase: 'converting', done: j.done, total: j.total }) })
  const version = await client.version(ns, options.name, tag)
  if (version.digest !== finished.digest) throw zerr('HUB_UNAVAILABLE', `tag ${options.name}:${tag} moved while the conversion finished (now ${version.digest})`)
  return { job: job.id, version, seconds: (performance.now() - started) / 1000 }
}
