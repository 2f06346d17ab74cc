// PushableFlist: what a push reads of a metadata file (packs with chunk counts, then the rows of chosen packs or
// ids) matches the full listing of FlistReader, plain and encrypted; other files are FLIST_CORRUPT.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FlistReader } from '../../src/flist/reader.js'
import { PushableFlist } from '../../src/hub/chunks.js'
import { tempDir } from '../helpers/tmp.js'
import { bytes, newKey, packTree, tree } from './helpers.js'

for (const encrypt of [false, true]) {
  test(`chunks - a pushable flist lists packs, the chunks of chosen packs and chosen ids like FlistReader (${encrypt ? 'encrypted' : 'plain'})`, async (t) => {
    const dir = await tempDir(t)
    const packed = await packTree(t, dir, 'v1', tree(1, { extra: bytes(9, 400_000) }), { signers: [newKey()], encrypt })
    const reader = FlistReader.open(packed.file)
    t.after(() => reader.close())
    const all = reader.allChunks()
    const flist = PushableFlist.open(packed.file)
    t.after(() => flist.close())
    assert.equal(flist.encrypted, encrypt)
    assert.deepEqual(flist.allChunks(), all)
    const counts = new Map<string, number>()
    for (const c of all) counts.set(c.pack, (counts.get(c.pack) ?? 0) + 1)
    assert.deepEqual(flist.packs(), counts)
    const some = [...counts.keys()].slice(0, Math.max(1, counts.size - 1))
    assert.deepEqual(flist.chunksIn(some), all.filter((c) => some.includes(c.pack)))
    assert.deepEqual(flist.chunksIn([]), [])
    const ids = all.filter((_, i) => i % 3 === 0).map((c) => c.id)
    assert.deepEqual(
      flist.chunks([...ids, ids[0]!]).sort((a, b) => a.id - b.id),
      all.filter((c) => ids.includes(c.id)).sort((a, b) => a.id - b.id),
    )
  })
}

test('chunks - a file that is not a zos flist is FLIST_CORRUPT', async (t) => {
  const dir = await tempDir(t)
  const junk = join(dir, 'junk.fl')
  await writeFile(junk, Buffer.alloc(4096, 7))
  assert.throws(() => PushableFlist.open(junk), { code: 'FLIST_CORRUPT' })
  assert.throws(() => PushableFlist.open(join(dir, 'absent.fl')), { code: 'FLIST_CORRUPT' })
})
