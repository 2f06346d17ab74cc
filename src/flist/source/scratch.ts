// Temporary files of one source (decompressed archives and layers) and the file handles its entries read from.
// Everything is released by close(), which a Source calls from its own close().
import { createWriteStream } from 'node:fs'
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ZosError, errorMessage, zerr } from '../../core/errors.js'

export class Scratch {
  private dir: string | undefined
  private readonly handles: FileHandle[] = []
  private count = 0
  private closed = false

  /** Opens a file for positional reads; the handle lives until close(). */
  async open(path: string): Promise<FileHandle> {
    if (this.closed) throw zerr('INTERNAL', 'source used after close()')
    const fh = await open(path, 'r')
    this.handles.push(fh)
    return fh
  }

  /**
   * Runs `input` through `stages` into a new temp file and returns its path. Any failure that is not already a
   * ZosError (a gzip/zstd error, a cut-off stream) is reported as BAD_ARCHIVE naming `where`.
   */
  async spool(input: Readable, stages: Transform[], where: string): Promise<string> {
    if (this.closed) throw zerr('INTERNAL', 'source used after close()')
    this.dir ??= await mkdtemp(join(tmpdir(), 'zos-source-'))
    const path = join(this.dir, `${this.count++}.tar`)
    try {
      await pipeline([input, ...stages, createWriteStream(path, { highWaterMark: 1 << 20 })])
    } catch (err: unknown) {
      if (ZosError.is(err)) throw err
      if (isNodeError(err) && (err.code === 'ENOSPC' || err.code === 'EDQUOT')) {
        throw zerr('INVALID_ARGUMENT', `no space left in ${this.dir} while unpacking ${where}; set TMPDIR to a larger disk`, { where })
      }
      throw zerr('BAD_ARCHIVE', `${where} is corrupt or truncated: ${errorMessage(err)}`, { where }, err)
    }
    return path
  }

  /** Closes every handle and removes the temp dir; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled(this.handles.map((fh) => fh.close()))
    this.handles.length = 0
    if (this.dir !== undefined) await rm(this.dir, { recursive: true, force: true })
  }
}

function isNodeError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string'
}
