import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { compress as zstd } from 'zstd-napi'
import { ZosError } from '../../../src/core/errors.js'
import { openSource, type OpenOptions } from '../../../src/flist/source/open.js'
import type { Source } from '../../../src/flist/source/types.js'
import { tempDir } from '../../helpers/tmp.js'
import { at, collect, localReads, run, sha256, tarBytes } from './fixtures.js'

// Three layers: plain, gzip, zstd. Layer 2 whites out gone.txt, makes opq/ opaque and replaces bin/tool (whose hard
// link keep-link must keep the old content); layer 3 adds a file with an xattr, a symlink and aufs metadata to skip.
const LAYERS = [
  tarBytes([
    { name: './', type: '5', mode: 0o755 },
    { name: 'etc/', type: '5' },
    { name: 'etc/a', data: 'one' },
    { name: 'gone.txt', data: 'bye' },
    { name: 'opq/', type: '5' },
    { name: 'opq/x', data: 'x' },
    { name: 'opq/sub/y', data: 'y' },
    { name: 'bin/', type: '5' },
    { name: 'bin/tool', data: 'tool v1', mode: 0o755 },
    { name: 'keep-link', type: '1', linkname: 'bin/tool' },
  ]),
  tarBytes([
    { name: 'opq/new', data: 'new' }, // before the opaque marker in tar order: must survive it
    { name: '.wh.gone.txt' },
    { name: 'opq/', type: '5', mode: 0o700 },
    { name: 'opq/.wh..wh..opq' },
    { name: 'etc/a', data: 'two' },
    { name: 'bin/tool', data: 'tool v2', mode: 0o755 },
  ]),
  tarBytes([
    { name: 'etc/b', data: 'three', pax: { 'SCHILY.xattr.user.k': 'v' } },
    { name: 'lnk', type: '2', linkname: 'etc/a' },
    { name: '.wh..wh.plnk/', type: '5' },
    { name: '.wh..wh.plnk/1.2', data: 'aufs' },
  ]),
]
const STORED = [LAYERS[0] as Buffer, gzipSync(LAYERS[1] as Buffer), zstd(LAYERS[2] as Buffer)]

function config(arch = 'amd64'): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: {
        Entrypoint: ['/bin/tool'],
        Cmd: ['--help'],
        Env: ['PATH=/bin'],
        WorkingDir: '/etc',
        User: '1000:1000',
        ExposedPorts: { '80/tcp': {}, '53/udp': {} },
        Labels: { maintainer: 'zos' },
      },
      rootfs: { type: 'layers', diff_ids: LAYERS.map((l) => `sha256:${sha256(l)}`) },
    }),
  )
}

function descriptor(mediaType: string, blob: Buffer, extra: object = {}): object {
  return { mediaType, digest: `sha256:${sha256(blob)}`, size: blob.length, ...extra }
}

function putBlob(dir: string, blob: Buffer): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true })
  writeFileSync(join(dir, 'blobs', 'sha256', sha256(blob)), blob)
}

/** An image manifest (its blobs written into `dir`) for the standard layers with the given config. */
function manifest(dir: string, cfg: Buffer): Buffer {
  putBlob(dir, cfg)
  for (const blob of STORED) putBlob(dir, blob)
  const types = ['tar', 'tar+gzip', 'tar+zstd']
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: descriptor('application/vnd.oci.image.config.v1+json', cfg),
      layers: STORED.map((b, i) => descriptor(`application/vnd.oci.image.layer.v1.${types[i] ?? 'tar'}`, b)),
    }),
  )
  putBlob(dir, m)
  return m
}

function ociLayout(dir: string, top: object[]): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: top }))
}

function singleImage(dir: string): void {
  mkdirSync(dir, { recursive: true })
  ociLayout(dir, [descriptor('application/vnd.oci.image.manifest.v1+json', manifest(dir, config()), { annotations: { 'org.opencontainers.image.ref.name': 'latest' } })])
}

/**
 * `docker save` output in one tar: manifest.json plus, in the classic layout, <id>/layer.tar and <config hex>.json,
 * or, with `blobNames`, every file under blobs/sha256/ (what Docker ≥ 25 and podman name them).
 */
function dockerSave(dir: string, out: string, options: { blobNames?: boolean; mutate?: (layers: Buffer[]) => void } = {}): void {
  mkdirSync(dir, { recursive: true })
  const layers = LAYERS.map((l) => Buffer.from(l))
  options.mutate?.(layers)
  const cfg = config()
  const write = (name: string, data: Buffer): string => {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), data)
    return name
  }
  const blob = (data: Buffer, classic: string): string => write(options.blobNames ? `blobs/sha256/${sha256(data)}` : classic, data)
  const names = layers.map((l, i) => blob(options.blobNames ? (LAYERS[i] as Buffer) : l, `id${i}/layer.tar`))
  if (options.blobNames) layers.forEach((l, i) => writeFileSync(join(dir, names[i] as string), l)) // content changed, name kept
  const configName = blob(cfg, `${sha256(cfg)}.json`)
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: ['test:latest'], Layers: names }]))
  run('tar', ['-cf', out, '-C', dir, '.'])
}

async function checkMerged(spec: string, options: OpenOptions = {}): Promise<void> {
  const source = await openSource(spec, options)
  try {
    await checkEntries(source)
  } finally {
    await source.close()
  }
}

