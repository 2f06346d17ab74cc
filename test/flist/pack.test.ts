import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readFile, readdir, lstat, readlink, writeFile, copyFile, stat, truncate, mkdir, link } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import Database from 'better-sqlite3'
import { tempDir, isRoot } from '../helpers/tmp.js'
import { arraySource, type Spec } from '../helpers/array-source.js'
import { pack } from '../../src/flist/pack.js'
import { Chunker } from '../../src/flist/chunker.js'
import { openDir } from '../../src/flist/source/dir.js'
import { FlistReader } from '../../src/flist/reader.js'
import { ChunkFetcher } from '../../src/flist/fetch.js'
import { unpack } from '../../src/flist/unpack.js'
import { verify } from '../../src/flist/verify.js'
import { diff } from '../../src/flist/diff.js'
import { openWritableStore, openStore } from '../../src/store/open.js'
import { generateKey, parseTrust } from '../../src/core/keys.js'
import { computeRoot } from '../../src/flist/root.js'
import { formatPrefetchList, parsePrefetchList } from '../../src/flist/prefetch.js'
import { ZosError } from '../../src/core/errors.js'

const text = (n: number, seed: string): Buffer => {
  // Identifiers from a seeded generator: compressible like source code, never periodic, and not so
  // repetitive that zstd's fast match finders lose the long matches a delta needs.
  const pick = randomBytesSeeded(n, seed.length + 11)
  const out: string[] = []
  let length = 0
  for (let i = 0; length < n && i + 2 < pick.length; i += 2) {
    const word = `${seed}_${pick.readUInt16BE(i) % 5000}`
    out.push(word)
    length += word.length + 1
  }
  return Buffer.from(out.join(' ').slice(0, n))
}

function tree(version: number): Spec[] {
  const big = text(3_000_000, 'v1')
  const edited = Buffer.concat([big.subarray(0, 1_500_000), Buffer.from(`edit number ${version}`), big.subarray(1_500_000)])
  return [
    { path: '', mode: 0o755, mtimeNs: 1_600_000_000_000_000_001n },
    { path: 'bin' },
    { path: 'bin/tool', content: randomBytesSeeded(400_000, 1), mode: 0o4755 },
    { path: 'etc/config.json', content: Buffer.from(`{"version": ${version}}`), uid: 1000, gid: 100 },
    { path: 'etc/empty', content: Buffer.alloc(0) },
    { path: 'lib/big.txt', content: version === 1 ? big : edited, xattrs: { 'user.origin': Buffer.from('test') } },
    { path: 'lib/big-again.txt', kind: 'hardlink', target: 'lib/big.txt' },
    { path: 'lib/link', kind: 'symlink', target: '../bin/tool' },
    { path: 'lib/abs', kind: 'symlink', target: '/etc/passwd' },
    { path: 'run/fifo', kind: 'fifo', mode: 0o600 },
    { path: 'tmp', mode: 0o1777 },
  ]
}

/** The root of tree(1), format version 1 (computed by the first implementation of §5). */
const GOLDEN_ROOT = 'ccde9656e85363ab766b49414b18243b859ac14a06d82ef44412607231dc4320'
/** The root of tree(1), format version 3 (rows rendered by SQLite; its first implementation). */
const GOLDEN_ROOT_V3 = '9976d2bc06188bc6c7e6b697703938d79cfc0f3110c206ba99c7e787e01d0957'

function randomBytesSeeded(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (x * 1664525 + 1013904223) >>> 0
    b[i] = x >>> 24
  }
  return b
}

/** A copy of flist `src` at `dst` with `sql` applied, and re-sealed (with its format's root) when `reseal`. */
async function editCopy(src: string, dst: string, sql: string, reseal = false): Promise<void> {
  await copyFile(src, dst)
  const db = new Database(dst)
  db.exec(sql)
  if (reseal) db.prepare('UPDATE seal SET root = ?').run(computeRoot(db, Number(db.prepare("SELECT value FROM meta WHERE key = 'version'").pluck().get())))
  db.close()
}

async function packTree(dir: string, specs: Spec[], name: string, extra: Partial<Parameters<typeof pack>[0]> = {}) {
  const store = await openWritableStore(`dir://${join(dir, 'store')}`)
  try {
    return await pack({ source: arraySource(specs), output: join(dir, name), store, workers: 2, ...extra })
  } finally {
    await store.close()
  }
}

