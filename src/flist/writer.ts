// Builds an flist metadata file. Everything goes to a temporary file next to the target; finish() seals it
// (root hash, signatures), fsyncs and renames, so a crash or an error never leaves a file that looks complete.
import Database from 'better-sqlite3'
import { openSync, fsyncSync, closeSync, unlinkSync, renameSync, existsSync } from 'node:fs'
import { dirname, basename, join } from 'node:path'
import { zerr } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import type { ChunkerParams } from './chunker.js'
import { RootHasher } from './root.js'
import { APPLICATION_ID, FORMAT_NAME, FORMAT_VERSION, PREFETCH_RANGES_SQL, PREFETCH_RANGES_VERSION, ROOT_INO, SCHEMA_SQL, SIGNATURE_DOMAIN, S_IFDIR, S_IFMT, S_IFREG } from './schema.js'

export interface InodeAttrs {
  mode: number // with type bits
  uid: number
  gid: number
  size: number
  rdev: number
  mtime: bigint
  atime: bigint
  ctime: bigint
  target?: Buffer
}

export interface ChunkRow {
  id: number
  hash: Buffer
  size: number
  pack: string
  offset: number
  length: number
  codec: number
  base?: number
}

/** One entry of a prefetch list: a whole file, or `length` bytes of it from `offset`. */
export interface PrefetchRow {
  ino: number
  range?: { offset: number; length: number }
}

export interface WriterOptions {
  chunker: ChunkerParams
  encryptionKey?: Buffer
  /**
   * The format version to write: FORMAT_VERSION by default. 1 is read by every zos (it becomes 2 should the
   * prefetch list have byte ranges); tests use it to check that older files still verify.
   */
  version?: number
}

export class FlistWriter {
  readonly path: string
  private readonly tmp: string
  private readonly db: Database.Database
  private nextIno = ROOT_INO + 1
  private nextChunk = 1
  private done = false
  private version: number
  /** Set by sealTree: the root hash over the tree's tables, which may no longer change. */
  private tree: RootHasher | undefined
  private readonly insInode: Database.Statement
  private readonly updInode: Database.Statement
  private readonly insDirent: Database.Statement
  private readonly insXattr: Database.Statement
  private readonly insChunk: Database.Statement
  private readonly insExtent: Database.Statement

  constructor(path: string, options: WriterOptions) {
    this.path = path
    this.tmp = join(dirname(path), `.${basename(path)}.${process.pid}.partial`)
    if (existsSync(this.tmp)) unlinkSync(this.tmp)
    this.db = new Database(this.tmp)
    // A temporary file: durability comes from the fsync + rename in finish(), not from a journal.
    this.db.pragma('journal_mode = OFF')
    this.db.pragma('synchronous = OFF')
    this.version = options.version ?? FORMAT_VERSION
    if (!Number.isInteger(this.version) || this.version < 1 || this.version > FORMAT_VERSION) throw zerr('INTERNAL', `flist writer: no format version ${this.version}`)
    this.db.exec(SCHEMA_SQL)
    if (this.version >= PREFETCH_RANGES_VERSION) this.db.exec(PREFETCH_RANGES_SQL)
    this.db.exec('BEGIN')
    const meta = this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)')
    meta.run('format', FORMAT_NAME)
    meta.run('version', String(this.version))
    meta.run('chunker', JSON.stringify(options.chunker))
    meta.run('encryption', options.encryptionKey ? 'aes-256-gcm' : 'none')
    if (options.encryptionKey) meta.run('encryption-key', options.encryptionKey.toString('hex'))
    this.insInode = this.db.prepare(
      'INSERT INTO inode (ino, mode, uid, gid, size, rdev, nlink, mtime, atime, ctime, target) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)',
    )
    this.updInode = this.db.prepare('UPDATE inode SET mode = ?, uid = ?, gid = ?, size = ?, rdev = ?, mtime = ?, atime = ?, ctime = ?, target = ? WHERE ino = ?')
    this.insDirent = this.db.prepare('INSERT INTO dirent (parent, name, ino) VALUES (?, ?, ?)')
    this.insXattr = this.db.prepare('INSERT INTO xattr (ino, name, value) VALUES (?, ?, ?)')
    this.insChunk = this.db.prepare('INSERT INTO chunk (id, hash, size, pack, offset, length, codec, base) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    this.insExtent = this.db.prepare('INSERT INTO extent (ino, offset, chunk) VALUES (?, ?, ?)')
    this.setRoot({ mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, rdev: 0, mtime: 0n, atime: 0n, ctime: 0n }, true)
  }

