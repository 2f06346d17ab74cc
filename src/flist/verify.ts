// Verifies an flist against a store: the metadata (seal, signatures, consistency: checked by FlistReader.open)
// and every chunk, fetched and decoded exactly as a mount would. Reports every bad chunk, not just the first.
import { ZosError } from '../core/errors.js'
import type { Store } from '../store/types.js'
import { ChunkFetcher } from './fetch.js'
import type { ChunkInfo, FlistReader } from './reader.js'

export interface ChunkProblem {
  sid: string
  pack: string
  offset: number
  code: string
  message: string
  /** One file that uses the chunk (for the report). */
  file?: string
}

export interface VerifyResult {
  root: string
  signers: { address: string; valid: boolean }[]
  chunks: number
  bytes: number
  ok: boolean
  problems: ChunkProblem[]
}

const BATCH = 256

export async function verify(reader: FlistReader, store: Store, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<VerifyResult> {
  const fetcher = new ChunkFetcher(reader, store)
  const chunks = reader.allChunks()
  const problems: ChunkProblem[] = []
  let bytes = 0
  const describe = (info: ChunkInfo, err: unknown): ChunkProblem => ({
    sid: info.sid,
    pack: info.pack,
    offset: info.offset,
    code: ZosError.is(err) ? err.code : 'INTERNAL',
    message: err instanceof Error ? err.message : String(err),
  })
  for (let i = 0; i < chunks.length; i += BATCH) {
    const batch = chunks.slice(i, i + BATCH)
    try {
      const plains = await fetcher.fetch(batch.map((c) => c.id))
      bytes += plains.reduce((n, p) => n + p.length, 0)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'STORE_UNAVAILABLE') throw err
      // Narrow the failure down to the chunks that are bad.
      for (const info of batch) {
        try {
          bytes += (await fetcher.fetch([info.id]))[0]!.length
        } catch (inner) {
          if (ZosError.is(inner) && inner.code === 'STORE_UNAVAILABLE') throw inner
          problems.push(describe(info, inner))
        }
      }
    }
    options.onProgress?.(Math.min(i + BATCH, chunks.length), chunks.length)
  }
  if (problems.length > 0) {
    const users = new Map<number, string>()
    const bad = new Set(problems.map((p) => p.sid))
    for (const { path, inode } of reader.walk()) {
      if (inode.type !== 'file') continue
      for (const e of reader.extents(inode.ino)) {
        const info = reader.chunk(e.chunk)
        if (bad.has(info.sid) && !users.has(info.id)) users.set(info.id, path)
      }
    }
    const bySid = new Map(chunks.map((c) => [c.sid, c.id]))
    for (const p of problems) {
      const file = users.get(bySid.get(p.sid)!)
      if (file !== undefined) p.file = file
    }
  }
  return {
    root: reader.root.toString('hex'),
    signers: reader.signers.map((s) => ({ address: s.address, valid: s.valid })),
    chunks: chunks.length,
    bytes,
    ok: problems.length === 0 && reader.signers.every((s) => s.valid),
    problems,
  }
}