test('pack - a tree round-trips through pack, read and unpack', async (t) => {
  const dir = await tempDir(t)
  const r = await packTree(dir, tree(1), 'v1.fl')
  assert.equal(r.files, 4)
  assert.equal(r.hardlinks, 1)
  assert.equal(r.symlinks, 2)
  assert.match(r.root, /^[0-9a-f]{64}$/)
  const reader = FlistReader.open(join(dir, 'v1.fl'))
  t.after(() => reader.close())
  assert.equal(reader.root.toString('hex'), r.root)
  const big = reader.resolve('lib/big.txt')
  assert.equal(reader.resolve('lib/big-again.txt').ino, big.ino)
  assert.equal(big.nlink, 2)
  assert.equal(reader.resolve('bin/tool').mode & 0o7777, 0o4755)
  assert.equal(reader.resolve('').mtime, 1_600_000_000_000_000_001n)
  assert.equal(reader.resolve('etc').type, 'dir') // created implicitly
  assert.deepEqual(reader.xattrs(big.ino).get('user.origin'), Buffer.from('test'))
  const store = await openStore(`dir://${join(dir, 'store')}`)
  t.after(() => store.close())
  const fetcher = new ChunkFetcher(reader, store)
  assert.deepEqual(await fetcher.readFile(big.ino, 0, big.size), tree(1)[5]!.content)
  assert.deepEqual(await fetcher.readFile(big.ino, 1_000_000, 10), tree(1)[5]!.content!.subarray(1_000_000, 1_000_010))

  const out = join(dir, 'out')
  const u = await unpack(reader, store, out)
  assert.equal(u.files, 4)
  assert.deepEqual(await readFile(join(out, 'lib/big.txt')), tree(1)[5]!.content)
  assert.deepEqual(await readFile(join(out, 'bin/tool')), tree(1)[2]!.content)
  assert.equal((await stat(join(out, 'lib/big.txt'))).ino, (await stat(join(out, 'lib/big-again.txt'))).ino)
  assert.equal(await readlink(join(out, 'lib/abs')), '/etc/passwd')
  assert.ok((await lstat(join(out, 'run/fifo'))).isFIFO())
  assert.equal((await stat(join(out, 'tmp'))).mode & 0o7777, 0o1777)
  assert.equal((await stat(join(out, 'bin/tool'))).mode & 0o7777, 0o4755)
  if (isRoot) assert.equal((await stat(join(out, 'etc/config.json'))).uid, 1000)
  assert.equal((await stat(join(out, 'lib/big.txt'), { bigint: true })).mtimeNs / 1000n, 1_700_000_000_123_456n)
  // The target must be new or empty.
  await assert.rejects(unpack(reader, store, out), (e: unknown) => ZosError.is(e) && e.code === 'EXISTS')
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('unpack-')), [])
})

test('pack - a second version stores only its new bytes, as deltas, and verifies', async (t) => {
  const dir = await tempDir(t)
  const v1 = await packTree(dir, tree(1), 'v1.fl')
  const v2 = await packTree(dir, tree(2), 'v2.fl')
  assert.ok(v1.storedBytes > 100_000)
  assert.ok(v2.storedBytes < 2_000, `second version stored ${JSON.stringify(v2)} bytes`)
  assert.ok(v2.deltaChunks >= 1)
  const store = await openStore(`dir://${join(dir, 'store')}`)
  t.after(() => store.close())
  const r2 = FlistReader.open(join(dir, 'v2.fl'))
  t.after(() => r2.close())
  const res = await verify(r2, store)
  assert.equal(res.ok, true)
  assert.equal(res.problems.length, 0)
  const fetcher = new ChunkFetcher(r2, store)
  const big = r2.resolve('lib/big.txt')
  assert.deepEqual(await fetcher.readFile(big.ino, 0, big.size), tree(2)[5]!.content)
  const r1 = FlistReader.open(join(dir, 'v1.fl'))
  t.after(() => r1.close())
  const d = diff(r1, r2)
  assert.deepEqual(d.changes.map((c) => c.path).sort(), ['etc/config.json', 'lib/big-again.txt', 'lib/big.txt'])
  assert.ok(d.newBytes < 200_000)
})

