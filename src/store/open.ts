// Store URLs → Store objects. Supported forms:
//   dir:///abs/path, dir://rel/path, /abs/path, rel/path   a DirStore (read/write)
//   http://host[:port][/base], https://...                 an HttpStore (read-only); user:pass@ becomes Basic auth
import { zerr } from '../core/errors.js'
import { DirStore, type DirStoreOptions } from './dir.js'
import type { HttpStoreOptions } from './http.js'
import type { Store, WritableStore } from './types.js'

export const SUPPORTED_SCHEMES = ['dir://', 'http://', 'https://'] as const

export interface OpenStoreOptions {
  dir?: Omit<DirStoreOptions, 'create'>
  http?: HttpStoreOptions
}

export type StoreLocation = { kind: 'dir'; path: string } | { kind: 'http'; url: string }

/** Splits a store URL into its kind and location, or throws INVALID_ARGUMENT naming the supported forms. */
export function parseStoreUrl(url: string): StoreLocation {
  if (typeof url !== 'string' || url.trim() === '') throw zerr('INVALID_ARGUMENT', `a store URL is required (${SUPPORTED_SCHEMES.join(', ')} or a path)`)
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined) return { kind: 'dir', path: url } // a plain path (write ./a:b for a path with a colon)
  if (scheme === 'dir') {
    if (!url.slice(0, 6).toLowerCase().startsWith('dir://')) throw zerr('INVALID_ARGUMENT', `malformed dir store URL ${url}: use dir:///absolute/path or dir://relative/path`)
    const path = url.slice('dir://'.length)
    if (path === '') throw zerr('INVALID_ARGUMENT', `dir store URL ${url} names no directory`)
    return { kind: 'dir', path }
  }
  if (scheme === 'http' || scheme === 'https') return { kind: 'http', url }
  throw zerr('INVALID_ARGUMENT', `unsupported store URL scheme "${scheme}:" in ${redact(url)}; supported: ${SUPPORTED_SCHEMES.join(', ')} (or a plain path)`, {
    scheme,
  })
}

/** The URL with any user:password removed, for messages. */
export function redact(url: string): string {
  return url.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/@]*@/, '$1')
}

/** Opens a store for reading. A dir store's directory must exist. */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const loc = parseStoreUrl(url)
  if (loc.kind === 'dir') return DirStore.open(loc.path, { ...options.dir, create: false })
  const { HttpStore } = await import('./http.js') // loaded only for http stores
  return new HttpStore(loc.url, options.http)
}

/** Opens a store for writing; a dir store's directory is created if absent. http(s) stores are read-only. */
export async function openWritableStore(url: string, options: OpenStoreOptions = {}): Promise<WritableStore> {
  const loc = parseStoreUrl(url)
  if (loc.kind === 'http') {
    throw zerr('STORE_READONLY', `${redact(url)} is read-only: write packs to a dir:// store and serve it (zos store serve DIR)`, { url: redact(url) })
  }
  return DirStore.open(loc.path, { ...options.dir, create: true })
}
