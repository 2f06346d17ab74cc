// A small read-only HTTP server for a dir store's packs (what HttpStore reads):
//   GET|HEAD /packs/<id>   the pack, with Range (single → 206, several → multipart/byteranges), ETag = id, immutable
//   GET /healthz           "ok"
//   GET /stats             {"packs","bytes","chunks"} from the store index
//   GET /metrics           Prometheus text: requests by status, bytes sent
// The pack id is checked (64 lowercase hex) before the disk is touched; bad input never crashes the server.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { drainedOrClosed } from '../core/drain.js'
import { errorMessage, zerr } from '../core/errors.js'
import { isPackId } from './coalesce.js'
import { DirStore, packPath } from './dir.js'
import { FdCache } from './fdcache.js'

export const CACHE_CONTROL = 'public, max-age=31536000, immutable'
/** Ranges accepted in one request; more is answered 416 (clients should coalesce instead). */
export const MAX_RANGES = 64
/** Bytes read from a pack per file read and socket write. */
const PIECE = 1024 * 1024
/**
 * Read buffers kept for reuse. A fresh 1 MiB buffer is fresh memory to the kernel (glibc maps allocations over
 * 128 KiB anew), and each first touch of a 4 KiB page costs 10-15 µs on the VMs we measure: about 1 ms of a
 * 400 KB range answer, a third of its latency on loopback (a mount's page fault waits for it).
 */
const POOLED_PIECES = 16
const pieces: Buffer[] = []

export interface ServeOptions {
  /** The store directory (a path, not a URL). */
  root: string
  /** Address to listen on (default 127.0.0.1). */
  host?: string
  /** Port (default 0: any free port). */
  port?: number
  /** Called once per finished request (logging, tests). */
  onRequest?: (event: RequestEvent) => void
}

export interface RequestEvent {
  method: string
  path: string
  status: number
  /** Body bytes written. */
  bytes: number
  range?: string
}

export interface StoreServer {
  /** Base URL to give to HttpStore / `openStore`, e.g. http://127.0.0.1:8080 */
  readonly url: string
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export type ParsedRange = { start: number; end: number }

/**
 * Parses a Range header against a resource of `size` bytes (RFC 9110 §14.1.2). Returns the satisfiable ranges
 * (last positions clipped to the end), 'unsatisfiable' when none is, or 'invalid' when the header is malformed.
 */
export function parseRange(header: string, size: number): ParsedRange[] | 'unsatisfiable' | 'invalid' {
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header)
  if (!m) return 'invalid'
  const specs = m[1]!.split(',').map((x) => x.trim()).filter((x) => x !== '')
  if (specs.length === 0 || specs.length > MAX_RANGES) return 'invalid'
  const out: ParsedRange[] = []
  for (const spec of specs) {
    const r = /^(\d*)-(\d*)$/.exec(spec)
    if (!r || (r[1] === '' && r[2] === '')) return 'invalid'
    if (r[1] === '') {
      const suffix = Number(r[2])
      if (!Number.isSafeInteger(suffix)) return 'invalid'
      if (suffix === 0 || size === 0) continue
      out.push({ start: Math.max(0, size - suffix), end: size - 1 })
      continue
    }
    const start = Number(r[1])
    const end = r[2] === '' ? Number.MAX_SAFE_INTEGER : Number(r[2])
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return 'invalid'
    if (start >= size) continue
    out.push({ start, end: Math.min(end, size - 1) })
  }
  return out.length === 0 ? 'unsatisfiable' : out
}

class Metrics {
  readonly byStatus = new Map<number, number>()
  bytes = 0
  record(status: number, bytes: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1)
    this.bytes += bytes
  }
  render(): string {
    const lines = ['# HELP zos_store_http_requests_total HTTP requests answered, by status.', '# TYPE zos_store_http_requests_total counter']
    for (const [code, n] of [...this.byStatus].sort((a, b) => a[0] - b[0])) lines.push(`zos_store_http_requests_total{code="${code}"} ${n}`)
    lines.push('# HELP zos_store_http_sent_bytes_total Response body bytes sent.', '# TYPE zos_store_http_sent_bytes_total counter')
    lines.push(`zos_store_http_sent_bytes_total ${this.bytes}`)
    return lines.join('\n') + '\n'
  }
}

/** Body bytes written per response, for logs and metrics. */
const sentBytes = new WeakMap<ServerResponse, number>()

function send(res: ServerResponse, chunk: Buffer | string, written?: () => void): boolean {
  sentBytes.set(res, (sentBytes.get(res) ?? 0) + Buffer.byteLength(chunk))
  return written ? res.write(chunk, written) : res.write(chunk)
}

/** Writes bytes start..end (inclusive) of `fh` to `res`, honouring back-pressure; false if the client left. */
async function writeRange(fh: FileHandle, start: number, end: number, res: ServerResponse): Promise<boolean> {
  let pos = start
  while (pos <= end) {
    if (res.destroyed) return false
    const buf = pieces.pop() ?? Buffer.allocUnsafeSlow(PIECE)
    const { bytesRead } = await fh.read(buf, 0, Math.min(PIECE, end + 1 - pos), pos)
    if (bytesRead === 0) {
      pieces.push(buf)
      throw new Error(`file ended at byte ${pos}, before ${end + 1}`)
    }
    pos += bytesRead
    // The buffer is reused only once the socket has taken (or dropped) its bytes.
    const flowing = send(res, buf.subarray(0, bytesRead), () => {
      if (pieces.length < POOLED_PIECES) pieces.push(buf)
    })
    if (!flowing) await drainedOrClosed(res)
  }
  return true
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}, head = false): void {
  const body = Buffer.from(text.endsWith('\n') ? text : text + '\n')
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, ...headers })
  if (!head) send(res, body)
  res.end()
}

