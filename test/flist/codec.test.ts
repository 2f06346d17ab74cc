import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { compress } from 'zstd-napi'
import { CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_DELTA, ChunkDecodeError, ChunkEncoder, decodeChunk, encodeBound, encodeChunk, sha256, storeId, zstdFrameContentSize } from '../../src/flist/codec.js'

const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(1500))

test('codec - compressible text is stored as zstd and decodes to the same bytes', () => {
  const hash = sha256(text)
  const sid = storeId(hash, undefined)
  assert.equal(sid, hash.toString('hex'))
  const e = encodeChunk(text, sid, { level: 3 })
  assert.equal(e.codec, CODEC_ZSTD)
  assert.ok(e.data.length < text.length / 10)
  assert.deepEqual(decodeChunk({ data: e.data, codec: e.codec, hash, size: text.length, sid }), text)
})

test('codec - random bytes stay raw', () => {
  const plain = randomBytes(20000)
  const e = encodeChunk(plain, storeId(sha256(plain), undefined), { level: 3 })
  assert.equal(e.codec, CODEC_RAW)
  assert.equal(e.data.length, plain.length)
})

test('codec - delta against a similar base is far smaller and needs the base to decode', () => {
  const base = Buffer.from(randomBytes(30000).toString('base64'))
  const plain = Buffer.concat([base.subarray(0, 9000), Buffer.from('an edit'), base.subarray(9100)])
  const hash = sha256(plain)
  const sid = storeId(hash, undefined)
  const e = encodeChunk(plain, sid, { level: 3, base })
  assert.equal(e.codec, CODEC_ZSTD_DELTA)
  assert.ok(e.data.length < 200, `delta of ${e.data.length} bytes`)
  assert.deepEqual(decodeChunk({ data: e.data, codec: e.codec, hash, size: plain.length, sid, base }), plain)
  assert.throws(() => decodeChunk({ data: e.data, codec: e.codec, hash, size: plain.length, sid }), ChunkDecodeError)
})

test('codec - a base that starts like a formatted zstd dictionary is not used for a delta', () => {
  const base = Buffer.concat([Buffer.of(0x37, 0xa4, 0x30, 0xec), Buffer.from(randomBytes(30000).toString('base64'))])
  const plain = Buffer.concat([base.subarray(0, 9000), Buffer.from('an edit'), base.subarray(9100)])
  const hash = sha256(plain)
  const sid = storeId(hash, undefined)
  const e = encodeChunk(plain, sid, { level: 3, base })
  assert.equal(e.codec, CODEC_ZSTD)
  assert.deepEqual(decodeChunk({ data: e.data, codec: e.codec, hash, size: plain.length, sid }), plain)
})

test('codec - ChunkEncoder writes chunks back to back into one buffer, delta, zstd and raw', () => {
  const enc = new ChunkEncoder()
  const base = Buffer.from(randomBytes(30000).toString('base64'))
  const chunks = [Buffer.concat([base.subarray(0, 9000), Buffer.from('an edit'), base.subarray(9100)]), text, randomBytes(5000)]
  const out = Buffer.alloc(chunks.reduce((n, c) => n + encodeBound(c.length), 0))
  let at = 0
  const got = chunks.map((plain, i) => {
    const sid = storeId(sha256(plain), undefined)
    const r = enc.encodeInto(plain, sid, { level: 3, ...(i === 0 ? { base } : {}) }, out, at)
    at += r.length
    return { ...r, at: at - r.length, sid, plain }
  })
  assert.deepEqual(got.map((g) => g.codec), [CODEC_ZSTD_DELTA, CODEC_ZSTD, CODEC_RAW])
  for (const g of got) {
    const data = out.subarray(g.at, g.at + g.length)
    assert.deepEqual(decodeChunk({ data, codec: g.codec, size: g.plain.length, sid: g.sid, ...(g.codec === CODEC_ZSTD_DELTA ? { base } : {}) }), g.plain)
  }
})

test('codec - encrypted chunks: keyed ids, authenticated, and every flipped bit is caught', () => {
  const key = randomBytes(32)
  const hash = sha256(text)
  const sid = storeId(hash, key)
  assert.notEqual(sid, hash.toString('hex'))
  const e = encodeChunk(text, sid, { level: 3, key })
  assert.ok(!e.data.includes(Buffer.from('quick brown')))
  assert.deepEqual(decodeChunk({ data: e.data, codec: e.codec, size: text.length, sid, key }), text)
  for (const bit of [0, 13 * 8 + 3, e.data.length * 8 - 1]) {
    const bad = Buffer.from(e.data)
    bad[bit >> 3]! ^= 1 << (bit & 7)
    assert.throws(() => decodeChunk({ data: bad, codec: e.codec, hash, size: text.length, sid, key }), (err: unknown) => err instanceof ChunkDecodeError && err.reason === 'decrypt')
  }
  const other = randomBytes(32)
  assert.throws(() => decodeChunk({ data: e.data, codec: e.codec, size: text.length, sid, key: other }), ChunkDecodeError)
})

test('codec - tampered, truncated and oversized frames are refused, never returned', () => {
  const hash = sha256(text)
  const sid = storeId(hash, undefined)
  const e = encodeChunk(text, sid, { level: 3 })
  const flipped = Buffer.from(e.data)
  flipped[Math.floor(flipped.length / 2)]! ^= 0x10
  assert.throws(() => decodeChunk({ data: flipped, codec: e.codec, hash, size: text.length, sid }), ChunkDecodeError)
  assert.throws(() => decodeChunk({ data: e.data.subarray(0, e.data.length - 3), codec: e.codec, hash, size: text.length, sid }), ChunkDecodeError)
  // A frame that declares far more than the recorded size (a decompression bomb) is refused before inflating.
  const bomb = compress(Buffer.alloc(50 * 1024 * 1024))
  assert.equal(zstdFrameContentSize(bomb), 50 * 1024 * 1024)
  assert.throws(() => decodeChunk({ data: bomb, codec: CODEC_ZSTD, hash, size: text.length, sid }), /declares/)
  const raw = randomBytes(100)
  assert.throws(() => decodeChunk({ data: raw, codec: CODEC_RAW, hash: sha256(raw), size: 99, sid }), /size/)
  assert.throws(() => decodeChunk({ data: raw, codec: 9, hash: sha256(raw), size: 100, sid }), /codec/)
})

test('codec - a raw chunk read as a view of a larger buffer (a coalesced span) decodes into memory of its own', () => {
  const plain = randomBytes(20000)
  const span = Buffer.concat([randomBytes(5000), plain, randomBytes(7000)])
  const view = span.subarray(5000, 25000)
  const sid = storeId(sha256(plain), undefined)
  const out = decodeChunk({ data: view, codec: CODEC_RAW, size: plain.length, sid })
  assert.deepEqual(out, plain)
  assert.notEqual(out.buffer, span.buffer, 'the decoded chunk pins the whole span')
  // A buffer that is the chunk alone is handed over without a copy.
  const own = Buffer.from(plain)
  assert.equal(decodeChunk({ data: own, codec: CODEC_RAW, size: plain.length, sid }).buffer, own.buffer)
})
