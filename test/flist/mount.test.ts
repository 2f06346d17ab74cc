// flist mounts on real FUSE, real HTTP stores and runc. The filesystem is served by this process, so the test
// talks to the mount only through asynchronous calls and child processes.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { mkdir, writeFile, symlink, link, readFile, readdir, lstat, readlink, chmod, utimes, rm, copyFile, stat } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { tempDir, isRoot } from '../helpers/tmp.js'
import { sh, ok } from '../fuse/helpers.js'
import { pack } from '../../src/flist/pack.js'
import { openDir } from '../../src/flist/source/dir.js'
import { openStore, openWritableStore } from '../../src/store/open.js'
import { serveStore } from '../../src/store/serve.js'
import { mountFlist, type FlistMount } from '../../src/flist/mount.js'
import { DiskChunkCache } from '../../src/flist/cache.js'
import { mountOverlay, unmountRoot } from '../../src/flist/overlay.js'
import { FlistReader } from '../../src/flist/reader.js'
import { parsePrefetchList } from '../../src/flist/prefetch.js'
import type { Store } from '../../src/store/types.js'

const skip = !isRoot || !existsSync('/dev/fuse') ? 'needs root and /dev/fuse' : false

async function makeTree(dir: string, seed = 1): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true })
  await mkdir(join(dir, 'etc/conf.d'), { recursive: true })
  await mkdir(join(dir, 'data'), { recursive: true })
  await writeFile(join(dir, 'etc/hostname'), 'zos\n')
  await writeFile(join(dir, 'etc/conf.d/app.conf'), `seed=${seed}\n`.repeat(100))
  const text = Buffer.from(Array.from({ length: 60000 }, (_, i) => `line ${i} of the big text file ${i % 97}`).join('\n'))
  await writeFile(join(dir, 'data/big.txt'), text)
  await writeFile(join(dir, 'data/random.bin'), randomBytes(3 * 1024 * 1024))
  await writeFile(join(dir, 'data/empty'), '')
  await link(join(dir, 'data/big.txt'), join(dir, 'data/big-link.txt'))
  await symlink('../data/big.txt', join(dir, 'bin/rel-link'))
  await symlink('/etc/passwd', join(dir, 'bin/abs-link'))
  await writeFile(join(dir, 'bin/tool'), '#!/bin/sh\necho tool\n')
  await chmod(join(dir, 'bin/tool'), 0o4755)
  await chmod(join(dir, 'data'), 0o1777)
  await ok('mkfifo', [join(dir, 'data/fifo')])
  await ok('setfattr', ['-n', 'user.zos', '-v', 'hello', join(dir, 'etc/hostname')])
  await utimes(join(dir, 'etc/hostname'), new Date('2020-01-02T03:04:05.678Z'), new Date('2020-01-02T03:04:05.678Z'))
}

async function packDir(src: string, out: string, storeDir: string): Promise<string> {
  const store = await openWritableStore(storeDir)
  try {
    await pack({ source: await openDir(src), output: out, store, workers: 1 })
  } finally {
    await store.close()
  }
  return out
}

/** Everything `stat` shows that must survive the round trip, per path (async: the mount is ours). */
async function describe(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (rel: string): Promise<void> => {
    const p = rel ? join(root, rel) : root
    const st = await lstat(p, { bigint: true })
    let extra = ''
    if (st.isSymbolicLink()) extra = await readlink(p)
    else if (st.isFile()) extra = createHash('sha256').update(await readFile(p)).digest('hex')
    const times = st.isDirectory() ? '' : String(st.mtimeNs)
    out.set(rel, [st.mode.toString(8), st.uid, st.gid, st.isDirectory() ? '' : st.size, st.isDirectory() ? '' : st.nlink, times, extra].join(' '))
    if (st.isDirectory()) for (const name of (await readdir(p)).sort()) await walk(rel ? `${rel}/${name}` : name)
  }
  await walk('')
  return out
}

/** makeTree packed into a dir store in a temporary directory, with the store open and `mnt` made. */
async function packedTree(t: TestContext): Promise<{ dir: string; fl: string; store: Store }> {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'src'))
  const fl = await packDir(join(dir, 'src'), join(dir, 'tree.fl'), join(dir, 'store'))
  const store = await openStore(join(dir, 'store'))
  t.after(() => store.close())
  await mkdir(join(dir, 'mnt'))
  return { dir, fl, store }
}

async function withMount(t: { after(fn: () => Promise<void>): void }, m: FlistMount): Promise<FlistMount> {
  t.after(() => m.unmount())
  return m
}

