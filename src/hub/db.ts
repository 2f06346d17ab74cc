// The hub's own database (DATA/hub.db, SQLite in WAL mode): who uploaded which pack and where each chunk lies
// in it (with whether the hub has verified it), the flist versions of every namespace, tags as movable links
// with their history, extra signers a namespace trusts, and conversion jobs. Packs themselves live in the dir
// store (DATA/store) and metadata files under DATA/flists; this file only indexes them.
import Database from 'better-sqlite3'
import { errorMessage, zerr } from '../core/errors.js'

export const HUB_SCHEMA_VERSION = 1

const SCHEMA = `
CREATE TABLE packs (id TEXT PRIMARY KEY, size INTEGER NOT NULL, uploader TEXT NOT NULL, created INTEGER NOT NULL) STRICT;
CREATE INDEX packs_uploader ON packs (uploader);
CREATE TABLE chunk_locs (
  pack TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, sid TEXT NOT NULL,
  size INTEGER NOT NULL, codec INTEGER NOT NULL, base TEXT, verified INTEGER NOT NULL,
  PRIMARY KEY (pack, offset)) STRICT, WITHOUT ROWID;
CREATE INDEX chunk_locs_sid ON chunk_locs (sid);
CREATE TABLE versions (
  id INTEGER PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL, root TEXT NOT NULL,
  file_size INTEGER NOT NULL, bytes INTEGER NOT NULL, files INTEGER NOT NULL, chunks INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL, signers TEXT NOT NULL, encrypted INTEGER NOT NULL, converted INTEGER NOT NULL,
  uploader TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE (ns, name, digest)) STRICT;
CREATE INDEX versions_digest ON versions (digest);
CREATE TABLE version_packs (version INTEGER NOT NULL, pack TEXT NOT NULL, PRIMARY KEY (version, pack)) STRICT, WITHOUT ROWID;
CREATE INDEX version_packs_pack ON version_packs (pack);
CREATE TABLE tags (ns TEXT NOT NULL, name TEXT NOT NULL, tag TEXT NOT NULL, version INTEGER NOT NULL, updated INTEGER NOT NULL,
  PRIMARY KEY (ns, name, tag)) STRICT, WITHOUT ROWID;
CREATE INDEX tags_version ON tags (version);
CREATE TABLE tag_history (id INTEGER PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL, tag TEXT NOT NULL,
  digest TEXT, root TEXT, at INTEGER NOT NULL, actor TEXT NOT NULL) STRICT;
CREATE INDEX tag_history_name ON tag_history (ns, name);
CREATE TABLE signers (ns TEXT NOT NULL, address TEXT NOT NULL, PRIMARY KEY (ns, address)) STRICT, WITHOUT ROWID;
CREATE TABLE jobs (id TEXT PRIMARY KEY, ns TEXT NOT NULL, name TEXT NOT NULL, tag TEXT NOT NULL, latest INTEGER NOT NULL,
  state TEXT NOT NULL, phase TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL, error TEXT, digest TEXT,
  created INTEGER NOT NULL, updated INTEGER NOT NULL) STRICT;
`

/** Where a chunk lies in a pack on the hub. */
export interface ChunkLoc {
  pack: string
  offset: number
  length: number
  sid: string
  size: number
  codec: number
  base?: string
  /** The hub decoded it and it matched its id. */
  verified: boolean
}

/** One uploaded metadata file of a name. */
export interface Version {
  id: number
  ns: string
  name: string
  digest: string
  root: string
  /** Bytes of the metadata file. */
  fileSize: number
  /** Bytes of file content in the tree. */
  bytes: number
  files: number
  chunks: number
  /** Encoded bytes of the chunks the flist references (what a full download moves). */
  storedBytes: number
  signers: string[]
  encrypted: boolean
  converted: boolean
  uploader: string
  created: number
}

export interface TagInfo {
  tag: string
  digest: string
  root: string
  updated: number
}

export interface HistoryEvent {
  tag: string
  /** The version the tag points to after the event; null when the tag was removed. */
  digest: string | null
  root: string | null
  at: number
  actor: string
}

export type JobState = 'queued' | 'running' | 'done' | 'failed'

export interface JobRecord {
  id: string
  ns: string
  name: string
  tag: string
  latest: boolean
  state: JobState
  phase: string
  done: number
  total: number
  error?: { code: string; message: string }
  digest?: string
  created: number
  updated: number
}

