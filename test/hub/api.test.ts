// The hub's HTTP API on a real server: every call, and every refusal (each one checked to leave nothing behind).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { KeyPair } from '../../src/core/keys.js'
import { FlistReader } from '../../src/flist/reader.js'
import { createToken, sha256Hex } from '../../src/hub/auth.js'
import { pushFlist } from '../../src/hub/push.js'
import { encodePackBody, type PackEntry } from '../../src/hub/wire.js'
import { packPath } from '../../src/store/dir.js'
import { tempDir } from '../helpers/tmp.js'
import { census, newKey, nsOf, packTree, rawRequest, signedPart, startTestHub, tree, type Packed, type TestHub } from './helpers.js'

interface RawPack {
  id: string
  entries: PackEntry[]
  data: Buffer
}

/** The packs of a packed flist, with index entries as the push client sends them. */
async function packsOf(p: Packed): Promise<RawPack[]> {
  const reader = FlistReader.open(p.file)
  try {
    const chunks = reader.allChunks()
    const byId = new Map(chunks.map((c) => [c.id, c]))
    const out = new Map<string, RawPack>()
    for (const c of chunks) {
      let rp = out.get(c.pack)
      if (!rp) {
        rp = { id: c.pack, entries: [], data: await readFile(packPath(p.store.root, c.pack)) }
        out.set(c.pack, rp)
      }
      rp.entries.push({ sid: c.sid, offset: c.offset, length: c.length, size: c.size, codec: c.codec, ...(c.base !== undefined ? { base: byId.get(c.base)!.sid } : {}) })
    }
    return [...out.values()]
  } finally {
    reader.close()
  }
}

async function setup(t: TestContext, options: Parameters<typeof startTestHub>[1] = {}): Promise<{ hub: TestHub; key: KeyPair; dir: string; v1: Packed }> {
  const hub = await startTestHub(t, options)
  const key = newKey()
  const dir = await tempDir(t)
  const v1 = await packTree(t, dir, 'v1', tree(1), { signers: [key] })
  return { hub, key, dir, v1 }
}

function flistPath(ns: string, name: string, tag = 'v1'): string {
  return `/api/v1/flists/${ns}/${name}?tag=${tag}&latest=true`
}

test('api - info, health, stats, metrics, empty listings and the web page', async (t) => {
  const hub = await startTestHub(t)
  const info = await hub.client().info()
  assert.equal(info.service, 'zos-hub')
  assert.equal(info.identity, 'address')
  assert.equal(info.store, hub.url)
  assert.match(info.signer, /^0x[0-9a-fA-F]{40}$/)
  assert.equal((await fetch(`${hub.url}/healthz`)).status, 200)
  assert.deepEqual(await (await fetch(`${hub.url}/stats`)).json(), { packs: 0, bytes: 0, chunks: 0 })
  assert.deepEqual(await hub.client().list(), { items: [], total: 0 })
  const page = await fetch(`${hub.url}/?q=%3Cscript%3E`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  const html = await page.text()
  assert.match(html, /0 flists/)
  assert.ok(!html.includes('<script>'), 'the search term is escaped')
  assert.match(await (await fetch(`${hub.url}/metrics`)).text(), /zos_hub_http_requests_total\{route="index",code="200"\} 1/)
})

test('api - packs: upload verified and idempotent, Range reads with ETag and immutable caching, missing-chunk query', async (t) => {
  const { hub, key, v1 } = await setup(t)
  const client = hub.client(key)
  const [p] = await packsOf(v1)
  const before = await client.missing({ sids: p!.entries.map((e) => e.sid), packs: [p!.id] })
  assert.equal(before.ns, nsOf(key), 'the answer names the caller\'s namespace')
  assert.deepEqual(before.missingPacks, [p!.id])
  assert.equal(before.missing.length, p!.entries.length)
  const put = await client.putPack(p!.id, p!.entries, p!.data)
  assert.deepEqual(put, { pack: p!.id, size: p!.data.length, chunks: p!.entries.length, verified: p!.entries.length, stored: true })
  const again = await client.putPack(p!.id, p!.entries, p!.data)
  assert.equal(again.stored, false)
  const after = await client.missing({ sids: [...p!.entries.map((e) => e.sid), 'ab'.repeat(32)], packs: [p!.id] })
  assert.deepEqual(after.missingPacks, [])
  assert.deepEqual(after.missing, ['ab'.repeat(32)])
  const e0 = p!.entries[0]!
  assert.deepEqual(after.locations[e0.sid], { pack: p!.id, offset: e0.offset, length: e0.length, size: e0.size, codec: e0.codec })

  const res = await fetch(`${hub.url}/packs/${p!.id}`, { headers: { range: 'bytes=10-1009' } })
  assert.equal(res.status, 206)
  assert.equal(res.headers.get('etag'), `"${p!.id}"`)
  assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  assert.equal(res.headers.get('content-range'), `bytes 10-1009/${p!.data.length}`)
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), p!.data.subarray(10, 1010))
  assert.equal((await fetch(`${hub.url}/packs/${p!.id}`, { headers: { 'if-none-match': `"${p!.id}"` } })).status, 304)
  const head = await fetch(`${hub.url}/packs/${p!.id}`, { method: 'HEAD' })
  assert.equal(head.headers.get('content-length'), String(p!.data.length))
  assert.equal((await fetch(`${hub.url}/packs/${'0'.repeat(64)}`)).status, 404)
  assert.equal((await fetch(`${hub.url}/packs/nothex`)).status, 400)
  assert.deepEqual(await (await fetch(`${hub.url}/stats`)).json(), { packs: 1, bytes: p!.data.length, chunks: p!.entries.length })
})