test('mount - the tree read through the mount is the source, byte for byte and attribute for attribute', { skip }, async (t) => {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'src'))
  const fl = await packDir(join(dir, 'src'), join(dir, 'tree.fl'), join(dir, 'store'))
  await mkdir(join(dir, 'mnt'))
  const store = await openStore(join(dir, 'store'))
  t.after(() => store.close())
  const m = await withMount(t, await mountFlist(fl, join(dir, 'mnt'), { store }))
  const want = await describe(join(dir, 'src'))
  const got = await describe(join(dir, 'mnt'))
  assert.deepEqual([...got.keys()], [...want.keys()])
  for (const [k, v] of want) assert.equal(got.get(k), v, `attributes of /${k}`)
  const x = await ok('getfattr', ['--only-values', '-n', 'user.zos', join(dir, 'mnt/etc/hostname')])
  assert.equal(x, 'hello')
  // The usual tools behave.
  const found = (await ok('find', [join(dir, 'mnt'), '-type', 'f'])).trim().split('\n').length
  assert.equal(found, 7)
  assert.match(await ok('ls', ['-l', join(dir, 'mnt/bin')]), /abs-link -> \/etc\/passwd/)
  assert.match(await ok('stat', ['-c', '%A %h', join(dir, 'mnt/bin/tool')]), /-rwsr-xr-x 1/)
  const du = Number((await ok('du', ['-sk', join(dir, 'mnt/data')])).split('\t')[0])
  assert.ok(du >= 3 * 1024, `du says ${du} KiB`)
  assert.equal((await sh('sh', ['-c', `echo x > ${join(dir, 'mnt/etc/new')}`])).code !== 0, true, 'the mount is read-only')
  assert.ok(m.stats().fetchedBytes > 0)
})

test('mount - a container runs from the flist mount plus an overlay, under runc', { skip: skip || (!existsSync('/bin/busybox') && !existsSync('/usr/bin/busybox') ? 'needs busybox-static' : false) }, async (t) => {
  if ((await sh('sh', ['-c', 'command -v runc'])).code !== 0) return t.skip('needs runc (apt-get install runc)')
  const dir = await tempDir(t)
  const rootfs = join(dir, 'rootfs')
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) await mkdir(join(rootfs, d), { recursive: true })
  const busybox = existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox'
  await copyFile(busybox, join(rootfs, 'bin/busybox'))
  await chmod(join(rootfs, 'bin/busybox'), 0o755)
  for (const app of ['sh', 'cat', 'echo', 'ls']) await symlink('busybox', join(rootfs, 'bin', app))
  await writeFile(join(rootfs, 'etc/motd'), 'hello from an flist\n')
  const fl = await packDir(rootfs, join(dir, 'busybox.fl'), join(dir, 'store'))
  const store = await openStore(join(dir, 'store'))
  t.after(() => store.close())
  await mkdir(join(dir, 'lower'))
  await withMount(t, await mountFlist(fl, join(dir, 'lower'), { store }))
  const bundle = join(dir, 'bundle')
  await mountOverlay({ lower: join(dir, 'lower'), upper: join(dir, 'upper'), work: join(dir, 'work'), target: join(bundle, 'rootfs') })
  t.after(async () => {
    await sh('umount', [join(bundle, 'rootfs')])
  })
  await ok('runc', ['spec', '--bundle', bundle])
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[]; terminal: boolean }; root: { readonly: boolean } }
  spec.process.terminal = false
  spec.process.args = ['/bin/sh', '-c', 'cat /etc/motd && echo written > /tmp/out && ls /bin']
  spec.root.readonly = false
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec))
  const id = `zos-test-${process.pid}`
  t.after(async () => {
    await sh('runc', ['delete', '-f', id])
  })
  const r = await sh('runc', ['run', '--bundle', bundle, id], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /hello from an flist/)
  assert.match(r.stdout, /busybox/)
  // The container's write went to the overlay's upper dir; the flist is untouched.
  assert.equal(await readFile(join(dir, 'upper/tmp/out'), 'utf8'), 'written\n')
  await assert.rejects(stat(join(dir, 'lower/tmp/out')), /ENOENT/) // async: this process serves the mount
})