test('pack - signatures: trusted, untrusted, and altered after signing', async (t) => {
  const dir = await tempDir(t)
  const key = generateKey()
  const other = generateKey()
  await packTree(dir, tree(1), 'signed.fl', { signers: [key] })
  const ok = FlistReader.open(join(dir, 'signed.fl'), { trust: [await parseTrust(key.address)] })
  assert.equal(ok.signers[0]!.valid, true)
  ok.close()
  const otherTrust = await parseTrust(other.address)
  assert.throws(() => FlistReader.open(join(dir, 'signed.fl'), { trust: [otherTrust] }), (e: unknown) => ZosError.is(e) && e.code === 'UNTRUSTED_SIGNER')
  // An attacker edits a mode and re-seals, but cannot re-sign.
  const forged = join(dir, 'forged.fl')
  await editCopy(join(dir, 'signed.fl'), forged, 'UPDATE inode SET mode = mode | 2048 WHERE ino = 2', true)
  assert.throws(() => FlistReader.open(forged, { trust: [{ describe: key.address, matches: (pk: Uint8Array) => Buffer.from(pk).equals(key.publicKey) }] }), (e: unknown) => ZosError.is(e) && e.code === 'SIGNATURE_INVALID')
  // Without re-sealing, the change is caught as corruption even for readers that trust no one.
  const edited = join(dir, 'edited.fl')
  await editCopy(join(dir, 'signed.fl'), edited, 'UPDATE inode SET uid = 7 WHERE ino = 2')
  assert.throws(() => FlistReader.open(edited), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT' && /root hash/.test(e.message))
})

test('pack - a fresh process checks signatures with the reader alone (verification code only, no signing code)', async (t) => {
  const dir = await tempDir(t)
  const key = generateKey()
  await packTree(dir, tree(1), 'signed.fl', { signers: [key] })
  await packTree(dir, tree(1), 'unsigned.fl')
  const reader = new URL('../../src/flist/reader.js', import.meta.url).href
  const script = `
    const { FlistReader } = await import(${JSON.stringify(reader)})
    const u = FlistReader.open(${JSON.stringify(join(dir, 'unsigned.fl'))})
    const s = FlistReader.open(${JSON.stringify(join(dir, 'signed.fl'))})
    process.stdout.write(JSON.stringify({ unsigned: u.signers.length, signers: s.signers.map((x) => ({ address: x.address, valid: x.valid })) }))`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), { unsigned: 0, signers: [{ address: key.address, valid: true }] })
  assert.doesNotMatch(r.stderr, /Warning/)
})

