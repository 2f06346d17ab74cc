import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { appendFileSync, chmodSync, chownSync, linkSync, mkdirSync, renameSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { ZosError } from '../../../src/core/errors.js'
import { openDir } from '../../../src/flist/source/dir.js'
import { parseGetfattr } from '../../../src/flist/source/xattrs.js'
import { isRoot, tempDir } from '../../helpers/tmp.js'
import { at, collect, localReads, run } from './fixtures.js'

const hasAttrTools = (() => {
  try {
    run('getfattr', ['--version'])
    run('setfattr', ['--version'])
    return true
  } catch {
    return false
  }
})()
const NS_TIME = '2001-02-03 04:05:06.123456789'
const NS = 981173106123456789n

test('dir source - every file type, hard links, modes, owners, ns times, devices, content', { skip: !isRoot && 'needs root for mknod and chown' }, async (t) => {
  const root = await tempDir(t)
  const big = randomBytes(2.5 * 1024 * 1024)
  mkdirSync(join(root, 'b-dir'))
  writeFileSync(join(root, 'b-dir', 'big'), big)
  writeFileSync(join(root, 'a-file'), 'hello')
  chownSync(join(root, 'a-file'), 1234, 5678)
  chmodSync(join(root, 'a-file'), 0o4755) // setuid (after chown, which clears it)
  linkSync(join(root, 'a-file'), join(root, 'c-link')) // later in order → hardlink to a-file
  linkSync(join(root, 'a-file'), join(root, 'b-dir', 'z-link'))
  mkdirSync(join(root, 'sticky'))
  chmodSync(join(root, 'sticky'), 0o1777)
  symlinkSync('../a-file', join(root, 'b-dir', 'sym'))
  run('mkfifo', [join(root, 'fifo')])
  run('mknod', [join(root, 'chr'), 'c', '300', '70000']) // major > 255 and minor > 255: both halves of the glibc encoding
  run('mknod', [join(root, 'blk'), 'b', '7', '3'])
  writeFileSync(join(root, 'empty'), '')
  run('touch', ['-h', '-d', NS_TIME, join(root, 'a-file'), join(root, 'b-dir', 'sym')], { env: { ...process.env, TZ: 'UTC' } })
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(join(root, 'sock'), resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  // Directory times last: creating children changes them.
  run('touch', ['-d', NS_TIME, join(root, 'b-dir')], { env: { ...process.env, TZ: 'UTC' } })

  const source = await openDir(root)
  const before = localReads
  const entries = await collect(source)
  await source.close()
  assert.equal(localReads - before, 3, 'a-file, big and empty are cross-checked through FileContent.local')

  assert.deepEqual([...entries.keys()], [
    '', 'a-file', 'b-dir', 'b-dir/big', 'b-dir/sym', 'b-dir/z-link', 'blk', 'c-link', 'chr', 'empty', 'fifo', 'sock', 'sticky',
  ])
  const file = at(entries, 'a-file')
  assert.equal(file.entry.kind, 'file')
  assert.equal(file.entry.mode, 0o4755)
  assert.equal(file.entry.uid, 1234)
  assert.equal(file.entry.gid, 5678)
  assert.equal(file.entry.mtimeNs, NS)
  assert.equal(file.data?.toString(), 'hello')
  assert.deepEqual(at(entries, 'b-dir/big').data, big)
  assert.equal(at(entries, 'b-dir').entry.mtimeNs, NS)
  assert.equal(at(entries, 'b-dir/z-link').entry.kind, 'hardlink')
  assert.equal(at(entries, 'b-dir/z-link').entry.target, 'a-file')
  assert.equal(at(entries, 'c-link').entry.target, 'a-file')
  assert.equal(at(entries, 'c-link').entry.content, undefined)
  const sym = at(entries, 'b-dir/sym').entry
  assert.equal(sym.kind, 'symlink')
  assert.equal(sym.target, '../a-file')
  assert.equal(sym.mtimeNs, NS)
  assert.equal(at(entries, 'sticky').entry.mode, 0o1777)
  assert.equal(at(entries, 'fifo').entry.kind, 'fifo')
  assert.equal(at(entries, 'sock').entry.kind, 'socket')
  assert.deepEqual(pick(at(entries, 'chr').entry), { kind: 'char', rdevMajor: 300, rdevMinor: 70000 })
  assert.deepEqual(pick(at(entries, 'blk').entry), { kind: 'block', rdevMajor: 7, rdevMinor: 3 })
  assert.equal(at(entries, 'empty').entry.size, 0)
  assert.equal(at(entries, '').entry.kind, 'dir')
})

function pick(e: { kind: string; rdevMajor?: number; rdevMinor?: number }): object {
  return { kind: e.kind, rdevMajor: e.rdevMajor, rdevMinor: e.rdevMinor }
}

test('dir source - xattrs, including binary values, odd names and the root', { skip: !hasAttrTools && 'needs getfattr/setfattr (Debian package attr)' }, async (t) => {
  const root = await tempDir(t)
  const odd = 'new\nline\\ é'
  writeFileSync(join(root, 'f'), 'x')
  writeFileSync(join(root, odd), 'y')
  mkdirSync(join(root, 'd'))
  run('setfattr', ['-n', 'user.bin', '-v', '0x000a3dff0d', join(root, 'f')])
  run('setfattr', ['-n', 'user.empty', join(root, 'f')])
  run('setfattr', ['-n', 'user.name', '-v', 'v', join(root, odd)])
  run('setfattr', ['-n', 'user.dir', '-v', 'top', root])
  run('setfattr', ['-n', 'user.d', '-v', 'sub', join(root, 'd')])

  const entries = await collect(await openDir(root))
  const f = at(entries, 'f').entry.xattrs
  assert.deepEqual(f?.get('user.bin'), Buffer.from([0, 0x0a, 0x3d, 0xff, 0x0d]))
  assert.deepEqual(f?.get('user.empty'), Buffer.alloc(0))
  assert.deepEqual(at(entries, odd).entry.xattrs?.get('user.name'), Buffer.from('v'))
  assert.deepEqual(at(entries, '').entry.xattrs?.get('user.dir'), Buffer.from('top'))
  assert.deepEqual(at(entries, 'd').entry.xattrs?.get('user.d'), Buffer.from('sub'))
})

test('dir source - parseGetfattr unescapes octal names and keeps names containing =', async () => {
  async function* lines(): AsyncGenerator<string> {
    yield* ['# file: /r', 'user.a=0x01', '', '# file: /r/x\\012y\\303\\251', 'user.k=v=0x6869', 'user.e', '', '# file: /other', 'user.z=0x00']
  }
  const map = await parseGetfattr(lines(), '/r')
  assert.deepEqual(map.get('')?.get('user.a'), Buffer.of(1))
  assert.deepEqual(map.get('x\nyé')?.get('user.k=v'), Buffer.from('hi'))
  assert.deepEqual(map.get('x\nyé')?.get('user.e'), Buffer.alloc(0))
  assert.equal(map.size, 2)
})

test('dir source - without getfattr: one warning, no xattrs', async (t) => {
  const root = await tempDir(t)
  const emptyBin = await tempDir(t)
  writeFileSync(join(root, 'f'), 'x')
  const saved = process.env.PATH
  process.env.PATH = emptyBin
  t.after(() => {
    process.env.PATH = saved
  })
  const warnings: string[] = []
  const entries = await collect(await openDir(root, { warn: (m) => warnings.push(m) }))
  process.env.PATH = saved
  assert.equal(warnings.length, 1)
  assert.match(warnings[0] ?? '', /getfattr/)
  assert.equal(at(entries, 'f').entry.xattrs, undefined)
})

test('dir source - a name that is not UTF-8 is BAD_NAME naming the directory', async (t) => {
  const root = await tempDir(t)
  mkdirSync(join(root, 'sub'))
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'sub') + '/'), Buffer.from([0x61, 0xff, 0x62])]), 'x')
  const source = await openDir(root, { warn: () => {} })
  await assert.rejects(collect(source), (err: unknown) => {
    assert.ok(ZosError.is(err))
    assert.equal(err.code, 'BAD_NAME')
    assert.match(err.message, /sub/)
    assert.match(err.message, /a\\xffb/)
    return true
  })
})

