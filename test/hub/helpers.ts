// Hub test helpers: a real hub on 127.0.0.1 (port 0) per test, closed at its end; keys; flists packed at run
// time into a local dir store; a raw signed request for refusal tests; a census of what the hub keeps on disk.
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { generateKey, type KeyPair } from '../../src/core/keys.js'
import { pack, type PackResult } from '../../src/flist/pack.js'
import { DirStore } from '../../src/store/dir.js'
import { createToken, sha256Hex } from '../../src/hub/auth.js'
import { HubClient } from '../../src/hub/client.js'
import { startHub, type HubServer, type HubServerOptions } from '../../src/hub/server.js'
import { arraySource, type Spec } from '../helpers/array-source.js'
import { tempDir } from '../helpers/tmp.js'

export interface TestHub {
  server: HubServer
  url: string
  data: string
  /** A client signing with `key`. */
  client(key?: KeyPair): HubClient
}

export async function startTestHub(t: TestContext, options: Partial<HubServerOptions> = {}): Promise<TestHub> {
  const data = options.data ?? join(await tempDir(t, 'zos-hub-'), 'data')
  const server = await startHub({ port: 0, workers: 1, ...options, data })
  const clients: HubClient[] = []
  t.after(async () => {
    for (const c of clients) c.close()
    await server.close()
  })
  return {
    server,
    url: server.url,
    data,
    client: (key?: KeyPair) => {
      const c = new HubClient(server.url, key ? { key } : {})
      clients.push(c)
      return c
    },
  }
}

export function nsOf(key: KeyPair): string {
  return key.address.toLowerCase()
}

/** Deterministic pseudo-random bytes (so that two "versions" can share content exactly). */
export function bytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n)
  let x = seed * 2654435761 + 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** A small tree: a few files of incompressible content plus text. */
export function tree(version: number, options: { extra?: Buffer } = {}): Spec[] {
  const specs: Spec[] = [
    { path: '', kind: 'dir' },
    { path: 'bin', kind: 'dir' },
    { path: 'bin/tool', content: bytes(1, 700_000), mode: 0o755 },
    { path: 'lib', kind: 'dir' },
    { path: 'lib/big.so', content: bytes(2, 1_200_000) },
    { path: 'etc', kind: 'dir' },
    { path: 'etc/version', content: Buffer.from(`version ${version}\n`) },
    { path: 'etc/motd', content: Buffer.from('hello from the hub\n'.repeat(50)) },
  ]
  if (options.extra) specs.push({ path: 'lib/new.bin', content: options.extra })
  return specs
}

export interface Packed extends PackResult {
  file: string
  store: DirStore
}

/** Packs `specs` into an flist in `dir` (store at dir/store unless given), signed by `signers`. */
export async function packTree(t: TestContext, dir: string, name: string, specs: Spec[], options: { signers?: KeyPair[]; store?: DirStore; encrypt?: boolean } = {}): Promise<Packed> {
  const store = options.store ?? (await DirStore.open(join(dir, 'store'), { create: true }))
  if (!options.store) t.after(() => store.close())
  const file = join(dir, `${name}.fl`)
  const r = await pack({ source: arraySource(specs), output: file, store, signers: options.signers ?? [], workers: 1, ...(options.encrypt ? { encrypt: true } : {}) })
  return { ...r, file, store }
}

export function newKey(): KeyPair {
  return generateKey()
}

/** What a request token's body hash covers: the whole body, except for pack uploads (length and index only). */
export function signedPart(path: string, body: Buffer): Buffer {
  if (!path.startsWith('/api/v1/packs/') || body.length < 4) return body
  return body.subarray(0, Math.min(body.length, 4 + body.readUInt32BE(0)))
}

/** A signed request with full control over what is signed and what is sent (for refusal tests). */
export async function rawRequest(
  url: string,
  method: string,
  path: string,
  options: { key?: KeyPair; body?: Buffer; signPath?: string; signMethod?: string; signBody?: Buffer; lifetimeS?: number; now?: number; token?: string; headers?: Record<string, string> } = {},

): Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.authorization = options.token
  else if (options.key) {
    headers.authorization = createToken(options.key, {
      method: options.signMethod ?? method,
      path: options.signPath ?? path,
      bodyHash: sha256Hex(signedPart(path, options.signBody ?? options.body ?? Buffer.alloc(0))),
      ...(options.lifetimeS !== undefined ? { lifetimeS: options.lifetimeS } : {}),
      ...(options.now !== undefined ? { now: options.now } : {}),
    })
  }
  const res = await fetch(url + path, { method, headers, ...(options.body ? { body: options.body } : {}) })
  const text = await res.text()
  let json: { error?: { code: string; message: string } } & Record<string, unknown> = {}
  try {
    json = JSON.parse(text) as typeof json
  } catch {
    // not JSON
  }
  return { status: res.status, json, headers: res.headers }
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await walk(p)))
    else out.push(p)
  }
  return out
}

/** What the hub keeps: pack files, metadata files, temp files, job dirs and its database rows. */
export async function census(hub: TestHub): Promise<{ packs: string[]; flists: string[]; tmp: string[]; jobs: string[]; versions: number; packRows: number; locs: number }> {
  const db = hub.server.hub.db.db
  const n = (sql: string): number => (db.prepare(sql).get() as { n: number }).n
  // The temp directory first: the hub renames uploads from it into packs/ and flists/, and a file renamed between
  // a look at its destination and a later look at tmp/ would be seen in neither (a hub at work counted as clean).
  const tmp = await walk(join(hub.data, 'tmp'))
  return {
    packs: (await walk(join(hub.data, 'store', 'packs'))).sort(),
    flists: (await walk(join(hub.data, 'flists'))).sort(),
    tmp,
    jobs: await readdir(join(hub.data, 'jobs')),
    versions: n('SELECT count(*) AS n FROM versions'),
    packRows: n('SELECT count(*) AS n FROM packs'),
    locs: n('SELECT count(*) AS n FROM chunk_locs'),
  }
}

export function randomName(): string {
  return `img-${randomBytes(3).toString('hex')}`
}
