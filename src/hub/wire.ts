// What goes over the wire between the hub and its clients: request bodies (validated with zod at the server's
// edge), answers, and the framing of a pack upload:
//   u32 big-endian N || N bytes of JSON {"chunks":[PackEntry…]} || the pack bytes
// The pack id in the URL must be the SHA-256 of the pack bytes; the entries say where each chunk lies. The request
// token's body hash covers the length and the index only: the pack bytes are bound by their id, which is part of
// the signed path and checked against them (so the bytes are hashed once, not twice).
import { z } from 'zod'
import { zerr } from '../core/errors.js'

export const API = '/api/v1'
/** Most sids or packs one missing-chunk query may carry. */
export const MAX_QUERY_IDS = 50_000
/** Largest pack index (JSON) accepted. */
export const MAX_INDEX_BYTES = 8 * 1024 * 1024

const hexId = z.string().regex(/^[0-9a-f]{16,128}$/, 'must be lowercase hex')
const packId = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')

export const PackEntrySchema = z
  .object({
    sid: hexId,
    offset: z.number().int().nonnegative(),
    length: z.number().int().positive(),
    size: z.number().int().positive(),
    codec: z.number().int().min(0).max(2),
    base: hexId.optional(),
    /** The chunk is encrypted: the hub cannot decode it until it sees the flist that holds the key. */
    encrypted: z.boolean().optional(),
  })
  .strict()
export type PackEntry = z.infer<typeof PackEntrySchema>

export const PackIndexSchema = z.object({ chunks: z.array(PackEntrySchema).max(1_000_000) }).strict()

export const MissingQuerySchema = z
  .object({
    sids: z.array(hexId).max(MAX_QUERY_IDS).default([]),
    packs: z.array(packId).max(MAX_QUERY_IDS).default([]),
  })
  .strict()
export type MissingQuery = z.input<typeof MissingQuerySchema>

export const TagMoveSchema = z.object({ digest: z.string().regex(/^[0-9a-f]{64}$/) }).strict()

export const SignersSchema = z.object({ signers: z.array(z.string().regex(/^0x[0-9a-fA-F]{40}$/)).max(64) }).strict()

/** A chunk location the hub lets the caller reuse. */
export interface HubLocation {
  pack: string
  offset: number
  length: number
  size: number
  codec: number
  base?: string
}

export interface MissingAnswer {
  /** The caller's namespace (what /whoami answers as ns: a push needs it and saves asking). */
  ns: string
  /** Asked sids the hub has no usable copy of. */
  missing: string[]
  /** Asked packs the hub does not have. */
  missingPacks: string[]
  /** For asked sids the hub has: where (a full chunk when there is one). */
  locations: Record<string, HubLocation>
}

export interface PackAnswer {
  pack: string
  size: number
  chunks: number
  /** Chunks the hub decoded and checked against their ids (the rest are encrypted or wait for their base). */
  verified: number
  /** False when the hub already had the pack. */
  stored: boolean
}

export interface VersionInfo {
  ns: string
  name: string
  digest: string
  root: string
  fileSize: number
  bytes: number
  files: number
  chunks: number
  storedBytes: number
  signers: string[]
  encrypted: boolean
  converted: boolean
  uploader: string
  created: number
  tags: string[]
}

export interface PushAnswer {
  ns: string
  name: string
  tag: string
  /** Whether `latest` was moved too. */
  latest: boolean
  /** The version the tag pointed to before, if any. */
  previous?: string
  version: VersionInfo
  /** Chunks the hub decoded at this upload (encrypted ones, or ones sent without their base). */
  verifiedNow: number
}

export interface TagAnswer {
  ns: string
  name: string
  tag: string
  digest: string
  previous?: string
}

export interface NameSummary {
  ns: string
  name: string
  updated: number
  tags: { tag: string; digest: string; root: string; updated: number }[]
  /** The most recently created version. */
  newest: VersionInfo
}

export interface ListAnswer {
  items: NameSummary[]
  total: number
}

export interface NameDetail {
  ns: string
  name: string
  tags: { tag: string; digest: string; root: string; updated: number }[]
  versions: VersionInfo[]
}