/**
 * Answers GET/HEAD of one pack of the dir store at `root` (ETag = id, immutable caching, single and multiple
 * Ranges, If-None-Match, If-Range). `id` must already be checked with isPackId. Also used by the hub.
 */
export async function servePack(fds: FdCache, root: string, req: IncomingMessage, res: ServerResponse, id: string, head: boolean): Promise<void> {
  let lease
  try {
    lease = await fds.acquire(packPath(root, id))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return sendText(res, 404, `pack ${id} is not in this store`, {}, head)
    throw err
  }
  try {
    const { fh, size } = lease
    const etag = `"${id}"`
    const common = { etag, 'cache-control': CACHE_CONTROL, 'accept-ranges': 'bytes' }
    const inm = req.headers['if-none-match']
    if (inm !== undefined && (inm.trim() === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))) {
      res.writeHead(304, common)
      res.end()
      return
    }
    let range = req.headers.range
    const ifRange = req.headers['if-range']
    if (range !== undefined && ifRange !== undefined && String(ifRange).trim() !== etag) range = undefined
    if (range === undefined) {
      res.writeHead(200, { ...common, 'content-type': 'application/octet-stream', 'content-length': size })
      if (head) res.end()
      else if (await writeRange(fh, 0, size - 1, res)) res.end()
      return
    }
    const parsed = parseRange(range, size)
    if (parsed === 'invalid' || parsed === 'unsatisfiable') {
      const why = parsed === 'invalid' ? `malformed Range header (use bytes=FIRST-LAST, at most ${MAX_RANGES} ranges)` : `range outside the ${size}-byte pack`
      return sendText(res, 416, why, { ...common, 'content-range': `bytes */${size}` }, head)
    }
    if (parsed.length === 1) {
      const { start, end } = parsed[0]!
      res.writeHead(206, {
        ...common,
        'content-type': 'application/octet-stream',
        'content-range': `bytes ${start}-${end}/${size}`,
        'content-length': end - start + 1,
      })
      if (head) res.end()
      else if (await writeRange(fh, start, end, res)) res.end()
      return
    }
    const boundary = `zos-${randomBytes(12).toString('hex')}`
    const partHead = parsed.map(
      (r, i) =>
        `${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: application/octet-stream\r\ncontent-range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
    )
    const tail = `\r\n--${boundary}--\r\n`
    const length = partHead.reduce((n, h, i) => n + Buffer.byteLength(h) + parsed[i]!.end - parsed[i]!.start + 1, 0) + tail.length
    res.writeHead(206, { ...common, 'content-type': `multipart/byteranges; boundary=${boundary}`, 'content-length': length })
    if (head) return void res.end()
    for (let i = 0; i < parsed.length; i++) {
      send(res, partHead[i]!)
      if (!(await writeRange(fh, parsed[i]!.start, parsed[i]!.end, res))) return
    }
    send(res, tail)
    res.end()
  } finally {
    lease.release()
  }
}

/** Starts serving the dir store at `options.root`; resolves once listening. */
export async function serveStore(options: ServeOptions): Promise<StoreServer> {
  const store = await DirStore.open(options.root)
  const root = store.root
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw zerr('INVALID_ARGUMENT', `port must be 0..65535, got ${port}`)
  const fds = new FdCache()
  const metrics = new Metrics()

  async function stats(res: ServerResponse, head: boolean): Promise<void> {
    // A store that was never written to has no index yet: do not create one from a read-only server.
    const totals = existsSync(join(root, 'index.db')) ? await store.stats() : { packs: 0, bytes: 0, chunks: 0 }
    const body = Buffer.from(JSON.stringify(totals) + '\n')
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-cache' })
    if (!head) send(res, body)
    res.end()
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET'
    const path = (req.url ?? '/').split('?')[0]!
    const head = method === 'HEAD'
    if (method !== 'GET' && method !== 'HEAD') return sendText(res, 405, `method ${method} not allowed: this server is read-only`, { allow: 'GET, HEAD' })
    if (path === '/healthz') return sendText(res, 200, 'ok', { 'cache-control': 'no-cache' }, head)
    if (path === '/stats') return stats(res, head)
    if (path === '/metrics') return sendText(res, 200, metrics.render(), { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-cache' }, head)
    const m = /^\/packs\/([^/]*)$/.exec(path)
    if (!m) return sendText(res, 404, `no such endpoint ${path}; packs are at /packs/<64-hex-id>`, {}, head)
    if (!isPackId(m[1])) return sendText(res, 400, 'bad pack id: expected 64 lowercase hex characters', {}, head)
    return servePack(fds, root, req, res, m[1], head)
  }

  const server = createServer({ keepAlive: true }, (req, res) => {
    res.on('close', () => {
      const bytes = sentBytes.get(res) ?? 0
      metrics.record(res.statusCode, bytes)
      options.onRequest?.({ method: req.method ?? '', path: req.url ?? '', status: res.statusCode, bytes, range: req.headers.range })
    })
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendText(res, 500, `internal error: ${errorMessage(err)}`)
      else res.destroy()
    })
  })

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(zerr('STORE_UNAVAILABLE', `cannot listen on ${host}:${port}: ${err.message}`, { host, port }, err))
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  let closed: Promise<void> | undefined
  return {
    url: `http://${shownHost}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    close: () => {
      closed ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
        await fds.close()
        await store.close()
      })()
      return closed
    },
  }
}
