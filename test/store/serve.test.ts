import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { join } from 'node:path'
import { DirStore } from '../../src/store/dir.js'
import { CACHE_CONTROL, parseRange, serveStore, type RequestEvent } from '../../src/store/serve.js'
import { tempDir } from '../helpers/tmp.js'
import { buildPack, type BuiltPack } from './fixtures.js'

async function setup(t: TestContext): Promise<{ url: string; p: BuiltPack; events: RequestEvent[] }> {
  const root = join(await tempDir(t), 'store')
  const store = await DirStore.open(root, { create: true })
  const p = buildPack(10, 1000)
  await store.putPack(p.id, p.data, p.chunks)
  await store.close()
  const events: RequestEvent[] = []
  const server = await serveStore({ root, onRequest: (e) => events.push(e) })
  t.after(() => server.close())
  return { url: server.url, p, events }
}

/** A raw request (fetch normalises some things away, e.g. bad paths). */
function raw(url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

test('serve - parseRange', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), [{ start: 0, end: 9 }])
  assert.deepEqual(parseRange('bytes=90-', 100), [{ start: 90, end: 99 }])
  assert.deepEqual(parseRange('bytes=-10', 100), [{ start: 90, end: 99 }])
  assert.deepEqual(parseRange('bytes=95-200', 100), [{ start: 95, end: 99 }])
  assert.deepEqual(parseRange('bytes=0-0, 5-6', 100), [{ start: 0, end: 0 }, { start: 5, end: 6 }])
  assert.deepEqual(parseRange('bytes=200-300, 1-1', 100), [{ start: 1, end: 1 }])
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable')
  assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable')
  for (const bad of ['bytes=5-1', 'bytes=-', 'bytes=a-b', 'items=0-1', 'bytes=', '0-1', 'bytes=1-2-3', 'bytes=' + Array(65).fill('0-0').join(',')]) {
    assert.equal(parseRange(bad, 100), 'invalid', bad)
  }
})

test('serve - GET whole pack, single range, HEAD, caching headers', async (t) => {
  const { url, p } = await setup(t)
  const full = await raw(url, `/packs/${p.id}`)
  assert.equal(full.status, 200)
  assert.deepEqual(full.body, p.data)
  assert.equal(full.headers.etag, `"${p.id}"`)
  assert.equal(full.headers['cache-control'], CACHE_CONTROL)
  assert.equal(full.headers['accept-ranges'], 'bytes')

  const part = await raw(url, `/packs/${p.id}`, { range: 'bytes=1000-2999' })
  assert.equal(part.status, 206)
  assert.equal(part.headers['content-range'], `bytes 1000-2999/10000`)
  assert.deepEqual(part.body, p.data.subarray(1000, 3000))

  const head = await raw(url, `/packs/${p.id}`, {}, 'HEAD')
  assert.equal(head.status, 200)
  assert.equal(head.headers['content-length'], '10000')
  assert.equal(head.body.length, 0)

  const cached = await raw(url, `/packs/${p.id}`, { 'if-none-match': `"${p.id}"` })
  assert.equal(cached.status, 304)
  // If-Range with another validator: the whole pack.
  const ifRange = await raw(url, `/packs/${p.id}`, { range: 'bytes=0-1', 'if-range': '"other"' })
  assert.equal(ifRange.status, 200)
  assert.equal(ifRange.body.length, 10000)
})

test('serve - many ranges at once, some longer than one read buffer, each get their own bytes', async (t) => {
  // Read buffers are reused across responses once the socket has taken them: answers in flight must not share one.
  const root = join(await tempDir(t), 'store')
  const store = await DirStore.open(root, { create: true })
  const p = buildPack(48, 64 * 1024) // 3 MiB: ranges up to 2.5 MiB span several 1 MiB reads
  await store.putPack(p.id, p.data, p.chunks)
  await store.close()
  const server = await serveStore({ root })
  t.after(() => server.close())
  const ranges = Array.from({ length: 40 }, (_, i) => {
    const start = (i * 77_777) % (p.data.length / 2)
    return { start, end: start + ((i * 131_071) % (2_500_000 - 1)) }
  })
  for (let round = 0; round < 2; round++) {
    const answers = await Promise.all(ranges.map((r) => raw(server.url, `/packs/${p.id}`, { range: `bytes=${r.start}-${r.end}` })))
    answers.forEach((a, i) => {
      assert.equal(a.status, 206)
      assert.ok(a.body.equals(p.data.subarray(ranges[i]!.start, ranges[i]!.end + 1)), `range ${i} of round ${round}`)
    })
  }
})