test('pack - corrupted, truncated and foreign metadata files are refused clearly', async (t) => {
  const dir = await tempDir(t)
  await packTree(dir, tree(1), 'ok.fl')
  const bytes = await readFile(join(dir, 'ok.fl'))
  const truncated = join(dir, 'truncated.fl')
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)))
  assert.throws(() => FlistReader.open(truncated), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT')
  const flipped = join(dir, 'flipped.fl')
  const copy = Buffer.from(bytes)
  const at = copy.indexOf(Buffer.from('config.json'))
  assert.ok(at > 0)
  copy[at]! ^= 0x01 // 'c' → 'b': a valid file, a different name
  await writeFile(flipped, copy)
  assert.throws(() => FlistReader.open(flipped), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT', 'a flipped bit in a name')
  const junk = join(dir, 'junk.fl')
  await writeFile(junk, randomBytes(8192))
  assert.throws(() => FlistReader.open(junk), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT')
  const other = join(dir, 'other.db')
  const db = new Database(other)
  db.exec('CREATE TABLE inode (ino INTEGER); CREATE TABLE block (id BLOB); CREATE TABLE route (url TEXT); INSERT INTO inode VALUES (1)')
  db.close()
  assert.throws(() => FlistReader.open(other), (e: unknown) => ZosError.is(e) && e.code === 'UNSUPPORTED' && /rfs/.test(e.message))
  assert.throws(() => FlistReader.open(join(dir, 'nope.fl')), (e: unknown) => ZosError.is(e) && e.code === 'NOT_FOUND')
})

test('pack - a tampered or missing pack is found by verify and never served', async (t) => {
  const dir = await tempDir(t)
  await packTree(dir, tree(1), 'v1.fl')
  const reader = FlistReader.open(join(dir, 'v1.fl'))
  t.after(() => reader.close())
  const big = reader.chunk(reader.extents(reader.resolve('lib/big.txt').ino)[3]!.chunk)
  const packPath = join(dir, 'store', 'packs', big.pack.slice(0, 2), `${big.pack}.pack`)
  const data = await readFile(packPath)
  data[big.offset + Math.floor(big.length / 2)]! ^= 0x01
  await writeFile(packPath, data)
  const store = await openStore(`dir://${join(dir, 'store')}`)
  t.after(() => store.close())
  const res = await verify(reader, store)
  assert.equal(res.ok, false)
  const bad = res.problems.find((p) => p.sid === big.sid)
  assert.ok(bad, 'the flipped chunk is reported')
  assert.equal(bad.code, 'CHUNK_TAMPERED')
  assert.ok(bad.file === 'lib/big.txt' || bad.file === 'lib/big-again.txt', `reported file ${bad.file}`)
  const fetcher = new ChunkFetcher(reader, store)
  await assert.rejects(fetcher.fetch([big.id]), (e: unknown) => ZosError.is(e) && e.code === 'CHUNK_TAMPERED' && e.message.includes(big.sid))
  // A failed unpack leaves nothing at the target.
  await assert.rejects(unpack(reader, store, join(dir, 'out')), (e: unknown) => ZosError.is(e) && e.code === 'CHUNK_TAMPERED')
  await assert.rejects(stat(join(dir, 'out')))
  await truncate(packPath, 10)
  await assert.rejects(fetcher.fetch([big.id]), (e: unknown) => ZosError.is(e) && e.code === 'CHUNK_MISSING')
})

test('pack - a tampered delta base fails the pack with CHUNK_TAMPERED (checked in the worker)', async (t) => {
  const dir = await tempDir(t)
  await packTree(dir, tree(1), 'v1.fl')
  // Flip one byte in every chunk of lib/big.txt: whichever old chunk becomes the delta base no longer decodes.
  const reader = FlistReader.open(join(dir, 'v1.fl'))
  for (const e of reader.extents(reader.resolve('lib/big.txt').ino)) {
    const c = reader.chunk(e.chunk)
    const packPath = join(dir, 'store', 'packs', c.pack.slice(0, 2), `${c.pack}.pack`)
    const data = await readFile(packPath)
    data[c.offset + Math.floor(c.length / 2)]! ^= 0x01
    await writeFile(packPath, data)
  }
  reader.close()
  await assert.rejects(packTree(dir, tree(2), 'v2.fl'), (e: unknown) => ZosError.is(e) && e.code === 'CHUNK_TAMPERED' && /delta base/.test(e.message))
  await assert.rejects(stat(join(dir, 'v2.fl')))
})

test('pack - encrypted flists keep plaintext and plaintext ids out of the store', async (t) => {
  const dir = await tempDir(t)
  const specs: Spec[] = [{ path: 'secret.txt', content: text(500_000, 'classified') }]
  const r = await packTree(dir, specs, 'enc.fl', { encrypt: true })
  const reader = FlistReader.open(join(dir, 'enc.fl'))
  t.after(() => reader.close())
  assert.equal(reader.summary().encryption, 'aes-256-gcm')
  const chunk = reader.chunk(reader.extents(reader.resolve('secret.txt').ino)[0]!.chunk)
  assert.notEqual(chunk.sid, chunk.hash.toString('hex'))
  const packs = join(dir, 'store', 'packs')
  for (const sub of await readdir(packs)) {
    for (const f of await readdir(join(packs, sub))) {
      const body = await readFile(join(packs, sub, f))
      assert.ok(!body.includes(Buffer.from('classified')), 'plaintext leaked into a pack')
    }
  }
  const idx = new Database(join(dir, 'store', 'index.db'), { readonly: true })
  const sids = (idx.prepare('SELECT sid FROM chunks').all() as { sid: string }[]).map((x) => x.sid)
  idx.close()
  assert.ok(!sids.includes(chunk.hash.toString('hex')))
  const store = await openStore(`dir://${join(dir, 'store')}`)
  t.after(() => store.close())
  assert.deepEqual(await new ChunkFetcher(reader, store).readFile(reader.resolve('secret.txt').ino, 0, 500_000), specs[0]!.content)
  assert.ok(r.storedBytes > 0)
})

test('pack - bad entries are refused and no flist is left behind', async (t) => {
  const dir = await tempDir(t)
  const cases: [Spec[], string][] = [
    [[{ path: 'a', content: Buffer.from('x') }, { path: 'a/b', content: Buffer.from('y') }], 'BAD_ARCHIVE'],
    [[{ path: 'x', kind: 'hardlink', target: 'missing' }], 'BAD_ARCHIVE'],
    [[{ path: 'bad\uFFFDname', content: Buffer.from('x') }], 'BAD_NAME'],
    [[{ path: 'a', content: Buffer.from('x') }, { path: 'a', content: Buffer.from('y') }], 'BAD_ARCHIVE'],
  ]
  for (const [specs, code] of cases) {
    await assert.rejects(packTree(dir, specs, 'bad.fl'), (e: unknown) => ZosError.is(e) && e.code === code, code)
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.fl') || n.includes('partial')), [])
  }
})

test('pack - the flist goes into place only once its packs are stored: a pack that fails leaves no flist', async (t) => {
  const dir = await tempDir(t)
  const store = await openWritableStore(`dir://${join(dir, 'store')}`)
  t.after(() => store.close())
  let calls = 0
  // The store refuses the last pack, after the flist could have been sealed (the writes are slow).
  const failing = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'putPack') return Reflect.get(target, prop, receiver)
      return async (...args: Parameters<typeof store.putPack>) => {
        const n = ++calls
        await new Promise((resolve) => setTimeout(resolve, 50))
        if (n >= 2) throw new ZosError('STORE_UNAVAILABLE', 'disk full (test)')
        return target.putPack(...args)
      }
    },
  })
  const specs: Spec[] = [{ path: '' }, { path: 'a', content: text(6_000_000, 'a') }, { path: 'b', content: randomBytesSeeded(3_000_000, 9) }]
  await assert.rejects(pack({ source: arraySource(specs), output: join(dir, 'out.fl'), store: failing, workers: 2 }), (e: unknown) => ZosError.is(e) && e.code === 'STORE_UNAVAILABLE')
  assert.ok(calls >= 2, 'more than one pack was written')
  assert.deepEqual((await readdir(dir)).filter((n) => n !== 'store'), [], 'no flist, sealed or not, is left')
})

