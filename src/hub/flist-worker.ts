// Worker thread of the hub: opens an uploaded metadata file with every check of FlistReader.open (format, SQLite
// integrity, seal, signatures, invariants) and answers what the hub needs of it, so that this CPU-bound work runs
// beside the main thread, which meanwhile receives the packs the flist names.
import { parentPort } from 'node:worker_threads'
import { ZosError } from '../core/errors.js'
import type { ChunkInfo } from '../flist/chunks.js'
import { FlistReader, type FlistSummary } from '../flist/reader.js'

export interface FlistCheckRequest {
  path: string
}

export interface FlistCheck {
  signers: { address: string; valid: boolean }[]
  summary: FlistSummary
  chunks: ChunkInfo[]
}

export function checkFlistFile(path: string): FlistCheck {
  const reader = FlistReader.open(path)
  try {
    return { signers: reader.signers.map((s) => ({ address: s.address, valid: s.valid })), summary: reader.summary(), chunks: reader.allChunks() }
  } finally {
    reader.close()
  }
}

parentPort?.on('message', (req: FlistCheckRequest) => {
  try {
    parentPort!.postMessage({ ok: true, value: checkFlistFile(req.path) })
  } catch (err) {
    parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err), ...(ZosError.is(err) ? { code: err.code } : {}) })
  }
})
