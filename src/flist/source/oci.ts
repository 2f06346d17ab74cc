// An OCI image as a Source: a `docker save` tarball (manifest.json) or an OCI image layout (index.json + blobs), as a
// directory or a tarball. Every blob is checked against its sha256 digest before use; layers are applied in order onto
// one tree, with whiteouts (.wh.NAME) and opaque directories (.wh..wh..opq) as overlayfs/containerd apply them.
import { createHash } from 'node:crypto'
import { Transform } from 'node:stream'
import { z } from 'zod'
import { zerr } from '../../core/errors.js'
import { MAGIC_BYTES, decompressor, sniffCompression } from './compression.js'
import type { ImageFiles, Located } from './image-files.js'
import { baseOf, joinPath, parentOf } from './paths.js'
import type { Scratch } from './scratch.js'
import { tarEntries, whole, type TarFile } from './tar.js'
import { Tree } from './tree.js'
import type { ImageConfig, Source, SourceEntry } from './types.js'

const MAX_JSON = 64 << 20
const HASH_CHUNK = 1 << 20
const DEFAULT_PLATFORM = 'linux/amd64'

const Platform = z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() })
const Descriptor = z.object({
  mediaType: z.string().optional(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  platform: Platform.optional(),
  annotations: z.record(z.string()).optional(),
})
type Descriptor = z.infer<typeof Descriptor>
const ManifestOrIndex = z.object({
  manifests: z.array(Descriptor).optional(),
  config: Descriptor.optional(),
  layers: z.array(Descriptor).optional(),
})
const DockerManifest = z
  .array(z.object({ Config: z.string(), RepoTags: z.array(z.string()).nullish(), Layers: z.array(z.string()) }))
  .min(1)
const strings = z.array(z.string()).nullish()
const ImageConfigJson = z.object({
  os: z.string().optional(),
  architecture: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Entrypoint: strings,
      Cmd: strings,
      Env: strings,
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
      ExposedPorts: z.record(z.unknown()).nullish(),
      Labels: z.record(z.string()).nullish(),
    })
    .nullish(),
  rootfs: z.object({ diff_ids: z.array(z.string()) }).optional(),
})
type ImageConfigJson = z.infer<typeof ImageConfigJson>

export interface OciOptions {
  /** os/arch[/variant] to pick from a multi-platform image; default linux/amd64. */
  platform?: string
}

interface Layer {
  readonly name: string
  /** sha256 (hex) of the blob as stored, when known. */
  readonly blob?: string
  /** sha256 (hex) of the uncompressed tar (config rootfs.diff_ids), when known. */
  readonly diffId?: string
  readonly size?: number
}

interface Resolved {
  readonly config: ImageConfigJson
  readonly layers: Layer[]
  readonly platform: string
}

/** Resolves the image (manifest, platform, config) at once, so a wrong platform is reported before any work. */
export async function openOci(files: ImageFiles, scratch: Scratch, description: string, options: OciOptions = {}): Promise<OciSource> {
  const reader = new BlobReader(files)
  // Docker ≥ 25 writes both layouts; the OCI one can hold several platforms, so it wins.
  const resolved =
    (await files.locate('oci-layout')) !== undefined ? await resolveOci(reader, options.platform ?? DEFAULT_PLATFORM) : await resolveDocker(reader)
  return new OciSource(files, reader, scratch, resolved, `${description} (${resolved.platform}, ${resolved.layers.length} layers)`)
}

export class OciSource implements Source {
  private tree: Tree | undefined

  constructor(
    private readonly files: ImageFiles,
    private readonly reader: BlobReader,
    private readonly scratch: Scratch,
    private readonly image: Resolved,
    readonly description: string,
  ) {}

  async *entries(): AsyncGenerator<SourceEntry> {
    if (this.tree === undefined) {
      const tree = new Tree(this.files.label)
      for (const [i, layer] of this.image.layers.entries()) {
        const label = `${this.files.label}: layer ${i + 1} (${layer.name})`
        await applyLayer(tree, tarEntries(await this.layerTar(layer, label)), label)
      }
      this.tree = tree
    }
    yield* this.tree.values()
  }

