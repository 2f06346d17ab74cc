import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { ZosError } from '../../../src/core/errors.js'
import { openSource } from '../../../src/flist/source/open.js'
import { tempDir } from '../../helpers/tmp.js'
import { at, collect, run, sha256, tarBytes } from './fixtures.js'

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => ZosError.is(err) && err.code === code
}

test('open - a directory is a tree source', async (t) => {
  const root = await tempDir(t)
  writeFileSync(join(root, 'f'), 'x')
  const source = await openSource(root, { warn: () => {} })
  assert.match(source.description, /^directory /)
  assert.equal(at(await collect(source), 'f').data?.toString(), 'x')
  assert.equal(source.imageConfig(), undefined)
  await source.close()
})

test('open - a root filesystem tar with its own manifest.json stays a tar', async (t) => {
  const root = await tempDir(t)
  writeFileSync(join(root, 'rootfs.tar'), tarBytes([{ name: 'manifest.json', data: '{"name":"app"}' }, { name: 'oci-layout.txt', data: '' }]))
  const source = await openSource(join(root, 'rootfs.tar'))
  assert.match(source.description, /^tar /)
  assert.equal(at(await collect(source), 'manifest.json').data?.toString(), '{"name":"app"}')
  await source.close()
})

test('open - a gzip docker save tarball on stdin is an image', async (t) => {
  const root = await tempDir(t)
  const layer = tarBytes([{ name: 'hello', data: 'world' }])
  const cfg = Buffer.from(JSON.stringify({ os: 'linux', architecture: 'amd64', config: { Cmd: ['/hello'] }, rootfs: { diff_ids: [`sha256:${sha256(layer)}`] } }))
  const save = join(root, 'save')
  mkdirSync(join(save, 'l'), { recursive: true })
  writeFileSync(join(save, 'l', 'layer.tar'), layer)
  writeFileSync(join(save, `${sha256(cfg)}.json`), cfg)
  writeFileSync(join(save, 'manifest.json'), JSON.stringify([{ Config: `${sha256(cfg)}.json`, RepoTags: null, Layers: ['l/layer.tar'] }]))
  const tar = run('tar', ['-cf', '-', '-C', save, '.'])
  const source = await openSource('-', { stdin: Readable.from([gzipSync(tar)]) })
  assert.match(source.description, /^image stdin/)
  assert.equal(at(await collect(source), 'hello').data?.toString(), 'world')
  assert.deepEqual(source.imageConfig(), { cmd: ['/hello'] })
  await source.close()
})

test('open - an empty file is an empty archive; odd inputs are refused with a code', async (t) => {
  const root = await tempDir(t)
  writeFileSync(join(root, 'empty.tar'), '')
  const empty = await openSource(join(root, 'empty.tar'))
  assert.equal((await collect(empty)).size, 0)
  await empty.close()

  await assert.rejects(openSource(join(root, 'missing')), isCode('NOT_FOUND'))
  await assert.rejects(openSource('/dev/null'), isCode('INVALID_ARGUMENT'))
  writeFileSync(join(root, 'x.tar.xz'), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]))
  await assert.rejects(openSource(join(root, 'x.tar.xz')), (err: unknown) => isCode('UNSUPPORTED')(err) && /xz -dc/.test(String(err)))
})

test('open - close() removes the temp files of a compressed archive and is safe twice', async (t) => {
  const root = await tempDir(t)
  const scratchRoot = join(root, 'tmp')
  mkdirSync(scratchRoot)
  writeFileSync(join(root, 'a.tgz'), gzipSync(tarBytes([{ name: 'f', data: 'x' }])))
  const saved = process.env.TMPDIR
  process.env.TMPDIR = scratchRoot // os.tmpdir() reads it on every call
  t.after(() => {
    if (saved === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = saved
  })
  const source = await openSource(join(root, 'a.tgz'))
  assert.equal(readdirSync(scratchRoot).length, 1)
  assert.equal(at(await collect(source), 'f').data?.toString(), 'x')
  await source.close()
  await source.close()
  assert.deepEqual(readdirSync(scratchRoot), [])
})
