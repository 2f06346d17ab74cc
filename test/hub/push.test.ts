// `pushFlist` / `pushSource` against a real hub: only what the hub lacks moves, rewritten metadata keeps its
// seal and signatures, encrypted chunks are verified when their flist arrives, and hub:// references resolve.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { sha256 } from '../../src/flist/codec.js'
import { ChunkFetcher } from '../../src/flist/fetch.js'
import { FlistReader } from '../../src/flist/reader.js'
import { verify } from '../../src/flist/verify.js'
import { pushFlist, pushSource } from '../../src/hub/push.js'
import { resolveFlistArg } from '../../src/hub/resolve.js'
import { encodePackBody, type PackEntry } from '../../src/hub/wire.js'
import { DirStore, packPath } from '../../src/store/dir.js'
import { HttpStore } from '../../src/store/http.js'
import { tempDir } from '../helpers/tmp.js'
import { bytes, census, newKey, nsOf, packTree, rawRequest, startTestHub, tree } from './helpers.js'

function packsOfFile(file: string): Map<string, number> {
  const reader = FlistReader.open(file)
  try {
    const out = new Map<string, number>()
    for (const c of reader.allChunks()) out.set(c.pack, (out.get(c.pack) ?? 0) + 1)
    return out
  } finally {
    reader.close()
  }
}

async function readAll(file: string, storeUrl: string, path: string): Promise<Buffer> {
  const reader = FlistReader.open(file)
  const store = new HttpStore(storeUrl)
  try {
    const node = reader.resolve(path)
    return Buffer.concat(await new ChunkFetcher(reader, store).fetch(reader.extents(node.ino).map((e) => e.chunk)))
  } finally {
    reader.close()
    await store.close()
  }
}


/** A temporary $ZOS_HOME for this test (hub:// references are downloaded below it), restored afterwards. */
async function tempHome(t: TestContext): Promise<string> {
  const prev = process.env.ZOS_HOME
  const home = await tempDir(t)
  process.env.ZOS_HOME = home
  t.after(() => {
    if (prev === undefined) delete process.env.ZOS_HOME
    else process.env.ZOS_HOME = prev
  })
  return home
}

test('push - a second version packed into the same store moves only its new packs', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const dir = await tempDir(t)
  const client = hub.client(key)
  const v1 = await packTree(t, dir, 'v1', tree(1), { signers: [key] })
  const r1 = await pushFlist(client, v1.file, { name: 'app', tag: 'v1', store: v1.store })
  const packs1 = packsOfFile(v1.file)
  assert.equal(r1.uploadedPacks, packs1.size)
  assert.equal(r1.wholePacks, packs1.size)
  assert.equal(r1.ns, nsOf(key))
  assert.deepEqual(r1.version.tags, ['latest', 'v1'])

  const v2 = await packTree(t, dir, 'v2', tree(2, { extra: bytes(7, 300_000) }), { signers: [key], store: v1.store })
  const packs2 = packsOfFile(v2.file)
  const fresh = [...packs2.keys()].filter((p) => !packs1.has(p))
  assert.ok(fresh.length >= 1 && fresh.length < packs2.size, 'v2 shares packs with v1')
  const freshBytes = (await Promise.all(fresh.map((p) => v1.store.statPack(p)))).reduce((n: number, s) => n + s!, 0)
  const before = await census(hub)
  const r2 = await pushFlist(client, v2.file, { name: 'app', tag: 'v2', store: v1.store })
  assert.equal(r2.uploadedPacks, fresh.length)
  assert.equal(r2.uploadedBytes, freshBytes, 'exactly the bytes of the new packs moved')
  assert.equal(r2.copiedChunks, 0)
  assert.equal(r2.presentChunks, [...packs2].filter(([p]) => packs1.has(p)).reduce((n, [, c]) => n + c, 0))
  assert.equal(r2.previous, undefined)
  assert.equal(r2.version.root, v2.root)
  assert.equal(r2.version.digest, sha256(await readFile(v2.file)).toString('hex'), 'metadata sent as it is')
  assert.equal((await census(hub)).packs.length, before.packs.length + fresh.length)
  assert.equal((await client.version(nsOf(key), 'app', 'latest')).root, v2.root)

  // Pushing again moves nothing but the metadata, and the tag does not change.
  const r3 = await pushFlist(client, v2.file, { name: 'app', tag: 'v2', store: v1.store })
  assert.equal(r3.uploadedPacks, 0)
  assert.equal(r3.previous, r2.version.digest)
  assert.equal((await census(hub)).versions, 2)
})

