// HubClient: typed calls to a hub's HTTP API (docs/hub.md). Writes are signed with the caller's key (auth.ts);
// failures come back as ZosErrors with the hub's code and message, or HUB_UNAVAILABLE when the hub cannot be
// reached or answers something that is not the API. Bodies are streamed from files where they can be large.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ERROR_CODES, errorMessage, zerr, ZosError, type ErrorCode } from '../core/errors.js'
import { drainedOrClosed } from '../core/drain.js'
import type { KeyPair } from '../core/keys.js'
import { tlsCaOptions } from '../core/tls.js'
import { createToken, EMPTY_BODY_HASH, sha256Hex } from './auth.js'
import { checkName, checkTag, DEFAULT_HUB_URL, normalizeNs } from './names.js'
import {
  API, MAX_QUERY_IDS, packBodyParts,
  type HubInfo, type JobInfo, type ListAnswer, type MissingAnswer, type NameDetail, type PackAnswer, type PackEntry,
  type PushAnswer, type TagAnswer, type VersionInfo, type WhoAmI,
} from './wire.js'

export interface HubClientOptions {
  /** Signs writes; reads need no key. */
  key?: KeyPair
  /** Time allowed without progress on one request (ms, default 120 000). */
  timeoutMs?: number
}

/**
 * A body: bytes, bytes in parts (sent in order, never copied together, then the bytes of `file` if given), or a
 * file (with its known hash).
 */
type Body = Buffer | { parts: readonly Buffer[]; file?: { path: string; size: number }; sha256: string } | { file: string; size: number; sha256: string }

interface CallOptions {
  body?: Body
  json?: unknown
  auth?: boolean
  /** Called with body bytes sent so far. */
  onSent?: (bytes: number) => void
  /** Called once the request line, headers and first body bytes are on a connected socket. */
  onStarted?: () => void
  /** Stream the answer into this file instead of memory. */
  saveTo?: string
  headers?: Record<string, string>
  /** Abandons the request (it fails with the signal's reason). */
  signal?: AbortSignal
}

interface Answer {
  status: number
  headers: IncomingMessage['headers']
  body: Buffer
}

/** The hub base URL: the argument, else $ZOS_HUB, else http://127.0.0.1:8080. */
export function hubUrl(url?: string): string {
  const u = (url ?? process.env.ZOS_HUB ?? DEFAULT_HUB_URL).replace(/\/+$/, '')
  let parsed: URL
  try {
    parsed = new URL(u)
  } catch {
    throw zerr('INVALID_ARGUMENT', `bad hub URL ${JSON.stringify(u)}: use http://HOST:PORT`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw zerr('INVALID_ARGUMENT', `hub URL ${u} must be http:// or https://`)
  return u
}

/** SHA-256 of a file, read as a stream. */
export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const piece of createReadStream(path) as AsyncIterable<Buffer>) h.update(piece)
  return h.digest('hex')
}

/** Bytes of a file body read at a time, and how many such buffers a client keeps for reuse. */
const FILE_PIECE = 1024 * 1024
const MAX_POOLED = 8

/** Largest metadata file uploaded from memory rather than streamed from its file. */
export const MAX_READ_WHOLE = 16 * 1024 * 1024

function seg(s: string): string {
  return encodeURIComponent(s)
}

export class HubClient {
  readonly url: string
  private readonly key: KeyPair | undefined
  /** Time allowed without progress on one request (ms). */
  readonly timeoutMs: number
  private readonly agent: HttpAgent | HttpsAgent
  /** Buffers file bodies are read into, reused (streamFile). */
  private readonly buffers: Buffer[] = []

  constructor(url?: string, options: HubClientOptions = {}) {
    this.url = hubUrl(url)
    this.key = options.key
    this.timeoutMs = options.timeoutMs ?? 120_000
    this.agent = this.url.startsWith('https:') ? new HttpsAgent({ keepAlive: true, maxSockets: 8, ...tlsCaOptions() }) : new HttpAgent({ keepAlive: true, maxSockets: 8 })
  }

  close(): void {
    this.agent.destroy()
  }

  private requireKey(): KeyPair {
    if (!this.key) throw zerr('INVALID_ARGUMENT', 'this hub request is a write and must be signed: pass --key FILE (a key from `zos key new`)')
    return this.key
  }