test('api - pack refusals: wrong hash, truncated, bad index, undecodable chunk, too large, over quota; nothing kept', async (t) => {
  const { hub, key, v1 } = await setup(t, { quota: 1_000_000, limits: { pack: 2_500_000 } })
  const packs = await packsOf(v1)
  const big = packs.reduce((a, b) => (a.data.length >= b.data.length ? a : b))
  const clean = await census(hub)
  const put = async (id: string, entries: PackEntry[], data: Buffer, k: KeyPair = key) => {
    const body = encodePackBody(entries, data)
    return rawRequest(hub.url, 'PUT', `/api/v1/packs/${id}`, { key: k, body })
  }
  const refusals: [string, Promise<{ status: number; json: { error?: { code: string; message: string } } }>, number, string][] = [
    ['wrong hash', put('f'.repeat(64), big.entries, big.data), 422, 'CHUNK_TAMPERED'],
    ['truncated', put(big.id, big.entries, big.data.subarray(0, big.data.length - 1)), 422, 'CHUNK_TAMPERED'],
    ['range outside the pack', put(big.id, [...big.entries, { ...big.entries[0]!, offset: big.data.length - 10, length: 100 }], big.data), 400, 'INVALID_ARGUMENT'],
    ['overlapping entries', put(big.id, [big.entries[0]!, { ...big.entries[0]!, sid: 'cd'.repeat(32) }], big.data), 400, 'INVALID_ARGUMENT'],
    ['chunk that does not decode to its id', put(big.id, [{ ...big.entries[0]!, sid: 'ab'.repeat(32) }], big.data), 422, 'CHUNK_TAMPERED'],
    ['no index entries', put(big.id, [], big.data), 400, 'INVALID_ARGUMENT'],
    ['not framed', rawRequest(hub.url, 'PUT', `/api/v1/packs/${big.id}`, { key, body: Buffer.from([0, 0]) }), 400, 'INVALID_ARGUMENT'],
  ]
  for (const [what, p, status, code] of refusals) {
    const r = await p
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`)
    assert.equal(r.json.error?.code, code, what)
    assert.ok((r.json.error?.message.length ?? 0) > 20, `${what}: a clear message`)
  }
  // Too large: refused from Content-Length, before the body is read.
  const huge = Buffer.alloc(2_600_000 + 8 * 1024 * 1024)
  const tooLarge = await rawRequest(hub.url, 'PUT', `/api/v1/packs/${'e'.repeat(64)}`, { key, body: huge })
  assert.equal(tooLarge.status, 413)
  assert.equal(tooLarge.json.error?.code, 'HUB_TOO_LARGE')
  // The client sees the hub's answer, not the closed connection, while it is still sending.
  await assert.rejects(hub.client(key).putPack('e'.repeat(64), big.entries, huge), { code: 'HUB_TOO_LARGE' })
  assert.deepEqual(await census(hub), clean, 'refused uploads leave nothing behind')

  // Over quota: the pack is larger than the 1 MB quota.
  assert.ok(big.data.length > 1_000_000)
  const quotaHit = await put(big.id, big.entries, big.data)
  assert.equal(quotaHit.status, 507)
  assert.equal(quotaHit.json.error?.code, 'HUB_QUOTA')
  assert.match(quotaHit.json.error!.message, /quota/)
  assert.deepEqual(await hub.client(key).whoami(), { ns: nsOf(key), address: key.address, quota: 1_000_000, used: 0, signers: [] })
  assert.deepEqual(await census(hub), clean)
})

test('api - auth refusals: no token, expired, replayed, for another request, body changed after signing', async (t) => {
  const { hub, key, v1 } = await setup(t)
  const [p] = await packsOf(v1)
  const body = encodePackBody(p!.entries, p!.data)
  const path = `/api/v1/packs/${p!.id}`
  const clean = await census(hub)
  const expect401 = async (what: string, r: Promise<{ status: number; json: { error?: { code: string; message: string } } }>, message: RegExp) => {
    const x = await r
    assert.equal(x.status, 401, what)
    assert.equal(x.json.error?.code, 'HUB_AUTH', what)
    assert.match(x.json.error!.message, message, what)
  }
  await expect401('no token', rawRequest(hub.url, 'PUT', path, { body }), /needs an Authorization/)
  await expect401('expired', rawRequest(hub.url, 'PUT', path, { key, body, now: Date.now() - 600_000 }), /expired/)
  await expect401('other path', rawRequest(hub.url, 'PUT', path, { key, body, signPath: `/api/v1/packs/${'0'.repeat(64)}` }), /signed for/)
  await expect401('other method', rawRequest(hub.url, 'PUT', path, { key, body, signMethod: 'POST' }), /signed for/)
  await expect401('body changed', rawRequest(hub.url, 'PUT', path, { key, body, signBody: Buffer.from('something else') }), /body hashes to/)
  await expect401('garbage', rawRequest(hub.url, 'PUT', path, { token: 'ZosHub abc.def', body }), /malformed/)
  assert.deepEqual(await census(hub), clean)
  const token = createToken(key, { method: 'PUT', path, bodyHash: sha256Hex(signedPart(path, body)) })
  assert.equal((await rawRequest(hub.url, 'PUT', path, { token, body })).status, 201)
  await expect401('replayed', rawRequest(hub.url, 'PUT', path, { token, body }), /already used/)
  await expect401('whoami without token', rawRequest(hub.url, 'GET', '/api/v1/whoami'), /needs an Authorization/)
})

test('api - flist upload: verified, stored, tagged with history, downloadable with ETag; listing and search', async (t) => {
  const { hub, key, v1, dir } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  for (const p of await packsOf(v1)) await client.putPack(p.id, p.entries, p.data)
  const up = await client.uploadFlist(ns, 'web', v1.file, { tag: 'v1' })
  const digest = sha256Hex(await readFile(v1.file))
  assert.equal(up.version.digest, digest)
  assert.equal(up.version.root, v1.root)
  assert.deepEqual(up.version.signers, [key.address])
  assert.deepEqual(up.version.tags, ['latest', 'v1'])
  assert.equal(up.latest, true)
  assert.equal(up.verifiedNow, 0, 'every chunk was checked at pack upload')
  assert.equal(up.version.files, 4)

  const byTag = await fetch(`${hub.url}/api/v1/flists/${ns}/web/tags/v1/flist`)
  assert.equal(byTag.status, 200)
  assert.equal(byTag.headers.get('etag'), `"${digest}"`)
  assert.equal(byTag.headers.get('cache-control'), 'no-cache')
  assert.equal(byTag.headers.get('x-zos-root'), v1.root)
  assert.deepEqual(Buffer.from(await byTag.arrayBuffer()), await readFile(v1.file))
  assert.equal((await fetch(`${hub.url}/api/v1/flists/${ns}/web/tags/v1/flist`, { headers: { 'if-none-match': `"${digest}"` } })).status, 304)
  const blob = await fetch(`${hub.url}/api/v1/blobs/${digest}`)
  assert.equal(blob.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  const got = await client.download(ns, 'web', { tag: 'latest' }, join(dir, 'dl'))
  assert.equal(got.digest, digest)
  FlistReader.open(got.path).close()

  // A second version moves v2 and latest, not v1; history records each move.
  const v2 = await packTree(t, dir, 'v2', tree(2), { signers: [key], store: v1.store })
  for (const p of await packsOf(v2)) await client.putPack(p.id, p.entries, p.data)
  const up2 = await client.uploadFlist(ns, 'web', v2.file, { tag: 'v2' })
  assert.equal((await client.version(ns, 'web', 'latest')).digest, up2.version.digest)
  assert.equal((await client.version(ns, 'web', 'v1')).digest, digest)
  const h = await client.history(ns, 'web')
  assert.deepEqual(h.events.map((e) => `${e.tag}=${e.digest?.slice(0, 8)}`), [`latest=${up2.version.digest.slice(0, 8)}`, `v2=${up2.version.digest.slice(0, 8)}`, `latest=${digest.slice(0, 8)}`, `v1=${digest.slice(0, 8)}`])
  const list = await client.list({ ns })
  assert.equal(list.total, 1)
  assert.deepEqual(list.items[0]!.tags.map((x) => x.tag), ['latest', 'v1', 'v2'])
  assert.equal((await client.list({ q: 'we' })).total, 1)
  assert.equal((await client.list({ q: 'nope' })).total, 0)
  const detail = await client.detail(ns, 'web')
  assert.equal(detail.versions.length, 2)
  assert.equal((await client.resolve('web', 'v1')).ns, ns)
  const html = await (await fetch(`${hub.url}/`)).text()
  assert.match(html, new RegExp(`${ns}</code>/<b>web</b>`))
  assert.ok(html.includes(key.address), 'the page shows the signer')
})

/** Starts a signed pack upload and sends its body up to `cut` bytes; `finish(rest)` sends the rest. */
function slowPut(url: string, key: KeyPair, id: string, body: Buffer, cut: number): { answer: Promise<{ status: number; json: { error?: { code: string } } }>; finish: (rest: Buffer) => void } {
  const path = `/api/v1/packs/${id}`
  const authorization = createToken(key, { method: 'PUT', path, bodyHash: sha256Hex(body.subarray(0, 4 + body.readUInt32BE(0))) })
  let finish!: (rest: Buffer) => void
  const answer = new Promise<{ status: number; json: { error?: { code: string } } }>((resolve, reject) => {
    const req = request(url + path, { method: 'PUT', headers: { authorization, 'content-length': body.length } }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(parts).toString()) as { error?: { code: string } } }))
    })
    req.on('error', reject)
    req.write(body.subarray(0, cut))
    finish = (rest) => req.end(rest)
  })
  return { answer, finish }
}

test('api - an flist sent while its packs are still arriving waits for them; if one is refused, the flist is too and nothing stays', async (t) => {
  const { hub, key, v1 } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  const packs = await packsOf(v1)
  const last = packs.at(-1)!
  for (const p of packs.slice(0, -1)) await client.putPack(p.id, p.entries, p.data)
  const clean = await census(hub)

  // The last pack is refused (one byte altered in transit) while the metadata waits for it.
  const body = encodePackBody(last.entries, last.data)
  const half = body.length - Math.floor(last.data.length / 2)
  const bad = slowPut(hub.url, key, last.id, body, half)
  await new Promise((r) => setTimeout(r, 100)) // the hub has the headers: the pack is arriving
  let settled = false
  const refused = client.uploadFlist(ns, 'web', v1.file, { tag: 'v1' }).finally(() => (settled = true))
  refused.catch(() => {})
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(settled, false, 'the flist waits for the pack it names')
  const altered = Buffer.from(body.subarray(half))
  altered[altered.length - 1]! ^= 1
  bad.finish(altered)
  assert.equal((await bad.answer).json.error?.code, 'CHUNK_TAMPERED')
  await assert.rejects(refused, { code: 'CHUNK_MISSING' })
  assert.deepEqual(await census(hub), clean, 'neither the pack nor the flist was kept')

  // The same, with the pack arriving whole: the flist is accepted once it is stored.
  const good = slowPut(hub.url, key, last.id, body, half)
  await new Promise((r) => setTimeout(r, 100))
  settled = false
  const accepted = client.uploadFlist(ns, 'web', v1.file, { tag: 'v1' }).finally(() => (settled = true))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(settled, false)
  good.finish(body.subarray(half))
  assert.equal((await good.answer).status, 201)
  const answer = await accepted
  assert.equal(answer.version.root, v1.root)
  assert.equal((await census(hub)).versions, 1)
})

test('api - an flist sent before its packs with wait=N is committed once the last is stored; the wait runs out; bad waits', async (t) => {
  const { hub, key, v1, dir } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  const packs = await packsOf(v1)
  const v1bytes = await readFile(v1.file)
  const clean = await census(hub)

  // Malformed waits are refused before anything is read or kept.
  for (const w of ['-1', 'abc', '1.5', '121', '']) {
    const r = await rawRequest(hub.url, 'POST', `${flistPath(ns, 'web')}&wait=${w}`, { key, body: v1bytes })
    assert.equal(r.status, 400, `wait=${w}: ${JSON.stringify(r.json)}`)
    assert.equal(r.json.error?.code, 'INVALID_ARGUMENT')
  }
  // A refusal that needs no pack comes at once, wait or not: here a signer the namespace does not accept.
  const stranger = newKey()
  const foreign = await packTree(t, dir, 'foreign', tree(1), { signers: [stranger], store: v1.store })
  let t0 = performance.now()
  const untrusted = await rawRequest(hub.url, 'POST', `${flistPath(ns, 'web')}&wait=30`, { key, body: await readFile(foreign.file) })
  assert.equal(untrusted.json.error?.code, 'UNTRUSTED_SIGNER')
  assert.ok(performance.now() - t0 < 10_000, 'refused without waiting for packs')
  // No pack arrives: refused once the wait runs out.
  t0 = performance.now()
  const late = await rawRequest(hub.url, 'POST', `${flistPath(ns, 'web')}&wait=1`, { key, body: v1bytes })
  assert.equal(late.json.error?.code, 'CHUNK_MISSING')
  assert.ok(performance.now() - t0 >= 900, 'waited about a second')
  assert.deepEqual(await census(hub), clean, 'nothing kept')

  // Sent first: it waits, and is committed once every pack is stored.
  let settled = false
  const accepted = client.uploadFlist(ns, 'web', v1.file, { tag: 'v1', waitS: 30 }).finally(() => (settled = true))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(settled, false, 'the flist waits for packs that have not begun to arrive')
  // Checked, it was moved into place while it waits (only the commit follows the last pack); no version yet.
  const waiting = await census(hub)
  assert.equal(waiting.flists.length, 1)
  assert.deepEqual([waiting.tmp, waiting.versions], [[], 0])
  for (const p of packs) {
    assert.equal(settled, false)
    await client.putPack(p.id, p.entries, p.data)
  }
  const answer = await accepted
  assert.equal(answer.version.root, v1.root)
  assert.equal((await census(hub)).versions, 1)
  assert.deepEqual((await census(hub)).tmp, [])
})

test('api - an uploader that goes away while its flist waits for packs stops the wait, and nothing stays', async (t) => {
  const { hub, key, v1 } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  const clean = await census(hub)
  const size = (await readFile(v1.file)).length
  // Gone while the hub waits for the packs, and gone the moment the last byte is sent (before the hub's handler
  // has read the body and begun to listen for the connection's end).
  for (const when of ['while waiting', 'after the last byte'] as const) {
    const gone = new AbortController()
    const upload = client.uploadFlist(ns, 'web', v1.file, {
      tag: 'v1',
      waitS: 60,
      signal: gone.signal,
      onSent: (n) => {
        if (when === 'after the last byte' && n === size) setImmediate(() => gone.abort(new Error('changed my mind')))
      },
    })
    upload.catch(() => {})
    if (when === 'while waiting') {
      await new Promise((r) => setTimeout(r, 300))
      gone.abort(new Error('changed my mind'))
    }
    const t0 = performance.now()
    await assert.rejects(upload)
    // The hub notices at once: its file (moved into place while it waited) goes long before the 60 s wait would end.
    const left = async (): Promise<number> => ((c) => c.tmp.length + c.flists.length)(await census(hub))
    for (let i = 0; i < 100 && (await left()) > 0; i++) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(await census(hub), clean, when)
    assert.ok(performance.now() - t0 < 5000, when)
  }
  // The packs arriving afterwards find nobody waiting, and a new upload of the metadata is accepted.
  for (const p of await packsOf(v1)) await client.putPack(p.id, p.entries, p.data)
  assert.equal((await client.uploadFlist(ns, 'web', v1.file, { tag: 'v1' })).version.root, v1.root)
})

test('api - flist refusals: unsigned, foreign signer, altered, truncated, chunks missing, not an flist, other namespace, over quota', async (t) => {
  const { hub, key, v1, dir } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  for (const p of await packsOf(v1)) await client.putPack(p.id, p.entries, p.data)
  const clean = await census(hub)
  const upload = (file: Buffer, k: KeyPair = key, target = ns) => rawRequest(hub.url, 'POST', flistPath(target, 'web'), { key: k, body: file })

  const unsigned = await packTree(t, join(dir), 'unsigned', tree(1), { store: v1.store })
  const stranger = newKey()
  const foreign = await packTree(t, dir, 'foreign', tree(1), { signers: [stranger], store: v1.store })
  const badSig = join(dir, 'badsig.fl')
  await copyFile(v1.file, badSig)
  {
    const db = new Database(badSig)
    const row = db.prepare('SELECT pubkey, sig FROM signature').get() as { pubkey: Buffer; sig: Buffer }
    row.sig[10]! ^= 0xff
    db.prepare('UPDATE signature SET sig = ? WHERE pubkey = ?').run(row.sig, row.pubkey)
    db.close()
  }
  const altered = join(dir, 'altered.fl')
  await copyFile(v1.file, altered)
  {
    const db = new Database(altered)
    db.prepare("INSERT INTO tag (key, value) VALUES ('sneaky', 'yes')").run()
    db.close()
  }
  const v1bytes = await readFile(v1.file)
  const otherStore = await packTree(t, join(await tempDir(t)), 'other', tree(9), { signers: [key] })

  const cases: [string, Promise<{ status: number; json: { error?: { code: string; message: string } } }>, number, string][] = [
    ['unsigned', upload(await readFile(unsigned.file)), 403, 'UNTRUSTED_SIGNER'],
    ['signed by a key the namespace does not list', upload(await readFile(foreign.file)), 403, 'UNTRUSTED_SIGNER'],
    ['signature altered', upload(await readFile(badSig)), 422, 'SIGNATURE_INVALID'],
    ['content altered after sealing', upload(await readFile(altered)), 422, 'FLIST_CORRUPT'],
    ['truncated file', upload(v1bytes.subarray(0, 4096)), 422, 'FLIST_CORRUPT'],
    ['not an flist', upload(Buffer.from('hello world, not sqlite'.repeat(100))), 422, 'FLIST_CORRUPT'],
    ['chunks not on the hub', upload(await readFile(otherStore.file)), 409, 'CHUNK_MISSING'],
    ['another twin\'s namespace', upload(v1bytes, key, nsOf(stranger)), 403, 'HUB_FORBIDDEN'],
    ['truncated in transit', rawRequest(hub.url, 'POST', flistPath(ns, 'web'), { key, body: v1bytes.subarray(0, 8192), signBody: v1bytes }), 401, 'HUB_AUTH'],
    ['bad name', rawRequest(hub.url, 'POST', `/api/v1/flists/${ns}/-bad?tag=v1`, { key, body: v1bytes }), 400, 'INVALID_ARGUMENT'],
    ['bad tag', rawRequest(hub.url, 'POST', `/api/v1/flists/${ns}/web?tag=-x`, { key, body: v1bytes }), 400, 'INVALID_ARGUMENT'],
  ]
  for (const [what, p, status, code] of cases) {
    const r = await p
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`)
    assert.equal(r.json.error?.code, code, what)
  }
  // A connection that drops in the middle of the body: the temp file goes, nothing is recorded.
  await new Promise<void>((resolve) => {
    const path = flistPath(ns, 'web')
    const req = request(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-length': v1bytes.length, authorization: createToken(key, { method: 'POST', path, bodyHash: sha256Hex(v1bytes) }) },
    })
    req.on('error', () => resolve())
    req.write(v1bytes.subarray(0, 10_000), () => setTimeout(() => req.destroy(), 100))
  })
  await new Promise((r) => setTimeout(r, 200))
  assert.deepEqual(await census(hub), clean, 'nothing was kept from any refused upload')

  // Over quota: a hub whose quota the packs already fill refuses the metadata.
  const small = await startTestHub(t, { quota: v1.storedBytes + 10 })
  const sc = small.client(key)
  for (const p of await packsOf(v1)) await sc.putPack(p.id, p.entries, p.data)
  const before = await census(small)
  await assert.rejects(sc.uploadFlist(ns, 'web', v1.file, { tag: 'v1' }), { code: 'HUB_QUOTA' })
  assert.deepEqual(await census(small), before)
})

