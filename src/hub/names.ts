// Names on the hub: namespaces (one per twin), flist names, tags, and the references users type
// (`[NS/]NAME[:TAG]`, `NAME@DIGEST`, `hub://[HOST[:PORT]/][NS/]NAME[:TAG]`). Everything here is pure validation
// and parsing, shared by the server (at the HTTP edge) and the client (before a request is signed).
import { zerr } from '../core/errors.js'

/** flist names: like container repository names, one path segment. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
/** Tags: like container tags. */
export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
/** A metadata file digest: lowercase hex SHA-256 of the .fl bytes. */
export const DIGEST_RE = /^[0-9a-f]{64}$/
/** Namespaces: a twin id (ledger mode) or a lowercase EVM address (address mode). */
export const TWIN_NS_RE = /^[1-9][0-9]{0,15}$/
export const ADDRESS_NS_RE = /^0x[0-9a-f]{40}$/

export const DEFAULT_TAG = 'latest'
/** Where `hub://` references without a host go when $ZOS_HUB is not set. */
export const DEFAULT_HUB_URL = 'http://127.0.0.1:8080'

export function checkName(name: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.endsWith('.fl')) {
    throw zerr('INVALID_ARGUMENT', `bad flist name ${JSON.stringify(name)}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, not ending in .fl`)
  }
  return name
}

export function checkTag(tag: string): string {
  if (typeof tag !== 'string' || !TAG_RE.test(tag)) {
    throw zerr('INVALID_ARGUMENT', `bad tag ${JSON.stringify(tag)}: use 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'`)
  }
  return tag
}

export function checkDigest(digest: string): string {
  if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) throw zerr('INVALID_ARGUMENT', `bad digest ${JSON.stringify(digest)}: expected 64 lowercase hex characters`)
  return digest
}

/** Normalises a namespace as users write it (a twin id, or an address in any case); throws on anything else. */
export function normalizeNs(ns: string): string {
  if (typeof ns === 'string') {
    if (TWIN_NS_RE.test(ns)) return ns
    const lower = ns.toLowerCase()
    if (ADDRESS_NS_RE.test(lower)) return lower
  }
  throw zerr('INVALID_ARGUMENT', `bad namespace ${JSON.stringify(ns)}: a namespace is a twin id (e.g. 42) or an account address (0x + 40 hex)`)
}

export interface FlistRef {
  /** Undefined when the reference names no namespace (the hub resolves it if unique). */
  ns?: string
  name: string
  /** The tag; undefined when a digest is given. */
  tag?: string
  digest?: string
}

/** Parses `[NS/]NAME[:TAG]` or `[NS/]NAME@DIGEST` (the tag defaults to `latest`). */
export function parseRef(text: string, options: { defaultTag?: boolean } = {}): FlistRef {
  if (typeof text !== 'string' || text === '') throw zerr('INVALID_ARGUMENT', 'an flist reference is required: [NS/]NAME[:TAG]')
  const parts = text.split('/')
  if (parts.length > 2) throw zerr('INVALID_ARGUMENT', `bad flist reference ${JSON.stringify(text)}: use [NS/]NAME[:TAG] or [NS/]NAME@DIGEST`)
  const ns = parts.length === 2 ? normalizeNs(parts[0]!) : undefined
  let rest = parts[parts.length - 1]!
  let tag: string | undefined
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = checkDigest(rest.slice(at + 1).replace(/^sha256:/, ''))
    rest = rest.slice(0, at)
  } else {
    const colon = rest.indexOf(':')
    if (colon >= 0) {
      tag = checkTag(rest.slice(colon + 1))
      rest = rest.slice(0, colon)
    } else if (options.defaultTag !== false) {
      tag = DEFAULT_TAG
    }
  }
  const ref: FlistRef = { name: checkName(rest) }
  if (ns !== undefined) ref.ns = ns
  if (tag !== undefined) ref.tag = tag
  if (digest !== undefined) ref.digest = digest
  return ref
}

export function formatRef(ref: FlistRef): string {
  const base = ref.ns ? `${ref.ns}/${ref.name}` : ref.name
  if (ref.digest) return `${base}@${ref.digest}`
  return ref.tag ? `${base}:${ref.tag}` : base
}

export interface HubUrlRef extends FlistRef {
  /** Base URL of the hub (http://host:port), from the reference or the default. */
  hub: string
}

export function isHubUrl(text: string): boolean {
  return /^hubs?:\/\//i.test(text)
}

function looksLikeHost(segment: string): boolean {
  return segment.includes('.') || segment.includes(':') || segment.startsWith('[') || segment.toLowerCase() === 'localhost'
}

/**
 * Parses `hub://[HOST[:PORT]/][NS/]NAME[:TAG]` (`hubs://` for HTTPS). The first segment is a host when more
 * segments follow and it contains a dot or a colon, is bracketed (IPv6) or is `localhost`. Without a host the
 * hub is `defaultHub` ($ZOS_HUB, else http://127.0.0.1:8080).
 */
export function parseHubUrl(text: string, defaultHub: string = process.env.ZOS_HUB ?? DEFAULT_HUB_URL): HubUrlRef {
  const m = /^(hubs?):\/\/(.*)$/i.exec(text)
  if (!m) throw zerr('INVALID_ARGUMENT', `${JSON.stringify(text)} is not a hub reference: use hub://[HOST:PORT/][NS/]NAME[:TAG]`)
  const scheme = m[1]!.toLowerCase() === 'hubs' ? 'https' : 'http'
  const segments = m[2]!.split('/')
  let hub = defaultHub.replace(/\/+$/, '')
  if (segments.length >= 2 && looksLikeHost(segments[0]!)) {
    const host = segments.shift()!
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(host)) throw zerr('INVALID_ARGUMENT', `bad hub host ${JSON.stringify(host)} in ${text}`)
    hub = `${scheme}://${host}`
  }
  if (segments.length > 2 || segments.some((s) => s === '')) {
    throw zerr('INVALID_ARGUMENT', `bad hub reference ${JSON.stringify(text)}: use hub://[HOST:PORT/][NS/]NAME[:TAG]`)
  }
  return { ...parseRef(segments.join('/')), hub }
}

/** `hub://host:port/ns/name:tag` for a hub base URL and a reference. */
export function hubUrlOf(hub: string, ref: FlistRef): string {
  const u = new URL(hub)
  return `${u.protocol === 'https:' ? 'hubs' : 'hub'}://${u.host}/${formatRef(ref)}`
}