  /** One request; retried once on a connection failure when it is a read. */
  async call(method: string, path: string, options: CallOptions = {}): Promise<Answer> {
    const attempts = method === 'GET' || method === 'HEAD' ? 2 : 1
    for (let i = 0; ; i++) {
      try {
        return await this.once(method, path, options)
      } catch (err) {
        if (i + 1 >= attempts || (ZosError.is(err) && err.details.status !== undefined)) throw err
        await sleep(200)
      }
    }
  }

  private once(method: string, path: string, options: CallOptions): Promise<Answer> {
    let body: Body | undefined = options.body
    if (options.json !== undefined) body = Buffer.from(JSON.stringify(options.json))
    const headers: Record<string, string | number> = { accept: 'application/json', ...options.headers }
    if (options.json !== undefined) headers['content-type'] = 'application/json'
    if (body !== undefined) headers['content-length'] = Buffer.isBuffer(body) ? body.length : 'parts' in body ? body.parts.reduce((n, b) => n + b.length, body.file?.size ?? 0) : body.size
    if (options.auth) {
      const bodyHash = body === undefined ? EMPTY_BODY_HASH : Buffer.isBuffer(body) ? sha256Hex(body) : body.sha256
      headers.authorization = createToken(this.requireKey(), { method, path, bodyHash })
    }
    const target = new URL(this.url + path)
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise<Answer>((resolve, reject) => {
      let settled = false
      const fail = (err: unknown): void => {
        if (settled) return
        settled = true
        reject(ZosError.is(err) ? err : zerr('HUB_UNAVAILABLE', `cannot reach the hub at ${this.url} (${method} ${path.split('?')[0]}): ${errorMessage(err)}`, { url: this.url }, err))
      }
      let responded = false
      const req = send(target, { method, headers, agent: this.agent, timeout: this.timeoutMs }, (res) => {
        responded = true
        const status = res.statusCode ?? 0
        const ok = status >= 200 && status < 300
        if (ok && options.saveTo) {
          const out = createWriteStream(options.saveTo, { mode: 0o644 })
          res.pipe(out)
          out.on('finish', () => {
            if (!settled) {
              settled = true
              resolve({ status, headers: res.headers, body: Buffer.alloc(0) })
            }
          })
          out.on('error', fail)
          res.on('error', fail)
          res.on('aborted', () => fail(new Error('the answer was cut short')))
          return
        }
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('error', fail)
        res.on('end', () => {
          if (settled) return
          const data = Buffer.concat(parts)
          if (!ok && status !== 304) {
            settled = true
            reject(this.errorFrom(status, data, method, path))
            return
          }
          settled = true
          resolve({ status, headers: res.headers, body: data })
        })
      })
      req.on('timeout', () => req.destroy(new Error(`no progress for ${this.timeoutMs} ms`)))
      const signal = options.signal
      if (signal) {
        const abandon = (): void => {
          fail(signal.reason)
          req.destroy()
        }
        if (signal.aborted) abandon()
        else {
          signal.addEventListener('abort', abandon, { once: true })
          req.once('close', () => signal.removeEventListener('abort', abandon))
        }
      }
      // A hub that refuses an upload answers before reading it all and closes: the answer is what counts.
      req.on('error', (err) => {
        if (!responded) fail(err)
      })
      const streamFile = (path: string, size: number, before: number): void => {
        // Read into buffers reused across requests (a buffer returns once the socket has taken its bytes): a
        // push moves megabytes, and a fresh buffer per read would have the garbage collector run in the middle.
        let sent = before
        let closed = false
        req.once('close', () => (closed = true)) // a refused upload: stop reading the file
        const pump = async (): Promise<void> => {
          const fh = await open(path, 'r')
          try {
            for (let pos = 0; pos < size && !closed; ) {
              const buf = this.buffers.pop() ?? Buffer.allocUnsafeSlow(FILE_PIECE)
              const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos)
              if (bytesRead === 0) throw new Error(`${path} ends at byte ${pos} of ${size}`)
              pos += bytesRead
              sent += bytesRead
              options.onSent?.(sent)
              if (closed) break
              const flowing = req.write(buf.subarray(0, bytesRead), () => {
                if (this.buffers.length < MAX_POOLED) this.buffers.push(buf)
              })
              if (!flowing && !closed) await drainedOrClosed(req)
            }
            if (!closed) req.end()
          } finally {
            await fh.close()
          }
        }
        pump().catch((err: unknown) => {
          req.destroy(err as Error)
          fail(err)
        })
      }
      if (body === undefined) req.end()
      else if (Buffer.isBuffer(body) || 'parts' in body) {
        // In pieces, so that progress can be reported and back-pressure respected.
        const parts = Buffer.isBuffer(body) ? [body] : body.parts
        const piece = 1 << 20
        let part = 0
        let off = 0
        let sent = 0
        let first = options.onStarted
        const pump = (): void => {
          while (part < parts.length) {
            const buf = parts[part]!
            if (off >= buf.length) {
              part++
              off = 0
              continue
            }
            const chunk = buf.subarray(off, off + piece)
            off += chunk.length
            sent += chunk.length
            options.onSent?.(sent)
            const flowing = req.write(chunk)
            if (first) {
              const started = first
              first = undefined
              const socket = req.socket
              if (socket && !socket.connecting) started()
              else req.once('socket', (s) => (s.connecting ? s.once('connect', started) : started()))
            }
            if (!flowing) {
              req.once('drain', pump)
              return
            }
          }
          if (Buffer.isBuffer(body) || !body.file) req.end()
          else streamFile(body.file.path, body.file.size, sent)
        }
        pump()
      } else {
        streamFile(body.file, body.size, 0)
      }
    })
  }

  private errorFrom(status: number, data: Buffer, method: string, path: string): ZosError {
    let parsed: unknown
    try {
      parsed = JSON.parse(data.toString('utf8'))
    } catch {
      parsed = undefined
    }
    const e = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error
    if (e && typeof e.code === 'string' && typeof e.message === 'string') {
      const code = (e.code in ERROR_CODES ? e.code : 'HUB_UNAVAILABLE') as ErrorCode
      const details = typeof e.details === 'object' && e.details !== null ? (e.details as Record<string, unknown>) : {}
      return zerr(code, e.message, { ...details, status })
    }
    return zerr('HUB_UNAVAILABLE', `the hub at ${this.url} answered ${status} to ${method} ${path.split('?')[0]}: ${data.toString('utf8').slice(0, 200)}`, { status })
  }

  private async getJson<T>(path: string, auth = false): Promise<T> {
    const a = await this.call('GET', path, { auth })
    return parseAnswer<T>(a, this.url)
  }

  private async sendJson<T>(method: string, path: string, json: unknown): Promise<T> {
    return parseAnswer<T>(await this.call(method, path, { json, auth: true }), this.url)
  }

  info(): Promise<HubInfo> {
    return this.getJson(`${API}/info`)
  }

  whoami(): Promise<WhoAmI> {
    return this.getJson(`${API}/whoami`, true)
  }

  /** Which of these chunks and packs the hub lacks (batched). */
  async missing(query: { sids?: readonly string[]; packs?: readonly string[] }): Promise<MissingAnswer> {
    const sids = [...new Set(query.sids ?? [])]
    const packs = [...new Set(query.packs ?? [])]
    const out: MissingAnswer = { ns: '', missing: [], missingPacks: [], locations: {} }
    for (let i = 0; i < Math.max(sids.length, packs.length, 1); i += MAX_QUERY_IDS) {
      const a = await this.sendJson<MissingAnswer>('POST', `${API}/chunks/missing`, { sids: sids.slice(i, i + MAX_QUERY_IDS), packs: packs.slice(i, i + MAX_QUERY_IDS) })
      out.ns = a.ns
      out.missing.push(...a.missing)
      out.missingPacks.push(...a.missingPacks)
      Object.assign(out.locations, a.locations)
    }
    return out
  }

  /**
   * Uploads a pack, held in memory or in a file (streamed from it). `onStarted` is called once the request is on its way (on a connected socket): from then on
   * the hub knows the pack is arriving, and an flist upload naming it waits for it.
   */
  async putPack(id: string, entries: readonly PackEntry[], pack: Buffer | { path: string; size: number }, onSent?: (bytes: number) => void, onStarted?: () => void): Promise<PackAnswer> {
    const [length, index, bytes] = packBodyParts(entries, Buffer.isBuffer(pack) ? pack : Buffer.alloc(0))
    const head = length.length + index.length
    // The token covers the length and index; the pack bytes are bound by the id in the path (wire.ts).
    const sha256 = createHash('sha256').update(length).update(index).digest('hex')
    const body: Body = Buffer.isBuffer(pack) ? { parts: [length, index, bytes], sha256 } : { parts: [length, index], file: pack, sha256 }
    const options: CallOptions = { body, auth: true, onSent: (n) => onSent?.(Math.max(0, n - head)), headers: { 'content-type': 'application/vnd.zos.pack' } }
    if (onStarted) options.onStarted = onStarted
    return parseAnswer(await this.call('PUT', `${API}/packs/${id}`, options), this.url)
  }

  /**
   * Uploads flist metadata as ns/name:tag. `waitS`: how long the hub may wait for packs it names that have not
   * begun to arrive (a push sends the metadata before its packs); `signal` abandons the upload (and the hub's wait).
   */
  async uploadFlist(
    ns: string,
    name: string,
    file: string | Buffer,
    options: { tag: string; latest?: boolean; waitS?: number; signal?: AbortSignal; onSent?: (bytes: number) => void },
  ): Promise<PushAnswer> {
    const wait = options.waitS ? `&wait=${Math.ceil(options.waitS)}` : ''
    const path = `${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}?tag=${seg(checkTag(options.tag))}&latest=${options.latest === false ? 'false' : 'true'}${wait}`
    let body: Body
    if (Buffer.isBuffer(file)) body = file
    else {
      // A small file is read whole (one read, hashed in one go); a large one is hashed, then streamed.
      const st = await stat(file)
      body = st.size <= MAX_READ_WHOLE ? await readFile(file) : { file, size: st.size, sha256: await fileSha256(file) }
    }
    const call: CallOptions = { body, auth: true, headers: { 'content-type': 'application/vnd.zos.flist' } }
    if (options.onSent) call.onSent = options.onSent
    if (options.signal) call.signal = options.signal
    return parseAnswer(await this.call('POST', path, call), this.url)
  }

  /** Uploads an archive for conversion on the hub; returns the queued job. */
  async convert(ns: string, name: string, archive: string, options: { tag: string; latest?: boolean; onSent?: (bytes: number) => void }): Promise<JobInfo> {
    const st = await stat(archive)
    const path = `${API}/convert/${seg(normalizeNs(ns))}/${seg(checkName(name))}?tag=${seg(checkTag(options.tag))}&latest=${options.latest === false ? 'false' : 'true'}`
    const body = { file: archive, size: st.size, sha256: await fileSha256(archive) }
    return parseAnswer(await this.call('POST', path, { body, auth: true, headers: { 'content-type': 'application/octet-stream' }, ...(options.onSent ? { onSent: options.onSent } : {}) }), this.url)
  }

  job(id: string): Promise<JobInfo> {
    return this.getJson(`${API}/jobs/${seg(id)}`)
  }

  /** Polls a job until it is done or failed; a failed job throws its error. */
  async waitJob(id: string, options: { intervalMs?: number; onProgress?: (job: JobInfo) => void; timeoutMs?: number } = {}): Promise<JobInfo> {
    const deadline = Date.now() + (options.timeoutMs ?? 24 * 3600 * 1000)
    for (;;) {
      const job = await this.job(id)
      options.onProgress?.(job)
      if (job.state === 'done') return job
      if (job.state === 'failed') {
        const code = (job.error && job.error.code in ERROR_CODES ? job.error.code : 'INTERNAL') as ErrorCode
        throw zerr(code, `conversion ${id} failed: ${job.error?.message ?? 'no reason given'}`, { job: id })
      }
      if (Date.now() > deadline) throw zerr('TIMEOUT', `conversion ${id} did not finish in time (last phase: ${job.phase})`)
      await sleep(options.intervalMs ?? 250)
    }
  }

  list(options: { ns?: string; q?: string; limit?: number; offset?: number } = {}): Promise<ListAnswer> {
    const q = new URLSearchParams()
    if (options.q) q.set('q', options.q)
    if (options.limit !== undefined) q.set('limit', String(options.limit))
    if (options.offset !== undefined) q.set('offset', String(options.offset))
    const query = q.size ? `?${q}` : ''
    return this.getJson(options.ns !== undefined ? `${API}/flists/${seg(normalizeNs(options.ns))}${query}` : `${API}/flists${query}`)
  }

  detail(ns: string, name: string): Promise<NameDetail> {
    return this.getJson(`${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}`)
  }

  version(ns: string, name: string, tag: string): Promise<VersionInfo> {
    return this.getJson(`${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}/tags/${seg(checkTag(tag))}`)
  }

  history(ns: string, name: string, tag?: string): Promise<{ ns: string; name: string; events: { tag: string; digest: string | null; root: string | null; at: number; actor: string }[] }> {
    return this.getJson(`${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}/history${tag ? `?tag=${seg(checkTag(tag))}` : ''}`)
  }

  /** The version `name:tag` names in the one namespace that has it. */
  resolve(name: string, tag: string): Promise<VersionInfo> {
    return this.getJson(`${API}/resolve?name=${seg(checkName(name))}&tag=${seg(checkTag(tag))}`)
  }

  moveTag(ns: string, name: string, tag: string, digest: string): Promise<TagAnswer> {
    return this.sendJson('PUT', `${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}/tags/${seg(checkTag(tag))}`, { digest })
  }

  async removeTag(ns: string, name: string, tag: string): Promise<{ removed: string[] }> {
    return parseAnswer(await this.call('DELETE', `${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}/tags/${seg(checkTag(tag))}`, { auth: true }), this.url)
  }

  async removeName(ns: string, name: string): Promise<{ removed: string[]; tags: string[] }> {
    return parseAnswer(await this.call('DELETE', `${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}`, { auth: true }), this.url)
  }

  signers(ns: string): Promise<{ ns: string; signers: string[] }> {
    return this.getJson(`${API}/ns/${seg(normalizeNs(ns))}/signers`)
  }

  setSigners(ns: string, signers: readonly string[]): Promise<{ ns: string; signers: string[] }> {
    return this.sendJson('PUT', `${API}/ns/${seg(normalizeNs(ns))}/signers`, { signers })
  }

  /**
   * Downloads the metadata file a tag (or digest) names into `dir` as <digest>.fl, checking that its bytes hash
   * to the digest the hub announced. A file already there with that name is reused.
   */
  async download(ns: string, name: string, ref: { tag?: string; digest?: string }, dir: string): Promise<{ path: string; digest: string; root: string; ns: string; name: string }> {
    const path = ref.digest
      ? `${API}/blobs/${seg(ref.digest)}`
      : `${API}/flists/${seg(normalizeNs(ns))}/${seg(checkName(name))}/tags/${seg(checkTag(ref.tag ?? 'latest'))}/flist`
    await mkdir(dir, { recursive: true })
    const tmp = join(dir, `.download-${process.pid}-${Date.now()}.tmp`)
    try {
      const a = await this.call('GET', path, { saveTo: tmp })
      const digest = String(a.headers['x-zos-digest'] ?? '')
      if (!/^[0-9a-f]{64}$/.test(digest)) throw zerr('HUB_UNAVAILABLE', `the hub at ${this.url} sent an flist without a valid X-Zos-Digest header`)
      const actual = await fileSha256(tmp)
      if (actual !== digest) throw zerr('CHUNK_TAMPERED', `the flist downloaded from ${this.url} hashes to ${actual}, not to the announced ${digest} (damaged in transit)`)
      const final = join(dir, `${digest}.fl`)
      await mkdir(dirname(final), { recursive: true })
      await rename(tmp, final)
      return { path: final, digest, root: String(a.headers['x-zos-root'] ?? ''), ns: String(a.headers['x-zos-ns'] ?? ns), name: String(a.headers['x-zos-name'] ?? name) }
    } finally {
      await rm(tmp, { force: true })
    }
  }
}

function parseAnswer<T>(a: Answer, url: string): T {
  try {
    return JSON.parse(a.body.toString('utf8')) as T
  } catch {
    throw zerr('HUB_UNAVAILABLE', `the hub at ${url} answered ${a.status} with something that is not JSON`)
  }
}