  private attrArgs(a: InodeAttrs): unknown[] {
    return [a.mode, a.uid, a.gid, a.size, a.rdev, a.mtime, a.atime, a.ctime, a.target ?? null]
  }

  private checkTreeOpen(): void {
    if (this.tree) throw zerr('INTERNAL', 'flist writer: the tree was changed after sealTree()')
  }

  setRoot(attrs: InodeAttrs, create = false): void {
    if (create) this.insInode.run(ROOT_INO, ...this.attrArgs(attrs))
    else this.updateInode(ROOT_INO, attrs)
  }

  addInode(parent: number, name: string, attrs: InodeAttrs): number {
    this.checkTreeOpen()
    const ino = this.nextIno++
    this.insInode.run(ino, ...this.attrArgs(attrs))
    this.insDirent.run(parent, name, ino)
    return ino
  }

  updateInode(ino: number, attrs: InodeAttrs): void {
    this.checkTreeOpen()
    this.updInode.run(...this.attrArgs(attrs), ino)
  }

  addLink(parent: number, name: string, ino: number): void {
    this.checkTreeOpen()
    this.insDirent.run(parent, name, ino)
  }

  addXattr(ino: number, name: string, value: Buffer): void {
    this.checkTreeOpen()
    this.insXattr.run(ino, name, value)
  }

  /** Reserves a chunk id; the row is written by addChunk once the chunk's location is known. */
  allocateChunk(): number {
    return this.nextChunk++
  }

  addChunk(row: ChunkRow): void {
    this.insChunk.run(row.id, row.hash, row.size, row.pack, row.offset, row.length, row.codec, row.base ?? null)
  }

  addExtents(ino: number, extents: ReadonlyArray<{ offset: number; chunk: number }>): void {
    for (const e of extents) this.insExtent.run(ino, e.offset, e.chunk)
  }

  setTag(key: string, value: string): void {
    this.db.prepare('INSERT OR REPLACE INTO tag (key, value) VALUES (?, ?)').run(key, value)
  }

  /**
   * Writes the prefetch list. From version 2 on, every row is a range of a regular file (a whole file becomes
   * 0..size; empty files and anything that is not a regular file are left out); a version 1 writer keeps whole
   * files, and becomes version 2 for a list with byte ranges. The caller checks that ranges lie inside their files.
   */
  setPrefetch(rows: readonly PrefetchRow[]): void {
    if (rows.some((r) => r.range) && this.version < PREFETCH_RANGES_VERSION) {
      this.checkTreeOpen() // the version is in the meta table, hashed with the tree
      this.db.exec(PREFETCH_RANGES_SQL)
      this.version = PREFETCH_RANGES_VERSION
      this.db.prepare("UPDATE meta SET value = ? WHERE key = 'version'").run(String(this.version))
    }
    this.db.prepare('DELETE FROM prefetch').run()
    if (this.version < PREFETCH_RANGES_VERSION) {
      const ins = this.db.prepare('INSERT INTO prefetch (seq, ino) VALUES (?, ?)')
      rows.forEach((r, i) => ins.run(i, r.ino))
      return
    }
    const ins = this.db.prepare('INSERT INTO prefetch (seq, ino, offset, length) VALUES (?, ?, ?, ?)')
    let seq = 0
    for (const r of rows) {
      const range = r.range ?? { offset: 0, length: this.regularFileSize(r.ino) ?? 0 }
      if (range.length > 0) ins.run(seq++, r.ino, range.offset, range.length)
    }
  }

