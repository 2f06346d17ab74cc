// The version 3 root against a second reading of docs/flist-format.md §5: the same rows read as values and
// rendered in JavaScript, then hashed as the document describes. The implementation lets SQLite render them.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { computeRoot } from '../../src/flist/root.js'
import { PREFETCH_RANGES_SQL, ROOT_TEXT_DOMAIN, SCHEMA_SQL, rootTables } from '../../src/flist/schema.js'

function render(v: unknown): string {
  if (v === null) return 'N'
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'string') return `T${Buffer.from(v, 'utf8').toString('hex').toUpperCase()}`
  if (Buffer.isBuffer(v)) return `B${v.toString('hex').toUpperCase()}`
  throw new Error(`no rendering for ${typeof v}`)
}

function documentedRoot(db: Database.Database): Buffer {
  const h = createHash('sha256').update(`${ROOT_TEXT_DOMAIN}\0`)
  for (const t of rootTables(3)) {
    h.update(`${t.name}\0`)
    for (const row of db.prepare(`SELECT ${t.columns.join(', ')} FROM ${t.from} ORDER BY ${t.order}`).raw(true).safeIntegers(true).all() as unknown[][]) {
      h.update(`${row.map(render).join(',')}\n`)
    }
    h.update('\0')
  }
  return h.digest()
}

function metadata(strict = true): Database.Database {
  const db = new Database(':memory:')
  db.exec(strict ? SCHEMA_SQL + PREFETCH_RANGES_SQL : (SCHEMA_SQL + PREFETCH_RANGES_SQL).replaceAll(' STRICT', '').replaceAll(') STRICT', ')'))
  return db
}

const MAX = 2n ** 63n - 1n
const MIN = -(2n ** 63n)

test('root v3 - edge values hash as the format document renders them', () => {
  const db = metadata()
  const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)')
  meta.run('format', 'zos-flist')
  meta.run('version', '3')
  const inode = db.prepare('INSERT INTO inode VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
  inode.run(1, 0o40755, 0, 0, 0, 0, 2, 1_700_000_000_123_456_789n, 0n, -1n, null)
  inode.run(2, 0o100644, 4294967295, 65534, MAX, 0, 1, MIN, MAX, 0n, null)
  inode.run(3, 0o120777, 1000, 1000, 3, 0, 1, 1n, 2n, 3n, Buffer.from('a,b\n\0c'))
  inode.run(4, 0o100600, 0, 0, 0, 0, 1, 0n, 0n, 0n, Buffer.alloc(0))
  const dirent = db.prepare('INSERT INTO dirent VALUES (?, ?, ?)')
  for (const [name, ino] of [['plain', 2], ["it's, a\nname", 3], ['été 中文 🙂', 4], ['nul\0inside', 2], ['', 4]] as const) dirent.run(1, name, ino)
  db.prepare('INSERT INTO xattr VALUES (?, ?, ?)').run(2, 'user.empty', Buffer.alloc(0))
  db.prepare('INSERT INTO xattr VALUES (?, ?, ?)').run(2, 'user.bytes', Buffer.from([0, 255, 10, 44]))
  db.prepare('INSERT INTO chunk VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(1, Buffer.alloc(32, 0xab), 65536, 'p'.repeat(64), 0, 100, 1, null)
  db.prepare('INSERT INTO extent VALUES (?, ?, ?)').run(2, 0, 1)
  db.prepare('INSERT INTO extent VALUES (?, ?, ?)').run(2, 65536, 99) // a chunk the flist lacks: NULL hash and size
  db.prepare('INSERT INTO tag VALUES (?, ?)').run('cmd', '["/bin/sh","-c","echo hi"]')
  db.prepare('INSERT INTO prefetch VALUES (?, ?, ?, ?)').run(0, 2, 0, 4096)
  const root = computeRoot(db, 3)
  assert.deepEqual(root, documentedRoot(db))
  assert.notDeepEqual(root, computeRoot(db, 2), 'versions 2 and 3 hash the same rows differently')
  db.prepare('UPDATE inode SET mtime = mtime + 1 WHERE ino = 2').run()
  assert.notDeepEqual(computeRoot(db, 3), root)
})

test('root v3 - a value of another type changes the root; a REAL is refused', () => {
  // Without STRICT tables (a file made by hand) a BLOB column holds any type: text '7' is not integer 7.
  const db = metadata(false)
  db.prepare('INSERT INTO inode VALUES (1, 16877, 0, 0, 0, 0, 2, 0, 0, 0, ?)').run('7')
  const roots = [computeRoot(db, 3)]
  assert.deepEqual(roots[0], documentedRoot(db))
  for (const value of ['7', "CAST('7' AS BLOB)", 'NULL']) {
    db.exec(`UPDATE inode SET target = ${value}`)
    roots.push(computeRoot(db, 3))
  }
  assert.equal(new Set(roots.map((r) => r.toString('hex'))).size, roots.length)
  db.exec('UPDATE inode SET target = 7.5')
  assert.throws(() => computeRoot(db, 3), /REAL/)
})

test('root v3 - the metadata must be UTF-8 (text is hashed as stored)', () => {
  const db = new Database(':memory:')
  db.pragma("encoding = 'UTF-16le'")
  db.exec(SCHEMA_SQL + PREFETCH_RANGES_SQL)
  assert.throws(() => computeRoot(db, 3), /UTF-8/)
})
