// FlistReader's batched chunk listings: allChunks (one query for every row), chunks(ids) (one query per 500
// ids) and fileChunks(ino) (one file's, in extent order) answer exactly what chunk(id) answers one id at a time, for plain and encrypted flists.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { tempDir } from '../helpers/tmp.js'
import { arraySource } from '../helpers/array-source.js'
import { pack } from '../../src/flist/pack.js'
import { FlistReader } from '../../src/flist/reader.js'
import { openWritableStore } from '../../src/store/open.js'
import { ZosError } from '../../src/core/errors.js'

/** An flist of about 1,200 small chunks (more than one batch of ids), plain or encrypted. */
async function manyChunks(dir: string, name: string, encrypt: boolean): Promise<string> {
  const store = await openWritableStore(`dir://${join(dir, `store-${name}`)}`)
  try {
    const files = Array.from({ length: 12 }, (_, i) => ({ path: `f${i}`, content: randomBytes(100 * 1024) }))
    const r = await pack({
      source: arraySource([{ path: '' }, ...files]),
      output: join(dir, name),
      store,
      workers: 1,
      encrypt,
      chunker: { algorithm: 'fastcdc-gear32-v1', min: 256, avg: 1024, max: 4096 },
    })
    return r.output
  } finally {
    await store.close()
  }
}

for (const encrypt of [false, true]) {
  test(`reader - allChunks and chunks(ids) match chunk(id) row for row (${encrypt ? 'encrypted' : 'plain'})`, async (t) => {
    const dir = await tempDir(t)
    const reader = FlistReader.open(await manyChunks(dir, 'a.fl', encrypt))
    t.after(() => reader.close())
    const all = reader.allChunks()
    assert.ok(all.length > 1000, `only ${all.length} chunks`)
    const one = all.map((c) => reader.chunk(c.id))
    assert.deepEqual(all, one)
    // Pack order, as documented.
    for (let i = 1; i < all.length; i++) {
      const a = all[i - 1]!
      const b = all[i]!
      assert.ok(a.pack < b.pack || (a.pack === b.pack && a.offset < b.offset), `rows ${i - 1} and ${i} are out of pack order`)
    }
    if (encrypt) assert.ok(all.every((c) => c.sid !== c.hash.toString('hex')), 'encrypted flists have keyed store ids')
    const ids = all.map((c) => c.id).reverse()
    const byId = reader.chunks([...ids, ids[0]!]) // duplicates are answered once
    assert.equal(byId.size, all.length)
    for (const c of all) assert.deepEqual(byId.get(c.id), c)
    assert.equal(reader.chunks([]).size, 0)
    // A file's rows in extent order.
    for (const name of ['f0', 'f7']) {
      const ino = reader.lookup(1, name)!.ino
      assert.deepEqual(reader.fileChunks(ino), reader.extents(ino).map((e) => reader.chunk(e.chunk)))
    }
    assert.deepEqual(reader.fileChunks(1), [], 'a directory has none')
  })
}

test('reader - chunks(ids) names an id the flist does not have', async (t) => {
  const dir = await tempDir(t)
  const reader = FlistReader.open(await manyChunks(dir, 'b.fl', false))
  t.after(() => reader.close())
  const max = Math.max(...reader.allChunks().map((c) => c.id))
  assert.throws(
    () => reader.chunks([1, max + 1]),
    (err: unknown) => ZosError.is(err) && err.code === 'FLIST_CORRUPT' && err.message.includes(`chunk ${max + 1} is missing`),
  )
})