test('api - listed signers: a namespace accepts flists signed by a key it lists', async (t) => {
  const { hub, key, v1, dir } = await setup(t)
  const ci = newKey()
  const client = hub.client(key)
  const ns = nsOf(key)
  const byCi = await packTree(t, dir, 'ci', tree(1), { signers: [ci], store: v1.store })
  for (const p of await packsOf(byCi)) await client.putPack(p.id, p.entries, p.data)
  await assert.rejects(client.uploadFlist(ns, 'web', byCi.file, { tag: 'ci' }), { code: 'UNTRUSTED_SIGNER' })
  await assert.rejects(hub.client(ci).setSigners(ns, [ci.address]), { code: 'HUB_FORBIDDEN' })
  assert.deepEqual((await client.setSigners(ns, [ci.address])).signers, [ci.address.toLowerCase()])
  assert.deepEqual((await client.signers(ns)).signers, [ci.address.toLowerCase()])
  const r = await client.uploadFlist(ns, 'web', byCi.file, { tag: 'ci' })
  assert.deepEqual(r.version.signers, [ci.address])
  assert.deepEqual((await client.whoami()).signers, [ci.address.toLowerCase()])
})

test('api - tags: move, remove (untagged versions go with their files), remove a name; only in your namespace', async (t) => {
  const { hub, key, v1, dir } = await setup(t)
  const client = hub.client(key)
  const ns = nsOf(key)
  const a = await pushFlist(client, v1.file, { name: 'app', tag: 'v1', store: v1.store })
  const v2 = await packTree(t, dir, 'v2', tree(2), { signers: [key], store: v1.store })
  const b = await pushFlist(client, v2.file, { name: 'app', tag: 'v2', store: v1.store })
  const moved = await client.moveTag(ns, 'app', 'stable', a.version.digest)
  assert.deepEqual(moved, { ns, name: 'app', tag: 'stable', digest: a.version.digest })
  const again = await client.moveTag(ns, 'app', 'stable', b.version.digest)
  assert.equal(again.previous, a.version.digest)
  await assert.rejects(client.moveTag(ns, 'app', 'x', 'f'.repeat(64)), { code: 'NOT_FOUND' })
  await assert.rejects(hub.client(newKey()).moveTag(ns, 'app', 'evil', a.version.digest), { code: 'HUB_FORBIDDEN' })
  await assert.rejects(hub.client().moveTag(ns, 'app', 'x', a.version.digest), { code: 'INVALID_ARGUMENT', message: /--key/ })

  // v1 is named only by tag v1 now (latest and stable moved to v2): removing v1 deletes that version and its file.
  const aFile = join(hub.data, 'flists', a.version.digest.slice(0, 2), `${a.version.digest}.fl`)
  await readFile(aFile)
  const r = await client.removeTag(ns, 'app', 'v1')
  assert.deepEqual(r.removed, [a.version.digest])
  await assert.rejects(readFile(aFile), { code: 'ENOENT' })
  await assert.rejects(client.removeTag(ns, 'app', 'v1'), { code: 'NOT_FOUND' })
  assert.deepEqual((await client.detail(ns, 'app')).tags.map((x) => x.tag), ['latest', 'stable', 'v2'])
  const events = (await client.history(ns, 'app', 'v1')).events
  assert.equal(events[0]!.digest, null, 'history keeps the removal')
  const gone = await client.removeName(ns, 'app')
  assert.deepEqual(gone.tags, ['latest', 'stable', 'v2'])
  await assert.rejects(client.detail(ns, 'app'), { code: 'NOT_FOUND' })
  assert.deepEqual((await census(hub)).flists, [])
})

