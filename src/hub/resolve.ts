// `zos flist mount|unpack|cat|verify hub://[HOST:PORT/][NS/]NAME[:TAG]`: turns a hub reference into a local,
// checked metadata file plus the hub's store URL. The file is downloaded into $ZOS_HOME/hub-cache/<host>/ as
// <digest>.fl (its bytes must hash to the digest the hub announces); the reader then checks its seal and
// signatures as for any local file, and every chunk is verified when read. Anything that is not a hub
// reference passes through unchanged.
import { homedir } from 'node:os'
import { join } from 'node:path'
import { HubClient } from './client.js'
import { isHubUrl, parseHubUrl } from './names.js'
import { API } from './wire.js'

export interface ResolvedFlist {
  /** A local metadata file. */
  file: string
  /** The store to read chunks from: the one given, else the hub's for hub references. */
  store: string | undefined
  /** For hub references: where it came from. */
  hub?: { url: string; ns: string; name: string; tag?: string; digest: string; root: string }
}

export function hubCacheDir(hub: string): string {
  const home = process.env.ZOS_HOME ?? join(homedir(), '.zos')
  return join(home, 'hub-cache', new URL(hub).host.replace(/[^A-Za-z0-9.-]/g, '_'))
}

/** Resolves the flist argument of a command; `store` is the command's --store (it wins when given). */
export async function resolveFlistArg(arg: string, store: string | undefined): Promise<ResolvedFlist> {
  if (!isHubUrl(arg)) return { file: arg, store }
  const ref = parseHubUrl(arg)
  const client = new HubClient(ref.hub)
  try {
    let ns = ref.ns
    if (ns === undefined) ns = (await client.resolve(ref.name, ref.tag ?? 'latest')).ns
    const got = await client.download(ns, ref.name, ref.digest !== undefined ? { digest: ref.digest } : { tag: ref.tag ?? 'latest' }, hubCacheDir(ref.hub))
    const hub: NonNullable<ResolvedFlist['hub']> = { url: client.url, ns: got.ns, name: got.name, digest: got.digest, root: got.root }
    if (ref.tag !== undefined) hub.tag = ref.tag
    return { file: got.path, store: store ?? client.url, hub }
  } finally {
    client.close()
  }
}

/**
 * Pins a hub reference to the immutable URL of the metadata file it names now (`HUB/api/v1/blobs/<sha256>`):
 * what a deployment carries, so the signed deployment names exact bytes and a node can check them. Anything
 * that is not a hub reference passes through unchanged.
 */
export async function pinFlistUrl(arg: string): Promise<string> {
  if (!isHubUrl(arg)) return arg
  const ref = parseHubUrl(arg)
  const client = new HubClient(ref.hub)
  try {
    const digest = ref.digest ?? (ref.ns !== undefined ? await client.version(ref.ns, ref.name, ref.tag ?? 'latest') : await client.resolve(ref.name, ref.tag ?? 'latest')).digest
    return `${client.url}${API}/blobs/${digest}`
  } finally {
    client.close()
  }
}