test('push - the metadata goes before the packs and the hub waits for them; a refused pack fails the push and ends the wait', async (t) => {
  const key = newKey()
  const dir = await tempDir(t)
  const v1 = await packTree(t, dir, 'v1', tree(1), { signers: [key] })
  const hub = await startTestHub(t)
  const client = hub.client(key)
  const order: string[] = []
  const uploadFlist = client.uploadFlist.bind(client)
  const waits: (number | undefined)[] = []
  client.uploadFlist = (ns, name, file, options) => {
    order.push('metadata')
    waits.push(options.waitS)
    return uploadFlist(ns, name, file, options)
  }
  const putPack = client.putPack.bind(client)
  client.putPack = (...args) => {
    order.push('pack')
    return putPack(...args)
  }
  const r = await pushFlist(client, v1.file, { name: 'app', tag: 'v1', store: v1.store })
  assert.equal(r.version.root, v1.root)
  assert.deepEqual(order, ['metadata', ...Array.from({ length: r.uploadedPacks }, () => 'pack')], 'the metadata first, once')
  assert.ok(waits[0]! > 0, 'asking the hub to wait for the packs')

  // A hub whose quota is too small for the packs: the push fails with the refusal at once (it does not wait for
  // the hub's wait on the metadata to run out), and the hub keeps nothing.
  const small = await startTestHub(t, { quota: 1000 })
  const t0 = performance.now()
  await assert.rejects(pushFlist(small.client(key), v1.file, { name: 'app', tag: 'v1', store: v1.store }), { code: 'HUB_QUOTA' })
  assert.ok(performance.now() - t0 < 10_000)
  // The refused upload's files go once the hub has seen the refusal: its temp files, and the metadata file it may
  // have placed already while waiting for the packs.
  const busy = (c: Awaited<ReturnType<typeof census>>): boolean => c.tmp.length > 0 || c.flists.length > 0
  for (let i = 0; i < 100 && busy(await census(small)); i++) await new Promise((r) => setTimeout(r, 20))
  const left = await census(small)
  assert.deepEqual([left.tmp, left.packs, left.flists, left.versions], [[], [], [], 0])
})

test('push - metadata refused for want of packs (a hub that does not wait for them) is sent again once they are stored', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const dir = await tempDir(t)
  const client = hub.client(key)
  const v1 = await packTree(t, dir, 'v1', tree(1), { signers: [key] })
  // A client whose pack uploads say they have begun but start only once the hub has answered the metadata, and
  // whose metadata uploads do not ask the hub to wait (as with a hub that does not know `wait`).
  let answered!: () => void
  const firstAnswer = new Promise<void>((resolve) => (answered = resolve))
  const putPack = client.putPack.bind(client)
  client.putPack = async (id, entries, data, onSent, onStarted) => {
    onStarted?.()
    await firstAnswer
    return putPack(id, entries, data, onSent)
  }
  const uploadFlist = client.uploadFlist.bind(client)
  const sent: string[] = []
  const waited: (number | undefined)[] = []
  client.uploadFlist = async (ns, name, file, { waitS, ...options }) => {
    waited.push(waitS)
    try {
      const a = await uploadFlist(ns, name, file, options)
      sent.push('ok')
      return a
    } catch (err) {
      sent.push((err as { code?: string }).code ?? 'error')
      throw err
    } finally {
      answered()
    }
  }
  const r = await pushFlist(client, v1.file, { name: 'app', tag: 'v1', store: v1.store })
  // Sent before the packs (asking the hub to wait), refused; then once they were all on their way (refused or
  // not, depending on whether the hub saw the last one start); then once they were stored.
  assert.equal(sent[0], 'CHUNK_MISSING')
  assert.equal(sent.at(-1), 'ok')
  assert.ok(sent.length === 2 || sent.length === 3, sent.join())
  assert.ok(waited[0]! > 0, 'the first metadata upload asks the hub to wait for the packs')
  assert.equal(r.version.root, v1.root)
  assert.equal(r.uploadedPacks, packsOfFile(v1.file).size)
})