test('dir source - a file that changes size or is replaced while packed is SOURCE_CHANGED', async (t) => {
  const root = await tempDir(t)
  writeFileSync(join(root, 'grows'), 'abc')
  writeFileSync(join(root, 'grows-not'), 'xyz')
  writeFileSync(join(root, 'shrinks'), 'abcdef')
  writeFileSync(join(root, 'big-grows'), Buffer.alloc(300 * 1024)) // past the one-read size: the streaming path
  writeFileSync(join(root, 'big-shrinks'), Buffer.alloc(3 * 1024 * 1024))
  const seen = new Map<string, import('../../../src/flist/source/types.js').SourceEntry>()
  for await (const e of (await openDir(root, { warn: () => {} })).entries()) seen.set(e.path, e)
  appendFileSync(join(root, 'grows'), 'more')
  writeFileSync(join(root, 'shrinks'), 'ab')
  appendFileSync(join(root, 'big-grows'), 'more')
  truncateSync(join(root, 'big-shrinks'), 2 * 1024 * 1024 + 5)
  writeFileSync(join(root, 'replacement'), 'abc')
  renameSync(join(root, 'replacement'), join(root, 'grows-not')) // same size, new inode
  for (const name of ['grows', 'shrinks', 'big-grows', 'big-shrinks', 'grows-not']) {
    const drain = async (): Promise<void> => {
      for await (const _ of seen.get(name)?.content?.stream() ?? []) void _
    }
    await assert.rejects(drain(), (err: unknown) => ZosError.is(err) && err.code === 'SOURCE_CHANGED' && err.message.includes(name))
  }
})

test('dir source - a path that is not a directory is refused', async (t) => {
  const root = await tempDir(t)
  writeFileSync(join(root, 'f'), 'x')
  await assert.rejects(openDir(join(root, 'f')), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_ARGUMENT')
  await assert.rejects(openDir(join(root, 'missing')), (err: unknown) => ZosError.is(err) && err.code === 'NOT_FOUND')
})
