// Server-side conversion on a real hub: tar (plain, gzip, zstd) and an OCI image (docker save) become signed
// flists with polled progress; refusals (not an archive, a broken archive, over quota) leave nothing behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { compress as zstd } from 'zstd-napi'
import { ChunkFetcher } from '../../src/flist/fetch.js'
import { FlistReader } from '../../src/flist/reader.js'
import { sniffArchive } from '../../src/hub/convert.js'
import { convertOnHub } from '../../src/hub/push.js'
import { HttpStore } from '../../src/store/http.js'
import { tempDir } from '../helpers/tmp.js'
import { bytes, census, newKey, nsOf, rawRequest, startTestHub, type TestHub } from './helpers.js'

const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A root filesystem as a plain tar (made by GNU tar). */
async function rootfsTar(dir: string): Promise<Buffer> {
  const root = join(dir, 'rootfs')
  await mkdir(join(root, 'bin'), { recursive: true })
  await mkdir(join(root, 'etc'), { recursive: true })
  await writeFile(join(root, 'bin', 'app'), bytes(11, 600_000), { mode: 0o755 })
  await writeFile(join(root, 'etc', 'hostname'), 'converted\n')
  execFileSync('tar', ['-cf', join(dir, 'rootfs.tar'), '-C', root, '.'])
  return readFile(join(dir, 'rootfs.tar'))
}

/** `docker save` layout: manifest.json, <config>.json, <id>/layer.tar (two layers, the second adds a file). */
async function dockerSave(dir: string, base: Buffer): Promise<string> {
  const img = join(dir, 'image')
  const extra = join(dir, 'layer2')
  await mkdir(join(extra, 'srv'), { recursive: true })
  await writeFile(join(extra, 'srv', 'index.html'), '<p>from layer two</p>\n')
  execFileSync('tar', ['-cf', join(dir, 'layer2.tar'), '-C', extra, '.'])
  const layers = [base, await readFile(join(dir, 'layer2.tar'))]
  const cfg = Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/bin'], WorkingDir: '/srv' },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${hex(l)}`) },
  }))
  const names = layers.map((_, i) => `l${i}/layer.tar`)
  for (const [i, l] of layers.entries()) {
    await mkdir(join(img, `l${i}`), { recursive: true })
    await writeFile(join(img, names[i]!), l)
  }
  await writeFile(join(img, `${hex(cfg)}.json`), cfg)
  await writeFile(join(img, 'manifest.json'), JSON.stringify([{ Config: `${hex(cfg)}.json`, RepoTags: ['app:1'], Layers: names }]))
  execFileSync('tar', ['-cf', join(dir, 'image.tar'), '-C', img, '.'])
  // The same image as an OCI image layout archive (what `skopeo copy … oci-archive:` writes).
  const oci = join(dir, 'oci')
  await mkdir(join(oci, 'blobs', 'sha256'), { recursive: true })
  const blob = async (b: Buffer, mediaType: string): Promise<object> => {
    await writeFile(join(oci, 'blobs', 'sha256', hex(b)), b)
    return { mediaType, digest: `sha256:${hex(b)}`, size: b.length }
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: await blob(cfg, 'application/vnd.oci.image.config.v1+json'),
    layers: [await blob(layers[0]!, 'application/vnd.oci.image.layer.v1.tar'), await blob(gzipSync(layers[1]!), 'application/vnd.oci.image.layer.v1.tar+gzip')],
  }))
  const top = await blob(manifest, 'application/vnd.oci.image.manifest.v1+json')
  await writeFile(join(oci, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(join(oci, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [top] }))
  execFileSync('tar', ['-cf', join(dir, 'oci.tar'), '-C', oci, '.'])
  return join(dir, 'image.tar')
}

async function readFrom(hub: TestHub, ns: string, name: string, tag: string, path: string, dir: string): Promise<{ data: Buffer; tags: Record<string, string> }> {
  const got = await hub.client().download(ns, name, { tag }, dir)
  const reader = FlistReader.open(got.path)
  const store = new HttpStore(hub.url)
  try {
    const node = reader.resolve(path)
    return { data: Buffer.concat(await new ChunkFetcher(reader, store).fetch(reader.extents(node.ino).map((e) => e.chunk))), tags: reader.tags() }
  } finally {
    reader.close()
    await store.close()
  }
}

test('convert - sniffing: tar, gzip and zstd archives are recognised, anything else is BAD_ARCHIVE', () => {
  const tar = execFileSync('tar', ['-cf', '-', '--files-from', '/dev/null'])
  assert.equal(sniffArchive(tar), 'tar')
  assert.equal(sniffArchive(gzipSync(tar)), 'gzip')
  assert.equal(sniffArchive(zstd(tar)), 'zstd')
  for (const bad of [Buffer.from('hello'), Buffer.alloc(600, 7), gzipSync(Buffer.alloc(1024, 65)), Buffer.from('SQLite format 3\0' + 'x'.repeat(600))]) {
    assert.throws(() => sniffArchive(bad), { code: 'BAD_ARCHIVE' })
  }
})