test('mount - a tampered chunk is EIO for that read, other files keep working', { skip }, async (t) => {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'src'))
  const fl = await packDir(join(dir, 'src'), join(dir, 'tree.fl'), join(dir, 'store'))
  const reader = FlistReader.open(fl)
  const chunk = reader.chunk(reader.extents(reader.resolve('data/random.bin').ino)[5]!.chunk)
  reader.close()
  const packPath = join(dir, 'store', 'packs', chunk.pack.slice(0, 2), `${chunk.pack}.pack`)
  const data = await readFile(packPath)
  data[chunk.offset + 10]! ^= 0x80
  await writeFile(packPath, data)
  await mkdir(join(dir, 'mnt'))
  const store = await openStore(join(dir, 'store'))
  t.after(() => store.close())
  const lines: string[] = []
  const logger = { warn: (o: Record<string, unknown>, m: string) => lines.push(`${m} ${JSON.stringify(o)}`), error: (o: Record<string, unknown>, m: string) => lines.push(`${m} ${JSON.stringify(o)}`) }
  const m = await withMount(t, await mountFlist(fl, join(dir, 'mnt'), { store, logger, prefetch: false }))
  const r = await sh('cat', [join(dir, 'mnt/data/random.bin')])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /Input\/output error/)
  assert.ok(lines.some((l) => l.includes(chunk.sid)), `a log line names the chunk: ${lines.join('\n')}`)
  assert.ok(m.stats().badChunks >= 1)
  assert.equal(await ok('cat', [join(dir, 'mnt/etc/hostname')]), 'zos\n')
})

test('mount - a modified or untrusted flist is refused while mounting: nothing is answered and nothing stays mounted', { skip }, async (t) => {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'src'))
  const fl = await packDir(join(dir, 'src'), join(dir, 'tree.fl'), join(dir, 'store'))
  const Database = (await import('better-sqlite3')).default
  const bad = join(dir, 'bad.fl')
  await copyFile(fl, bad)
  const db = new Database(bad)
  db.prepare("UPDATE dirent SET name = 'hostnamf' WHERE name = 'hostname'").run()
  db.close()
  await mkdir(join(dir, 'mnt'))
  const store = await openStore(join(dir, 'store'))
  t.after(() => store.close())
  const mounted = async (): Promise<boolean> => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === join(dir, 'mnt'))
  const calls: string[] = []
  const logger = { warn: (_o: Record<string, unknown>, m: string) => calls.push(m), error: (_o: Record<string, unknown>, m: string) => calls.push(m) }
  await assert.rejects(mountFlist(bad, join(dir, 'mnt'), { store, logger, prefetch: false }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FLIST_CORRUPT')
    assert.match(err.message, /root hash/)
    return true
  })
  assert.equal(await mounted(), false)
  const nobody = { describe: 'nobody', matches: () => false }
  await assert.rejects(mountFlist(fl, join(dir, 'mnt'), { store, logger, prefetch: false, trust: [nobody] }), { code: 'UNTRUSTED_SIGNER' })
  assert.equal(await mounted(), false)
  // The same mountpoint takes the good flist afterwards (no stale mount left behind).
  const m = await withMount(t, await mountFlist(fl, join(dir, 'mnt'), { store, logger, prefetch: false }))
  assert.equal(m.reader.verified, true)
  assert.equal(await ok('cat', [join(dir, 'mnt/etc/hostname')]), 'zos\n')
})

test('mount - a store that stops answering gives EIO within its timeout, not a hang', { skip }, async (t) => {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'src'))
  const fl = await packDir(join(dir, 'src'), join(dir, 'tree.fl'), join(dir, 'store'))
  const server = await serveStore({ root: join(dir, 'store') })
  let closed = false
  t.after(async () => {
    if (!closed) await server.close()
  })
  const store = await openStore(server.url, { http: { timeoutMs: 500, retries: 1, backoffMs: [50] } })
  t.after(() => store.close())
  await mkdir(join(dir, 'mnt'))
  await withMount(t, await mountFlist(fl, join(dir, 'mnt'), { store, prefetch: false, logger: { warn() {}, error() {} } }))
  assert.equal(await ok('cat', [join(dir, 'mnt/etc/hostname')]), 'zos\n')
  await server.close()
  closed = true
  const started = Date.now()
  const r = await sh('cat', [join(dir, 'mnt/data/big.txt')], { timeoutMs: 20_000 })
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /Input\/output error/)
  assert.ok(Date.now() - started < 10_000, `EIO after ${Date.now() - started} ms`)
})