interface VersionRow {
  id: number
  ns: string
  name: string
  digest: string
  root: string
  file_size: number
  bytes: number
  files: number
  chunks: number
  stored_bytes: number
  signers: string
  encrypted: number
  converted: number
  uploader: string
  created: number
}

interface LocRow {
  pack: string
  offset: number
  length: number
  sid: string
  size: number
  codec: number
  base: string | null
  verified: number
}

interface JobRow {
  id: string
  ns: string
  name: string
  tag: string
  latest: number
  state: string
  phase: string
  done: number
  total: number
  error: string | null
  digest: string | null
  created: number
  updated: number
}

function toVersion(r: VersionRow): Version {
  return {
    id: r.id, ns: r.ns, name: r.name, digest: r.digest, root: r.root, fileSize: r.file_size, bytes: r.bytes, files: r.files,
    chunks: r.chunks, storedBytes: r.stored_bytes, signers: JSON.parse(r.signers) as string[], encrypted: r.encrypted === 1,
    converted: r.converted === 1, uploader: r.uploader, created: r.created,
  }
}

function toLoc(r: LocRow): ChunkLoc {
  const loc: ChunkLoc = { pack: r.pack, offset: r.offset, length: r.length, sid: r.sid, size: r.size, codec: r.codec, verified: r.verified === 1 }
  if (r.base !== null) loc.base = r.base
  return loc
}

function toJob(r: JobRow): JobRecord {
  const job: JobRecord = {
    id: r.id, ns: r.ns, name: r.name, tag: r.tag, latest: r.latest === 1, state: r.state as JobState, phase: r.phase,
    done: r.done, total: r.total, created: r.created, updated: r.updated,
  }
  if (r.error !== null) job.error = JSON.parse(r.error) as { code: string; message: string }
  if (r.digest !== null) job.digest = r.digest
  return job
}

const BATCH = 500

export interface NewVersion extends Omit<Version, 'id'> {
  packs: readonly string[]
}

export class HubDb {
  readonly db: Database.Database
  private readonly stmts = new Map<string, Database.Statement>()

  constructor(readonly path: string) {
    try {
      this.db = new Database(path)
      this.db.pragma('journal_mode = WAL')
      // FULL: a commit is on disk (the WAL fsynced) before the request that made it is answered, so an upload the
      // client was told is stored survives a power loss too. (NORMAL keeps the database consistent but may lose
      // the last commits: a pushed flist could vanish after the client got its 200.)
      this.db.pragma('synchronous = FULL')
      this.db.pragma('busy_timeout = 5000')
      this.db.pragma('foreign_keys = ON')
    } catch (err) {
      throw zerr('STORE_UNAVAILABLE', `cannot open the hub database ${path}: ${errorMessage(err)}`, { path }, err)
    }
    const version = this.db.pragma('user_version', { simple: true }) as number
    if (version > HUB_SCHEMA_VERSION) {
      this.db.close()
      throw zerr('UNSUPPORTED', `hub database ${path} has schema version ${version}; this zos understands up to ${HUB_SCHEMA_VERSION} (upgrade zos)`)
    }
    if (version === 0) this.db.exec(`BEGIN; ${SCHEMA} PRAGMA user_version = ${HUB_SCHEMA_VERSION}; COMMIT;`)
  }

  close(): void {
    if (this.db.open) this.db.close()
  }