test('convert - tar, tar.gz and tar.zst become flists signed by the hub, with progress; a second run adds no packs', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const client = hub.client(key)
  const ns = nsOf(key)
  const dir = await tempDir(t)
  const tar = await rootfsTar(dir)
  await writeFile(join(dir, 'rootfs.tar.gz'), gzipSync(tar))
  await writeFile(join(dir, 'rootfs.tar.zst'), zstd(tar))
  const phases = new Set<string>()
  const r = await convertOnHub(client, join(dir, 'rootfs.tar'), { ns, name: 'root', tag: 'plain', onProgress: (p) => phases.add(p.phase) })
  assert.ok(phases.has('upload') && phases.has('converting'))
  assert.equal(r.version.converted, true)
  assert.deepEqual(r.version.signers, [hub.server.hub.key.address])
  assert.equal(r.version.uploader, key.address)
  const job = await client.job(r.job)
  assert.equal(job.state, 'done')
  assert.equal(job.digest, r.version.digest)
  const { data } = await readFrom(hub, ns, 'root', 'plain', 'bin/app', join(dir, 'dl'))
  assert.deepEqual(data, bytes(11, 600_000))
  const packs = (await census(hub)).packs.length
  const gz = await convertOnHub(client, join(dir, 'rootfs.tar.gz'), { ns, name: 'root', tag: 'gz' })
  const zst = await convertOnHub(client, join(dir, 'rootfs.tar.zst'), { ns, name: 'root', tag: 'zst' })
  assert.equal(gz.version.root, r.version.root, 'same tree, same root')
  assert.equal(zst.version.root, r.version.root)
  assert.equal((await census(hub)).packs.length, packs, 'the chunks were already on the hub')
  assert.deepEqual((await client.detail(ns, 'root')).tags.map((x) => x.tag), ['gz', 'latest', 'plain', 'zst'])
  assert.deepEqual((await census(hub)).jobs, [], 'job scratch is removed')
})

test('convert - an OCI image (docker save, OCI layout archive) keeps its layers merged and its configuration as tags', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const ns = nsOf(key)
  const dir = await tempDir(t)
  const image = await dockerSave(dir, await rootfsTar(dir))
  const r = await convertOnHub(hub.client(key), image, { ns, name: 'app', tag: '1' })
  assert.equal(r.version.files, 3)
  const { data, tags } = await readFrom(hub, ns, 'app', '1', 'srv/index.html', join(dir, 'dl'))
  assert.equal(data.toString(), '<p>from layer two</p>\n')
  assert.equal(tags.entrypoint, '["/bin/app"]')
  assert.equal(tags['working-dir'], '/srv')
  const oci = await convertOnHub(hub.client(key), join(dir, 'oci.tar'), { ns, name: 'app', tag: 'oci' })
  assert.equal(oci.version.root, r.version.root, 'the OCI layout archive of the same image gives the same flist')
})

test('convert - refusals: not an archive (at once), a broken archive and over quota (failed job); nothing left behind', async (t) => {
  const hub = await startTestHub(t, { quota: 300_000 })
  const key = newKey()
  const client = hub.client(key)
  const ns = nsOf(key)
  const dir = await tempDir(t)
  const clean = await census(hub)
  const notArchive = await rawRequest(hub.url, 'POST', `/api/v1/convert/${ns}/x?tag=1`, { key, body: Buffer.from('just some text, not a tar'.repeat(40)) })
  assert.equal(notArchive.status, 422)
  assert.equal(notArchive.json.error?.code, 'BAD_ARCHIVE')
  assert.match(notArchive.json.error!.message, /not an archive/)
  const foreign = await rawRequest(hub.url, 'POST', `/api/v1/convert/${nsOf(newKey())}/x?tag=1`, { key, body: execFileSync('tar', ['-cf', '-', '--files-from', '/dev/null']) })
  assert.equal(foreign.status, 403)
  assert.deepEqual(await census(hub), clean)

  // A gzip stream that starts well and is cut short: accepted, then the job fails and cleans up.
  const tar = await rootfsTar(dir)
  const gz = gzipSync(tar)
  await writeFile(join(dir, 'cut.tar.gz'), gz.subarray(0, Math.floor(gz.length / 2)))
  await assert.rejects(convertOnHub(client, join(dir, 'cut.tar.gz'), { ns, name: 'cut' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'BAD_ARCHIVE')
    assert.match(err.message, /conversion .* failed/)
    return true
  })
  assert.deepEqual(await census(hub), clean)

  // 600 kB of incompressible content does not fit a 300 kB quota.
  await writeFile(join(dir, 'big.tar'), tar)
  await assert.rejects(convertOnHub(client, join(dir, 'big.tar'), { ns, name: 'big' }), { code: 'HUB_QUOTA' })
  assert.deepEqual(await census(hub), clean)
  const failed = hub.server.hub.db.db.prepare("SELECT count(*) AS n FROM jobs WHERE state = 'failed'").get() as { n: number }
  assert.equal(failed.n, 2, 'failed jobs keep their record, with the reason')
})