test('api - garbage collection: packs no flist refers to go after the grace period, shared ones stay', async (t) => {
  const { hub, key, v1, dir } = await setup(t, { gcGraceMs: 60_000, gcIntervalMs: 0 })
  const other = newKey()
  const h = hub.server.hub
  const [stray] = await packsOf(await packTree(t, dir, 'stray', tree(7), { signers: [key] }))
  await hub.client(key).putPack(stray!.id, stray!.entries, stray!.data)
  assert.deepEqual(await h.gc(), { packs: 0, bytes: 0 }, 'within the grace period a pack waits for its flist')
  assert.deepEqual(await h.gc({ graceMs: 0 }), { packs: 1, bytes: stray!.data.length })
  assert.equal((await fetch(`${hub.url}/packs/${stray!.id}`)).status, 404)
  assert.equal((await hub.client(key).whoami()).used, 0, 'the quota is freed')
  assert.deepEqual((await hub.client(key).missing({ packs: [stray!.id] })).missingPacks, [stray!.id])

  // Two namespaces publish the same flist; removing one keeps the packs the other needs.
  await pushFlist(hub.client(key), v1.file, { name: 'a', store: v1.store })
  const copy = await packTree(t, dir, 'copy', tree(1), { signers: [other], store: v1.store })
  await pushFlist(hub.client(other), copy.file, { name: 'b', store: v1.store })
  const packs = (await census(hub)).packs
  await hub.client(key).removeName(nsOf(key), 'a')
  assert.deepEqual(await h.gc({ graceMs: 0 }), { packs: 0, bytes: 0 })
  assert.deepEqual((await census(hub)).packs, packs)
  await hub.client(other).removeName(nsOf(other), 'b')
  const freed = await h.gc({ graceMs: 0 })
  assert.equal(freed.packs, packs.length)
  const after = await census(hub)
  assert.deepEqual([after.packs, after.packRows, after.locs, after.versions], [[], 0, 0, 0])
  assert.deepEqual(await (await fetch(`${hub.url}/stats`)).json(), { packs: 0, bytes: 0, chunks: 0 })
})