  imageConfig(): ImageConfig {
    const c = this.image.config.config ?? {}
    const ports = Object.keys(c.ExposedPorts ?? {})
    return {
      ...(c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
      ...(c.Cmd ? { cmd: c.Cmd } : {}),
      ...(c.Env ? { env: c.Env } : {}),
      ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
      ...(c.User ? { user: c.User } : {}),
      ...(ports.length > 0 ? { exposedPorts: ports } : {}),
      ...(c.Labels && Object.keys(c.Labels).length > 0 ? { labels: c.Labels } : {}),
    }
  }

  close(): Promise<void> {
    return this.scratch.close()
  }

  /** The layer as a plain tar: in place when stored uncompressed, else unpacked to a temp file; digests checked. */
  private async layerTar(layer: Layer, label: string): Promise<TarFile> {
    const at = await this.reader.need(layer.name, layer.size)
    const head = Buffer.alloc(MAGIC_BYTES)
    const { bytesRead } = await at.fh.read(head, 0, Math.min(MAGIC_BYTES, at.size), at.offset)
    const kind = sniffCompression(head.subarray(0, bytesRead), label)
    if (kind === 'plain') {
      const hex = await hashRange(at)
      check(label, 'blob', layer.blob, hex)
      check(label, 'uncompressed (diff_id)', layer.diffId, hex)
      return { fh: at.fh, path: at.path, fileSize: at.fileSize, start: at.offset, end: at.offset + at.size, label }
    }
    const blobHash = createHash('sha256')
    const diffHash = createHash('sha256')
    const input = at.fh.createReadStream({ start: at.offset, end: at.offset + at.size - 1, autoClose: false, highWaterMark: HASH_CHUNK })
    const path = await this.scratch.spool(input, [hashing(blobHash), decompressor(kind), hashing(diffHash)], label)
    check(label, 'blob', layer.blob, blobHash.digest('hex'))
    check(label, 'uncompressed (diff_id)', layer.diffId, diffHash.digest('hex'))
    return whole(await this.scratch.open(path), path, label)
  }
}

/** Applies one layer: its whiteouts remove lower content, then its members go on top. */
async function applyLayer(tree: Tree, members: AsyncIterable<SourceEntry>, label: string): Promise<void> {
  const opaque: string[] = []
  const whiteouts: string[] = []
  const added: SourceEntry[] = []
  for await (const entry of members) {
    const name = baseOf(entry.path)
    if (name === '.wh..wh..opq') opaque.push(parentOf(entry.path))
    else if (entry.path.startsWith('.wh..wh.') || entry.path.includes('/.wh..wh.')) continue // aufs metadata (.wh..wh.plnk)
    else if (name.startsWith('.wh.')) {
      const victim = name.slice('.wh.'.length)
      if (victim === '' || victim === '.' || victim === '..') {
        throw zerr('UNSAFE_PATH', `${label}: whiteout '${entry.path}' names no file`, { layer: label, path: entry.path })
      }
      whiteouts.push(joinPath(parentOf(entry.path), victim))
    } else added.push(entry)
  }
  // Whiteouts and opaque markers hide only lower layers, wherever they sit in this layer's tar.
  for (const dir of opaque) tree.clear(dir)
  for (const path of whiteouts) tree.remove(path)
  for (const entry of added) tree.put(entry)
}

/** Reads image JSON files, checking size and digest. */
class BlobReader {
  constructor(private readonly files: ImageFiles) {}

  get label(): string {
    return this.files.label
  }

  async need(name: string, size?: number): Promise<Located> {
    const at = await this.files.locate(name)
    if (at === undefined) throw zerr('BAD_ARCHIVE', `${this.label}: ${name} is missing from the image`, { image: this.label, file: name })
    if (size !== undefined && at.size !== size) {
      throw zerr('BAD_ARCHIVE', `${this.label}: ${name} is ${at.size} bytes but its descriptor says ${size}`, { image: this.label, file: name })
    }
    return at
  }

  async json<T>(schema: z.ZodType<T>, name: string, expect?: { hex?: string; size?: number }): Promise<T> {
    const at = await this.need(name, expect?.size)
    if (at.size > MAX_JSON) throw zerr('BAD_ARCHIVE', `${this.label}: ${name} is too large for an image JSON file`, { file: name })
    const buf = Buffer.alloc(at.size)
    const { bytesRead } = await at.fh.read(buf, 0, at.size, at.offset)
    if (bytesRead !== at.size) throw zerr('SOURCE_CHANGED', `${this.label}: ${name} became shorter while being read`, { file: name })
    check(`${this.label}: ${name}`, 'blob', expect?.hex, createHash('sha256').update(buf).digest('hex'))
    let value: unknown
    try {
      value = JSON.parse(buf.toString('utf8'))
    } catch {
      throw zerr('BAD_ARCHIVE', `${this.label}: ${name} is not valid JSON`, { file: name })
    }
    const parsed = schema.safeParse(value)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const where = issue === undefined ? '' : ` at ${issue.path.join('.') || '(top)'}: ${issue.message}`
      throw zerr('BAD_ARCHIVE', `${this.label}: ${name} is not a valid image file${where}`, { file: name })
    }
    return parsed.data
  }

  /** Reads a blob named by a descriptor. */
  descriptor<T>(schema: z.ZodType<T>, d: Descriptor): Promise<T> {
    const hex = digestHex(d.digest, this.label)
    return this.json(schema, `blobs/sha256/${hex}`, { hex, size: d.size })
  }
}

