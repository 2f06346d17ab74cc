// FastCDC content-defined chunking (Xia et al., "FastCDC", USENIX ATC '16) with normalized chunking level 2.
// Cut points depend only on nearby content, so an edit moves the boundaries of the chunks it touches and no
// others: unchanged regions of two versions of a file produce identical chunks and deduplicate.
import { createHash } from 'node:crypto'

export interface ChunkerParams {
  readonly algorithm: 'fastcdc-gear32-v1'
  readonly min: number
  readonly avg: number
  readonly max: number
}

export const DEFAULT_CHUNKER: ChunkerParams = Object.freeze({
  algorithm: 'fastcdc-gear32-v1',
  min: 16 * 1024,
  avg: 64 * 1024,
  max: 256 * 1024,
})

/**
 * The gear table: 256 pseudo-random 32-bit values derived from SHA-256 so that any implementation can rebuild
 * it (gear[i] = first 4 bytes, big endian, of sha256("zos-fastcdc-gear" || byte i)). Documented in
 * docs/flist-format.md; changing it changes every chunk boundary.
 */
export const GEAR: Int32Array = (() => {
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    table[i] = createHash('sha256').update('zos-fastcdc-gear').update(Buffer.of(i)).digest().readInt32BE(0)
  }
  return table
})()

function maskOfBits(bits: number): number {
  // The top `bits` bits of the 32-bit rolling hash: those depend on the most recent 32 bytes.
  return bits >= 32 ? -1 : (~0 << (32 - bits)) | 0
}

export function validateChunkerParams(p: ChunkerParams): void {
  const pow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0
  if (p.algorithm !== 'fastcdc-gear32-v1') throw new Error(`unknown chunker ${String(p.algorithm)}`)
  if (!pow2(p.avg) || p.avg < 256 || p.avg > 1 << 26) throw new Error(`chunker avg must be a power of two in [256, 64 MiB], got ${p.avg}`)
  if (!(Number.isInteger(p.min) && p.min >= 64 && p.min <= p.avg)) throw new Error(`chunker min must be in [64, avg], got ${p.min}`)
  if (!(Number.isInteger(p.max) && p.max >= p.avg && p.max <= 1 << 28)) throw new Error(`chunker max must be in [avg, 256 MiB], got ${p.max}`)
}

export class Chunker {
  readonly params: ChunkerParams
  // Copied out of `params`: next() then reads fields of this class only, whatever object the parameters came
  // in (a frozen default, or a worker's structured-cloned copy): one shape for the optimised loop.
  private readonly min: number
  private readonly avg: number
  private readonly max: number
  private readonly maskS: number
  private readonly maskL: number

  constructor(params: ChunkerParams = DEFAULT_CHUNKER) {
    validateChunkerParams(params)
    this.params = params
    this.min = params.min
    this.avg = params.avg
    this.max = params.max
    const bits = Math.log2(params.avg)
    // Normalized chunking, level 2: a harder mask before the average size, an easier one after it.
    this.maskS = maskOfBits(bits + 2)
    this.maskL = maskOfBits(bits - 2)
  }

  /**
   * Length of the chunk that starts at `start` in buf[start, end). When fewer than `max` bytes remain and
   * `final` is false, returns 0: the caller must supply more data (the boundary might lie beyond `end`).
   */
  next(buf: Uint8Array, start: number, end: number, final: boolean): number {
    const { min, avg, max } = this
    const remaining = end - start
    if (remaining <= 0) return 0
    if (!final && remaining < max) return 0
    if (remaining <= min) return remaining
    const limit = remaining > max ? max : remaining
    const normal = limit < avg ? limit : avg
    const gear = GEAR
    let h = 0
    let i = start + min
    // Eight bytes per turn, every byte still checked (the same cuts as one at a time): V8 runs this twice as fast
    // as the one-byte loop (1.0 → 2.0 GB/s over a Debian root's tar; four bytes 1.6, sixteen 2.35). One exit for a
    // cut, after the block: a `return` per byte position is code that has not run when V8 optimises the loop, and
    // each first cut at a new position threw the optimised code away (31 times in a pack).
    cut: {
      // Normalized chunking: the harder mask up to the average size, the easier one after it.
      for (let easy = 0; easy < 2; easy++) {
        const mask = easy ? this.maskL : this.maskS
        const stopAt = start + (easy ? limit : normal)
        for (const stop = stopAt - 7; i < stop; ) {
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
        }
        while (i < stopAt) {
          h = ((h << 1) + gear[buf[i++]!]!) | 0
          if ((h & mask) === 0) break cut
        }
      }
      return limit
    }
    return i - start
  }

  /**
   * Cuts buf[start, end) into chunk lengths. With final=false the trailing bytes that may belong to a chunk
   * continuing in the next buffer are left out; `consumed` says how many bytes the returned chunks cover.
   */
  split(buf: Uint8Array, end: number, final: boolean, start = 0): { lengths: number[]; consumed: number } {
    const lengths: number[] = []
    let pos = start
    for (;;) {
      const n = this.next(buf, pos, end, final)
      if (n === 0) break
      lengths.push(n)
      pos += n
    }
    return { lengths, consumed: pos - start }
  }
}
