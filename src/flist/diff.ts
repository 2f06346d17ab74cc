// Compares two flists path by path: what was added, removed or changed (content, mode, owner, link target,
// xattrs), and how many bytes of B's content are not in A (what a node holding A must fetch for B).
import type { FlistReader, Inode } from './reader.js'

export interface DiffChange {
  path: string
  kind: 'added' | 'removed' | 'changed'
  what?: string[]
}

export interface DiffResult {
  changes: DiffChange[]
  /** Plaintext bytes of B's chunks that A does not have. */
  newBytes: number
  sharedBytes: number
}

function contentKey(reader: FlistReader, inode: Inode): string {
  return reader
    .extents(inode.ino)
    .map((e) => reader.chunk(e.chunk).hash.toString('hex'))
    .join(',')
}

export function diff(a: FlistReader, b: FlistReader): DiffResult {
  const left = new Map([...a.walk()].map((e) => [e.path, e.inode]))
  const right = new Map([...b.walk()].map((e) => [e.path, e.inode]))
  const changes: DiffChange[] = []
  for (const [path, ia] of left) {
    const ib = right.get(path)
    if (!ib) {
      changes.push({ path, kind: 'removed' })
      continue
    }
    const what: string[] = []
    if (ia.type !== ib.type) what.push(`type ${ia.type}→${ib.type}`)
    else {
      if ((ia.mode & 0o7777) !== (ib.mode & 0o7777)) what.push(`mode ${(ia.mode & 0o7777).toString(8)}→${(ib.mode & 0o7777).toString(8)}`)
      if (ia.uid !== ib.uid || ia.gid !== ib.gid) what.push(`owner ${ia.uid}:${ia.gid}→${ib.uid}:${ib.gid}`)
      if (ia.type === 'file' && (ia.size !== ib.size || contentKey(a, ia) !== contentKey(b, ib))) what.push('content')
      if (ia.type === 'symlink' && !Buffer.from(ia.target ?? []).equals(Buffer.from(ib.target ?? []))) what.push('target')
      if ((ia.type === 'char' || ia.type === 'block') && ia.rdev !== ib.rdev) what.push('device')
      const xa = a.xattrs(ia.ino)
      const xb = b.xattrs(ib.ino)
      if (xa.size !== xb.size || [...xa].some(([k, v]) => !xb.get(k)?.equals(v))) what.push('xattrs')
      // A directory's mtime moves whenever an entry changes; the entries themselves are reported.
      if (ia.type !== 'dir' && ia.mtime !== ib.mtime) what.push('mtime')
    }
    if (what.length) changes.push({ path, kind: 'changed', what })
  }
  for (const path of right.keys()) if (!left.has(path)) changes.push({ path, kind: 'added' })
  changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0))

  const have = new Set(a.allChunks().map((c) => c.hash.toString('hex')))
  let newBytes = 0
  let sharedBytes = 0
  for (const c of b.allChunks()) {
    if (have.has(c.hash.toString('hex'))) sharedBytes += c.size
    else newBytes += c.size
  }
  return { changes, newBytes, sharedBytes }
}
