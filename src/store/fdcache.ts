// A small LRU of open read-only file handles, so hot pack reads do not reopen files. A handle in use is never
// closed under its reader: eviction only unlinks it from the cache and the last release closes it.
import { open, type FileHandle } from 'node:fs/promises'

export const DEFAULT_MAX_OPEN = 64

interface Opened {
  readonly fh: FileHandle
  /** Size at open time (packs are immutable, so it stays right). */
  readonly size: number
}

interface Entry {
  readonly handle: Promise<Opened>
  refs: number
  cached: boolean
}

export interface Lease {
  readonly fh: FileHandle
  /** File size when the handle was opened. */
  readonly size: number
  release(): void
}

async function openSized(path: string): Promise<Opened> {
  const fh = await open(path, 'r')
  try {
    return { fh, size: (await fh.stat()).size }
  } catch (err) {
    await fh.close().catch(() => {})
    throw err
  }
}

export class FdCache {
  private readonly entries = new Map<string, Entry>()
  private closed = false

  constructor(private readonly maxOpen = DEFAULT_MAX_OPEN) {}

  /** Opens `path` (or reuses its handle); rejects with the open error (ENOENT for a missing file). */
  async acquire(path: string): Promise<Lease> {
    if (this.closed) throw new Error('file handle cache is closed')
    let entry = this.entries.get(path)
    if (entry) {
      this.entries.delete(path) // re-insert: most recently used last
      this.entries.set(path, entry)
    } else {
      entry = { handle: openSized(path), refs: 0, cached: true }
      this.entries.set(path, entry)
      this.evict()
    }
    entry.refs++
    const e = entry
    let opened: Opened
    try {
      opened = await e.handle
    } catch (err) {
      e.refs--
      if (this.entries.get(path) === e) this.entries.delete(path)
      e.cached = false
      throw err
    }
    const { fh, size } = opened
    let released = false
    return {
      fh,
      size,
      release: () => {
        if (released) return
        released = true
        e.refs--
        if (!e.cached && e.refs === 0) void fh.close().catch(() => {})
      },
    }
  }

  /** Forgets `path` (e.g. after an I/O error), closing its handle once no reader holds it. */
  drop(path: string): void {
    const e = this.entries.get(path)
    if (!e) return
    this.entries.delete(path)
    this.retire(e)
  }

  get size(): number {
    return this.entries.size
  }

  private retire(e: Entry): void {
    e.cached = false
    if (e.refs === 0) void e.handle.then((o) => o.fh.close()).catch(() => {})
  }

  private evict(): void {
    for (const [path, e] of this.entries) {
      if (this.entries.size <= this.maxOpen) return
      this.entries.delete(path)
      this.retire(e)
    }
  }

  /** Closes every idle handle now and the busy ones when released. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true
    const all = [...this.entries.values()]
    this.entries.clear()
    await Promise.all(
      all.map(async (e) => {
        e.cached = false
        if (e.refs > 0) return
        try {
          await (await e.handle).fh.close()
        } catch {
          // a failed open has nothing to close
        }
      }),
    )
  }
}