  /** The size of a regular file; undefined for anything else. */
  regularFileSize(ino: number): number | undefined {
    const row = this.db.prepare('SELECT mode, size FROM inode WHERE ino = ?').get(ino) as { mode: number; size: number } | undefined
    return row && (row.mode & S_IFMT) === S_IFREG ? row.size : undefined
  }

  /** Looks up an inode by path (for prefetch lists); undefined if absent. */
  resolvePath(path: string): number | undefined {
    let ino = ROOT_INO
    const stmt = this.db.prepare('SELECT ino FROM dirent WHERE parent = ? AND name = ?')
    for (const part of path.split('/').filter((p) => p !== '')) {
      const row = stmt.get(ino, part) as { ino: number } | undefined
      if (!row) return undefined
      ino = row.ino
    }
    return ino
  }

  /** Link counts: directories 2 + subdirectories, everything else the number of names it has. */
  private setLinkCounts(): void {
    this.db.exec(`UPDATE inode SET nlink = CASE WHEN (mode & ${0o170000}) = ${S_IFDIR}
      THEN 2 + (SELECT count(*) FROM dirent d JOIN inode c ON c.ino = d.ino WHERE d.parent = inode.ino AND (c.mode & ${0o170000}) = ${S_IFDIR})
      ELSE (SELECT count(*) FROM dirent d WHERE d.ino = inode.ino) END`)
  }

  /**
   * Declares the tree complete (every inode, name and xattr added; no prefetch list of byte ranges to come):
   * its link counts are set and its tables hashed into the root now, so that finish() only hashes the extents,
   * tags and prefetch list. The packer calls this when the walk ends, while the last content is compressed.
   * Changing the tree afterwards is an INTERNAL error.
   */
  sealTree(): void {
    if (this.tree || this.done) return
    this.setLinkCounts()
    const tree = new RootHasher(this.version)
    tree.through(this.db, 'xattr')
    this.tree = tree
  }

  /** Seals the metadata, signs it, and moves it into place. Returns the root hash. */
  async finish(signers: readonly KeyPair[] = []): Promise<Buffer> {
    if (this.done) throw zerr('INTERNAL', 'flist writer finished twice')
    const db = this.db
    if (!this.tree) this.setLinkCounts()
    const dangling = db.prepare('SELECT count(*) AS n FROM extent e LEFT JOIN chunk c ON c.id = e.chunk WHERE c.id IS NULL').get() as { n: number }
    if (dangling.n > 0) throw zerr('INTERNAL', `flist writer: ${dangling.n} extents reference chunks that were never stored`)
    const root = (this.tree ?? new RootHasher(this.version)).digest(db)
    db.prepare('INSERT INTO seal (root) VALUES (?)').run(root)
    // secp256k1 is loaded only when something is signed: it costs tens of milliseconds at start.
    const { signDomain } = signers.length ? await import('../core/keys.js') : { signDomain: undefined }
    for (const key of signers) {
      db.prepare('INSERT OR REPLACE INTO signature (pubkey, sig) VALUES (?, ?)').run(key.publicKey, signDomain!(key, SIGNATURE_DOMAIN, root))
    }
    db.exec('COMMIT')
    db.pragma(`application_id = ${APPLICATION_ID}`)
    db.pragma(`user_version = ${this.version}`)
    db.pragma('journal_mode = DELETE')
    db.close()
    const fd = openSync(this.tmp, 'r')
    fsyncSync(fd)
    closeSync(fd)
    renameSync(this.tmp, this.path)
    const dfd = openSync(dirname(this.path), 'r')
    fsyncSync(dfd)
    closeSync(dfd)
    this.done = true
    return root
  }

  /** Discards the partial file. Safe to call after finish (does nothing). */
  abort(): void {
    if (this.done) return
    this.done = true
    try {
      this.db.close()
    } catch {
      // already closed
    }
    try {
      unlinkSync(this.tmp)
    } catch {
      // never created
    }
  }
}
