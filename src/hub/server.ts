// The hub's HTTP server (API in docs/hub.md and docs/hub.openapi.yaml):
//   GET  /                          web page: flists with size, signers and tags (?q= searches)
//   GET|HEAD /packs/<id>            pack bytes with Range, ETag, immutable caching (the flist store: HttpStore reads it)
//   GET  /healthz /stats /metrics
//   /api/v1/...                     JSON API; every write carries a twin-signed request token (auth.ts)
// Every input is validated before it is used; bad requests get {"error":{code,message,details}} and change nothing.
import { createReadStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage, zerr, ZosError } from '../core/errors.js'
import { isPackId } from '../store/coalesce.js'
import { FdCache } from '../store/fdcache.js'
import { servePack } from '../store/serve.js'
import { AddressDirectory, ReplayCache, verifyToken, type Identity, type TwinDirectory } from './auth.js'
import { Converter } from './convert.js'
import { Hub, MAX_PACK_WAIT_MS, MIB, type HubOptions } from './hub.js'
import { renderIndex } from './html.js'
import { boolParam, checkLength, intParam, queryOf, readBody, sendError, sendHtml, sendJson, spoolBody } from './http.js'
import { checkDigest, checkName, checkTag, DEFAULT_TAG, normalizeNs } from './names.js'
import { API, MissingQuerySchema, parseJson, SignersSchema, TagMoveSchema, type HubInfo } from './wire.js'

const JSON_LIMIT = 16 * MIB

/** What the hub logs through (pino's Logger fits). */
export interface HubLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

export interface HubRequestEvent {
  method: string
  path: string
  status: number
  ms: number
  ns?: string
  error?: string
}

export interface HubServerOptions extends HubOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string
  /** Port (default 0: any free port). */
  port?: number
  /** How accounts become namespaces (default: addresses, no ledger). */
  directory?: TwinDirectory
  /** Worker threads per conversion. */
  workers?: number
  /** How often unreferenced packs are collected (ms, default hourly; 0 = only at start). */
  gcIntervalMs?: number
  /** The base URL clients should use (default http://HOST:PORT as listened). */
  publicUrl?: string
  logger?: HubLogger
  onRequest?: (event: HubRequestEvent) => void
}

export interface HubServer {
  readonly url: string
  readonly host: string
  readonly port: number
  readonly hub: Hub
  readonly converter: Converter
  close(): Promise<void>
}

class Metrics {
  readonly requests = new Map<string, number>()
  received = 0
  packsStored = 0
  flistsStored = 0
  refused = 0
  record(route: string, status: number): void {
    const k = `${route}\u0000${status}`
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1)
    if (status >= 400) this.refused++
  }
  render(): string {
    const lines = ['# HELP zos_hub_http_requests_total HTTP requests answered, by route and status.', '# TYPE zos_hub_http_requests_total counter']
    for (const [k, n] of [...this.requests].sort()) {
      const [route, code] = k.split('\u0000')
      lines.push(`zos_hub_http_requests_total{route="${route}",code="${code}"} ${n}`)
    }
    lines.push('# HELP zos_hub_received_bytes_total Request body bytes accepted.', '# TYPE zos_hub_received_bytes_total counter', `zos_hub_received_bytes_total ${this.received}`)
    lines.push('# HELP zos_hub_packs_stored_total Packs stored.', '# TYPE zos_hub_packs_stored_total counter', `zos_hub_packs_stored_total ${this.packsStored}`)
    lines.push('# HELP zos_hub_flists_stored_total Flist versions committed.', '# TYPE zos_hub_flists_stored_total counter', `zos_hub_flists_stored_total ${this.flistsStored}`)
    return lines.join('\n') + '\n'
  }
}

type Params = Record<string, string>

interface Route {
  method: string
  pattern: RegExp
  name: string
  handler: (req: IncomingMessage, res: ServerResponse, p: Params, ctx: { ns?: string }) => Promise<void>
}

function segment(name: string): string {
  return `(?<${name}>[^/?]+)`
}

function route(method: string, path: string, name: string, handler: Route['handler']): Route {
  const pattern = new RegExp('^' + path.replace(/:(\w+)/g, (_, n: string) => segment(n)) + '(?:\\?.*)?$')
  return { method, pattern, name, handler }
}

