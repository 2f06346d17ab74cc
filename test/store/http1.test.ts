// The small HTTP/1.1 client of pack range reads (src/store/http1.ts), against loopback servers that write their
// answers byte for byte: framing (Content-Length, chunked), connection reuse, what it leaves to node:http, and
// every way a connection can end early.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { Http1Pool } from '../../src/store/http1.js'
import { HttpStore } from '../../src/store/http.js'

interface RawServer {
  url: URL
  /** Connections accepted so far. */
  connections(): number
  /** Request heads received, in order. */
  readonly requests: string[]
}

/** A server that answers each request head with `answer(requestNumber, socket)` (which writes raw bytes). */
async function rawServer(t: TestContext, answer: (n: number, socket: Socket, head: string) => void): Promise<RawServer> {
  const sockets = new Set<Socket>()
  const requests: string[] = []
  let accepted = 0
  const server = createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buf = ''
    socket.on('data', (d) => {
      buf += d.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end)
        buf = buf.slice(end + 4)
        requests.push(head)
        answer(requests.length, socket, head)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  const { port } = server.address() as AddressInfo
  return { url: new URL(`http://127.0.0.1:${port}`), connections: () => accepted, requests }
}

function pool(t: TestContext, url: URL, maxIdle = 4): Http1Pool {
  const p = new Http1Pool(url, maxIdle)
  t.after(() => p.close())
  return p
}

const never = new AbortController().signal
const bytes = (n: number, seed = 1): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff))