  /** A prepared statement, prepared once per SQL text. */
  private q(sql: string): Database.Statement {
    let st = this.stmts.get(sql)
    if (!st) {
      st = this.db.prepare(sql)
      if (this.stmts.size < 1000) this.stmts.set(sql, st)
    }
    return st
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)()
  }

  // ---- packs and chunk locations ----

  packSize(id: string): number | undefined {
    return (this.q('SELECT size FROM packs WHERE id = ?').get(id) as { size: number } | undefined)?.size
  }

  /** Sizes of the packs of this list the hub has (one query per 500). */
  packSizes(ids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>()
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH)
      const rows = this.q(`SELECT id, size FROM packs WHERE id IN (${batch.map(() => '?').join(',')})`).raw(true).all(...batch) as [string, number][]
      for (const [id, size] of rows) out.set(id, size)
    }
    return out
  }

  /** Records a pack and its chunks (existing rows are kept: the first upload stays the uploader). */
  addPack(id: string, size: number, uploader: string, locs: readonly ChunkLoc[]): void {
    const insPack = this.q('INSERT OR IGNORE INTO packs (id, size, uploader, created) VALUES (?, ?, ?, ?)')
    const insLoc = this.q('INSERT OR IGNORE INTO chunk_locs (pack, offset, length, sid, size, codec, base, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    this.transaction(() => {
      insPack.run(id, size, uploader, Date.now())
      for (const l of locs) insLoc.run(id, l.offset, l.length, l.sid, l.size, l.codec, l.base ?? null, l.verified ? 1 : 0)
    })
  }

  /** Every recorded chunk location in these packs: pack → offset → location (raw rows, one query per 500 packs). */
  locationsIn(packs: readonly string[]): Map<string, Map<number, ChunkLoc>> {
    const out = new Map<string, Map<number, ChunkLoc>>()
    for (let i = 0; i < packs.length; i += BATCH) {
      const batch = packs.slice(i, i + BATCH)
      const rows = this.q(`SELECT pack, offset, length, sid, size, codec, base, verified FROM chunk_locs WHERE pack IN (${batch.map(() => '?').join(',')})`)
        .raw(true)
        .all(...batch) as [string, number, number, string, number, number, string | null, number][]
      for (const [pack, offset, length, sid, size, codec, base, verified] of rows) {
        let m = out.get(pack)
        if (!m) out.set(pack, (m = new Map()))
        const loc: ChunkLoc = { pack, offset, length, sid, size, codec, verified: verified === 1 }
        if (base !== null) loc.base = base
        m.set(offset, loc)
      }
    }
    return out
  }

  locationAt(pack: string, offset: number): ChunkLoc | undefined {
    const r = this.q('SELECT * FROM chunk_locs WHERE pack = ? AND offset = ?').get(pack, offset) as LocRow | undefined
    return r ? toLoc(r) : undefined
  }

  /** Inserts or replaces a location the hub has just verified by decoding it. */
  markVerified(loc: Omit<ChunkLoc, 'verified'>): void {
    this.db
      .prepare('INSERT OR REPLACE INTO chunk_locs (pack, offset, length, sid, size, codec, base, verified) VALUES (?, ?, ?, ?, ?, ?, ?, 1)')
      .run(loc.pack, loc.offset, loc.length, loc.sid, loc.size, loc.codec, loc.base ?? null)
  }

  /**
   * For each sid, a location `ns` may reuse: one the hub verified, or one in a pack `ns` uploaded itself (an
   * unverified chunk of someone else could be garbage under a borrowed id). Verified rows come first.
   */
  usableLocations(sids: readonly string[], ns: string, options: { fullOnly?: boolean } = {}): Map<string, ChunkLoc> {
    const out = new Map<string, ChunkLoc>()
    const unique = [...new Set(sids)]
    for (let i = 0; i < unique.length; i += BATCH) {
      const batch = unique.slice(i, i + BATCH)
      const rows = this.db
        .prepare(
          `SELECT c.* FROM chunk_locs c JOIN packs p ON p.id = c.pack
           WHERE c.sid IN (${batch.map(() => '?').join(',')}) AND (c.verified = 1 OR p.uploader = ?)
           ${options.fullOnly ? 'AND c.codec != 2' : ''}
           ORDER BY c.verified DESC, p.created, c.pack, c.offset`,
        )
        .all(...batch, ns) as LocRow[]
      for (const r of rows) if (!out.has(r.sid)) out.set(r.sid, toLoc(r))
    }
    return out
  }

  /** Packs no version refers to, first uploaded before `before` (ms). */
  unreferencedPacks(before: number): { id: string; size: number; uploader: string }[] {
    return this.db
      .prepare('SELECT id, size, uploader FROM packs p WHERE created < ? AND NOT EXISTS (SELECT 1 FROM version_packs v WHERE v.pack = p.id) ORDER BY created')
      .all(before) as { id: string; size: number; uploader: string }[]
  }

  /** Forgets a pack and its chunk locations unless a version refers to it again; true when forgotten. */
  dropPack(id: string): boolean {
    return this.transaction(() => {
      if (this.q('SELECT 1 FROM version_packs WHERE pack = ? LIMIT 1').get(id) !== undefined) return false
      this.q('DELETE FROM chunk_locs WHERE pack = ?').run(id)
      this.q('DELETE FROM packs WHERE id = ?').run(id)
      return true
    })
  }

  // ---- quotas ----

  /** Bytes charged to a namespace: the packs it uploaded first, plus its metadata files. */
  usage(ns: string): number {
    const packs = (this.q('SELECT COALESCE(sum(size), 0) AS n FROM packs WHERE uploader = ?').get(ns) as { n: number }).n
    const files = (this.q('SELECT COALESCE(sum(file_size), 0) AS n FROM versions WHERE ns = ?').get(ns) as { n: number }).n
    return packs + files
  }

  // ---- versions and tags ----

  versionByDigest(ns: string, name: string, digest: string): Version | undefined {
    const r = this.q('SELECT * FROM versions WHERE ns = ? AND name = ? AND digest = ?').get(ns, name, digest) as VersionRow | undefined
    return r ? toVersion(r) : undefined
  }

  /** Any version with this digest (downloads by digest). */
  anyVersionByDigest(digest: string): Version | undefined {
    const r = this.q('SELECT * FROM versions WHERE digest = ? LIMIT 1').get(digest) as VersionRow | undefined
    return r ? toVersion(r) : undefined
  }

  versionByTag(ns: string, name: string, tag: string): Version | undefined {
    const r = this.db
      .prepare('SELECT v.* FROM tags t JOIN versions v ON v.id = t.version WHERE t.ns = ? AND t.name = ? AND t.tag = ?')
      .get(ns, name, tag) as VersionRow | undefined
    return r ? toVersion(r) : undefined
  }

  versions(ns: string, name: string): Version[] {
    return (this.q('SELECT * FROM versions WHERE ns = ? AND name = ? ORDER BY created DESC, id DESC').all(ns, name) as VersionRow[]).map(toVersion)
  }

  tags(ns: string, name: string): TagInfo[] {
    return this.db
      .prepare('SELECT t.tag, v.digest, v.root, t.updated FROM tags t JOIN versions v ON v.id = t.version WHERE t.ns = ? AND t.name = ? ORDER BY t.tag')
      .all(ns, name) as TagInfo[]
  }

  /** Adds a version (or returns the existing one with the same digest). */
  addVersion(v: NewVersion): Version {
    const existing = this.versionByDigest(v.ns, v.name, v.digest)
    if (existing) return existing
    const info = this.db
      .prepare(
        `INSERT INTO versions (ns, name, digest, root, file_size, bytes, files, chunks, stored_bytes, signers, encrypted, converted, uploader, created)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(v.ns, v.name, v.digest, v.root, v.fileSize, v.bytes, v.files, v.chunks, v.storedBytes, JSON.stringify(v.signers), v.encrypted ? 1 : 0, v.converted ? 1 : 0, v.uploader, v.created)
    const id = Number(info.lastInsertRowid)
    const ins = this.q('INSERT OR IGNORE INTO version_packs (version, pack) VALUES (?, ?)')
    for (const p of v.packs) ins.run(id, p)
    return { ...v, id }
  }

  /** Points a tag at a version and records the move; returns the digest it pointed to before. */
  setTag(ns: string, name: string, tag: string, version: Version, actor: string): string | undefined {
    const before = this.versionByTag(ns, name, tag)
    const now = Date.now()
    this.q('INSERT OR REPLACE INTO tags (ns, name, tag, version, updated) VALUES (?, ?, ?, ?, ?)').run(ns, name, tag, version.id, now)
    if (before?.digest !== version.digest) {
      this.q('INSERT INTO tag_history (ns, name, tag, digest, root, at, actor) VALUES (?, ?, ?, ?, ?, ?, ?)').run(ns, name, tag, version.digest, version.root, now, actor)
    }
    return before?.digest
  }

  /** Removes a tag (history keeps the removal); false when there was no such tag. */
  removeTag(ns: string, name: string, tag: string, actor: string): boolean {
    const r = this.q('DELETE FROM tags WHERE ns = ? AND name = ? AND tag = ?').run(ns, name, tag)
    if (r.changes === 0) return false
    this.q('INSERT INTO tag_history (ns, name, tag, digest, root, at, actor) VALUES (?, ?, ?, NULL, NULL, ?, ?)').run(ns, name, tag, Date.now(), actor)
    return true
  }

  /** Deletes the versions of a name that no tag points to; returns their digests. */
  pruneUntagged(ns: string, name: string): string[] {
    const rows = this.db
      .prepare('SELECT id, digest FROM versions v WHERE ns = ? AND name = ? AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.version = v.id)')
      .all(ns, name) as { id: number; digest: string }[]
    for (const r of rows) {
      this.q('DELETE FROM version_packs WHERE version = ?').run(r.id)
      this.q('DELETE FROM versions WHERE id = ?').run(r.id)
    }
    return rows.map((r) => r.digest)
  }

  digestInUse(digest: string): boolean {
    return this.q('SELECT 1 FROM versions WHERE digest = ? LIMIT 1').get(digest) !== undefined
  }

  history(ns: string, name: string, tag?: string): HistoryEvent[] {
    const sql = `SELECT tag, digest, root, at, actor FROM tag_history WHERE ns = ? AND name = ? ${tag ? 'AND tag = ?' : ''} ORDER BY id DESC LIMIT 1000`
    return (tag ? this.q(sql).all(ns, name, tag) : this.q(sql).all(ns, name)) as HistoryEvent[]
  }

  /** Names with at least one version, newest activity first, optionally in one namespace and matching `q`. */
  names(options: { ns?: string; q?: string; limit: number; offset: number }): { items: { ns: string; name: string; updated: number }[]; total: number } {
    const where: string[] = []
    const args: (string | number)[] = []
    if (options.ns !== undefined) {
      where.push('ns = ?')
      args.push(options.ns)
    }
    if (options.q) {
      where.push("(name LIKE ? ESCAPE '\\' OR ns LIKE ? ESCAPE '\\')")
      const like = `%${options.q.replace(/[\\%_]/g, (c) => '\\' + c)}%`
      args.push(like, like)
    }
    const filter = where.length ? `WHERE ${where.join(' AND ')}` : ''
    const total = (this.q(`SELECT count(*) AS n FROM (SELECT 1 FROM versions ${filter} GROUP BY ns, name)`).get(...args) as { n: number }).n
    const items = this.db
      .prepare(`SELECT ns, name, max(created) AS updated FROM versions ${filter} GROUP BY ns, name ORDER BY updated DESC, ns, name LIMIT ? OFFSET ?`)
      .all(...args, options.limit, options.offset) as { ns: string; name: string; updated: number }[]
    return { items, total }
  }

  /** Namespaces holding `name` with `tag` (for references without a namespace). */
  namespacesWith(name: string, tag: string): string[] {
    return (this.q('SELECT ns FROM tags WHERE name = ? AND tag = ? ORDER BY ns').all(name, tag) as { ns: string }[]).map((r) => r.ns)
  }

  // ---- signers ----

  signers(ns: string): string[] {
    return (this.q('SELECT address FROM signers WHERE ns = ? ORDER BY address').all(ns) as { address: string }[]).map((r) => r.address)
  }

  setSigners(ns: string, addresses: readonly string[]): void {
    this.transaction(() => {
      this.q('DELETE FROM signers WHERE ns = ?').run(ns)
      const ins = this.q('INSERT OR IGNORE INTO signers (ns, address) VALUES (?, ?)')
      for (const a of addresses) ins.run(ns, a.toLowerCase())
    })
  }

  // ---- jobs ----

  addJob(job: JobRecord): void {
    this.db
      .prepare('INSERT INTO jobs (id, ns, name, tag, latest, state, phase, done, total, error, digest, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(job.id, job.ns, job.name, job.tag, job.latest ? 1 : 0, job.state, job.phase, job.done, job.total, job.error ? JSON.stringify(job.error) : null, job.digest ?? null, job.created, job.updated)
  }

  updateJob(job: JobRecord): void {
    this.db
      .prepare('UPDATE jobs SET state = ?, phase = ?, done = ?, total = ?, error = ?, digest = ?, updated = ? WHERE id = ?')
      .run(job.state, job.phase, job.done, job.total, job.error ? JSON.stringify(job.error) : null, job.digest ?? null, job.updated, job.id)
  }

  job(id: string): JobRecord | undefined {
    const r = this.q('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined
    return r ? toJob(r) : undefined
  }

  unfinishedJobs(): JobRecord[] {
    return (this.q("SELECT * FROM jobs WHERE state IN ('queued', 'running') ORDER BY created").all() as JobRow[]).map(toJob)
  }
}
