// Directories kept open for the fsync that makes a rename into them durable (without it a crash can forget the
// new name). Opening and closing a directory around every fsync were two more round trips through the libuv pool
// per file, and on a busy event loop those round trips, not the calls, are what moving a file into place costs.
import { mkdir, open, type FileHandle } from 'node:fs/promises'

export class DirHandles {
  private readonly handles = new Map<string, Promise<FileHandle>>()

  /** `dir` (created on first use), open. Nothing may remove it while this holds it. */
  get(dir: string): Promise<FileHandle> {
    let h = this.handles.get(dir)
    if (!h) {
      h = mkdir(dir, { recursive: true }).then(() => open(dir, 'r'))
      this.handles.set(dir, h)
      h.catch(() => this.handles.delete(dir)) // tried again next time
    }
    return h
  }

  /** Makes the renames done so far in `dir` durable. */
  async sync(dir: string): Promise<void> {
    await (await this.get(dir)).sync()
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()]
    this.handles.clear()
    await Promise.all(all.map((h) => h.then((d) => d.close(), () => {})))
  }
}
