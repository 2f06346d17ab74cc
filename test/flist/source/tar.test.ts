import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, linkSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { compress as zstd } from 'zstd-napi'
import { ZosError } from '../../../src/core/errors.js'
import { openSource } from '../../../src/flist/source/open.js'
import { isRoot, tempDir } from '../../helpers/tmp.js'
import { at, collect, collectSpec, localReads, run, tarBytes, type Member } from './fixtures.js'

const LONG = `${'long-directory-name/'.repeat(6)}file-with-a-name-past-100-bytes`
const NS_TIME = '2001-02-03 04:05:06.123456789'
const NS = 981173106123456789n

/** A tree with every kind tar can hold, archived by GNU tar in pax format with xattrs. */
async function realTree(root: string): Promise<{ tree: string; big: Buffer }> {
  const tree = join(root, 'tree')
  const big = randomBytes(1.5 * 1024 * 1024)
  mkdirSync(join(tree, 'dir'), { recursive: true })
  mkdirSync(join(tree, LONG.slice(0, LONG.lastIndexOf('/'))), { recursive: true })
  writeFileSync(join(tree, LONG), 'deep')
  writeFileSync(join(tree, 'dir', 'big'), big)
  writeFileSync(join(tree, 'file'), 'hello')
  chmodSync(join(tree, 'file'), 0o4750)
  linkSync(join(tree, 'file'), join(tree, 'link'))
  symlinkSync('dir/big', join(tree, 'sym'))
  run('mkfifo', [join(tree, 'fifo')])
  if (isRoot) run('mknod', [join(tree, 'chr'), 'c', '4', '5'])
  run('setfattr', ['-n', 'user.bin', '-v', '0x000a3dff0d', join(tree, 'file')])
  run('touch', ['-d', NS_TIME, join(tree, 'file')], { env: { ...process.env, TZ: 'UTC' } })
  return { tree, big }
}

function check(entries: Awaited<ReturnType<typeof collect>>, big: Buffer): void {
  assert.equal(at(entries, '').entry.kind, 'dir')
  const file = at(entries, 'file')
  assert.equal(file.entry.kind, 'file')
  assert.equal(file.entry.mode, 0o4750)
  assert.equal(file.entry.mtimeNs, NS)
  assert.equal(file.data?.toString(), 'hello')
  assert.deepEqual(file.entry.xattrs?.get('user.bin'), Buffer.from([0, 0x0a, 0x3d, 0xff, 0x0d]))
  assert.deepEqual(at(entries, 'link').entry, { ...at(entries, 'link').entry, kind: 'hardlink', target: 'file' })
  assert.equal(at(entries, 'sym').entry.target, 'dir/big')
  assert.equal(at(entries, 'fifo').entry.kind, 'fifo')
  assert.deepEqual(at(entries, 'dir/big').data, big)
  assert.equal(at(entries, LONG).data?.toString(), 'deep')
  if (isRoot) {
    const chr = at(entries, 'chr').entry
    assert.deepEqual([chr.kind, chr.rdevMajor, chr.rdevMinor], ['char', 4, 5])
  }
}

test('tar source - GNU tar pax archives, plain, gzip and zstd, give the same entries', async (t) => {
  const root = await tempDir(t)
  const { tree, big } = await realTree(root)
  const base = ['--format=posix', '--xattrs', '--xattrs-include=*', '-C', tree]
  run('tar', ['-cf', join(root, 'a.tar'), ...base, '.'])
  run('tar', ['-czf', join(root, 'a.tgz'), ...base, '.'])
  run('tar', ['--zstd', '-cf', join(root, 'a.tar.zst'), ...base, '.'])
  let first: string | undefined
  const before = localReads
  for (const name of ['a.tar', 'a.tgz', 'a.tar.zst']) {
    const source = await openSource(join(root, name))
    assert.match(source.description, /^tar /)
    const entries = await collect(source)
    await source.close()
    check(entries, big)
    const summary = JSON.stringify([...entries.values()].map(({ entry: e }) => [e.path, e.kind, e.mode, e.size, String(e.mtimeNs), e.target]))
    first ??= summary
    assert.equal(summary, first, `${name} differs from a.tar`)
  }
  assert.equal(localReads - before, 3 * 3, 'every file content is cross-checked through FileContent.local')
})