test('http1 - a 206 with Content-Length: the body, the headers, and the connection kept for the next request', async (t) => {
  const body = bytes(300_000)
  const srv = await rawServer(t, (n, s) => {
    s.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-${body.length - 1}/999999\r\nX-Twice: a\r\nx-twice: b\r\nContent-Length: ${body.length}\r\n\r\n`)
    s.write(body)
  })
  const p = pool(t, srv.url)
  for (let i = 0; i < 3; i++) {
    const a = await p.get('/packs/x', { 'user-agent': 'test', range: 'bytes=0-299999' }, never)
    assert.ok(a)
    assert.equal(a.status, 206)
    assert.equal(a.statusText, 'Partial Content')
    assert.equal(a.header('content-range'), `bytes 0-${body.length - 1}/999999`)
    assert.equal(a.header('X-TWICE'), 'a, b')
    assert.deepEqual(await a.body(body.length), body)
  }
  assert.equal(srv.connections(), 1, 'one kept-alive connection')
  assert.match(srv.requests[0]!, /^GET \/packs\/x HTTP\/1\.1\r\nhost: 127\.0\.0\.1:\d+\r\nuser-agent: test\r\nrange: bytes=0-299999$/)
})

test('http1 - a chunked body with extensions and trailers, written one byte at a time', async (t) => {
  const body = bytes(5000, 7)
  const wire = Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    Buffer.from('7d0;name=value\r\n'), body.subarray(0, 2000), Buffer.from('\r\n'),
    Buffer.from('BB8\r\n'), body.subarray(2000), Buffer.from('\r\n'),
    Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
  ])
  const srv = await rawServer(t, (n, s) => {
    for (let i = 0; i < wire.length; i++) s.write(wire.subarray(i, i + 1))
  })
  const p = pool(t, srv.url)
  for (let i = 0; i < 2; i++) {
    const a = await p.get('/packs/y', {}, never)
    assert.ok(a)
    assert.deepEqual(await a.body(10_000), body)
  }
  assert.equal(srv.connections(), 1, 'a complete chunked body keeps the connection')
  const cut = await p.get('/packs/y', {}, never)
  assert.deepEqual(await cut!.body(2500, true), body.subarray(0, 2500), 'cut at the cap when asked to')
  await (await p.get('/packs/y', {}, never))!.body(10_000)
  assert.equal(srv.connections(), 2, 'a body cut short drops its connection')
})

test('http1 - a malformed chunked body or a body longer than asked is an error, and the connection is not reused', async (t) => {
  const srv = await rawServer(t, (n, s) => {
    if (n === 1) s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n')
    else s.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n0123456789')
  })
  const p = pool(t, srv.url)
  const a = await p.get('/a', {}, never)
  assert.ok(a)
  await assert.rejects(a.body(100), /bad chunk size/)
  const b = await p.get('/b', {}, never)
  assert.ok(b)
  await assert.rejects(b.body(5), /more than the 5 bytes/)
  const c = await p.get('/c', {}, never)
  assert.ok(c)
  assert.equal((await c.body(5, true)).toString(), '01234', 'cut at the cap when asked to')
  assert.equal(srv.connections(), 3)
})

test('http1 - answers it does not frame itself are left to node:http (undefined, connection dropped)', async (t) => {
  const answers = [
    'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2/3\r\n\r\nabc', // ends with the connection
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 206 Partial Content\r\nX-Folded: a\r\n b\r\nContent-Length: 1\r\n\r\nx',
    'HTTP/1.1 206 Partial Content\r\nContent-Length: 1, 2\r\n\r\nx',
    'ICY 200 OK\r\nContent-Length: 1\r\n\r\nx',
    `HTTP/1.1 206 Partial Content\r\nX-Big: ${'a'.repeat(70_000)}\r\nContent-Length: 1\r\n\r\nx`,
  ]
  const srv = await rawServer(t, (n, s) => {
    s.write(answers[n - 1]!)
  })
  const p = pool(t, srv.url)
  for (const [i, text] of answers.entries()) assert.equal(await p.get(`/${i}`, {}, never), undefined, text.slice(0, 60))
  assert.equal(srv.connections(), answers.length)
})

test('http1 - a kept connection the server closed while idle is replaced without an error', async (t) => {
  const srv = await rawServer(t, (n, s) => {
    s.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n\r\nok')
    if (n === 1) setTimeout(() => s.destroy(), 20) // closes the idle connection
  })
  const p = pool(t, srv.url)
  const a = await p.get('/1', {}, never)
  assert.equal((await a!.body(2)).toString(), 'ok')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const b = await p.get('/2', {}, never)
  assert.equal((await b!.body(2)).toString(), 'ok')
  assert.equal(srv.connections(), 2)
})

test('http1 - a server that closes mid-head or mid-body fails the request; Connection: close is honoured', async (t) => {
  const srv = await rawServer(t, (n, s) => {
    if (n === 1) s.end('HTTP/1.1 206 Partial Content\r\nContent-Len')
    else if (n === 2) s.end('HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\nonly this')
    else s.write('HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok')
  })
  const p = pool(t, srv.url)
  await assert.rejects(p.get('/1', {}, never), /closed the connection before its answer was complete/)
  const b = await p.get('/2', {}, never)
  await assert.rejects(b!.body(100), /closed the connection 9 bytes into/)
  for (let i = 0; i < 2; i++) assert.equal((await (await p.get('/3', {}, never))!.body(2)).toString(), 'ok')
  assert.equal(srv.connections(), 4, 'no connection kept after Connection: close')
})

test('http1 - an abort fails the request at once and drops its connection', async (t) => {
  const srv = await rawServer(t, (n, s) => {
    s.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n01234') // and then nothing
  })
  const p = pool(t, srv.url)
  const ctl = new AbortController()
  const a = await p.get('/1', {}, ctl.signal)
  const reading = a!.body(10)
  setTimeout(() => ctl.abort(new Error('stop')), 20)
  await assert.rejects(reading, /stop/)
  const early = new AbortController()
  early.abort(new Error('already'))
  await assert.rejects(p.get('/2', {}, early.signal), /already/)
})

test('http1 - a small unwanted body is read away and its connection kept; a refused connection is an error', async (t) => {
  const srv = await rawServer(t, (n, s) => {
    if (n === 1) s.write('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found')
    else s.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n\r\nok')
  })
  const p = pool(t, srv.url)
  const a = await p.get('/1', {}, never)
  assert.equal(a!.status, 404)
  await a!.discard()
  assert.equal((await (await p.get('/2', {}, never))!.body(2)).toString(), 'ok')
  assert.equal(srv.connections(), 1)
  const down = pool(t, new URL('http://127.0.0.1:1'))
  await assert.rejects(down.get('/x', {}, never), (err: Error & { code?: string }) => err.code === 'ECONNREFUSED')
})

test('http1 - through HttpStore: a store whose answers end with the connection still reads right (via node:http)', async (t) => {
  const data = bytes(1000, 3)
  const srv = await rawServer(t, (n, s, head) => {
    const [, a, b] = /range: bytes=(\d+)-(\d+)/i.exec(head)!.map(Number) as [number, number, number]
    s.end(Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${a}-${b}/${data.length}\r\nConnection: close\r\n\r\n`), data.subarray(a, b + 1)]))
  })
  const store = new HttpStore(srv.url.href, { retries: 0 })
  t.after(() => store.close())
  const [got] = await store.readRanges([{ pack: 'a'.repeat(64), offset: 100, length: 200 }])
  assert.deepEqual(got, data.subarray(100, 300))
  assert.equal(srv.requests.length, 2, 'asked once by the small client, once more through node:http')
})