test('serve - several ranges are answered as multipart/byteranges', async (t) => {
  const { url, p } = await setup(t)
  const res = await raw(url, `/packs/${p.id}`, { range: 'bytes=0-9,5000-5099,-5' })
  assert.equal(res.status, 206)
  const boundary = /boundary=(\S+)/.exec(String(res.headers['content-type']))![1]!
  assert.equal(Number(res.headers['content-length']), res.body.length)
  const text = res.body.toString('latin1')
  const parts = text.split(`--${boundary}`).slice(1, -1)
  assert.equal(parts.length, 3)
  const expect = [[0, 9], [5000, 5099], [9995, 9999]] as const
  parts.forEach((part, i) => {
    const [hdr, ...rest] = part.split('\r\n\r\n')
    const [a, b] = expect[i]!
    assert.match(hdr!, new RegExp(`content-range: bytes ${a}-${b}/10000`))
    const body = Buffer.from(rest.join('\r\n\r\n').replace(/\r\n$/, ''), 'latin1')
    assert.deepEqual(body, p.data.subarray(a, b + 1))
  })
  assert.ok(text.endsWith(`--${boundary}--\r\n`))
})

test('serve - bad ids, unknown packs, bad ranges, methods and paths', async (t) => {
  const { url, p, events } = await setup(t)
  assert.equal((await raw(url, '/packs/../../etc/passwd')).status, 404)
  assert.equal((await raw(url, '/packs/..%2F..%2Fetc%2Fpasswd')).status, 400)
  assert.equal((await raw(url, `/packs/${p.id.toUpperCase()}`)).status, 400)
  assert.equal((await raw(url, `/packs/${p.id}0`)).status, 400)
  assert.equal((await raw(url, `/packs/${'0'.repeat(64)}`)).status, 404)
  const r416 = await raw(url, `/packs/${p.id}`, { range: 'bytes=10000-10001' })
  assert.equal(r416.status, 416)
  assert.equal(r416.headers['content-range'], 'bytes */10000')
  assert.equal((await raw(url, `/packs/${p.id}`, { range: 'bytes=9-1' })).status, 416)
  assert.equal((await raw(url, `/packs/${p.id}`, { range: 'lines=1-2' })).status, 416)
  const put = await raw(url, `/packs/${p.id}`, {}, 'PUT')
  assert.equal(put.status, 405)
  assert.equal(put.headers.allow, 'GET, HEAD')
  assert.equal((await raw(url, '/')).status, 404)
  // The server is still fine after all that.
  assert.equal((await raw(url, '/healthz')).body.toString(), 'ok\n')
  const stats = JSON.parse((await raw(url, '/stats')).body.toString()) as unknown
  assert.deepEqual(stats, { packs: 1, bytes: 10000, chunks: 10 })
  const metrics = (await raw(url, '/metrics')).body.toString()
  assert.match(metrics, /zos_store_http_requests_total\{code="400"\} 3/)
  assert.match(metrics, /zos_store_http_requests_total\{code="416"\} 3/)
  assert.ok(events.some((e) => e.status === 405 && e.method === 'PUT'))
})

test('serve - a store without an index serves packs and reports zero stats without creating index.db', async (t) => {
  const root = await tempDir(t)
  const server = await serveStore({ root })
  t.after(() => server.close())
  assert.deepEqual(JSON.parse((await raw(server.url, '/stats')).body.toString()), { packs: 0, bytes: 0, chunks: 0 })
  const { existsSync } = await import('node:fs')
  assert.equal(existsSync(join(root, 'index.db')), false)
})

test('serve - a missing directory or a taken port is refused', async (t) => {
  const root = await tempDir(t)
  await assert.rejects(serveStore({ root: join(root, 'missing') }), { code: 'NOT_FOUND' })
  const a = await serveStore({ root })
  t.after(() => a.close())
  await assert.rejects(serveStore({ root, port: a.port }), { code: 'STORE_UNAVAILABLE' })
  await assert.rejects(serveStore({ root, port: 70000 }), { code: 'INVALID_ARGUMENT' })
})
