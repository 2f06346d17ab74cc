import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, createHash } from 'node:crypto'
import fc from 'fast-check'
import { Chunker, DEFAULT_CHUNKER, GEAR } from '../../src/flist/chunker.js'

const chunker = new Chunker()
const hashes = (buf: Buffer, lengths: number[]): string[] => {
  let pos = 0
  return lengths.map((n) => createHash('sha256').update(buf.subarray(pos, (pos += n))).digest('hex'))
}

test('chunker - gear table is the documented derivation', () => {
  const expected0 = createHash('sha256').update('zos-fastcdc-gear').update(Buffer.of(0)).digest().readInt32BE(0)
  assert.equal(GEAR[0], expected0)
  assert.equal(new Set(GEAR).size, 256)
})

test('chunker - chunks tile the input within min/max and average near the target', () => {
  const data = randomBytes(8 * 1024 * 1024)
  const { lengths, consumed } = chunker.split(data, data.length, true)
  assert.equal(consumed, data.length)
  assert.equal(lengths.reduce((a, b) => a + b, 0), data.length)
  for (const n of lengths.slice(0, -1)) {
    assert.ok(n >= DEFAULT_CHUNKER.min && n <= DEFAULT_CHUNKER.max, `chunk of ${n} bytes out of bounds`)
  }
  const avg = data.length / lengths.length
  assert.ok(avg > 48 * 1024 && avg < 110 * 1024, `average ${avg} far from 64 KiB`)
})

test('chunker - a file smaller than min is one chunk; empty input gives none', () => {
  assert.deepEqual(chunker.split(Buffer.alloc(1000, 7), 1000, true).lengths, [1000])
  assert.deepEqual(chunker.split(Buffer.alloc(0), 0, true).lengths, [])
})

test('chunker - an insertion changes only the chunks around it', () => {
  const a = randomBytes(4 * 1024 * 1024)
  const at = 2 * 1024 * 1024 + 12345
  const b = Buffer.concat([a.subarray(0, at), Buffer.from('inserted bytes'), a.subarray(at)])
  const ha = new Set(hashes(a, chunker.split(a, a.length, true).lengths))
  const hb = hashes(b, chunker.split(b, b.length, true).lengths)
  const fresh = hb.filter((h) => !ha.has(h)).length
  assert.ok(fresh >= 1 && fresh <= 3, `${fresh} chunks changed for one insertion`)
})

/** docs/flist-format.md §2 one byte at a time: the definition the (unrolled) chunker must match. */
function referenceCuts(data: Uint8Array, p: { min: number; avg: number; max: number }): number[] {
  const bits = Math.log2(p.avg)
  const mask = (b: number): number => (b >= 32 ? -1 : (~0 << (32 - b)) | 0)
  const out: number[] = []
  for (let start = 0; start < data.length; ) {
    const remaining = data.length - start
    let n = remaining
    if (remaining > p.min) {
      const limit = Math.min(remaining, p.max)
      const normal = Math.min(limit, p.avg)
      n = limit
      let h = 0
      for (let i = p.min; i < limit; i++) {
        h = ((h << 1) + GEAR[data[start + i]!]!) | 0
        if ((h & mask(i < normal ? bits + 2 : bits - 2)) === 0) {
          n = i + 1
          break
        }
      }
    }
    out.push(n)
    start += n
  }
  return out
}

test('chunker - cuts exactly where the one-byte-at-a-time definition does, in both loops and at every offset', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200_000 }),
      fc.constantFrom(256, 1024, 4096),
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 0, max: 1000 }),
      (size, avg, spread, skew) => {
        const p = { algorithm: 'fastcdc-gear32-v1' as const, min: Math.max(64, Math.floor(avg / spread) - (skew % 7)), avg, max: avg * spread + (skew % 13) }
        const data = randomBytes(size)
        assert.deepEqual(new Chunker(p).split(data, data.length, true).lengths, referenceCuts(data, p))
      },
    ),
    { numRuns: 60 },
  )
  const data = randomBytes(3 * 1024 * 1024)
  assert.deepEqual(chunker.split(data, data.length, true).lengths, referenceCuts(data, DEFAULT_CHUNKER))
})

test('chunker - streaming in pieces gives the same cut points as one pass', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 3_000_000 }), fc.integer({ min: 300_000, max: 1_500_000 }), (size, piece) => {
      const data = randomBytes(size)
      const whole = chunker.split(data, data.length, true).lengths
      const streamed: number[] = []
      let carry = Buffer.alloc(0)
      for (let off = 0; off < size || carry.length > 0; off += piece) {
        const final = off + piece >= size
        const buf = Buffer.concat([carry, data.subarray(off, Math.min(size, off + piece))])
        const r = chunker.split(buf, buf.length, final)
        streamed.push(...r.lengths)
        carry = buf.subarray(r.consumed)
        if (final) break
      }
      assert.deepEqual(streamed, whole)
    }),
    { numRuns: 15 },
  )
})

test('chunker - rejects impossible parameters', () => {
  assert.throws(() => new Chunker({ algorithm: 'fastcdc-gear32-v1', min: 16384, avg: 60000, max: 262144 }), /power of two/)
  assert.throws(() => new Chunker({ algorithm: 'fastcdc-gear32-v1', min: 131072, avg: 65536, max: 262144 }), /min/)
})