test('push - packed elsewhere: chunks the hub has are reused, only missing ones are copied; seal and signature hold', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const client = hub.client(key)
  const v1 = await packTree(t, await tempDir(t), 'v1', tree(1), { signers: [key] })
  await pushFlist(client, v1.file, { name: 'app', tag: 'v1', store: v1.store })
  // v2 in a brand-new store: every pack is new to the hub, but most chunks are not.
  const extra = bytes(9, 200_000)
  const v2 = await packTree(t, await tempDir(t), 'v2', tree(2, { extra }), { signers: [key] })
  const r = await pushFlist(client, v2.file, { name: 'app', tag: 'v2', store: v2.store })
  assert.equal(r.wholePacks, 0)
  assert.ok(r.reusedChunks > 10, `reused ${r.reusedChunks}`)
  assert.ok(r.copiedChunks >= 1 && r.copiedChunks < 10, `copied ${r.copiedChunks}`)
  assert.ok(r.uploadedBytes < extra.length + 4096 && r.uploadedBytes >= extra.length, `uploaded ${r.uploadedBytes} for ${extra.length} new bytes`)
  assert.equal(r.version.root, v2.root, 'the root does not cover chunk locations')
  assert.notEqual(r.version.digest, sha256(await readFile(v2.file)).toString('hex'), 'the metadata was pointed at the hub copies')
  assert.deepEqual(r.version.signers, [key.address])

  await tempHome(t) // resolving downloads into $ZOS_HOME/hub-cache, never the user's ~/.zos
  const got = await resolveFlistArg(`hub://${new URL(hub.url).host}/${nsOf(key)}/app:v2`, undefined)
  assert.equal(got.store, hub.url)
  const reader = FlistReader.open(got.file, { trust: [{ describe: key.address, matches: (pk) => Buffer.from(pk).equals(key.publicKey) }] })
  const store = new HttpStore(hub.url)
  try {
    const result = await verify(reader, store)
    assert.equal(result.ok, true)
    assert.equal(result.chunks, reader.allChunks().length)
  } finally {
    reader.close()
    await store.close()
  }
  assert.deepEqual(await readAll(got.file, hub.url, 'lib/new.bin'), extra)
  assert.deepEqual(await readAll(got.file, hub.url, 'lib/big.so'), bytes(2, 1_200_000))
})

test('push - encrypted flists: the hub cannot decode chunks until the metadata arrives, then checks every one', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const client = hub.client(key)
  const dir = await tempDir(t)
  const enc = await packTree(t, dir, 'enc', tree(1), { signers: [key], encrypt: true })
  const r = await pushFlist(client, enc.file, { name: 'secret', store: enc.store })
  assert.equal(r.version.encrypted, true)
  assert.equal(r.verifiedNow, enc.chunks, 'every encrypted chunk was decoded at commit')
  assert.deepEqual(await readAll(enc.file, hub.url, 'bin/tool'), bytes(1, 700_000))

  // A tampered encrypted chunk is accepted with its pack (the hub cannot tell) but the metadata is refused.
  const ns = nsOf(key)
  const bad = await packTree(t, await tempDir(t), 'bad', tree(3), { signers: [key], encrypt: true })
  const reader = FlistReader.open(bad.file)
  const chunks = reader.allChunks()
  reader.close()
  const packId = chunks[0]!.pack
  const data = Buffer.from(await readFile(packPath(bad.store.root, packId)))
  const victim = chunks.find((c) => c.pack === packId)!
  data[victim.offset + 20]! ^= 0x01
  const newId = sha256(data).toString('hex')
  const entries: PackEntry[] = chunks.filter((c) => c.pack === packId).map((c) => ({ sid: c.sid, offset: c.offset, length: c.length, size: c.size, codec: c.codec, encrypted: true }))
  const put = await rawRequest(hub.url, 'PUT', `/api/v1/packs/${newId}`, { key, body: encodePackBody(entries, data) })
  assert.equal(put.status, 201)
  assert.equal((put.json as { verified: number }).verified, 0)
  for (const [p] of packsOfFile(bad.file)) {
    if (p === packId) continue
    const fromStore = await readFile(packPath(bad.store.root, p))
    const e = chunks.filter((c) => c.pack === p).map((c) => ({ sid: c.sid, offset: c.offset, length: c.length, size: c.size, codec: c.codec, encrypted: true }))
    await client.putPack(p, e, fromStore)
  }
  const doctored = join(dir, 'doctored.fl')
  await copyFile(bad.file, doctored)
  const db = new Database(doctored)
  db.prepare('UPDATE chunk SET pack = ? WHERE pack = ?').run(newId, packId)
  db.close()
  const before = await census(hub)
  await assert.rejects(client.uploadFlist(ns, 'bad', doctored, { tag: 'latest' }), { code: 'CHUNK_TAMPERED', message: new RegExp(victim.sid) })
  assert.deepEqual(await census(hub), before)
})