async function resolveDocker(reader: BlobReader): Promise<Resolved> {
  const images = await reader.json(DockerManifest, 'manifest.json')
  const image = images[0]
  if (image === undefined || images.length > 1) {
    const names = images.map((m, i) => (m.RepoTags ?? []).join(',') || `#${i + 1}`).join('; ')
    throw zerr('INVALID_ARGUMENT', `${reader.label} holds ${images.length} images (${names}); save only the one to pack`, { images: names })
  }
  const config = await reader.json(ImageConfigJson, image.Config, { hex: hexFromName(image.Config) })
  const diffIds = config.rootfs?.diff_ids ?? []
  if (diffIds.length !== image.Layers.length) {
    throw zerr('BAD_ARCHIVE', `${reader.label}: the config lists ${diffIds.length} layer digests for ${image.Layers.length} layers`)
  }
  const layers = image.Layers.map((name, i): Layer => {
    const blob = hexFromName(name)
    return { name, diffId: digestHex(diffIds[i] ?? '', reader.label), ...(blob === undefined ? {} : { blob }) }
  })
  return { config, layers, platform: platformOf(config) }
}

async function resolveOci(reader: BlobReader, wanted: string): Promise<Resolved> {
  const layout = await reader.json(z.object({ imageLayoutVersion: z.string() }), 'oci-layout')
  if (!layout.imageLayoutVersion.startsWith('1.')) {
    throw zerr('UNSUPPORTED', `${reader.label}: OCI layout version ${layout.imageLayoutVersion} is not supported (1.x is)`)
  }
  const index = await reader.json(ManifestOrIndex, 'index.json')
  const candidates = new Map<string, { desc: Descriptor; platform: string }>() // by manifest digest
  const visit = async (list: Descriptor[], depth: number): Promise<void> => {
    if (depth > 4) throw zerr('BAD_ARCHIVE', `${reader.label}: image indexes are nested too deeply`)
    for (const d of list) {
      // buildx stores provenance attestations as extra "unknown/unknown" manifests: they are not images.
      if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || d.platform?.os === 'unknown') continue
      const doc = await reader.descriptor(ManifestOrIndex, d)
      if (doc.manifests !== undefined) await visit(doc.manifests, depth + 1)
      else if (doc.config !== undefined && doc.layers !== undefined) {
        const platform = d.platform ? platformString(d.platform) : platformOf(await reader.descriptor(ImageConfigJson, doc.config))
        if (!candidates.has(d.digest)) candidates.set(d.digest, { desc: d, platform })
      } else throw zerr('BAD_ARCHIVE', `${reader.label}: ${d.digest} is neither an image index nor an image manifest`)
    }
  }
  await visit(index.manifests ?? [], 0)
  const all = [...candidates.values()]
  const matching = all.filter((c) => c.platform === wanted || c.platform.startsWith(`${wanted}/`))
  const chosen = all.length === 1 ? all[0] : matching.length === 1 ? matching[0] : undefined
  if (chosen === undefined) {
    const list = all.map((c) => c.platform)
    throw zerr('INVALID_ARGUMENT', `${reader.label}: cannot pick one image for ${wanted}; it has: ${list.join(', ') || 'none'}`, {
      platforms: list,
    })
  }
  const manifest = await reader.descriptor(ManifestOrIndex, chosen.desc)
  if (manifest.config === undefined || manifest.layers === undefined) throw zerr('INTERNAL', 'manifest changed between reads')
  const config = await reader.descriptor(ImageConfigJson, manifest.config)
  const layers = manifest.layers.map((d): Layer => {
    const hex = digestHex(d.digest, reader.label)
    return { name: `blobs/sha256/${hex}`, blob: hex, size: d.size }
  })
  return { config, layers, platform: chosen.platform }
}

function platformOf(config: ImageConfigJson): string {
  return config.os !== undefined && config.architecture !== undefined
    ? platformString({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) })
    : 'unknown platform'
}

function platformString(p: z.infer<typeof Platform>): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}

/** 'sha256:<64 hex>' → hex; other algorithms are UNSUPPORTED, anything else BAD_ARCHIVE. */
function digestHex(digest: string, label: string): string {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(digest)
  if (m?.[1] !== undefined && m[1] !== 'sha256') throw zerr('UNSUPPORTED', `${label}: digest algorithm ${m[1]} is not supported (sha256 is)`)
  if (m?.[2] === undefined || !/^[0-9a-f]{64}$/.test(m[2])) throw zerr('BAD_ARCHIVE', `${label}: '${digest}' is not a valid sha256 digest`)
  return m[2]
}

/** `docker save` names files after their digest: blobs/sha256/HEX (Docker ≥ 25) or HEX.json (older). */
function hexFromName(name: string): string | undefined {
  return /(?:^|\/)(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json)?$/.exec(name)?.[1]
}

function check(label: string, what: string, expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw zerr('BAD_ARCHIVE', `${label}: ${what} digest mismatch (expected sha256:${expected}, got sha256:${actual}); the image is corrupt`, {
      expected,
      actual,
    })
  }
}

async function hashRange(at: Located): Promise<string> {
  const hash = createHash('sha256')
  const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(at.size, 1)))
  for (let pos = 0; pos < at.size; ) {
    const { bytesRead } = await at.fh.read(buf, 0, Math.min(buf.length, at.size - pos), at.offset + pos)
    if (bytesRead === 0) throw zerr('SOURCE_CHANGED', 'an image file became shorter while it was being read')
    hash.update(buf.subarray(0, bytesRead))
    pos += bytesRead
  }
  return hash.digest('hex')
}

function hashing(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done(null, chunk)
    },
  })
}
