// Where the files of an image (manifest.json, index.json, blobs/sha256/...) are: in an OCI layout directory, or inside
// a tarball (`docker save`, an OCI archive). Either way a file is a byte range of an open handle.
import { stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { normaliseArchivePath } from './paths.js'
import type { Scratch } from './scratch.js'
import type { TarFile } from './tar.js'
import type { TarHeader } from './tar-reader.js'
import type { FileHandle } from 'node:fs/promises'

export interface Located {
  readonly fh: FileHandle
  /** Path and whole size of the file holding it. */
  readonly path: string
  readonly fileSize: number
  readonly offset: number
  readonly size: number
}

export interface ImageFiles {
  /** Names the image in messages. */
  readonly label: string
  /** The file `name` ('/'-separated, relative), or undefined when absent. */
  locate(name: string): Promise<Located | undefined>
}

/** Files of an OCI image layout directory. */
export class DirImageFiles implements ImageFiles {
  private readonly open = new Map<string, Promise<Located | undefined>>()

  constructor(
    private readonly root: string,
    private readonly scratch: Scratch,
    readonly label: string,
  ) {}

  locate(name: string): Promise<Located | undefined> {
    const safe = normaliseArchivePath(name, this.label) // names come from JSON inside the image: never trust them
    let found = this.open.get(safe)
    if (found === undefined) {
      found = this.load(safe)
      this.open.set(safe, found)
    }
    return found
  }

  private async load(name: string): Promise<Located | undefined> {
    const path = join(this.root, name)
    const st = await stat(path).catch(() => undefined)
    if (st === undefined || !st.isFile()) return undefined
    return { fh: await this.scratch.open(path), path, fileSize: st.size, offset: 0, size: st.size }
  }
}

interface Member {
  readonly kind: string
  readonly offset: number
  readonly size: number
  readonly link: string
}

/** Files inside a plain tarball, indexed from its headers. */
export class TarImageFiles implements ImageFiles {
  readonly label: string

  private constructor(
    private readonly tar: TarFile,
    private readonly members: Map<string, Member>,
  ) {
    this.label = tar.label
  }

  static index(tar: TarFile, headers: Iterable<TarHeader>): TarImageFiles {
    const members = new Map<string, Member>()
    for (const h of headers) {
      const path = normaliseArchivePath(h.name, `${tar.label}: entry ${h.index}`)
      members.set(path, { kind: h.kind, offset: h.dataOffset, size: h.size, link: h.linkname })
    }
    return new TarImageFiles(tar, members)
  }

  /** Top-level names, to tell an image tarball from a plain root filesystem. */
  has(name: string): boolean {
    try {
      return this.members.has(normaliseArchivePath(name, this.label))
    } catch {
      return false
    }
  }

  async locate(name: string): Promise<Located | undefined> {
    let path = normaliseArchivePath(name, this.label)
    // `docker save` stores a layer shared by two images once and links to it (symlinks, sometimes hard links).
    for (let hops = 0; hops < 8; hops++) {
      const m = this.members.get(path)
      if (m === undefined) return undefined
      if (m.kind === 'file') return { fh: this.tar.fh, path: this.tar.path, fileSize: this.tar.fileSize, offset: m.offset, size: m.size }
      if (m.kind === 'hardlink') path = normaliseArchivePath(m.link, this.label)
      else if (m.kind === 'symlink') {
        const target = posix.normalize(posix.join(posix.dirname(path), m.link))
        if (m.link.startsWith('/') || target.startsWith('../')) return undefined
        path = target
      } else return undefined
    }
    return undefined
  }
}
