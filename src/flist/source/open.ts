// `zos flist pack SOURCE`: picks the source for a path. A directory is a tree unless it is an OCI image layout; a file
// is a tar archive (plain, gzip or zstd, by magic bytes) unless its members make it an image (`docker save`, OCI
// archive); '-' is a tar archive on stdin.
import { stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Readable } from 'node:stream'
import { errorMessage, zerr } from '../../core/errors.js'
import { openDir, type DirOptions } from './dir.js'
import type { TarImageFiles } from './image-files.js'
import type { OciOptions } from './oci.js'
import type { Scratch } from './scratch.js'
import type { Source } from './types.js'

// Archives and images load their modules (tar parsing, OCI with its zod schemas) when one is opened: packing a
// directory does not pay for them at start-up.
const images = (): Promise<[typeof import('./image-files.js'), typeof import('./oci.js')]> => Promise.all([import('./image-files.js'), import('./oci.js')])

const IMAGE_MARKERS = new Set(['manifest.json', 'oci-layout'])

export interface OpenOptions extends DirOptions, OciOptions {
  /** The stream read for '-' (default: process.stdin). */
  stdin?: Readable
}

export async function openSource(spec: string, options: OpenOptions = {}): Promise<Source> {
  if (spec === '-') return openArchive(options.stdin ?? process.stdin, 'stdin', options)
  const st = await stat(spec).catch((err: unknown) => {
    throw zerr('NOT_FOUND', `cannot open ${spec}: ${errorMessage(err)}`, { path: spec }, err)
  })
  if (st.isDirectory()) {
    if ((await isFile(join(spec, 'oci-layout'))) && (await isFile(join(spec, 'index.json')))) {
      const [{ DirImageFiles }, { openOci }] = await images()
      return withScratch((scratch) => openOci(new DirImageFiles(spec, scratch, basename(spec)), scratch, `OCI layout ${spec}`, options))
    }
    return openDir(spec, options)
  }
  if (!st.isFile()) throw zerr('INVALID_ARGUMENT', `${spec} is neither a directory nor a file`, { path: spec })
  return openArchive(spec, spec, options)
}

async function openArchive(input: string | Readable, shown: string, options: OpenOptions): Promise<Source> {
  const { TarSource, loadTar, scanTar } = await import('./tar.js')
  return withScratch(async (scratch) => {
    const tar = await loadTar(input, scratch, typeof input === 'string' ? basename(input) : 'stdin')
    const headers = await scanTar(tar) // once: the tar source reuses it
    if (headers.some((h) => IMAGE_MARKERS.has(h.name.replace(/^(?:\.\/)+/, '')))) {
      const [{ TarImageFiles }, { openOci }] = await images()
      const files = TarImageFiles.index(tar, headers)
      if (files.has('oci-layout') || (await isDockerSave(files))) return openOci(files, scratch, `image ${shown}`, options)
    }
    return new TarSource(tar, scratch, `tar ${shown}`, headers)
  })
}

/** A top-level manifest.json listing layers that are in the archive: `docker save` output, not a root filesystem. */
async function isDockerSave(files: TarImageFiles): Promise<boolean> {
  const at = files.has('manifest.json') ? await files.locate('manifest.json') : undefined
  if (at === undefined || at.size > 1 << 20) return false
  const buf = Buffer.alloc(at.size)
  await at.fh.read(buf, 0, at.size, at.offset)
  try {
    const json: unknown = JSON.parse(buf.toString('utf8'))
    if (!Array.isArray(json)) return false
    const layers: unknown = (json[0] as { Layers?: unknown } | undefined)?.Layers
    return Array.isArray(layers) && layers.every((l) => typeof l === 'string' && files.has(l))
  } catch {
    return false
  }
}

async function withScratch<T>(fn: (scratch: Scratch) => Promise<T>): Promise<T> {
  const scratch = new (await import('./scratch.js')).Scratch()
  try {
    return await fn(scratch)
  } catch (err: unknown) {
    await scratch.close()
    throw err
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true
}
