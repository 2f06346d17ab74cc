// A tar archive (plain, gzip or zstd; a file or a stream) as a Source.
//
// The archive is read as a plain tar FILE: a plain tar file is used in place, anything else (compressed, or a
// stream) is first unpacked to a temp file. Entries then point at their content by offset, so later members can
// replace earlier ones (tar semantics) without holding contents in memory, and nothing is copied twice.
import { createReadStream } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { zerr } from '../../core/errors.js'
import { MAGIC_BYTES, decompressor, sniffCompression } from './compression.js'
import { normaliseArchivePath } from './paths.js'
import { Scratch } from './scratch.js'
import { TarReader, type TarHeader } from './tar-reader.js'
import { Tree } from './tree.js'
import { RangeReader } from './range-reader.js'
import type { ImageConfig, Source, SourceEntry } from './types.js'

const READ_CHUNK = 1 << 20

/** A plain (uncompressed) tar archive stored in [start, end) of an open file. */
export interface TarFile {
  readonly fh: FileHandle
  /** The file's path and whole size, so the packer's workers can read contents directly (FileContent.local). */
  readonly path: string
  readonly fileSize: number
  readonly start: number
  readonly end: number
  /** Names the archive in messages. */
  readonly label: string
}

/**
 * Makes `input` (a path, or a stream such as stdin) readable as a plain tar file, unpacking it into `scratch` when it
 * is compressed or not seekable.
 */
export async function loadTar(input: string | Readable, scratch: Scratch, label: string): Promise<TarFile> {
  if (typeof input === 'string') {
    const fh = await scratch.open(input)
    const head = Buffer.alloc(MAGIC_BYTES)
    const { bytesRead } = await fh.read(head, 0, MAGIC_BYTES, 0)
    const kind = sniffCompression(head.subarray(0, bytesRead), label)
    if (kind === 'plain') return whole(fh, input, label)
    const path = await scratch.spool(createReadStream(input, { highWaterMark: READ_CHUNK }), [decompressor(kind)], label)
    return whole(await scratch.open(path), path, label)
  }
  const { head, stream } = await peek(input, MAGIC_BYTES)
  const kind = sniffCompression(head, label)
  const path = await scratch.spool(stream, kind === 'plain' ? [] : [decompressor(kind)], label)
  return whole(await scratch.open(path), path, label)
}

/** The whole of an open file as a tar archive. */
export async function whole(fh: FileHandle, path: string, label: string): Promise<TarFile> {
  const size = (await fh.stat()).size
  return { fh, path, fileSize: size, start: 0, end: size, label }
}

/** The first `n` bytes of a stream, and a stream that still yields everything. */
async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it: AsyncIterator<Buffer> = input[Symbol.asyncIterator]()
  const first: Buffer[] = []
  let length = 0
  while (length < n) {
    const r = await it.next()
    if (r.done === true) break
    first.push(r.value)
    length += r.value.length
  }
  const head = Buffer.concat(first)
  async function* all(): AsyncGenerator<Buffer> {
    yield head
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value
  }
  return { head: head.subarray(0, n), stream: Readable.from(all(), { objectMode: false }) }
}

/** Every member header of a plain tar, in order: one pass that seeks over contents. */
export async function scanTar(tar: TarFile): Promise<TarHeader[]> {
  const headers: TarHeader[] = []
  for await (const h of new TarReader(tar.fh, tar.start, tar.end, tar.label).headers()) headers.push(h)
  return headers
}

/**
 * Each member of the archive as a validated entry (path normalised; hard link targets normalised, unresolved).
 * `headers` may come from an earlier scanTar of the same archive.
 */
export async function* tarEntries(
  tar: TarFile,
  headers: Iterable<TarHeader> | AsyncIterable<TarHeader> = new TarReader(tar.fh, tar.start, tar.end, tar.label).headers(),
): AsyncGenerator<SourceEntry> {
  const contents = new RangeReader(tar)
  for await (const h of headers) yield toEntry(h, tar.label, contents)
}

function toEntry(h: TarHeader, label: string, contents: RangeReader): SourceEntry {
  const where = `${label}: entry ${h.index}`
  const path = normaliseArchivePath(h.name, where)
  let target: string | undefined
  if (h.kind === 'symlink' || h.kind === 'hardlink') {
    if (h.linkname === '') throw zerr('BAD_ARCHIVE', `${where} ('${path}') is a ${h.kind} with an empty target`, { archive: label, entry: path })
    target = h.kind === 'symlink' ? h.linkname : normaliseArchivePath(h.linkname, `${where} (hard link '${path}')`)
  }
  const device = h.kind === 'char' || h.kind === 'block'
  const file = h.kind === 'file'
  // One literal with every field (undefined where absent): conditional spreads cost more than the rest of a member.
  return {
    path,
    kind: h.kind,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    mtimeNs: h.mtimeNs,
    atimeNs: h.atimeNs,
    ctimeNs: h.ctimeNs,
    size: file ? h.size : 0,
    rdevMajor: device ? h.devMajor : undefined,
    rdevMinor: device ? h.devMinor : undefined,
    target,
    xattrs: h.xattrs,
    content: file ? contents.content(h.dataOffset, h.size) : undefined,
  }
}

export class TarSource implements Source {
  private tree: Tree | undefined

  /** `headers`: the archive's headers when already scanned (open.ts scans once to tell images from trees). */
  constructor(
    private readonly tar: TarFile,
    private readonly scratch: Scratch,
    readonly description: string,
    private readonly headers?: TarHeader[],
  ) {}

  async *entries(): AsyncGenerator<SourceEntry> {
    if (this.tree === undefined) {
      const tree = new Tree(this.tar.label)
      for await (const entry of tarEntries(this.tar, this.headers)) tree.put(entry)
      this.tree = tree
    }
    yield* this.tree.values()
  }

  imageConfig(): ImageConfig | undefined {
    return undefined
  }

  close(): Promise<void> {
    return this.scratch.close()
  }
}