test('mount - two flists sharing chunks fetch each shared chunk once; the cache stays under its bound', { skip }, async (t) => {
  const dir = await tempDir(t)
  await makeTree(join(dir, 'v1'), 1)
  await makeTree(join(dir, 'v2'), 2)
  const fl1 = await packDir(join(dir, 'v1'), join(dir, 'v1.fl'), join(dir, 'store'))
  const fl2 = await packDir(join(dir, 'v2'), join(dir, 'v2.fl'), join(dir, 'store'))
  const requests: string[] = []
  const server = await serveStore({ root: join(dir, 'store'), onRequest: (e) => requests.push(JSON.stringify(e)) })
  t.after(() => server.close())
  const store = await openStore(server.url)
  t.after(() => store.close())
  const cache = await DiskChunkCache.open(join(dir, 'cache'), 64 * 1024 * 1024)
  await mkdir(join(dir, 'm1'))
  await mkdir(join(dir, 'm2'))
  const m1 = await withMount(t, await mountFlist(fl1, join(dir, 'm1'), { store, cache, prefetch: false }))
  await ok('sh', ['-c', `cat $(find ${join(dir, 'm1')} -type f) > /dev/null`])
  const first = m1.stats().fetchedChunks
  // The first mount writes its chunks to the disk cache once its store has been quiet for a moment.
  for (let i = 0; i < 100 && cache.stats().entries < first; i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(cache.stats().entries, first)
  const m2 = await withMount(t, await mountFlist(fl2, join(dir, 'm2'), { store, cache, prefetch: false }))
  await ok('sh', ['-c', `cat $(find ${join(dir, 'm2')} -type f) > /dev/null`])
  const r1 = FlistReader.open(fl1)
  const r2 = FlistReader.open(fl2)
  const have = new Set(r1.allChunks().map((c) => c.sid))
  const onlyInV2 = r2.allChunks().filter((c) => !have.has(c.sid)).length
  r1.close()
  r2.close()
  assert.ok(first > 0)
  assert.equal(m2.stats().fetchedChunks, onlyInV2, 'the second mount fetched only the chunks the first did not have')
  assert.ok(m2.stats().cacheHits > 0)

  // A small cache keeps its bound while a whole tree streams through it.
  const small = await DiskChunkCache.open(join(dir, 'small-cache'), 1024 * 1024)
  await mkdir(join(dir, 'm3'))
  await withMount(t, await mountFlist(fl1, join(dir, 'm3'), { store, cache: small, prefetch: false }))
  await ok('sh', ['-c', `cat $(find ${join(dir, 'm3')} -type f) > /dev/null`])
  assert.ok(small.stats().bytes <= 1024 * 1024, `cache holds ${small.stats().bytes} bytes`)
  const sizes = (await ok('find', [join(dir, 'small-cache'), '-type', 'f', '-printf', '%s\n'])).trim().split('\n').filter(Boolean)
  const onDisk = sizes.reduce((n, x) => n + Number(x), 0)
  assert.ok(onDisk <= 1024 * 1024, `cache files hold ${onDisk} bytes`)
})

test('mount - a read that jumps into a large file fetches the content around it too, and reads there need no request', { skip }, async (t) => {
  const { dir, fl, store } = await packedTree(t)
  const file = join(dir, 'mnt/data/random.bin')
  const fetchedFor = async (neighbourBytes: number): Promise<{ fetched: number; nearbyRead: number }> => {
    const m = await withMount(t, await mountFlist(fl, join(dir, 'mnt'), { store, prefetch: false, neighbourBytes }))
    // 4 KiB at 2 MiB of the 3 MiB file, then (once the stores are written) 4 KiB at 1.25 MiB.
    await ok('dd', [`if=${file}`, 'of=/dev/null', 'bs=4096', 'skip=512', 'count=1', 'status=none'])
    await new Promise((r) => setTimeout(r, 300))
    const fetched = m.stats().fetchedPlainBytes
    const before = m.stats().readBytes
    await ok('dd', [`if=${file}`, 'of=/dev/null', 'bs=4096', 'skip=320', 'count=1', 'status=none'])
    const nearbyRead = m.stats().readBytes - before
    await m.unmount()
    return { fetched, nearbyRead }
  }
  const without = await fetchedFor(0)
  const around = await fetchedFor(1024 * 1024)
  assert.ok(without.nearbyRead > 0, 'without: the read 768 KiB before is a request')
  assert.ok(around.fetched >= without.fetched + 512 * 1024, `the MiB before the read was fetched too (${around.fetched} against ${without.fetched} bytes)`)
  assert.equal(around.nearbyRead, 0, 'with: the read 768 KiB before comes from the page cache')
})

test('mount - a trace of the ranges read becomes a prefetch list that the next mount fetches, and nothing else', { skip }, async (t) => {
  const { dir, fl, store } = await packedTree(t)
  const m = await mountFlist(fl, join(dir, 'mnt'), { store, prefetch: false, traceFile: join(dir, 'trace.txt') })
  await ok('cat', [join(dir, 'mnt/etc/hostname')])
  // 4 KiB in the middle of a 3 MiB file: the kernel reads ahead a little, the trace names those chunks only.
  await ok('dd', [`if=${join(dir, 'mnt/data/random.bin')}`, 'of=/dev/null', 'bs=4096', 'skip=512', 'count=1', 'status=none'])
  assert.equal(m.stats().pushedBytes, 0, 'while tracing nothing is stored into the page cache unasked: the trace sees every read')
  await m.unmount()
  const trace = parsePrefetchList(await readFile(join(dir, 'trace.txt'), 'utf8'))
  assert.deepEqual(trace[0], { path: '/etc/hostname', range: { offset: 0, length: 4 } })
  const size = 3 * 1024 * 1024
  const ranges = trace.slice(1)
  assert.ok(ranges.length >= 1 && ranges.every((e) => e.path === '/data/random.bin'), JSON.stringify(trace))
  assert.ok(ranges.some((e) => e.range!.offset <= 2 * 1024 * 1024 && e.range!.offset + e.range!.length >= 2 * 1024 * 1024 + 4096), 'the range read is in')
  const traced = ranges.reduce((n, e) => n + e.range!.length, 0)
  assert.ok(traced < size / 2, `the trace names ${traced} of ${size} bytes`)

  const w = await openWritableStore(join(dir, 'store'))
  await pack({ source: await openDir(join(dir, 'src')), output: join(dir, 'pre.fl'), store: w, prefetch: trace })
  await w.close()
  const m2 = await withMount(t, await mountFlist(join(dir, 'pre.fl'), join(dir, 'mnt'), { store }))
  await m2.prefetched
  assert.equal(m2.reader.version, 3)
  // Exactly the traced chunks: the ranges are chunk-aligned.
  assert.equal(m2.stats().fetchedPlainBytes, 4 + traced)
  // ... and they went into the page cache: reading the traced range needs no request.
  // (content for a file goes to the kernel when the file is opened: before, the kernel has no inode to cache it in)
  await ok('dd', [`if=${join(dir, 'mnt/data/random.bin')}`, 'of=/dev/null', 'count=0', 'status=none'])
  await new Promise((r) => setTimeout(r, 200)) // stores are written from the libuv pool
  assert.ok(m2.stats().pushedBytes > traced / 2, `${m2.stats().pushedBytes} bytes stored`)
  const before = m2.stats().readBytes
  await ok('dd', [`if=${join(dir, 'mnt/data/random.bin')}`, 'of=/dev/null', 'bs=4096', 'skip=512', 'count=1', 'status=none'])
  assert.equal(m2.stats().readBytes, before, 'the prefetched page was read from the page cache')
  await m2.unmount()

  // A list of whole files (format version 1) fetches them whole.
  const w2 = await openWritableStore(join(dir, 'store'))
  await pack({ source: await openDir(join(dir, 'src')), output: join(dir, 'files.fl'), store: w2, prefetch: ['/etc/hostname', '/data/big.txt'] })
  await w2.close()
  const m3 = await withMount(t, await mountFlist(join(dir, 'files.fl'), join(dir, 'mnt'), { store }))
  await m3.prefetched
  assert.equal(m3.stats().fetchedPlainBytes, 4 + (await stat(join(dir, 'src/data/big.txt'))).size)
  await m3.unmount()

  // A chunk of the list that fails verification stops the prefetch with a warning; the mount goes on.
  const reader = FlistReader.open(join(dir, 'pre.fl'))
  const [first] = reader.prefetch().filter((r) => r.ino === reader.resolve('data/random.bin').ino)
  const chunk = reader.chunk(reader.extents(first!.ino).find((e) => e.offset >= first!.offset)!.chunk)
  reader.close()
  const packPath = join(dir, 'store', 'packs', chunk.pack.slice(0, 2), `${chunk.pack}.pack`)
  const data = await readFile(packPath)
  data[chunk.offset + 10]! ^= 0x80
  await writeFile(packPath, data)
  const warnings: string[] = []
  const logger = { warn: (_o: Record<string, unknown>, msg: string) => warnings.push(msg), error: (_o: Record<string, unknown>, msg: string) => warnings.push(msg) }
  const m4 = await withMount(t, await mountFlist(join(dir, 'pre.fl'), join(dir, 'mnt'), { store, logger }))
  await m4.prefetched
  assert.ok(warnings.some((w) => /prefetch stopped/.test(w)), warnings.join('\n'))
  assert.ok(m4.stats().badChunks >= 1)
  assert.equal(await ok('cat', [join(dir, 'mnt/etc/hostname')]), 'zos\n')
  await rm(join(dir, 'trace.txt'))
  await assert.rejects(unmountRoot(join(dir, 'nothing-here')), /nothing is mounted/)
})
