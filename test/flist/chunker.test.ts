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