test('pack - the root of a fixed tree is the one docs/flist-format.md §5 defines, release after release', async (t) => {
  // A changed value here means every flist packed before has a different root and its signatures no longer
  // verify: a format change, which needs a new format version, not an updated constant.
  const dir = await tempDir(t)
  assert.equal((await packTree(dir, tree(1), 'golden-v1.fl', { formatVersion: 1 })).root, GOLDEN_ROOT)
  assert.equal((await packTree(dir, tree(1), 'golden.fl')).root, GOLDEN_ROOT_V3)
  // Files written before version 3 keep verifying.
  const v1 = FlistReader.open(join(dir, 'golden-v1.fl'))
  t.after(() => v1.close())
  assert.equal(v1.version, 1)
})

test('pack - the root is a content identity: same tree, other store, same root', async (t) => {
  const a = await tempDir(t)
  const b = await tempDir(t)
  const r1 = await packTree(a, tree(1), 'x.fl')
  await packTree(b, tree(2), 'warm.fl') // b's store already holds other chunks and path hints
  const r2 = await packTree(b, tree(1), 'x.fl', { workers: 1 })
  assert.equal(r2.root, r1.root)
  const r3 = await packTree(b, tree(2), 'y.fl')
  assert.notEqual(r3.root, r1.root)
})