export interface JobInfo {
  id: string
  ns: string
  name: string
  tag: string
  state: 'queued' | 'running' | 'done' | 'failed'
  /** receiving, queued, reading, packing, verifying, storing, done, failed. */
  phase: string
  /** Bytes of the phase done so far and its total (0 when unknown). */
  done: number
  total: number
  error?: { code: string; message: string }
  /** The resulting version's digest when done. */
  digest?: string
  created: number
  updated: number
}

export interface WhoAmI {
  ns: string
  address: string
  twin?: number
  quota: number
  used: number
  signers: string[]
}

export interface HubInfo {
  service: 'zos-hub'
  version: 1
  /** ledger: namespaces are twin ids; address: namespaces are lowercase account addresses. */
  identity: 'ledger' | 'address'
  /** Address of the key the hub signs converted flists with. */
  signer: string
  /** Base URL of the chunk store (packs at {store}/packs/<id>): the hub itself. */
  store: string
  limits: { pack: number; flist: number; archive: number; quota: number }
}

/** The three parts of a pack upload body: length, index, pack (sent in order). */
export function packBodyParts(entries: readonly PackEntry[], pack: Buffer): [Buffer, Buffer, Buffer] {
  const index = Buffer.from(JSON.stringify({ chunks: entries }))
  const head = Buffer.alloc(4)
  head.writeUInt32BE(index.length)
  return [head, index, pack]
}

export function encodePackBody(entries: readonly PackEntry[], pack: Buffer): Buffer {
  return Buffer.concat(packBodyParts(entries, pack))
}

/** The index of a pack upload (the JSON after the 4-byte length), validated. */
export function parsePackIndex(index: Buffer): PackEntry[] {
  let json: unknown
  try {
    json = JSON.parse(index.toString('utf8'))
  } catch {
    throw zerr('INVALID_ARGUMENT', 'pack upload index is not JSON')
  }
  // Every pack upload carries hundreds of entries: checked by hand first (zod took ~3 ms of the hub's main thread
  // per 4 MiB pack); anything the fast check does not accept goes to the schema, which has the last word and
  // names the problem.
  const fast = wellFormedIndex(json)
  if (fast) return fast
  const r = PackIndexSchema.safeParse(json)
  if (!r.success) throw zerr('INVALID_ARGUMENT', `pack upload index: ${zodMessage(r.error)}`)
  return r.data.chunks
}

const HEX_ID = /^[0-9a-f]{16,128}$/
const ENTRY_KEYS = new Set(['sid', 'offset', 'length', 'size', 'codec', 'base', 'encrypted'])

/** The entries when `json` is an index PackIndexSchema accepts as it is (never more than it accepts), else undefined. */
function wellFormedIndex(json: unknown): PackEntry[] | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined
  const keys = Object.keys(json)
  const chunks = (json as { chunks?: unknown }).chunks
  if (keys.length !== 1 || keys[0] !== 'chunks' || !Array.isArray(chunks) || chunks.length > 1_000_000) return undefined
  const int = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min
  for (const e of chunks as unknown[]) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined
    const o = e as Record<string, unknown>
    for (const k of Object.keys(o)) if (!ENTRY_KEYS.has(k)) return undefined
    if (typeof o.sid !== 'string' || !HEX_ID.test(o.sid)) return undefined
    if (!int(o.offset, 0) || !int(o.length, 1) || !int(o.size, 1) || !int(o.codec, 0) || (o.codec as number) > 2) return undefined
    if ('base' in o && (typeof o.base !== 'string' || !HEX_ID.test(o.base))) return undefined
    if ('encrypted' in o && typeof o.encrypted !== 'boolean') return undefined
  }
  return chunks as PackEntry[]
}

export function zodMessage(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
    .join('; ')
}

/** Parses a JSON body against a schema, or throws INVALID_ARGUMENT naming the field. */
export function parseJson<S extends z.ZodTypeAny>(schema: S, body: Buffer, what: string): z.output<S> {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    throw zerr('INVALID_ARGUMENT', `${what}: the body is not JSON`)
  }
  const r = schema.safeParse(json)
  if (!r.success) throw zerr('INVALID_ARGUMENT', `${what}: ${zodMessage(r.error)}`)
  return r.data as z.output<S>
}