async function checkEntries(source: Source): Promise<void> {
  assert.match(source.description, /linux\/amd64, 3 layers/)
  const before = localReads
  const entries = await collect(source)
  assert.equal(localReads - before, 5, 'every file content is cross-checked through FileContent.local')
  assert.deepEqual([...entries.keys()].sort(), ['', 'bin', 'bin/tool', 'etc', 'etc/a', 'etc/b', 'keep-link', 'lnk', 'opq', 'opq/new'])
  assert.equal(at(entries, 'etc/a').data?.toString(), 'two')
  assert.equal(at(entries, 'bin/tool').data?.toString(), 'tool v2')
  assert.equal(at(entries, 'keep-link').entry.kind, 'file')
  assert.equal(at(entries, 'keep-link').data?.toString(), 'tool v1')
  assert.equal(at(entries, 'opq').entry.mode, 0o700)
  assert.equal(at(entries, 'opq/new').data?.toString(), 'new')
  assert.deepEqual(at(entries, 'etc/b').entry.xattrs?.get('user.k'), Buffer.from('v'))
  assert.equal(at(entries, 'lnk').entry.target, 'etc/a')
  assert.deepEqual(source.imageConfig(), {
    entrypoint: ['/bin/tool'],
    cmd: ['--help'],
    env: ['PATH=/bin'],
    workingDir: '/etc',
    user: '1000:1000',
    exposedPorts: ['80/tcp', '53/udp'],
    labels: { maintainer: 'zos' },
  })
}

async function expectCode(spec: string, code: string, message: RegExp, options: OpenOptions = {}): Promise<void> {
  const attempt = async (): Promise<void> => {
    const source = await openSource(spec, options)
    try {
      await collect(source)
    } finally {
      await source.close()
    }
  }
  await assert.rejects(attempt(), (err: unknown) => {
    assert.ok(ZosError.is(err), String(err))
    assert.equal(err.code, code, err.message)
    assert.match(err.message, message)
    return true
  })
}

test('oci source - image layout directory: layers, whiteouts, opaque dirs, hard links, config', async (t) => {
  const dir = join(await tempDir(t), 'layout')
  singleImage(dir)
  await checkMerged(dir)
})

test('oci source - tarball of an image layout, plain and gzip', async (t) => {
  const root = await tempDir(t)
  singleImage(join(root, 'layout'))
  run('tar', ['-cf', join(root, 'oci.tar'), '-C', join(root, 'layout'), '.'])
  run('tar', ['-czf', join(root, 'oci.tar.gz'), '-C', join(root, 'layout'), '.'])
  await checkMerged(join(root, 'oci.tar'))
  await checkMerged(join(root, 'oci.tar.gz'))
})

test('oci source - docker save tarball, classic names and blobs/sha256 names', async (t) => {
  const root = await tempDir(t)
  dockerSave(join(root, 'save'), join(root, 'image.tar'))
  await checkMerged(join(root, 'image.tar'))
  dockerSave(join(root, 'save2'), join(root, 'image2.tar'), { blobNames: true })
  await checkMerged(join(root, 'image2.tar'))
})

test('oci source - a blob that does not match its digest is BAD_ARCHIVE', async (t) => {
  const root = await tempDir(t)
  const dir = join(root, 'layout')
  singleImage(dir)
  const victim = join(dir, 'blobs', 'sha256', sha256(STORED[1] as Buffer))
  const bytes = readFileSync(victim)
  bytes[bytes.length - 12] ^= 1 // inside the deflate data or its CRC: still the same size
  writeFileSync(victim, bytes)
  await expectCode(dir, 'BAD_ARCHIVE', /layer 2 .*(digest mismatch|corrupt)/)

  const flip = (layers: Buffer[]): void => {
    const l = layers[0] as Buffer
    l[520] ^= 1 // first file's content: the tar still parses, only the digest tells
  }
  dockerSave(join(root, 'save'), join(root, 'image.tar'), { mutate: flip })
  await expectCode(join(root, 'image.tar'), 'BAD_ARCHIVE', /layer 1 .*diff_id.*digest mismatch/)
  dockerSave(join(root, 'save2'), join(root, 'image2.tar'), { blobNames: true, mutate: flip })
  await expectCode(join(root, 'image2.tar'), 'BAD_ARCHIVE', /layer 1 .*blob digest mismatch/)
})

test('oci source - multi-platform index: picks linux/amd64, or the platform asked for, else lists what is there', async (t) => {
  const root = await tempDir(t)
  const image = (dir: string, platforms: Array<[string, string?]>): void => {
    mkdirSync(dir, { recursive: true })
    const list = platforms.map(([arch, variant]) =>
      descriptor('application/vnd.oci.image.manifest.v1+json', manifest(dir, config(arch)), {
        platform: { os: 'linux', architecture: arch, ...(variant === undefined ? {} : { variant }) },
      }),
    )
    const attestation = descriptor('application/vnd.oci.image.manifest.v1+json', manifest(dir, config('none')), {
      platform: { os: 'unknown', architecture: 'unknown' },
    })
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...list, attestation] }))
    putBlob(dir, index)
    ociLayout(dir, [descriptor('application/vnd.oci.image.index.v1+json', index)])
  }
  image(join(root, 'multi'), [['arm64', 'v8'], ['amd64']])
  await checkMerged(join(root, 'multi'))
  const arm = await openSource(join(root, 'multi'), { platform: 'linux/arm64' })
  assert.match(arm.description, /linux\/arm64\/v8/)
  await arm.close()

  image(join(root, 'arm-only'), [['arm64'], ['arm', 'v7']])
  await expectCode(join(root, 'arm-only'), 'INVALID_ARGUMENT', /linux\/arm64, linux\/arm\/v7/)
})

test('oci source - a missing layer blob is BAD_ARCHIVE naming it', async (t) => {
  const dir = join(await tempDir(t), 'layout')
  singleImage(dir)
  const hex = sha256(STORED[2] as Buffer)
  run('rm', [join(dir, 'blobs', 'sha256', hex)])
  await expectCode(dir, 'BAD_ARCHIVE', new RegExp(`${hex} is missing`))
})