test('tar source - GNU format long names and long link targets', async (t) => {
  const root = await tempDir(t)
  const tree = join(root, 'tree')
  mkdirSync(tree)
  const longName = 'n'.repeat(150)
  const longTarget = `${'t'.repeat(120)}/x`
  writeFileSync(join(tree, longName), 'x')
  symlinkSync(longTarget, join(tree, 's'))
  run('tar', ['--format=gnu', '-cf', join(root, 'g.tar'), '-C', tree, '.'])
  const entries = await collectSpec(join(root, 'g.tar'))
  assert.equal(at(entries, longName).data?.toString(), 'x')
  assert.equal(at(entries, 's').entry.target, longTarget)
})

test('tar source - names are normalised and a later member replaces an earlier one', async (t) => {
  const root = await tempDir(t)
  const members: Member[] = [
    { name: './', type: '5', mode: 0o700 },
    { name: './a//b/', type: '5' },
    { name: 'a/b/f', data: 'old' },
    { name: 'keep', data: 'k' },
    { name: './a/b/f', data: 'new!' },
    { name: 'x/y/z', data: 'implied parents' },
    { name: 'x', type: '2', linkname: 'a' }, // replaces the implied directory x and what is under it
  ]
  writeFileSync(join(root, 'n.tar'), tarBytes(members))
  const entries = await collectSpec(join(root, 'n.tar'))
  assert.deepEqual([...entries.keys()], ['', 'a/b', 'keep', 'a/b/f', 'x'])
  assert.equal(at(entries, '').entry.mode, 0o700)
  assert.equal(at(entries, 'a/b/f').data?.toString(), 'new!')
})

test('tar source - pax times with fractions, SCHILY and LIBARCHIVE xattrs, uid/gid/size overrides', async (t) => {
  const root = await tempDir(t)
  const members: Member[] = [
    {
      name: 'short',
      data: 'content',
      pax: {
        mtime: '1234567890.5',
        atime: '1234567891.000000001',
        path: 'pax/ünïcode-name',
        uid: '4000000',
        gid: '70000',
        'SCHILY.xattr.security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0xff]),
        'LIBARCHIVE.xattr.user.a%3Db': Buffer.from('dmFsdWU=', 'latin1'), // name "user.a=b", value "value"
      },
    },
  ]
  writeFileSync(join(root, 'p.tar'), tarBytes(members))
  const entries = await collectSpec(join(root, 'p.tar'))
  const e = at(entries, 'pax/ünïcode-name').entry
  assert.equal(e.mtimeNs, 1234567890500000000n)
  assert.equal(e.atimeNs, 1234567891000000001n)
  assert.equal(e.uid, 4000000)
  assert.equal(e.gid, 70000)
  assert.deepEqual(e.xattrs?.get('security.capability'), Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0xff]))
  assert.deepEqual(e.xattrs?.get('user.a=b'), Buffer.from('value'))
})

test('tar source - on stdin, zstd-compressed', async () => {
  const tar = tarBytes([{ name: 'f', data: 'from stdin' }])
  const source = await openSource('-', { stdin: Readable.from([zstd(tar)]) })
  const entries = await collect(source)
  await source.close()
  assert.equal(at(entries, 'f').data?.toString(), 'from stdin')
})

async function expectCode(t: import('node:test').TestContext, bytes: Buffer, codeWanted: string, message: RegExp): Promise<void> {
  const root = await tempDir(t)
  writeFileSync(join(root, 'bad.tar'), bytes)
  const attempt = async (): Promise<void> => {
    const source = await openSource(join(root, 'bad.tar'))
    try {
      await collect(source)
    } finally {
      await source.close()
    }
  }
  await assert.rejects(attempt(), (err: unknown) => {
    assert.ok(ZosError.is(err), `not a ZosError: ${String(err)}`)
    assert.equal(err.code, codeWanted, err.message)
    assert.match(err.message, message)
    return true
  })
}