test('api - bad requests get clear errors and never crash the server', async (t) => {
  const { hub, key } = await setup(t)
  const ns = nsOf(key)
  const cases: [string, string, number, Record<string, string>?, Buffer?][] = [
    ['GET', '/nowhere', 404],
    ['PATCH', '/api/v1/info', 405],
    ['GET', '/api/v1/flists/not-a-ns', 400],
    ['GET', `/api/v1/flists/${ns}/x%ZZ`, 400],
    ['GET', `/api/v1/flists/${ns}/app/tags/latest/flist`, 404],
    ['GET', '/api/v1/jobs/123', 400],
    ['GET', `/api/v1/jobs/${'a'.repeat(32)}`, 404],
    ['GET', `/api/v1/blobs/${'a'.repeat(64)}`, 404],
    ['GET', '/api/v1/flists?limit=99999', 400],
    ['GET', '/api/v1/resolve?name=zzz&tag=latest', 404],
  ]
  for (const [method, path, status] of cases) {
    const r = await fetch(hub.url + path, { method })
    assert.equal(r.status, status, `${method} ${path}`)
    const body = (await r.json()) as { error: { code: string; message: string } }
    assert.ok(body.error.message.length > 10)
  }
  const bad = await rawRequest(hub.url, 'POST', '/api/v1/chunks/missing', { key, body: Buffer.from('{not json') })
  assert.equal(bad.status, 400)
  const wrongField = await rawRequest(hub.url, 'POST', '/api/v1/chunks/missing', { key, body: Buffer.from('{"sids":["XYZ"]}') })
  assert.equal(wrongField.status, 400)
  assert.match(wrongField.json.error!.message, /sids\.0/)
  assert.equal((await fetch(`${hub.url}/healthz`)).status, 200)
})

