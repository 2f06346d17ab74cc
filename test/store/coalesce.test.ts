import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { coalesce, splitSpan, DEFAULT_MAX_GAP } from '../../src/store/coalesce.js'
import type { PackRange } from '../../src/store/types.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)

test('coalesce - neighbouring ranges of one pack become one span', () => {
  const ranges: PackRange[] = Array.from({ length: 20 }, (_, i) => ({ pack: A, offset: i * 1000, length: 1000 }))
  const spans = coalesce(ranges)
  assert.equal(spans.length, 1)
  assert.deepEqual({ pack: spans[0]!.pack, offset: spans[0]!.offset, length: spans[0]!.length }, { pack: A, offset: 0, length: 20000 })
  assert.deepEqual(spans[0]!.parts.map((p) => p.index), ranges.map((_, i) => i))
})

test('coalesce - gaps above maxGap and different packs split spans', () => {
  const spans = coalesce([
    { pack: A, offset: 0, length: 10 },
    { pack: B, offset: 0, length: 10 },
    { pack: A, offset: 10 + DEFAULT_MAX_GAP, length: 10 }, // gap exactly maxGap: merged
    { pack: A, offset: 20 + 2 * DEFAULT_MAX_GAP + 1, length: 10 }, // gap maxGap+1: split
  ])
  assert.deepEqual(
    spans.map((s) => [s.pack[0], s.offset, s.length, s.parts.map((p) => p.index)]),
    [
      ['a', 0, 20 + DEFAULT_MAX_GAP, [0, 2]],
      ['a', 20 + 2 * DEFAULT_MAX_GAP + 1, 10, [3]],
      ['b', 0, 10, [1]],
    ],
  )
})

test('coalesce - maxSpan bounds merging but never splits one big range', () => {
  const spans = coalesce(
    [
      { pack: A, offset: 0, length: 60 },
      { pack: A, offset: 60, length: 60 },
      { pack: A, offset: 120, length: 500 },
    ],
    { maxSpan: 100 },
  )
  assert.deepEqual(spans.map((s) => [s.offset, s.length]), [[0, 60], [60, 60], [120, 500]])
})

test('coalesce - unsorted, overlapping, duplicate and empty ranges', () => {
  const ranges: PackRange[] = [
    { pack: A, offset: 50, length: 10 },
    { pack: A, offset: 0, length: 100 },
    { pack: A, offset: 50, length: 10 },
    { pack: A, offset: 5, length: 0 },
  ]
  const spans = coalesce(ranges)
  assert.equal(spans.length, 1)
  assert.equal(spans[0]!.offset, 0)
  assert.equal(spans[0]!.length, 100)
  assert.deepEqual(spans[0]!.parts.map((p) => p.index).sort(), [0, 1, 2])
})

test('coalesce - bad ranges are refused with INVALID_ARGUMENT', () => {
  for (const bad of [
    { pack: 'A'.repeat(64), offset: 0, length: 1 },
    { pack: 'a'.repeat(63), offset: 0, length: 1 },
    { pack: A, offset: -1, length: 1 },
    { pack: A, offset: 0.5, length: 1 },
    { pack: A, offset: 0, length: Number.NaN },
    { pack: A, offset: Number.MAX_SAFE_INTEGER, length: 2 },
  ]) {
    assert.throws(() => coalesce([bad]), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad))
  }
  assert.throws(() => coalesce([], { maxGap: -1 }), { code: 'INVALID_ARGUMENT' })
})

test('coalesce - property: spans cover every range and splitSpan returns the right bytes', () => {
  const data = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff))
  const range = fc.record({
    pack: fc.constantFrom(A, B),
    offset: fc.integer({ min: 0, max: 4000 }),
    length: fc.integer({ min: 0, max: 96 }),
  })
  fc.assert(
    fc.property(fc.array(range, { maxLength: 40 }), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 2000 }), (ranges, maxGap, maxSpan) => {
      const spans = coalesce(ranges, { maxGap, maxSpan })
      const out: Buffer[] = ranges.map(() => Buffer.alloc(0))
      const seen = new Set<number>()
      for (const s of spans) {
        for (const p of s.parts) {
          assert.ok(!seen.has(p.index))
          seen.add(p.index)
          assert.ok(p.start >= 0 && p.start + p.length <= s.length)
        }
        const multi = s.parts.length > 1
        if (multi) assert.ok(s.length <= maxSpan)
        splitSpan(s, data.subarray(s.offset, s.offset + s.length), out)
      }
      ranges.forEach((r, i) => {
        if (r.length > 0) assert.ok(seen.has(i))
        assert.deepEqual(out[i], data.subarray(r.offset, r.offset + r.length))
      })
    }),
  )
})
