import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { DirStore } from '../../src/store/dir.js'
import { HttpStore, type HttpStoreOptions } from '../../src/store/http.js'
import { serveStore, type RequestEvent } from '../../src/store/serve.js'
import type { PackRange } from '../../src/store/types.js'
import { tempDir } from '../helpers/tmp.js'
import { buildPack, type BuiltPack } from './fixtures.js'

const FAST: HttpStoreOptions = { timeoutMs: 2000, retries: 2, backoffMs: [10, 20] }

async function served(t: TestContext, packs: BuiltPack[]): Promise<{ url: string; events: RequestEvent[]; stop(): Promise<void> }> {
  const root = join(await tempDir(t), 'store')
  const store = await DirStore.open(root, { create: true })
  for (const p of packs) await store.putPack(p.id, p.data, p.chunks)
  await store.close()
  const events: RequestEvent[] = []
  const server = await serveStore({ root, onRequest: (e) => events.push(e) })
  t.after(() => server.close())
  return { url: server.url, events, stop: () => server.close() }
}

function open(t: TestContext, url: string, options: HttpStoreOptions = FAST): HttpStore {
  const s = new HttpStore(url, options)
  t.after(() => s.close())
  return s
}

/** A hand-written HTTP server for misbehaviours serve.ts never shows. */
async function fake(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => {
    server.closeAllConnections()
    server.close(() => r())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function rangeOf(req: IncomingMessage): [number, number] {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
  assert.ok(m, `unexpected Range ${req.headers.range}`)
  return [Number(m[1]), Number(m[2])]
}

test('http store - reads ranges of several packs in the order asked', async (t) => {
  const a = buildPack(10, 1000)
  const b = buildPack(5, 3000)
  const { url } = await served(t, [a, b])
  const s = open(t, url)
  const wanted: PackRange[] = [b.chunks[4]!, a.chunks[0]!, { pack: a.id, offset: 123, length: 77 }, b.chunks[0]!, { pack: a.id, offset: 0, length: 0 }]
  const bufs = await s.readRanges(wanted)
  wanted.forEach((r, i) => {
    const src = r.pack === a.id ? a.data : b.data
    assert.deepEqual(bufs[i], src.subarray(r.offset, r.offset + r.length))
  })
  assert.equal(await s.statPack(a.id), 10000)
  assert.equal(await s.statPack('0'.repeat(64)), undefined)
  assert.deepEqual(await s.stats(), { packs: 2, bytes: 25000, chunks: 15 })
  assert.equal(s.writable, false)
})

test('http store - 20 neighbouring ranges cost one request', async (t) => {
  const p = buildPack(40, 1000)
  const { url, events } = await served(t, [p])
  const s = open(t, url)
  const wanted = p.chunks.filter((_, i) => i % 2 === 0) // 20 ranges with 1000-byte gaps
  const bufs = await s.readRanges(wanted)
  wanted.forEach((r, i) => assert.deepEqual(bufs[i], p.data.subarray(r.offset, r.offset + r.length)))
  const packRequests = events.filter((e) => e.path.startsWith('/packs/'))
  assert.equal(packRequests.length, 1)
  assert.equal(packRequests[0]!.range, 'bytes=0-38999')
  assert.equal(packRequests[0]!.status, 206)
})

test('http store - spans go out in parallel, at most `concurrency` at a time', async (t) => {
  const p = buildPack(30, 100)
  let inFlight = 0
  let peak = 0
  let count = 0
  const url = await fake(t, (req, res) => {
    count++
    inFlight++
    peak = Math.max(peak, inFlight)
    const [a, b] = rangeOf(req)
    setTimeout(() => {
      inFlight--
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${p.data.length}`, 'content-length': b - a + 1 })
      res.end(p.data.subarray(a, b + 1))
    }, 100)
  })
  const s = open(t, url, { ...FAST, concurrency: 3, maxGap: 0 })
  const wanted = p.chunks.filter((_, i) => i % 2 === 0) // 15 separate spans
  const bufs = await s.readRanges(wanted)
  wanted.forEach((r, i) => assert.deepEqual(bufs[i], p.data.subarray(r.offset, r.offset + r.length)))
  assert.equal(count, 15)
  assert.ok(peak >= 2 && peak <= 3, `peak ${peak} requests in flight`) // parallel, and never above the limit
})

test('http store - 404 is CHUNK_MISSING without retries', async (t) => {
  const p = buildPack(2, 100)
  const { url, events } = await served(t, [p])
  const s = open(t, url)
  const ghost = 'e'.repeat(64)
  await assert.rejects(s.readRanges([{ pack: ghost, offset: 5, length: 5 }]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CHUNK_MISSING')
    assert.match(err.message, new RegExp(ghost))
    return true
  })
  assert.equal(events.length, 1)
})

test('http store - reading past the end of a pack is CHUNK_MISSING', async (t) => {
  const p = buildPack(2, 100)
  const { url } = await served(t, [p])
  const s = open(t, url)
  await assert.rejects(s.readRanges([{ pack: p.id, offset: 150, length: 100 }]), { code: 'CHUNK_MISSING' }) // clipped 206
  await assert.rejects(s.readRanges([{ pack: p.id, offset: 300, length: 1 }]), { code: 'CHUNK_MISSING' }) // 416
})

test('http store - a stopped server is STORE_UNAVAILABLE naming the URL, after the retries', async (t) => {
  const p = buildPack(2, 100)
  const srv = await served(t, [p])
  const s = open(t, srv.url)
  await s.readRanges([p.chunks[0]!]) // a live keep-alive connection first
  await srv.stop()
  await assert.rejects(s.readRanges([p.chunks[1]!]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.ok(err.message.includes(`${srv.url}/packs/${p.id}`), err.message)
    assert.match(err.message, /3 attempts/)
    return true
  })
  await assert.rejects(s.statPack(p.id), { code: 'STORE_UNAVAILABLE' })
})

test('http store - many reads sharing one signal while the store is down raise no listener-leak warning', async (t) => {
  const p = buildPack(2, 100)
  const srv = await served(t, [p])
  const s = open(t, srv.url)
  await srv.stop()
  const warnings: string[] = []
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  // A mount's fetches share its one signal; each waiting or retrying request holds a listener on it and on the
  // store's close signal until it ends.
  const shared = new AbortController()
  const reads = Array.from({ length: 40 }, (_, i) => s.readRanges([{ ...p.chunks[i % 2]!, offset: p.chunks[i % 2]!.offset }], { signal: shared.signal }))
  const results = await Promise.allSettled(reads)
  assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'STORE_UNAVAILABLE'))
  await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on the next tick
  assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), [])
})

test('http store - a server that never answers times out into STORE_UNAVAILABLE', async (t) => {
  const sockets = new Set<Socket>()
  const tcp = createTcpServer((sock) => {
    sockets.add(sock)
    sock.on('error', () => {})
  })
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
  t.after(() => {
    for (const s of sockets) s.destroy()
    tcp.close()
  })
  const s = open(t, `http://127.0.0.1:${(tcp.address() as AddressInfo).port}`, { timeoutMs: 150, retries: 1, backoffMs: [10] })
  await assert.rejects(s.readRanges([{ pack: 'a'.repeat(64), offset: 0, length: 10 }]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.match(err.message, /no complete answer within 150 ms/)
    return true
  })
  assert.equal(sockets.size >= 1, true)
})

test('http store - 5xx answers are retried, then succeed', async (t) => {
  const p = buildPack(3, 100)
  let calls = 0
  const url = await fake(t, (req, res) => {
    calls++
    if (calls <= 2) {
      res.writeHead(503)
      res.end('busy')
      return
    }
    const [a, b] = rangeOf(req)
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${p.data.length}` })
    res.end(p.data.subarray(a, b + 1))
  })
  const s = open(t, url)
  assert.deepEqual((await s.readRanges([p.chunks[1]!]))[0], p.data.subarray(100, 200))
  assert.equal(calls, 3)
  calls = -10 // always 503 now
  await assert.rejects(s.readRanges([p.chunks[1]!]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.match(err.message, /HTTP 503/)
    return true
  })
})

test('http store - a short or wrong body is an error, never wrong data', async (t) => {
  const p = buildPack(3, 100)
  let mode: 'chunked-short' | 'length-short' | 'wrong-range' | 'long' = 'chunked-short'
  let calls = 0
  const url = await fake(t, (req, res) => {
    calls++
    const [a, b] = rangeOf(req)
    const cr = `bytes ${a}-${b}/${p.data.length}`
    if (mode === 'chunked-short') {
      res.writeHead(206, { 'content-range': cr }) // no Content-Length: chunked, ends cleanly but short
      res.end(p.data.subarray(a, b))
    } else if (mode === 'length-short') {
      res.writeHead(206, { 'content-range': cr, 'content-length': b - a + 1 })
      res.write(p.data.subarray(a, b - 10))
      setTimeout(() => res.destroy(), 5)
    } else if (mode === 'long') {
      res.writeHead(206, { 'content-range': cr })
      res.end(p.data.subarray(a, b + 2))
    } else {
      res.writeHead(206, { 'content-range': `bytes ${a + 1}-${b + 1}/${p.data.length}`, 'content-length': b - a + 1 })
      res.end(p.data.subarray(a + 1, b + 2))
    }
  })
  const s = open(t, url)
  for (const m of ['chunked-short', 'length-short', 'long', 'wrong-range'] as const) {
    mode = m
    calls = 0
    await assert.rejects(s.readRanges([p.chunks[1]!]), { code: 'STORE_UNAVAILABLE' }, m)
    assert.equal(calls, m === 'wrong-range' ? 1 : 3, m)
  }
})

test('http store - a server that ignores Range (200) still yields the right bytes', async (t) => {
  const p = buildPack(4, 1000)
  const url = await fake(t, (_req, res) => {
    res.writeHead(200, { 'content-length': p.data.length })
    res.end(p.data)
  })
  const s = open(t, url)
  const bufs = await s.readRanges([p.chunks[2]!, { pack: p.id, offset: 3990, length: 10 }])
  assert.deepEqual(bufs[0], p.data.subarray(2000, 3000))
  assert.deepEqual(bufs[1], p.data.subarray(3990, 4000))
  await assert.rejects(s.readRanges([{ pack: p.id, offset: 3990, length: 20 }]), { code: 'CHUNK_MISSING' })
})

test('http store - statPack asks for one byte through the range client; a server without Range support is asked with HEAD', async (t) => {
  const p = buildPack(4, 1000)
  for (const ranges of [true, false]) {
    const methods: string[] = []
    const url = await fake(t, (req, res) => {
      methods.push(`${req.method} ${req.headers.range ?? ''}`.trim())
      if (!req.url!.endsWith(p.id)) {
        res.writeHead(404, { 'content-length': 0 })
        res.end()
      } else if (ranges && req.headers.range === 'bytes=0-0') {
        res.writeHead(206, { 'content-length': 1, 'content-range': `bytes 0-0/${p.data.length}` })
        res.end(p.data.subarray(0, 1))
      } else {
        res.writeHead(200, { 'content-length': p.data.length })
        res.end(req.method === 'HEAD' ? undefined : p.data)
      }
    })
    const s = open(t, url)
    assert.equal(await s.statPack(p.id), 4000)
    assert.equal(await s.statPack('0'.repeat(64)), undefined)
    assert.deepEqual(methods, ranges ? ['GET bytes=0-0', 'GET bytes=0-0'] : ['GET bytes=0-0', 'HEAD', 'GET bytes=0-0'])
  }
})

test('http store - credentials leave the URL and travel as Basic auth; 401 is not retried', async (t) => {
  const p = buildPack(1, 10)
  const seen: Array<string | undefined> = []
  const url = await fake(t, (req, res) => {
    seen.push(req.headers.authorization)
    if (req.headers.authorization !== `Basic ${Buffer.from('bob:s3cr:t').toString('base64')}`) {
      res.writeHead(401)
      res.end()
      return
    }
    const [a, b] = rangeOf(req)
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${p.data.length}` })
    res.end(p.data.subarray(a, b + 1))
  })
  const withCreds = url.replace('http://', 'http://bob:s3cr%3At@') + '/base/'
  const s = open(t, withCreds)
  assert.equal(s.url, `${url}/base`)
  assert.deepEqual((await s.readRanges([p.chunks[0]!]))[0], p.data)
  const anon = open(t, url)
  await assert.rejects(anon.readRanges([p.chunks[0]!]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.match(err.message, /401/)
    return true
  })
  assert.equal(seen.length, 2)
})

test('http store - abort and close stop requests in flight', async (t) => {
  const url = await fake(t, () => {
    // never answers
  })
  const s = open(t, url, { timeoutMs: 30000, retries: 0 })
  const ac = new AbortController()
  const pending = s.readRanges([{ pack: 'a'.repeat(64), offset: 0, length: 1 }], { signal: ac.signal })
  setTimeout(() => ac.abort(), 50)
  await assert.rejects(pending, { name: 'AbortError' })
  const second = s.readRanges([{ pack: 'a'.repeat(64), offset: 0, length: 1 }])
  setTimeout(() => void s.close(), 50)
  await assert.rejects(second, { code: 'STORE_UNAVAILABLE' })
  await assert.rejects(s.readRanges([{ pack: 'a'.repeat(64), offset: 0, length: 1 }]), { code: 'STORE_UNAVAILABLE' })
  await s.close()
})

test('http store - the first failing span fails the call and cancels the other requests', { timeout: 20000 }, async (t) => {
  const missing = 'd'.repeat(64)
  const slow = 'c'.repeat(64)
  let slowClosed!: () => void
  const closed = new Promise<void>((r) => (slowClosed = r))
  const url = await fake(t, (req, res) => {
    if (req.url === `/packs/${missing}`) {
      setTimeout(() => {
        res.writeHead(404)
        res.end()
      }, 30)
      return
    }
    res.on('close', () => slowClosed()) // the slow pack never answers; its client goes away
  })
  const s = open(t, url, { timeoutMs: 60000, retries: 0 })
  await assert.rejects(
    s.readRanges([
      { pack: slow, offset: 0, length: 10 },
      { pack: missing, offset: 0, length: 10 },
    ]),
    { code: 'CHUNK_MISSING' },
  )
  await closed
})

test('http store - bad URLs and options are INVALID_ARGUMENT', () => {
  assert.throws(() => new HttpStore('ftp://x'), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new HttpStore('http://x/?a=1'), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new HttpStore('not a url'), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new HttpStore('http://x', { timeoutMs: 0 }), { code: 'INVALID_ARGUMENT' })
  assert.throws(() => new HttpStore('http://x', { backoffMs: [] }), { code: 'INVALID_ARGUMENT' })
})

test('http store - one connection serves every sequential request; a connection the server closed while idle is replaced without an error', async (t) => {
  const data = Buffer.from('0123456789abcdef'.repeat(64))
  const pack = 'e'.repeat(64)
  const peers = new Set<number>()
  let closeAfterAnswer = false
  const url = await fake(t, (req, res) => {
    peers.add(req.socket.remotePort!)
    const [a, b] = rangeOf(req)
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${data.length}`, 'content-length': String(b - a + 1) })
    res.end(data.subarray(a, b + 1))
    // The server drops the connection just after answering, as an idle timeout would: the next request
    // finds the pooled socket closed.
    if (closeAfterAnswer) res.on('finish', () => setTimeout(() => req.socket.destroy(), 5))
  })
  const s = open(t, url, { timeoutMs: 2000, retries: 0 })
  for (let i = 0; i < 10; i++) {
    const [got] = await s.readRanges([{ pack, offset: i * 10, length: 10 }])
    assert.deepEqual(got, data.subarray(i * 10, i * 10 + 10))
  }
  assert.equal(peers.size, 1, 'ten sequential requests over one connection')
  closeAfterAnswer = true
  for (let i = 0; i < 5; i++) {
    const [got] = await s.readRanges([{ pack, offset: i * 7, length: 7 }])
    assert.deepEqual(got, data.subarray(i * 7, i * 7 + 7))
    await new Promise((r) => setTimeout(r, 20)) // the server closes the idle connection meanwhile
  }
})

test('http store - a body that stalls after the headers times out into STORE_UNAVAILABLE', async (t) => {
  const url = await fake(t, (req, res) => {
    const [a, b] = rangeOf(req)
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/1000`, 'content-length': String(b - a + 1) })
    res.write(Buffer.alloc(3)) // and never the rest
  })
  const s = open(t, url, { timeoutMs: 150, retries: 1, backoffMs: [10] })
  const t0 = Date.now()
  await assert.rejects(s.readRanges([{ pack: 'a'.repeat(64), offset: 0, length: 10 }]), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'STORE_UNAVAILABLE')
    assert.match(err.message, /no complete answer within 150 ms/)
    return true
  })
  assert.ok(Date.now() - t0 < 2000)
})
