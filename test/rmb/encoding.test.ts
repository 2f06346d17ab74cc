import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ZosError } from '../../src/core/errors.js'
import { bytes, decodeOne, encodeOne, fixed, newState, uint, utf8 } from '../../src/rmb/encoding.js'
import { code } from './helpers.js'

test('encoding - uint uses 1/3/5/9 bytes with 0xfd/0xfe/0xff markers, little endian', () => {
  assert.deepEqual(encodeOne(uint, 0), Buffer.from('00', 'hex'))
  assert.deepEqual(encodeOne(uint, 0xfc), Buffer.from('fc', 'hex'))
  assert.deepEqual(encodeOne(uint, 0xfd), Buffer.from('fdfd00', 'hex'))
  assert.deepEqual(encodeOne(uint, 0xffff), Buffer.from('fdffff', 'hex'))
  assert.deepEqual(encodeOne(uint, 0x10000), Buffer.from('fe00000100', 'hex'))
  assert.deepEqual(encodeOne(uint, 0xffffffff), Buffer.from('feffffffff', 'hex'))
  assert.deepEqual(encodeOne(uint, 0x100000000), Buffer.from('ff0000000001000000', 'hex'))
  assert.deepEqual(encodeOne(uint, Number.MAX_SAFE_INTEGER), Buffer.from('ffffffffffffff1f00', 'hex'))
})

test('encoding - uint round-trips every size class and the cursor lands after each value', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 0xfc }), fc.integer({ min: 0, max: 0xffffffff }), fc.maxSafeNat())), (values) => {
      const s = newState()
      for (const v of values) uint.preencode(s, v)
      s.buffer = Buffer.alloc(s.end)
      for (const v of values) uint.encode(s, v)
      assert.equal(s.start, s.end)
      const r = newState(s.buffer)
      for (const v of values) assert.equal(uint.decode(r), v)
      assert.equal(r.start, r.end)
    }),
  )
})

test('encoding - uint decoding rejects non-canonical forms, values above 2^53 and truncation', () => {
  for (const hex of ['fd0100', 'fefc000000', 'feffff0000', 'ffffffffff00000000']) {
    assert.throws(() => decodeOne(uint, Buffer.from(hex, 'hex')), code('RMB_MALFORMED'), hex)
  }
  assert.throws(() => decodeOne(uint, Buffer.from('ff0000000000002000', 'hex')), /above 2\^53/)
  for (const hex of ['', 'fd', 'fd01', 'fe010203', 'ff01020304050607']) {
    assert.throws(() => decodeOne(uint, Buffer.from(hex, 'hex')), /out of bounds/, hex)
  }
})

test('encoding - fixed, bytes and utf8 check bounds, limits and UTF-8', () => {
  const f = fixed(4)
  assert.throws(() => decodeOne(f, Buffer.from('010203', 'hex')), code('RMB_MALFORMED'))
  const b = bytes(3)
  assert.deepEqual(encodeOne(b, Buffer.from('abc')), Buffer.from('03616263', 'hex'))
  assert.throws(() => decodeOne(b, Buffer.from('0461626364', 'hex')), /above the limit of 3/)
  assert.throws(() => decodeOne(b, Buffer.from('036162', 'hex')), /out of bounds/)
  const s = utf8(16)
  assert.equal(decodeOne(s, encodeOne(s, 'zos.ping ✓')), 'zos.ping ✓')
  assert.throws(() => decodeOne(s, Buffer.from('02c328', 'hex')), /not valid UTF-8/)
  assert.throws(() => decodeOne(uint, Buffer.from('0100', 'hex')), /trailing/)
  assert.throws(() => decodeOne(s, Buffer.from('ff', 'hex')), (err: unknown) => ZosError.is(err))
})
