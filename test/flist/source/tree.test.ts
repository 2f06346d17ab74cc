import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ZosError } from '../../../src/core/errors.js'
import { Tree } from '../../../src/flist/source/tree.js'
import type { EntryKind, SourceEntry } from '../../../src/flist/source/types.js'

function e(path: string, kind: EntryKind, extra: Partial<SourceEntry> = {}): SourceEntry {
  return { path, kind, mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, size: 0, ...extra }
}

function shape(tree: Tree): string[] {
  return [...tree.values()].map((x) => `${x.path}:${x.kind}${x.target === undefined ? '' : `>${x.target}`}${x.size ? `#${x.size}` : ''}`)
}

function code(fn: () => void): string {
  try {
    fn()
  } catch (err: unknown) {
    if (ZosError.is(err)) return err.code
    throw err
  }
  return 'ok'
}

test('tree - a later member replaces an earlier one and moves to the end', () => {
  const t = new Tree('x')
  t.put(e('a', 'file', { size: 1 }))
  t.put(e('b', 'file', { size: 2 }))
  t.put(e('a', 'file', { size: 3 }))
  assert.deepEqual(shape(t), ['b:file#2', 'a:file#3'])
})

test('tree - a directory over a directory keeps its children; anything else removes them', () => {
  const t = new Tree('x')
  t.put(e('d/x', 'file'))
  t.put(e('d', 'dir', { mode: 0o700 }))
  t.put(e('d', 'dir', { mode: 0o755 }))
  assert.deepEqual(shape(t), ['d/x:file', 'd:dir'])
  assert.equal(t.get('d')?.mode, 0o755)
  t.put(e('d', 'symlink', { target: '/' }))
  assert.deepEqual(shape(t), ['d:symlink>/'])
})

test('tree - hard links resolve chains and survive their target being replaced or removed', () => {
  const t = new Tree('x')
  t.put(e('f', 'file', { size: 5 }))
  t.put(e('l1', 'hardlink', { target: 'f' }))
  t.put(e('l2', 'hardlink', { target: 'l1' })) // a link to a link points at the file
  assert.deepEqual(shape(t), ['f:file#5', 'l1:hardlink>f', 'l2:hardlink>f'])
  t.put(e('f', 'file', { size: 9 })) // new inode at f; l1 inherits the old content, l2 follows it
  assert.deepEqual(shape(t), ['l1:file#5', 'l2:hardlink>l1', 'f:file#9'])
  t.remove('l1')
  assert.deepEqual(shape(t), ['l2:file#5', 'f:file#9'])
})

test('tree - removing a directory promotes a link that lives outside it', () => {
  const t = new Tree('x')
  t.put(e('d/f', 'file', { size: 1 }))
  t.put(e('d/g', 'hardlink', { target: 'd/f' }))
  t.put(e('out', 'hardlink', { target: 'd/f' }))
  t.remove('d')
  assert.deepEqual(shape(t), ['out:file#1'])
})

test('tree - clear keeps the directory, removes what is under it', () => {
  const t = new Tree('x')
  t.put(e('d', 'dir'))
  t.put(e('d/a/b', 'file'))
  t.put(e('e', 'file'))
  t.clear('d')
  assert.deepEqual(shape(t), ['d:dir', 'e:file'])
  t.clear('')
  assert.deepEqual(shape(t), [])
})

test('tree - a hard link to a symlink is a copy; to itself changes nothing', () => {
  const t = new Tree('x')
  t.put(e('s', 'symlink', { target: 'elsewhere' }))
  t.put(e('c', 'hardlink', { target: 's' }))
  t.put(e('f', 'file'))
  t.put(e('f', 'hardlink', { target: 'f' }))
  assert.deepEqual(shape(t), ['s:symlink>elsewhere', 'c:symlink>elsewhere', 'f:file'])
})

test('tree - bad members are refused with the right code', () => {
  const t = new Tree('x')
  t.put(e('link', 'symlink', { target: '/etc' }))
  t.put(e('file', 'file'))
  t.put(e('dir', 'dir'))
  assert.equal(code(() => t.put(e('link/passwd', 'file'))), 'UNSAFE_PATH')
  assert.equal(code(() => t.put(e('file/x', 'file'))), 'BAD_ARCHIVE')
  assert.equal(code(() => t.put(e('h', 'hardlink', { target: 'missing' }))), 'BAD_ARCHIVE')
  assert.equal(code(() => t.put(e('h', 'hardlink', { target: 'dir' }))), 'BAD_ARCHIVE')
  assert.equal(code(() => t.put(e('', 'file'))), 'BAD_ARCHIVE')
  assert.equal(code(() => t.put(e('dir/ok', 'file'))), 'ok')
})