export async function startHub(options: HubServerOptions): Promise<HubServer> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw zerr('INVALID_ARGUMENT', `port must be 0..65535, got ${port}`)
  const hub = await Hub.open(options)
  const directory: TwinDirectory = options.directory ?? new AddressDirectory()
  const converter = new Converter(hub, {
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    onEvent: (e) => options.logger?.info(e, `conversion ${e.state}`),
  })
  await converter.recover()
  const replay = new ReplayCache()
  const fds = new FdCache()
  const metrics = new Metrics()
  let publicUrl = options.publicUrl?.replace(/\/+$/, '') ?? ''
  let gcRunning: Promise<void> | undefined
  const collect = (): void => {
    gcRunning ??= hub
      .gc({ onDelete: (path) => fds.drop(path) })
      .then((r) => {
        if (r.packs > 0) options.logger?.info(r, 'collected packs no flist refers to')
      })
      .catch((err: unknown) => options.logger?.warn({ err: errorMessage(err) }, 'pack collection failed'))
      .finally(() => (gcRunning = undefined))
  }
  collect()
  const gcTimer = (options.gcIntervalMs ?? 3600_000) > 0 ? setInterval(collect, options.gcIntervalMs ?? 3600_000) : undefined
  gcTimer?.unref()

  /** Checks the request token (not yet the body); `onValid` runs once it holds, before the identity is looked up. */
  async function authenticate(req: IncomingMessage, onValid?: () => void): Promise<{ identity: Identity; bodyHash: string }> {
    const header = req.headers.authorization
    const t = verifyToken(Array.isArray(header) ? header[0] : header, { method: req.method ?? 'GET', path: req.url ?? '/' })
    replay.use(t.claims.n, t.claims.e)
    onValid?.()
    return { identity: await directory.identify(t.address), bodyHash: t.claims.b }
  }

  function checkBody(bodyHash: string, actual: string): void {
    if (bodyHash !== actual) throw zerr('HUB_AUTH', `the body hashes to ${actual}, but the token was signed for ${bodyHash} (altered or truncated in transit); nothing was kept`)
  }

  async function authJson(req: IncomingMessage, ctx: { ns?: string }): Promise<{ identity: Identity; body: Buffer }> {
    const { identity, bodyHash } = await authenticate(req)
    ctx.ns = identity.ns
    const { data, sha256 } = await readBody(req, JSON_LIMIT, 'request body')
    checkBody(bodyHash, sha256)
    metrics.received += data.length
    return { identity, body: data }
  }

  async function sendFlist(req: IncomingMessage, res: ServerResponse, digest: string, immutable: boolean, extra: Record<string, string>): Promise<void> {
    const path = hub.flistPath(digest)
    const st = await stat(path).catch(() => undefined)
    if (!st) throw zerr('NOT_FOUND', `metadata file ${digest} is missing on the hub`)
    const etag = `"${digest}"`
    const headers: Record<string, string | number> = {
      etag,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-zos-digest': digest,
      ...extra,
    }
    const inm = req.headers['if-none-match']
    if (inm !== undefined && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    res.writeHead(200, { ...headers, 'content-type': 'application/vnd.zos.flist', 'content-length': st.size })
    if (req.method === 'HEAD') return void res.end()
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(path)
      s.on('error', reject)
      res.on('close', resolve)
      s.pipe(res)
    })
  }

  function versionHeaders(v: { ns: string; name: string; root: string }, tag?: string): Record<string, string> {
    return {
      'x-zos-root': v.root,
      'x-zos-ns': v.ns,
      'x-zos-name': v.name,
      'content-disposition': `attachment; filename="${v.name}${tag ? `-${tag}` : ''}.fl"`,
    }
  }

  const routes: Route[] = [
    route('GET', '/', 'index', async (req, res) => {
      const q = queryOf(req.url ?? '/')
      const term = (q.get('q') ?? '').slice(0, 128)
      const limit = 100
      const offset = intParam(q, 'offset', 0, 1e9)
      const { items, total } = hub.list({ q: term, limit, offset })
      sendHtml(res, renderIndex({ items, total, q: term, host: req.headers.host ?? new URL(publicUrl).host, signer: hub.key.address, offset, limit }))
    }),
    route('GET', '/healthz', 'healthz', async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-cache' })
      res.end('ok\n')
    }),
    route('GET', '/metrics', 'metrics', async (_req, res) => {
      const body = metrics.render()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-cache' })
      res.end(body)
    }),
    route('GET', '/stats', 'stats', async (_req, res) => sendJson(res, 200, await hub.store.stats())),
    route('GET', '/packs/:id', 'pack', async (req, res, p) => {
      if (!isPackId(p.id)) throw zerr('INVALID_ARGUMENT', 'bad pack id: expected 64 lowercase hex characters')
      await servePack(fds, hub.store.root, req, res, p.id, false)
    }),
    route('HEAD', '/packs/:id', 'pack', async (req, res, p) => {
      if (!isPackId(p.id)) throw zerr('INVALID_ARGUMENT', 'bad pack id: expected 64 lowercase hex characters')
      await servePack(fds, hub.store.root, req, res, p.id, true)
    }),
    route('GET', `${API}/info`, 'info', async (_req, res) => {
      const info: HubInfo = {
        service: 'zos-hub', version: 1, identity: directory.mode, signer: hub.key.address, store: publicUrl,
        limits: { pack: hub.limits.pack, flist: hub.limits.flist, archive: hub.limits.archive, quota: hub.quotaOf('') },
      }
      sendJson(res, 200, info)
    }),
    route('GET', `${API}/whoami`, 'whoami', async (req, res, _p, ctx) => {
      const { identity } = await authJson(req, ctx)
      sendJson(res, 200, hub.whoami(identity))
    }),
    route('POST', `${API}/chunks/missing`, 'missing', async (req, res, _p, ctx) => {
      const { identity, body } = await authJson(req, ctx)
      const q = parseJson(MissingQuerySchema, body, 'missing-chunk query')
      sendJson(res, 200, hub.missing(identity, q))
    }),
    route('PUT', `${API}/packs/:id`, 'pack-upload', async (req, res, p, ctx) => {
      if (!isPackId(p.id)) throw zerr('INVALID_ARGUMENT', 'bad pack id: expected 64 lowercase hex characters')
      // Announced as soon as the token holds (synchronously, in the tick that parsed the headers), so that the
      // push's metadata, sent while this body is still arriving, waits for it (Hub.packArriving).
      let arrived: (() => void) | undefined
      try {
        const { identity, bodyHash } = await authenticate(req, () => (arrived = hub.packArriving(p.id!)))
        ctx.ns = identity.ns
        const limit = hub.limits.pack + 8 * MIB // the index rides along
        const length = checkLength(req, limit, `pack ${p.id}`)
        // Streamed to a temp file and checked as it arrives (Hub.receivePack). The token covers the length and
        // index; the pack bytes are bound by their id in the signed path.
        const { received, ...answer } = await hub.receivePack(identity, p.id!, req, {
          limit,
          checkHead: (sha256) => checkBody(bodyHash, sha256),
          ...(length !== undefined ? { length } : {}),
        })
        metrics.received += received
        if (answer.stored) metrics.packsStored++
        sendJson(res, answer.stored ? 201 : 200, answer)
      } finally {
        arrived?.()
      }
    }),
    route('GET', `${API}/flists`, 'list', async (req, res) => {
      const q = queryOf(req.url ?? '')
      const ns = q.get('ns')
      sendJson(res, 200, hub.list({ q: (q.get('q') ?? '').slice(0, 128), limit: intParam(q, 'limit', 100, 1000), offset: intParam(q, 'offset', 0, 1e9), ...(ns ? { ns } : {}) }))
    }),
    route('GET', `${API}/resolve`, 'resolve', async (req, res) => {
      const q = queryOf(req.url ?? '')
      const v = hub.resolve(q.get('name') ?? '', q.get('tag') ?? DEFAULT_TAG)
      sendJson(res, 200, hub.versionInfo(v))
    }),
    route('GET', `${API}/flists/:ns`, 'list-ns', async (req, res, p) => {
      const q = queryOf(req.url ?? '')
      sendJson(res, 200, hub.list({ ns: p.ns, q: (q.get('q') ?? '').slice(0, 128), limit: intParam(q, 'limit', 100, 1000), offset: intParam(q, 'offset', 0, 1e9) }))
    }),
    route('GET', `${API}/flists/:ns/:name`, 'detail', async (_req, res, p) => sendJson(res, 200, hub.detail(p.ns, p.name))),
    route('POST', `${API}/flists/:ns/:name`, 'flist-upload', async (req, res, p, ctx) => {
      const q = queryOf(req.url ?? '')
      const tag = checkTag(q.get('tag') ?? DEFAULT_TAG)
      const latest = boolParam(q, 'latest', true)
      const waitMs = intParam(q, 'wait', 0, MAX_PACK_WAIT_MS / 1000) * 1000
      normalizeNs(p.ns)
      checkName(p.name)
      // An uploader that goes away stops the wait for packs (its push failed or changed its mind). Listened for
      // before the body is read: a connection closed right after its last byte is gone by the time the body is
      // on file, and its 'close' would not come again.
      const gone = new AbortController()
      res.once('close', () => gone.abort())
      const { identity, bodyHash } = await authenticate(req)
      ctx.ns = identity.ns
      const up = await spoolBody(req, hub.tmpDir, hub.limits.flist, 'flist metadata upload')
      metrics.received += up.size
      try {
        checkBody(bodyHash, up.sha256)
      } catch (err) {
        await rm(up.path, { force: true })
        throw err
      }
      const answer = await hub.commitFlist(
        { identity, converted: false },
        { ns: p.ns, name: p.name, tag, latest, path: up.path, digest: up.sha256, size: up.size, durable: up.durable },
        { waitMs, signal: gone.signal },
      )
      metrics.flistsStored++
      sendJson(res, 201, answer)
    }),
    route('DELETE', `${API}/flists/:ns/:name`, 'remove-name', async (req, res, p, ctx) => {
      const { identity } = await authJson(req, ctx)
      sendJson(res, 200, await hub.removeName(identity, p.ns, p.name))
    }),
    route('GET', `${API}/flists/:ns/:name/history`, 'history', async (req, res, p) => {
      const q = queryOf(req.url ?? '')
      const tag = q.get('tag')
      const ns = normalizeNs(p.ns)
      checkName(p.name)
      sendJson(res, 200, { ns, name: p.name, events: hub.db.history(ns, p.name, tag === null ? undefined : checkTag(tag)) })
    }),
    route('GET', `${API}/flists/:ns/:name/tags/:tag`, 'tag', async (_req, res, p) => {
      sendJson(res, 200, hub.versionInfo(hub.lookup(p.ns, p.name, { tag: p.tag })))
    }),
    route('PUT', `${API}/flists/:ns/:name/tags/:tag`, 'tag-move', async (req, res, p, ctx) => {
      const { identity, body } = await authJson(req, ctx)
      const { digest } = parseJson(TagMoveSchema, body, 'tag move')
      sendJson(res, 200, hub.moveTag(identity, p.ns, p.name, p.tag, digest))
    }),
    route('DELETE', `${API}/flists/:ns/:name/tags/:tag`, 'tag-remove', async (req, res, p, ctx) => {
      const { identity } = await authJson(req, ctx)
      sendJson(res, 200, await hub.removeTag(identity, p.ns, p.name, p.tag))
    }),
    ...(['GET', 'HEAD'] as const).flatMap((m) => [
      route(m, `${API}/flists/:ns/:name/tags/:tag/flist`, 'download', async (req, res, p) => {
        const v = hub.lookup(p.ns, p.name, { tag: p.tag })
        await sendFlist(req, res, v.digest, false, versionHeaders(v, p.tag))
      }),
      route(m, `${API}/blobs/:digest`, 'blob', async (req, res, p) => {
        const v = hub.db.anyVersionByDigest(checkDigest(p.digest))
        if (!v) throw zerr('NOT_FOUND', `no flist with digest ${p.digest} on this hub`)
        await sendFlist(req, res, v.digest, true, versionHeaders(v))
      }),
    ]),
    route('GET', `${API}/flists/:ns/:name/versions/:digest`, 'version', async (_req, res, p) => {
      sendJson(res, 200, hub.versionInfo(hub.lookup(p.ns, p.name, { digest: p.digest })))
    }),
    route('POST', `${API}/convert/:ns/:name`, 'convert', async (req, res, p, ctx) => {
      const q = queryOf(req.url ?? '')
      const tag = checkTag(q.get('tag') ?? DEFAULT_TAG)
      const latest = boolParam(q, 'latest', true)
      normalizeNs(p.ns)
      checkName(p.name)
      const { identity, bodyHash } = await authenticate(req)
      ctx.ns = identity.ns
      const up = await spoolBody(req, hub.tmpDir, hub.limits.archive, 'archive upload')
      metrics.received += up.size
      try {
        await up.durable
        checkBody(bodyHash, up.sha256)
      } catch (err) {
        await rm(up.path, { force: true })
        throw err
      }
      sendJson(res, 202, await converter.submit(identity, { ns: p.ns, name: p.name, tag, latest }, up))
    }),
    route('GET', `${API}/jobs/:id`, 'job', async (_req, res, p) => sendJson(res, 200, converter.get(p.id))),
    route('GET', `${API}/ns/:ns/signers`, 'signers', async (_req, res, p) => {
      const ns = normalizeNs(p.ns)
      sendJson(res, 200, { ns, signers: hub.db.signers(ns) })
    }),
    route('PUT', `${API}/ns/:ns/signers`, 'signers-set', async (req, res, p, ctx) => {
      const { identity, body } = await authJson(req, ctx)
      const ns = normalizeNs(p.ns)
      if (ns !== identity.ns) throw zerr('HUB_FORBIDDEN', `namespace ${ns} belongs to another twin; you may change only ${identity.ns}`)
      const { signers } = parseJson(SignersSchema, body, 'signers')
      hub.db.setSigners(ns, signers)
      sendJson(res, 200, { ns, signers: hub.db.signers(ns) })
    }),
  ]

  async function handle(req: IncomingMessage, res: ServerResponse, ctx: { ns?: string; route?: string }): Promise<void> {
    const method = req.method ?? 'GET'
    const url = req.url ?? '/'
    if (!url.startsWith('/') || url.length > 4096) throw zerr('INVALID_ARGUMENT', 'bad request target')
    const pathOnly = url.split('?')[0]!
    let allowed: string[] = []
    for (const r of routes) {
      const m = r.pattern.exec(url)
      if (!m) continue
      if (r.method !== method) {
        allowed.push(r.method)
        continue
      }
      ctx.route = r.name
      const params: Params = {}
      for (const [k, v] of Object.entries(m.groups ?? {})) {
        try {
          params[k] = decodeURIComponent(v)
        } catch {
          throw zerr('INVALID_ARGUMENT', `bad percent-encoding in ${pathOnly}`)
        }
      }
      return r.handler(req, res, params, ctx)
    }
    allowed = [...new Set(allowed)]
    if (allowed.length > 0) {
      const err = zerr('INVALID_ARGUMENT', `method ${method} is not allowed on ${pathOnly} (allowed: ${allowed.join(', ')})`)
      return sendJson(res, 405, { error: err.toJSON() }, { allow: allowed.join(', ') })
    }
    throw zerr('NOT_FOUND', `no such endpoint ${method} ${pathOnly}: see docs/hub.md (the API is under ${API})`)
  }

  const server = createServer({ keepAlive: true, requestTimeout: 60 * 60 * 1000 }, (req, res) => {
    const started = performance.now()
    const ctx: { ns?: string; route?: string; error?: string } = {}
    res.on('close', () => {
      metrics.record(ctx.route ?? 'none', res.statusCode)
      const event: HubRequestEvent = { method: req.method ?? '', path: (req.url ?? '').slice(0, 200), status: res.statusCode, ms: Math.round(performance.now() - started) }
      if (ctx.ns !== undefined) event.ns = ctx.ns
      if (ctx.error !== undefined) event.error = ctx.error
      options.onRequest?.(event)
      if (res.statusCode >= 500) options.logger?.warn(event, 'request failed')
    })
    handle(req, res, ctx).catch((err: unknown) => {
      ctx.error = errorMessage(err)
      // A refused upload whose body was not read: close the connection instead of reading it all.
      if (!req.complete) res.setHeader('connection', 'close')
      if (!ZosError.is(err)) options.logger?.warn({ err: errorMessage(err), path: req.url }, 'internal error')
      sendError(res, err)
    })
  })
  server.headersTimeout = 30_000

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(zerr('HUB_UNAVAILABLE', `cannot listen on ${host}:${port}: ${err.message}`, { host, port }, err))
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  const url = `http://${shownHost}:${addr.port}`
  if (publicUrl === '') publicUrl = url
  let closed: Promise<void> | undefined
  return {
    url: publicUrl,
    host: addr.address,
    port: addr.port,
    hub,
    converter,
    close: () => {
      closed ??= (async () => {
        if (gcTimer) clearInterval(gcTimer)
        await gcRunning
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
        await converter.close()
        await fds.close()
        await directory.close?.()
        await hub.close()
      })()
      return closed
    },
  }
}