test("push - another twin's unverified chunks are never offered for reuse", async (t) => {
  const hub = await startTestHub(t)
  const alice = newKey()
  const mallory = newKey()
  const v1 = await packTree(t, await tempDir(t), 'v1', tree(1), { signers: [alice] })
  const reader = FlistReader.open(v1.file)
  const target = reader.allChunks()[0]!
  reader.close()
  // Mallory uploads garbage under the id of one of Alice's chunks, claiming it is encrypted.
  const garbage = bytes(99, 5000)
  const id = sha256(garbage).toString('hex')
  const put = await rawRequest(hub.url, 'PUT', `/api/v1/packs/${id}`, {
    key: mallory,
    body: encodePackBody([{ sid: target.sid, offset: 0, length: garbage.length, size: target.size, codec: 0, encrypted: true }], garbage),
  })
  assert.equal(put.status, 201)
  assert.deepEqual((await hub.client(mallory).missing({ sids: [target.sid] })).missing, [], 'the uploader sees its own chunk')
  assert.deepEqual((await hub.client(alice).missing({ sids: [target.sid] })).missing, [target.sid], 'nobody else does')
  const r = await pushFlist(hub.client(alice), v1.file, { name: 'app', store: v1.store })
  assert.equal(r.reusedChunks, 0)
  assert.deepEqual(await readAll(v1.file, hub.url, 'bin/tool'), bytes(1, 700_000))
})

test('push - a directory is packed locally, signed with the key and pushed; hub:// resolves without a namespace', async (t) => {
  const hub = await startTestHub(t)
  const key = newKey()
  const client = hub.client(key)
  const src = join(await tempDir(t), 'site')
  await mkdir(join(src, 'www'), { recursive: true })
  await writeFile(join(src, 'www', 'index.html'), '<h1>hi</h1>\n')
  await writeFile(join(src, 'www', 'blob.bin'), bytes(3, 400_000))
  const r = await pushSource(client, src, { name: 'site', tag: '1', key, workers: 1 })
  assert.deepEqual(r.version.signers, [key.address])
  assert.equal(r.version.files, 2)
  assert.ok(r.uploadedBytes > 400_000)
  await tempHome(t)
  const got = await resolveFlistArg(`hub://${new URL(hub.url).host}/site:1`, undefined)
  assert.equal(got.hub?.ns, nsOf(key))
  assert.equal(got.hub?.root, r.version.root)
  assert.ok(got.file.startsWith(process.env.ZOS_HOME!))
  assert.equal((await readAll(got.file, hub.url, 'www/index.html')).toString(), '<h1>hi</h1>\n')
  assert.deepEqual(await resolveFlistArg('local.fl', 'dir:///x'), { file: 'local.fl', store: 'dir:///x' })
  await assert.rejects(resolveFlistArg(`hub://${new URL(hub.url).host}/site:2`, undefined), { code: 'NOT_FOUND' })
  // Without the local store, a push that needs to upload says which store to give.
  const other = await packTree(t, await tempDir(t), 'o', tree(5), { signers: [key] })
  await assert.rejects(pushFlist(client, other.file, { name: 'o' }), { code: 'INVALID_ARGUMENT', message: /--store/ })
  const st = await DirStore.open(join(await tempDir(t), 'empty'), { create: true })
  t.after(() => st.close())
  await assert.rejects(pushFlist(client, other.file, { name: 'o', store: st }), { code: 'CHUNK_MISSING' })
})