test('pack - new flists are version 3 with a prefetch list of byte ranges; a version 1 writer keeps whole files unless given ranges', async (t) => {
  const dir = await tempDir(t)
  const list = parsePrefetchList('# traced\n1000+5000 /lib/big.txt\n/bin/tool\n/etc/empty\n/lib\n0+10 /lib/big.txt\n')
  assert.deepEqual(list[0], { path: '/lib/big.txt', range: { offset: 1000, length: 5000 } })
  assert.deepEqual(parsePrefetchList(formatPrefetchList(list)), list)
  const open = (name: string): FlistReader => {
    const reader = FlistReader.open(join(dir, name))
    t.after(() => reader.close())
    return reader
  }
  await packTree(dir, tree(1), 'ranges.fl', { prefetch: list })
  const reader = open('ranges.fl')
  assert.equal(reader.version, 3)
  const big = reader.resolve('lib/big.txt').ino
  const tool = reader.resolve('bin/tool')
  // The whole file becomes 0..size; the empty file and the directory have nothing to fetch and are left out.
  assert.deepEqual(reader.prefetch(), [
    { ino: big, offset: 1000, length: 5000 },
    { ino: tool.ino, offset: 0, length: tool.size },
    { ino: big, offset: 0, length: 10 },
  ])
  const db = new Database(join(dir, 'ranges.fl'), { readonly: true })
  assert.equal(db.pragma('user_version', { simple: true }), 3)
  db.close()
  const wholeFiles = [{ ino: tool.ino, offset: 0, length: tool.size }, { ino: big, offset: 0, length: 3_000_000 }]
  await packTree(dir, tree(1), 'files.fl', { prefetch: ['/bin/tool', 'lib/big.txt'] })
  assert.equal(open('files.fl').version, 3)
  assert.deepEqual(open('files.fl').prefetch(), wholeFiles)

  await packTree(dir, tree(1), 'ranges-v2.fl', { prefetch: list, formatVersion: 1 })
  assert.equal(open('ranges-v2.fl').version, 2)
  assert.deepEqual(open('ranges-v2.fl').prefetch(), reader.prefetch())
  await packTree(dir, tree(1), 'files-v1.fl', { prefetch: ['/bin/tool', 'lib/big.txt'], formatVersion: 1 })
  assert.equal(open('files-v1.fl').version, 1)
  assert.deepEqual(open('files-v1.fl').prefetch(), wholeFiles)
})

test('pack - a prefetch range outside its file is refused, at pack and in a re-sealed flist', async (t) => {
  const dir = await tempDir(t)
  for (const [line, why] of [['2999999+2 /lib/big.txt', /not inside the file/], ['0+1 /lib', /not a regular file/], ['0+1 /nope', /not in the tree/]] as const) {
    await assert.rejects(packTree(dir, tree(1), 'bad.fl', { prefetch: parsePrefetchList(line) }), (e: unknown) => ZosError.is(e) && e.code === 'INVALID_ARGUMENT' && why.test(e.message))
  }
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('bad.fl')), [], 'nothing written')
  assert.throws(() => parsePrefetchList('5+0 /lib/big.txt'), (e: unknown) => ZosError.is(e) && e.code === 'INVALID_ARGUMENT' && /line 1/.test(e.message))
  await packTree(dir, tree(1), 'ranges.fl', { prefetch: parsePrefetchList('0+10 /lib/big.txt') })
  const forged = join(dir, 'forged.fl')
  await editCopy(join(dir, 'ranges.fl'), forged, 'UPDATE prefetch SET length = 3000001', true)
  assert.throws(() => FlistReader.open(forged), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT' && /prefetch range/.test(e.message))
})

test('pack - chunk rows with an unknown codec, an impossible size or a malformed pack name are refused', async (t) => {
  const dir = await tempDir(t)
  await packTree(dir, tree(1), 'good.fl')
  // Where a chunk is stored is outside the root hash (docs/flist-format.md §5): these edits keep the seal valid.
  const cases: [string, RegExp][] = [
    ['UPDATE chunk SET codec = 7 WHERE id = 1', /unknown codec 7/],
    ['UPDATE chunk SET length = 0 WHERE id = 1', /impossible size or offset/],
    ['UPDATE chunk SET offset = -1 WHERE id = 1', /impossible size or offset/],
    ["UPDATE chunk SET pack = upper(pack) WHERE id = 1", /malformed id or pack name/],
    ["UPDATE chunk SET pack = substr(pack, 2) WHERE id = 1", /malformed id or pack name/],
    ["UPDATE chunk SET pack = 'g' || substr(pack, 2) WHERE id = 1", /malformed id or pack name/],
    ["UPDATE chunk SET pack = substr(pack, 1, 63) || ' ' WHERE id = 1", /malformed id or pack name/],
  ]
  for (const [sql, why] of cases) {
    const file = join(dir, 'edited.fl')
    await editCopy(join(dir, 'good.fl'), file, sql)
    assert.throws(() => FlistReader.open(file), (e: unknown) => ZosError.is(e) && e.code === 'FLIST_CORRUPT' && why.test(e.message), sql)
  }
  FlistReader.open(join(dir, 'good.fl')).close()
})

