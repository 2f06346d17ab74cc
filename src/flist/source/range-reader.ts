// File contents stored as byte ranges of one shared file (an archive, a decompressed layer). Small ranges are cut
// from a shared read-ahead window: consecutive small members cost one read per window instead of one each, and an
// async read is a thread-pool round trip (20–200 µs on a small VM) whatever its size. Large ranges are streamed.
import type { FileHandle } from 'node:fs/promises'
import { zerr } from '../../core/errors.js'
import type { FileContent } from './types.js'

export interface RangeFile {
  readonly fh: FileHandle
  /** Ranges lie before this offset. */
  readonly end: number
  /** Path and whole size of the file, handed to the packer as FileContent.local. */
  readonly path: string
  readonly fileSize: number
  /** Names the file in errors. */
  readonly label: string
}

const WINDOW = 1 << 20
const SMALL = 64 * 1024 // at most this much is cut from a window
const READ_CHUNK = 1 << 20

export class RangeReader {
  private window: { start: number; buf: Buffer } | undefined
  private loading: { start: number; end: number; buf: Promise<Buffer> } | undefined

  constructor(private readonly file: RangeFile) {}

  content(offset: number, size: number): FileContent {
    return {
      stream: () => this.stream(offset, size),
      local: { path: this.file.path, offset, fileSize: this.file.fileSize },
    }
  }

  private async *stream(offset: number, size: number): AsyncGenerator<Buffer> {
    if (size === 0) return
    if (size <= SMALL) yield await this.small(offset, size)
    else yield* this.large(offset, size)
  }

  private async small(offset: number, size: number): Promise<Buffer> {
    const w = this.window
    if (w !== undefined && offset >= w.start && offset + size <= w.start + w.buf.length) {
      return w.buf.subarray(offset - w.start, offset - w.start + size)
    }
    const l = this.loading
    if (l !== undefined && offset >= l.start && offset + size <= l.end) {
      return (await l.buf).subarray(offset - l.start, offset - l.start + size)
    }
    // Windows are fresh buffers, never overwritten: slices handed out stay valid.
    const length = Math.max(size, Math.min(WINDOW, this.file.end - offset))
    const buf = this.read(offset, length)
    this.loading = { start: offset, end: offset + length, buf }
    const got = await buf
    this.window = { start: offset, buf: got }
    if (this.loading?.buf === buf) this.loading = undefined
    return got.subarray(0, size)
  }

  private async *large(offset: number, size: number): AsyncGenerator<Buffer> {
    for (let pos = 0; pos < size; pos += READ_CHUNK) yield await this.read(offset + pos, Math.min(READ_CHUNK, size - pos))
  }

  private async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length)
    for (let got = 0; got < length; ) {
      const { bytesRead } = await this.file.fh.read(buf, got, length - got, offset + got)
      if (bytesRead === 0) {
        throw zerr('SOURCE_CHANGED', `${this.file.label} became shorter while it was being read`, { file: this.file.label })
      }
      got += bytesRead
    }
    return buf
  }
}
