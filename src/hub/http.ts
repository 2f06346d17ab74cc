// HTTP plumbing of the hub server: JSON answers, errors as {"error":{code,message,details}} with a status that
// follows the code, and bounded request bodies read into memory or a temp file while being hashed.
import { createHash, randomBytes } from 'node:crypto'
import { open, rm } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { ZosError, errorMessage, zerr, type ErrorCode } from '../core/errors.js'

const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  BAD_NAME: 400,
  UNSUPPORTED: 400,
  HUB_AUTH: 401,
  HUB_FORBIDDEN: 403,
  UNTRUSTED_SIGNER: 403,
  NOT_FOUND: 404,
  EXISTS: 409,
  CHUNK_MISSING: 409,
  HUB_TOO_LARGE: 413,
  FLIST_CORRUPT: 422,
  FLIST_VERSION: 422,
  BAD_ARCHIVE: 422,
  UNSAFE_PATH: 422,
  SOURCE_CHANGED: 422,
  CHUNK_TAMPERED: 422,
  SIGNATURE_INVALID: 422,
  HUB_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  LEDGER_UNAVAILABLE: 503,
  HUB_QUOTA: 507,
}

export function statusOf(err: unknown): number {
  return ZosError.is(err) ? (STATUS[err.code] ?? 500) : 500
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = Buffer.from(JSON.stringify(value) + '\n')
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-cache', ...headers })
  res.end(body)
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = statusOf(err)
  const error = ZosError.is(err) ? err.toJSON() : { code: 'INTERNAL', message: `internal error: ${errorMessage(err)}`, details: {} }
  if (res.headersSent) {
    res.destroy()
    return
  }
  sendJson(res, status, { error })
}

export function sendHtml(res: ServerResponse, html: string): void {
  const body = Buffer.from(html)
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-cache' })
  res.end(body)
}

/** Refuses a body announced larger than `limit` before reading any of it. */
export function checkLength(req: IncomingMessage, limit: number, what: string): number | undefined {
  const header = req.headers['content-length']
  if (header === undefined) return undefined
  const n = Number(header)
  if (!Number.isSafeInteger(n) || n < 0) throw zerr('INVALID_ARGUMENT', `bad Content-Length ${JSON.stringify(header)}`)
  if (n > limit) throw zerr('HUB_TOO_LARGE', `${what} of ${n} bytes is larger than this hub accepts (${limit} bytes)`, { size: n, limit })
  return n
}

/** Reads the whole body (at most `limit` bytes) into memory; returns it with its SHA-256. */
export async function readBody(req: IncomingMessage, limit: number, what: string): Promise<{ data: Buffer; sha256: string }> {
  const expected = checkLength(req, limit, what)
  const hash = createHash('sha256')
  const parts: Buffer[] = []
  let n = 0
  for await (const piece of req as AsyncIterable<Buffer>) {
    n += piece.length
    if (n > limit) throw zerr('HUB_TOO_LARGE', `${what} is larger than this hub accepts (${limit} bytes)`, { limit })
    hash.update(piece)
    parts.push(piece)
  }
  if (expected !== undefined && n !== expected) throw zerr('INVALID_ARGUMENT', `${what} is truncated: ${n} of ${expected} bytes arrived`)
  return { data: Buffer.concat(parts, n), sha256: hash.digest('hex') }
}

/** Bytes of a spooled body gathered before a write. */
const SPOOL_BATCH = 4 * 1024 * 1024

/**
 * Streams the body into a new temp file under `dir` (at most `limit` bytes), hashing it. The file is removed
 * when anything fails; on success the caller owns it. Its fsync is still running when this returns (the file can
 * be read and checked meanwhile): `durable` settles once it is done, and must be awaited before the file is
 * renamed into place (STORE_UNAVAILABLE when it fails).
 */
export async function spoolBody(req: IncomingMessage, dir: string, limit: number, what: string): Promise<{ path: string; size: number; sha256: string; head: Buffer; durable: Promise<void> }> {
  const expected = checkLength(req, limit, what)
  const path = join(dir, `upload-${process.pid}-${randomBytes(8).toString('hex')}.tmp`)
  const fh = await open(path, 'wx', 0o600)
  const hash = createHash('sha256')
  const head: Buffer[] = []
  let headBytes = 0
  let n = 0
  let pending: Buffer[] = []
  let pendingBytes = 0
  let written = 0
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
    pending = []
    pendingBytes = 0
    let off = 0
    while (off < data.length) off += (await fh.write(data, off, data.length - off, written + off)).bytesWritten
    written += data.length
  }
  try {
    for await (const piece of req as AsyncIterable<Buffer>) {
      n += piece.length
      if (n > limit) throw zerr('HUB_TOO_LARGE', `${what} is larger than this hub accepts (${limit} bytes)`, { limit })
      hash.update(piece)
      if (headBytes < 4096) {
        head.push(piece.subarray(0, 4096 - headBytes))
        headBytes += Math.min(piece.length, 4096 - headBytes)
      }
      // Written in batches: a small body (a metadata file) in one write once it is whole, not piece by piece
      // between the pieces of the pack uploads this thread is receiving too.
      pending.push(piece)
      pendingBytes += piece.length
      if (pendingBytes >= SPOOL_BATCH) await flush()
    }
    await flush()
    if (expected !== undefined && n !== expected) throw zerr('INVALID_ARGUMENT', `${what} is truncated: ${n} of ${expected} bytes arrived`)
  } catch (err) {
    await fh.close().catch(() => {})
    await rm(path, { force: true })
    if (ZosError.is(err)) throw err
    throw zerr('INVALID_ARGUMENT', `${what} did not arrive whole (${errorMessage(err)}); nothing was kept`, {}, err)
  }
  const durable = fh
    .sync()
    .finally(() => fh.close())
    .catch((err: unknown) => {
      throw zerr('STORE_UNAVAILABLE', `${what} could not be written to ${dir}: ${errorMessage(err)}`, {}, err)
    })
  durable.catch(() => {}) // awaited by the caller before it keeps the file
  return { path, size: n, sha256: hash.digest('hex'), head: Buffer.concat(head), durable }
}

/** Query parameters of a request target. */
export function queryOf(url: string): URLSearchParams {
  const i = url.indexOf('?')
  return new URLSearchParams(i < 0 ? '' : url.slice(i + 1))
}

export function boolParam(q: URLSearchParams, name: string, dflt: boolean): boolean {
  const v = q.get(name)
  if (v === null) return dflt
  if (v === '1' || v === 'true') return true
  if (v === '0' || v === 'false') return false
  throw zerr('INVALID_ARGUMENT', `query parameter ${name} must be true or false, got ${JSON.stringify(v)}`)
}

export function intParam(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const v = q.get(name)
  if (v === null) return dflt
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n > max) throw zerr('INVALID_ARGUMENT', `query parameter ${name} must be an integer 0..${max}, got ${JSON.stringify(v)}`)
  return n
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}