test('api - a restarted hub keeps its flists and sweeps what a crash could leave (temp uploads, unrecorded files)', async (t) => {
  const { hub, key, v1 } = await setup(t)
  const pushed = await pushFlist(hub.client(key), v1.file, { name: 'app', tag: 'v1', store: v1.store })
  await hub.server.close()
  await writeFile(join(hub.data, 'tmp', 'upload-1-stray.tmp'), 'half an upload')
  const strayFlist = join(hub.data, 'flists', 'ab', `${'ab'.repeat(32)}.fl`)
  await import('node:fs/promises').then((fs) => fs.mkdir(join(hub.data, 'flists', 'ab'), { recursive: true }))
  await writeFile(strayFlist, 'renamed but never committed')
  const again = await startTestHub(t, { data: hub.data })
  assert.equal(again.server.hub.key.address, hub.server.hub.key.address, 'the hub keeps its signing key')
  const c = await census(again)
  assert.deepEqual(c.tmp, [])
  assert.ok(!c.flists.includes(strayFlist))
  assert.equal((await again.client(key).version(nsOf(key), 'app', 'v1')).digest, pushed.version.digest)
  const res = await fetch(`${again.url}/api/v1/blobs/${pushed.version.digest}`)
  assert.equal(res.status, 200)
})
