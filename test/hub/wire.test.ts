// The pack index a pack upload carries: the hand-written fast check accepts exactly what the schema accepts, and
// whatever it does not is refused with the schema's message naming the field.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { PackIndexSchema, parsePackIndex } from '../../src/hub/wire.js'

const sid = 'ab'.repeat(32)
const good = { sid, offset: 0, length: 10, size: 12, codec: 1 }

function parse(json: unknown): ReturnType<typeof parsePackIndex> {
  return parsePackIndex(Buffer.from(JSON.stringify(json)))
}

test('wire - pack index: good entries pass as they are; each kind of bad one is refused naming the field', () => {
  const entries = [good, { ...good, offset: 10, codec: 2, base: 'cd'.repeat(32) }, { ...good, offset: 20, encrypted: true }]
  assert.deepEqual(parse({ chunks: entries }), entries)
  const bad: [string, unknown, RegExp][] = [
    ['not an object', [good], /body/],
    ['an extra top-level key', { chunks: [good], more: 1 }, /more|Unrecognized/],
    ['chunks not an array', { chunks: good }, /chunks/],
    ['an extra entry key', { chunks: [{ ...good, extra: 1 }] }, /chunks\.0/],
    ['an uppercase sid', { chunks: [{ ...good, sid: sid.toUpperCase() }] }, /chunks\.0\.sid/],
    ['a short sid', { chunks: [{ ...good, sid: 'abc' }] }, /chunks\.0\.sid/],
    ['a negative offset', { chunks: [{ ...good, offset: -1 }] }, /chunks\.0\.offset/],
    ['a fractional offset', { chunks: [{ ...good, offset: 1.5 }] }, /chunks\.0\.offset/],
    ['an empty chunk', { chunks: [{ ...good, length: 0 }] }, /chunks\.0\.length/],
    ['a size given as a string', { chunks: [{ ...good, size: '12' }] }, /chunks\.0\.size/],
    ['an unknown codec', { chunks: [good, { ...good, codec: 3 }] }, /chunks\.1\.codec/],
    ['a base that is not an id', { chunks: [{ ...good, base: 'zz' }] }, /chunks\.0\.base/],
    ['encrypted not a boolean', { chunks: [{ ...good, encrypted: 'yes' }] }, /chunks\.0\.encrypted/],
    ['a missing field', { chunks: [{ sid, offset: 0, length: 1, size: 1 }] }, /chunks\.0\.codec/],
  ]
  for (const [what, json, field] of bad) {
    assert.throws(() => parse(json), (err: { code?: string; message?: string }) => err.code === 'INVALID_ARGUMENT' && field.test(err.message ?? ''), what)
  }
  assert.throws(() => parsePackIndex(Buffer.from('{"chunks": [')), { code: 'INVALID_ARGUMENT', message: /not JSON/ })
})

test('wire - pack index: the fast check never accepts what the schema refuses, nor refuses what it accepts', () => {
  const value = fc.oneof(
    fc.integer({ min: -3, max: 1 << 30 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(sid, 'cd'.repeat(32), sid.toUpperCase(), '', 'xyz', '0123456789abcdef'),
    fc.boolean(),
    fc.constant(null),
  )
  const entry = fc.record(
    { sid: value, offset: value, length: value, size: value, codec: fc.oneof(fc.integer({ min: -1, max: 3 }), value), base: value, encrypted: value, other: value },
    { requiredKeys: [] },
  )
  const index = fc.oneof(
    fc.record({ chunks: fc.array(fc.oneof(entry, fc.constant(good)), { maxLength: 4 }) }),
    fc.record({ chunks: fc.array(entry, { maxLength: 2 }), extra: value }, { requiredKeys: ['chunks'] }),
  )
  fc.assert(
    fc.property(index, (json) => {
      const schema = PackIndexSchema.safeParse(json)
      let parsed: unknown
      let refused = false
      try {
        parsed = parse(json)
      } catch {
        refused = true
      }
      assert.equal(refused, !schema.success)
      if (schema.success) assert.deepEqual(parsed, schema.data.chunks)
    }),
    { numRuns: 3000 },
  )
})