test('tar source - unsafe paths are UNSAFE_PATH naming the entry', async (t) => {
  await expectCode(t, tarBytes([{ name: '../x', data: 'x' }]), 'UNSAFE_PATH', /\.\.\/x/)
  await expectCode(t, tarBytes([{ name: '/etc/passwd', data: 'x' }]), 'UNSAFE_PATH', /\/etc\/passwd/)
  await expectCode(t, tarBytes([{ name: 'a/../../x', data: 'x' }]), 'UNSAFE_PATH', /a\/\.\.\/\.\.\/x/)
  await expectCode(t, tarBytes([{ name: 'f', data: 'x' }, { name: 'h', type: '1', linkname: '../f' }]), 'UNSAFE_PATH', /\.\.\/f/)
  await expectCode(
    t,
    tarBytes([{ name: 'etc', type: '2', linkname: '/etc' }, { name: 'etc/passwd', data: 'root::0:0' }]),
    'UNSAFE_PATH',
    /etc\/passwd.*symlink 'etc'/,
  )
  // the same through a compressed archive and a pax path
  await expectCode(t, gzipSync(tarBytes([{ name: 'ok', pax: { path: 'x/../../y' }, data: 'x' }])), 'UNSAFE_PATH', /x\/\.\.\/\.\.\/y/)
})

test('tar source - names that are not UTF-8 are BAD_NAME', async (t) => {
  await expectCode(t, tarBytes([{ name: Buffer.from([0x66, 0xff, 0x67]), data: 'x' }]), 'BAD_NAME', /f\\xffg/)
  await expectCode(t, tarBytes([{ name: 'ok', pax: { path: Buffer.from([0x70, 0xc3]) }, data: 'x' }]), 'BAD_NAME', /p\\xc3/)
  await expectCode(t, tarBytes([{ name: 's', type: '2', linkname: Buffer.from([0xfe]) }]), 'BAD_NAME', /\\xfe/)
})

test('tar source - broken archives are BAD_ARCHIVE', async (t) => {
  const good = tarBytes([{ name: 'first', data: 'x' }, { name: 'second', data: randomBytes(3000) }])
  const gz = gzipSync(good)
  const zst = zstd(good)
  await expectCode(t, good.subarray(0, 512 * 3 + 100), 'BAD_ARCHIVE', /truncated at entry 2 'second'/)
  await expectCode(t, tarBytes([{ name: 'f', data: 'x' }], { end: false }), 'BAD_ARCHIVE', /truncated after entry 1 'f'/)
  await expectCode(t, gz.subarray(0, gz.length >> 1), 'BAD_ARCHIVE', /corrupt or truncated/)
  await expectCode(t, gz.subarray(0, gz.length - 4), 'BAD_ARCHIVE', /corrupt or truncated/) // trailer cut
  await expectCode(t, zst.subarray(0, zst.length >> 1), 'BAD_ARCHIVE', /corrupt or truncated/)
  const corrupt = Buffer.from(good)
  corrupt[512 * 2 + 10] ^= 0x40 // inside the second header
  await expectCode(t, corrupt, 'BAD_ARCHIVE', /corrupt header after entry 1 'first'/)
  await expectCode(t, randomBytes(4096), 'BAD_ARCHIVE', /not a tar archive/)
  await expectCode(t, tarBytes([{ name: 'h', type: '1', linkname: 'nowhere' }]), 'BAD_ARCHIVE', /hard link 'h' points to 'nowhere'/)
  await expectCode(t, tarBytes([{ name: 'f', data: 'x', pax: { size: 'abc' } }]), 'BAD_ARCHIVE', /invalid pax size/)
})

test('tar source - sparse members are UNSUPPORTED rather than silently wrong', async (t) => {
  await expectCode(t, tarBytes([{ name: 's', type: 'S', data: 'x' }]), 'UNSUPPORTED', /sparse/)
  await expectCode(t, tarBytes([{ name: 's', pax: { 'GNU.sparse.major': '1' }, data: 'x' }]), 'UNSUPPORTED', /sparse/)
})