test('pack - a directory: large files go segment by segment on both workers, xattrs arrive after the walk, the root does not depend on either', async (t) => {
  const dir = await tempDir(t)
  const src = join(dir, 'src')
  // Two files of several 4 MiB segments (both chunked while the other's segments encode), small ones around them.
  const large = text(13 * 1024 * 1024 + 12345, 'large')
  const second = randomBytesSeeded(9 * 1024 * 1024 + 7, 3)
  await mkdir(join(src, 'a', 'deep'), { recursive: true })
  await writeFile(join(src, 'a', 'large.txt'), large)
  await writeFile(join(src, 'a', 'deep', 'second.bin'), second)
  for (let i = 0; i < 40; i++) await writeFile(join(src, 'a', `small-${i}`), text(100 + i * 997, `s${i}`))
  await link(join(src, 'a', 'small-3'), join(src, 'a', 'small-3-link'))
  const setfattr = (name: string, value: string, path: string): void => {
    const r = spawnSync('setfattr', ['-n', name, '-v', value, path], { encoding: 'utf8' })
    assert.equal(r.status, 0, `setfattr (Debian package attr): ${r.stderr}`)
  }
  setfattr('user.origin', 'large', join(src, 'a', 'large.txt'))
  setfattr('user.origin', 'small', join(src, 'a', 'small-3')) // and, through the hard link, small-3-link
  setfattr('user.dir', 'yes', join(src, 'a', 'deep'))

  // What the root covers of the content (reading a file moves its atime, so whole roots differ between packs).
  const content = (file: string): unknown => {
    const db = new Database(file, { readonly: true })
    try {
      const q = (sql: string): unknown[] => db.prepare(sql).raw(true).all()
      return [
        q('SELECT e.ino, e.offset, hex(c.hash), c.size FROM extent e JOIN chunk c ON c.id = e.chunk ORDER BY e.ino, e.offset'),
        q('SELECT ino, name, hex(value) FROM xattr ORDER BY ino, name'),
        q('SELECT parent, name, ino FROM dirent ORDER BY parent, name'),
      ]
    } finally {
      db.close()
    }
  }
  for (const workers of [2, 1]) {
    const store = await openWritableStore(`dir://${join(dir, `store-${workers}`)}`)
    try {
      await pack({ source: await openDir(src), output: join(dir, `${workers}.fl`), store, workers })
    } finally {
      await store.close()
    }
  }
  assert.deepEqual(content(join(dir, '2.fl')), content(join(dir, '1.fl')), 'two workers (segments pipelined, large files first) and one give the same tree')

  const reader = FlistReader.open(join(dir, '2.fl'))
  t.after(() => reader.close())
  const store = await openStore(`dir://${join(dir, 'store-2')}`)
  t.after(() => store.close())
  const fetcher = new ChunkFetcher(reader, store)
  for (const [path, content] of [['a/large.txt', large], ['a/deep/second.bin', second]] as const) {
    const ino = reader.resolve(path)
    assert.deepEqual(await fetcher.readFile(ino.ino, 0, ino.size), content, `${path} reads back`)
    // Cut where one pass of the chunker over the whole file cuts: the carry between segments is kept exactly.
    const expected = new Chunker().split(content, content.length, true).lengths
    assert.deepEqual(reader.fileChunks(ino.ino).map((c) => c.size), expected, `${path} is cut as a whole`)
  }
  assert.deepEqual(reader.xattrs(reader.resolve('a/large.txt').ino).get('user.origin'), Buffer.from('large'))
  assert.deepEqual(reader.xattrs(reader.resolve('a/small-3-link').ino).get('user.origin'), Buffer.from('small'))
  assert.deepEqual(reader.xattrs(reader.resolve('a/deep').ino).get('user.dir'), Buffer.from('yes'))
  assert.equal(reader.xattrs(reader.resolve('a/small-4').ino).size, 0)
})
