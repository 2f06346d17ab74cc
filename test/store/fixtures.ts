// Builds packs at run time for store tests: random chunks concatenated, id = SHA-256 of the bytes.
import { createHash, randomBytes } from 'node:crypto'
import type { ChunkLocation } from '../../src/store/types.js'

export interface BuiltPack {
  id: string
  data: Buffer
  chunks: ChunkLocation[]
}

export function sha256hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** A pack of `count` random chunks of `size` bytes each (codec 0, stored raw). */
export function buildPack(count: number, size: number): BuiltPack {
  const parts = Array.from({ length: count }, () => randomBytes(size))
  const data = Buffer.concat(parts)
  const id = sha256hex(data)
  const chunks = parts.map((p, i) => ({ sid: sha256hex(p), pack: id, offset: i * size, length: size, size, codec: 0 }))
  return { id, data, chunks }
}
