// The native flist metadata: one SQLite file. See docs/flist-format.md for the normative description.
// Tables are STRICT so that a value of the wrong type is refused by SQLite itself, and every table that the
// root hash covers is listed, in hashing order, in ROOT_TABLES.

export const FORMAT_NAME = 'zos-flist'
/** The newest version this code reads, and the one writers write. */
export const FORMAT_VERSION = 3
/** Version 2 = version 1 with a prefetch list of byte ranges (PREFETCH_RANGES_SQL) instead of whole files. */
export const PREFETCH_RANGES_VERSION = 2
/** Version 3 = version 2 with the root over rows as SQLite renders them (root.ts): about half the cost to verify. */
export const ROOT_TEXT_VERSION = 3
/** SQLite application_id: ASCII "zosF". Lets `file`-style sniffers and our reader tell an flist from other databases. */
export const APPLICATION_ID = 0x7a6f7346

export const SCHEMA_SQL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE inode (
  ino INTEGER PRIMARY KEY,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL,
  rdev INTEGER NOT NULL,
  nlink INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  atime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  target BLOB
) STRICT;
CREATE TABLE dirent (parent INTEGER NOT NULL, name TEXT NOT NULL, ino INTEGER NOT NULL, PRIMARY KEY (parent, name)) STRICT, WITHOUT ROWID;
CREATE INDEX dirent_ino ON dirent (ino);
CREATE TABLE xattr (ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ino, name)) STRICT, WITHOUT ROWID;
CREATE TABLE chunk (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  pack TEXT NOT NULL,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  codec INTEGER NOT NULL,
  base INTEGER
) STRICT;
CREATE TABLE extent (ino INTEGER NOT NULL, offset INTEGER NOT NULL, chunk INTEGER NOT NULL, PRIMARY KEY (ino, offset)) STRICT, WITHOUT ROWID;
CREATE TABLE tag (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE prefetch (seq INTEGER PRIMARY KEY, ino INTEGER NOT NULL) STRICT;
CREATE TABLE seal (root BLOB NOT NULL) STRICT;
CREATE TABLE signature (pubkey BLOB PRIMARY KEY, sig BLOB NOT NULL) STRICT, WITHOUT ROWID;
`

/** The prefetch table of version 2: byte ranges of regular files, in the order a traced workload read them. */
export const PREFETCH_RANGES_SQL = `
DROP TABLE prefetch;
CREATE TABLE prefetch (seq INTEGER PRIMARY KEY, ino INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) STRICT;
`

/**
 * What the root hash covers, in hashing order: the tree and its content, by chunk hash. Where chunks are
 * stored (pack, offset, codec, delta base) is deliberately left out: every fetched chunk is checked against
 * its hash anyway, so a wrong location can only fail a read, never change a byte; and leaving it out makes the
 * root a pure content identity: the same tree packed twice, or into another store, has the same root and
 * keeps its signature.
 */
export interface RootTable {
  name: string
  /** The columns hashed, in order (expressions over `from`). */
  columns: readonly string[]
  from: string
  order: string
}

export const ROOT_TABLES: readonly RootTable[] = [
  { name: 'meta', columns: ['key', 'value'], from: 'meta', order: 'key' },
  { name: 'inode', columns: ['ino', 'mode', 'uid', 'gid', 'size', 'rdev', 'nlink', 'mtime', 'atime', 'ctime', 'target'], from: 'inode', order: 'ino' },
  { name: 'dirent', columns: ['parent', 'name', 'ino'], from: 'dirent', order: 'parent, name' },
  { name: 'xattr', columns: ['ino', 'name', 'value'], from: 'xattr', order: 'ino, name' },
  { name: 'extent', columns: ['e.ino', 'e.offset', 'c.hash', 'c.size'], from: 'extent e LEFT JOIN chunk c ON c.id = e.chunk', order: 'e.ino, e.offset' },
  { name: 'tag', columns: ['key', 'value'], from: 'tag', order: 'key' },
  { name: 'prefetch', columns: ['seq', 'ino'], from: 'prefetch', order: 'seq' },
]

/** What the root hash covers in a flist of `version`: from version 2 on, the prefetch ranges too. */
export function rootTables(version: number): readonly RootTable[] {
  if (version < PREFETCH_RANGES_VERSION) return ROOT_TABLES
  return ROOT_TABLES.map((t) => (t.name === 'prefetch' ? { ...t, columns: ['seq', 'ino', 'offset', 'length'] } : t))
}

export const ROOT_DOMAIN = 'zos-flist-root-v1'
export const ROOT_TEXT_DOMAIN = 'zos-flist-root-v3'
export const SIGNATURE_DOMAIN = 'zos-flist-signature-v1'
export const ROOT_INO = 1

/** File type bits of st_mode. */
export const S_IFMT = 0o170000
export const S_IFSOCK = 0o140000
export const S_IFLNK = 0o120000
export const S_IFREG = 0o100000
export const S_IFBLK = 0o060000
export const S_IFDIR = 0o040000
export const S_IFCHR = 0o020000
export const S_IFIFO = 0o010000

export type InodeType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket'

export function typeOfMode(mode: number): InodeType | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file'
    case S_IFDIR: return 'dir'
    case S_IFLNK: return 'symlink'
    case S_IFCHR: return 'char'
    case S_IFBLK: return 'block'
    case S_IFIFO: return 'fifo'
    case S_IFSOCK: return 'socket'
    default: return undefined
  }
}

export const TYPE_BITS: Record<InodeType, number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO, socket: S_IFSOCK,
}

/** Linux new_encode_dev: the 32-bit device number FUSE and stat use. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0
}

export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) }
}

/** Well-known tag keys written from an OCI image config. Values are JSON for lists. */
export const TAG_KEYS = {
  entrypoint: 'entrypoint',
  cmd: 'cmd',
  env: 'env',
  workingDir: 'working-dir',
  user: 'user',
  exposedPorts: 'exposed-ports',
  labels: 'labels',
} as const
