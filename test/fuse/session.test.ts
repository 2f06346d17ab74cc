// The FUSE driver serving a real mount, checked with real tools: ls, stat, find, du, cat/cmp/sha256sum, getfattr,
// readlink, random and parallel reads from Node, failures that stay confined to one request, and interrupts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, open, writeFile, readdir, readFile, stat, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { isRoot } from '../helpers/tmp.js'
import { mountFuse, type FuseLogger, type FuseMount } from '../../src/fuse/index.js'
import type { FuseOps } from '../../src/fuse/types.js'
import { MemFs } from './memfs.js'
import { sh, ok, fuseDir } from './helpers.js'

const skip = isRoot ? false : 'FUSE mounts need root'

/** 20 MB of deterministic, incompressible bytes. */
function bigData(): Buffer {
  const out = Buffer.allocUnsafe(20_000_000)
  let block = createHash('sha256').update('zos fuse test').digest()
  for (let off = 0; off < out.length; off += 32) {
    block = createHash('sha256').update(block).digest()
    block.copy(out, off)
  }
  return out
}

function capture(): FuseLogger & { lines: string[] } {
  const lines: string[] = []
  return {
    lines,
    warn: (obj, msg) => { lines.push(`${msg} ${JSON.stringify(obj)}`) },
    error: (obj, msg) => { lines.push(`${msg} ${JSON.stringify(obj)}`) },
  }
}

function buildFs(big: Buffer, options: { readdirplus?: boolean } = {}): MemFs {
  const fs = new MemFs(options)
  fs.writeFile('hello.txt', 'hello world\n')
  fs.setXattr('hello.txt', 'user.greeting', 'hi there')
  fs.setXattr('hello.txt', 'user.empty', '')
  fs.setXattr('hello.txt', 'user.binary', Buffer.from([0, 1, 2, 255]))
  fs.mkdir('dir')
  fs.mkdir('dir/sub', 0o700)
  fs.writeFile('dir/sub/deep.txt', 'deep\n', { mode: 0o600 })
  fs.writeFile('big.bin', big)
  fs.writeFile('empty', '')
  fs.symlink('link', 'hello.txt')
  fs.symlink('dir/abs-link', '/etc/hostname')
  fs.writeFile('hard1', 'same inode\n')
  fs.link('hard1', 'dir/hard2')
  fs.mkfifo('fifo')
  fs.writeFile('secret', 'root only\n', { mode: 0o600 })
  fs.writeFile('bad.txt', 'never served\n')
  fs.faults.set(fs.resolve('bad.txt'), 'throw')
  fs.writeFile('denied.txt', 'never served\n')
  fs.faults.set(fs.resolve('denied.txt'), 'eacces')
  fs.writeFile('hang.txt', 'never served\n', { directIo: true })
  fs.faults.set(fs.resolve('hang.txt'), 'hang')
  fs.mkdir('many')
  for (let i = 0; i < 600; i++) fs.writeFile(`many/${String(i).padStart(4, '0')}-${'x'.repeat(i % 200)}`, String(i))
  return fs
}

test('fuse: a mounted in-memory filesystem, checked with real tools', { skip }, async (t) => {
  const { dir, track } = await fuseDir(t)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const big = bigData()
  const bigSha = createHash('sha256').update(big).digest('hex')
  const fs = buildFs(big)
  const logger = capture()
  const m: FuseMount = track(await mountFuse(mnt, fs, { logger, fsname: 'memfs-test', subtype: 'zostest' }))
  const p = (rel: string): string => join(mnt, rel)

  await t.test('mount: /proc/mounts shows the type, source and options; INIT negotiated 1 MiB reads', async () => {
    const line = (await readFile('/proc/self/mounts', 'utf8')).split('\n').find((l) => l.split(' ')[1] === mnt)
    assert.ok(line, 'mount listed')
    const [source, , type, opts] = line.split(' ')
    assert.equal(source, 'memfs-test')
    assert.equal(type, 'fuse.zostest')
    assert.match(opts ?? '', /^ro,/)
    assert.match(opts ?? '', /allow_other/)
    assert.match(opts ?? '', /default_permissions/)
    assert.equal(m.init.maxPages, 256)
    assert.ok(m.init.minor >= 31, `protocol 7.${m.init.minor}`)
    assert.equal((await readFile(`/sys/class/bdi/${m.device}/read_ahead_kb`, 'utf8')).trim(), '1024')
  })

  await t.test('ls -la lists names, types, modes, link counts and sizes', async () => {
    const out = await ok('ls', ['-la', '--time-style=+%s', mnt])
    const rows = new Map(out.trim().split('\n').slice(1).map((l) => {
      const f = l.trim().split(/\s+/)
      return [f[6] ?? '', f] as const
    }))
    assert.deepEqual(rows.get('hello.txt')?.slice(0, 5), ['-rw-r--r--', '1', 'root', 'root', '12'])
    assert.deepEqual(rows.get('dir')?.slice(0, 2), ['drwxr-xr-x', '3'])
    assert.deepEqual(rows.get('link')?.slice(0, 1), ['lrwxrwxrwx'])
    assert.deepEqual(rows.get('link')?.slice(6), ['link', '->', 'hello.txt'])
    assert.deepEqual(rows.get('fifo')?.slice(0, 1), ['prw-r--r--'])
    assert.deepEqual(rows.get('hard1')?.slice(0, 2), ['-rw-r--r--', '2'])
    assert.equal(rows.get('big.bin')?.[4], String(big.length))
    assert.ok(rows.has('.') && rows.has('..'))
    assert.equal(rows.get('hello.txt')?.[5], '1700000000')
  })

  await t.test('stat -c reports types, inode numbers, hard links, times and blocks', async () => {
    const st = (f: string, fmt: string): Promise<string> => ok('stat', ['-c', fmt, p(f)]).then((s) => s.trim())
    assert.equal(await st('hello.txt', '%F|%s|%a|%h|%u|%g'), 'regular file|12|644|1|0|0')
    assert.equal(await st('dir', '%F|%a|%h'), 'directory|755|3')
    assert.equal(await st('fifo', '%F'), 'fifo')
    assert.equal(await ok('stat', ['-L', '-c', '%s', p('link')]).then((s) => s.trim()), '12')
    assert.equal(await st('link', '%F|%s'), 'symbolic link|9')
    assert.equal(await st('hard1', '%i|%h'), await st('dir/hard2', '%i|%h'))
    assert.equal(await st('hard1', '%h'), '2')
    assert.equal(await st('big.bin', '%b|%B'), `${Math.ceil(big.length / 512)}|512`)
    // nanosecond mtime survives the trip: 1_700_000_000_123_456_789 + ino
    const ino = BigInt(await st('hello.txt', '%i'))
    const mtimeNs = 1_700_000_000_123_456_789n + ino
    assert.equal(await st('hello.txt', '%.9Y'), `${mtimeNs / 1_000_000_000n}.${String(mtimeNs % 1_000_000_000n).padStart(9, '0')}`)
    const s = await lstat(p('hello.txt'), { bigint: true })
    assert.equal(s.mtimeNs, mtimeNs)
    assert.equal(s.ino, ino)
  })

  await t.test('find walks the tree; du adds up the sizes', async () => {
    const found = (await ok('find', [mnt, '-not', '-path', `${mnt}/many/*`, '-printf', '%P %y\n'])).split('\n').filter((l) => l !== '').sort()
    assert.deepEqual(found, [
      ' d', 'bad.txt f', 'big.bin f', 'denied.txt f', 'dir d', 'dir/abs-link l', 'dir/hard2 f', 'dir/sub d',
      'dir/sub/deep.txt f', 'empty f', 'fifo p', 'hang.txt f', 'hard1 f', 'hello.txt f', 'link l', 'many d', 'secret f',
    ])
    const du = (await ok('du', ['-k', p('big.bin')])).split('\t')[0]
    assert.equal(du, String(Math.ceil(big.length / 1024)))
    const apparent = (await ok('du', ['-sb', '--apparent-size', p('dir/sub')])).split('\t')[0]
    assert.equal(apparent, String(4096 + 5))
  })

  await t.test('cat, cmp and sha256sum read the 20 MB file exactly', async () => {
    assert.equal(await ok('cat', [p('hello.txt')]), 'hello world\n')
    assert.equal(await ok('cat', [p('empty')]), '')
    const src = join(dir, 'big.src')
    await writeFile(src, big)
    await ok('cmp', [src, p('big.bin')])
    assert.equal((await ok('sha256sum', [p('big.bin')])).split(' ')[0], bigSha)
    const dd = await sh('dd', [`if=${p('big.bin')}`, 'of=/dev/null', 'bs=1M', 'iflag=direct'])
    assert.equal(dd.code, 0, dd.stderr)
    assert.match(dd.stderr, /20000000 bytes/)
  })

  await t.test('getfattr shows xattrs; a missing one is ENODATA; the size probe and ERANGE work', async () => {
    const dump = await ok('getfattr', ['-d', '-e', 'hex', p('hello.txt')])
    assert.match(dump, /user\.greeting=0x6869207468657265/)
    assert.match(dump, /user\.binary=0x000102ff/)
    assert.equal(await ok('getfattr', ['--only-values', '-n', 'user.greeting', p('hello.txt')]), 'hi there')
    const missing = await sh('getfattr', ['-n', 'user.nope', p('hello.txt')])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /No such attribute/)
    assert.equal((await ok('getfattr', ['-d', p('empty')])).trim(), '')
    // Python's os.getxattr probes with size 0 first and retries; a fixed small buffer must get ERANGE.
    const py = await sh('python3', ['-c', [
      'import os, ctypes, sys',
      `p = ${JSON.stringify(p('hello.txt'))}`,
      'print(os.getxattr(p, "user.greeting").decode(), sorted(os.listxattr(p)))',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'buf = ctypes.create_string_buffer(2)',
      'n = libc.getxattr(p.encode(), b"user.greeting", buf, 2)',
      'print(n, ctypes.get_errno())',
      'print(libc.getxattr(p.encode(), b"user.greeting", None, 0))',
    ].join('\n')])
    assert.equal(py.code, 0, py.stderr)
    assert.equal(py.stdout, "hi there ['user.binary', 'user.empty', 'user.greeting']\n-1 34\n8\n")
  })

  await t.test('readlink returns symlink targets', async () => {
    assert.equal((await ok('readlink', [p('link')])).trim(), 'hello.txt')
    assert.equal((await ok('readlink', [p('dir/abs-link')])).trim(), '/etc/hostname')
  })

  await t.test('random offsets from Node read the right bytes, including across end of file', async () => {
    const fh = await open(p('big.bin'), 'r')
    try {
      let seed = 12345
      const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
      for (let i = 0; i < 300; i++) {
        const len = 1 + rnd(300_000)
        const pos = rnd(big.length + 1000)
        const buf = Buffer.alloc(len)
        const { bytesRead } = await fh.read(buf, 0, len, pos)
        const want = big.subarray(Math.min(pos, big.length), Math.min(pos + len, big.length))
        assert.equal(bytesRead, want.length, `read ${len} at ${pos}`)
        assert.ok(buf.subarray(0, bytesRead).equals(want), `bytes at ${pos}`)
      }
    } finally {
      await fh.close()
    }
  })

  await t.test('parallel readers (4 sha256sum processes and Node) all see the same bytes', async () => {
    const runs = await Promise.all([
      ...Array.from({ length: 4 }, () => ok('sha256sum', [p('big.bin')])),
      readFile(p('big.bin')).then((b) => createHash('sha256').update(b).digest('hex')),
      ok('sh', ['-c', `dd if=${p('big.bin')} bs=4k iflag=direct status=none | sha256sum`]),
    ])
    for (const r of runs) assert.equal(r.split(' ')[0], bigSha)
  })

  await t.test('a directory of 600 entries lists completely (several READDIRPLUS pages)', async () => {
    const names = await readdir(p('many'))
    assert.equal(names.length, 600)
    assert.equal(new Set(names).size, 600)
    assert.ok(names.includes(`0199-${'x'.repeat(199)}`))
    const ls = (await ok('ls', ['-l', p('many')])).trim().split('\n')
    assert.equal(ls.length, 601) // "total" line
  })

  await t.test('an operation that throws fails that read with EIO (logged); the mount keeps working', async () => {
    const before = logger.lines.length
    const r = await sh('cat', [p('bad.txt')])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /Input\/output error/)
    assert.ok(logger.lines.slice(before).some((l) => l.includes('injected failure')), logger.lines.join('\n'))
    const d = await sh('cat', [p('denied.txt')])
    assert.match(d.stderr, /Permission denied/)
    assert.equal(await ok('cat', [p('hello.txt')]), 'hello world\n')
  })

  await t.test('a read that hangs is interrupted by SIGINT (INTERRUPT → EINTR); the session goes on', async () => {
    const r = await sh('timeout', ['-s', 'INT', '1', 'cat', p('hang.txt')], { timeoutMs: 30_000 })
    assert.equal(r.signal, null, 'cat did not need SIGKILL')
    assert.notEqual(r.code, 0)
    assert.ok(fs.stats.interrupted >= 1, 'the op saw its signal abort')
    assert.equal(await ok('cat', [p('hello.txt')]), 'hello world\n')
    assert.equal((await ok('sha256sum', [p('big.bin')])).split(' ')[0], bigSha)
  })

  await t.test('the mount is read-only: writes fail with EROFS', async () => {
    for (const [cmd, args] of [['touch', [p('new')]], ['mkdir', [p('newdir')]], ['rm', ['-f', p('hello.txt')]], ['setfattr', ['-n', 'user.x', '-v', '1', p('hello.txt')]]] as const) {
      const r = await sh(cmd, [...args])
      assert.notEqual(r.code, 0, cmd)
      assert.match(r.stderr, /Read-only file system/, `${cmd}: ${r.stderr}`)
    }
    await assert.rejects(writeFile(p('hello.txt'), 'x'), { code: 'EROFS' })
  })

  await t.test('statfs and permissions (allow_other + default_permissions) as another user', async () => {
    const blocks = Math.ceil((20 + 5 + 12 + 11 + 10 + 13 * 3 + 600 * 4) / 4096) // rough: small files only here
    const [namelen, bsize, total] = (await ok('stat', ['-f', '-c', '%l %S %b', mnt])).trim().split(' ')
    assert.equal(namelen, '255')
    assert.equal(bsize, '4096')
    assert.ok(Number(total) >= blocks, `statfs blocks ${total}`)
    const nobody = ['--reuid=65534', '--regid=65534', '--clear-groups']
    assert.equal(await ok('setpriv', [...nobody, 'cat', p('hello.txt')]), 'hello world\n')
    const denied = await sh('setpriv', [...nobody, 'cat', p('secret')])
    assert.notEqual(denied.code, 0)
    assert.match(denied.stderr, /Permission denied/)
    const sub = await sh('setpriv', [...nobody, 'ls', p('dir/sub')])
    assert.match(sub.stderr, /Permission denied/)
  })

  await t.test('nothing unexpected was logged besides the injected failure', () => {
    const other = logger.lines.filter((l) => !l.includes('injected failure'))
    assert.deepEqual(other, [])
  })

  await t.test('stat of the mountpoint works until unmount; afterwards the directory is empty again', async () => {
    assert.ok((await stat(mnt)).isDirectory())
    await m.unmount()
    const end = await m.closed
    assert.equal(end.reason, 'unmounted')
    assert.ok(end.requests > 100)
    assert.deepEqual(await readdir(mnt), [])
  })
})

test('fuse: without readdirplus the driver serves plain READDIR (ls -l then looks up each entry)', { skip }, async (t) => {
  const { dir, track } = await fuseDir(t)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const fs = buildFs(Buffer.from('small'), { readdirplus: false })
  const m = track(await mountFuse(mnt, fs, { entryTtlMs: 0, attrTtlMs: 0 }))
  assert.equal(m.init.flags & (1 << 13), 0, 'DO_READDIRPLUS not negotiated')
  const names = await readdir(join(mnt, 'many'))
  assert.equal(names.length, 600)
  const before = fs.stats.lookups
  const ls = (await ok('ls', ['-l', join(mnt, 'many')])).trim().split('\n')
  assert.equal(ls.length, 601)
  assert.ok(fs.stats.lookups - before >= 600, `lookups: ${fs.stats.lookups - before}`)
  assert.equal((await ok('cat', [join(mnt, 'dir/sub/deep.txt')])), 'deep\n')
})

test('fuse: a read answered with several buffers is written as their concatenation, cut at the size asked', { skip }, async (t) => {
  const { dir, track } = await fuseDir(t)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const big = bigData().subarray(0, 5_000_000)
  const fs = new MemFs()
  fs.writeFile('parts.bin', big, { directIo: true })
  fs.writeFile('tiny-parts.bin', big.subarray(0, 300_000))
  let arrays = 0
  // Answers in uneven parts (an empty one included) and, for full reads of the first file, one part too many.
  const ops = Object.create(fs) as FuseOps
  ops.read = async (ino, fh, offset, size, ctx) => {
    const data = await fs.read(ino, fh, offset, size, ctx)
    arrays++
    if (ino === fs.resolve('tiny-parts.bin')) {
      // More parts than writev takes (IOV_MAX): 1-byte parts up to 600, then the rest.
      const parts: Buffer[] = []
      for (let i = 0; i < Math.min(600, data.length); i++) parts.push(data.subarray(i, i + 1))
      parts.push(data.subarray(Math.min(600, data.length)))
      return parts
    }
    const cuts = [0, 1000, 1000, 70_000, 333_333].filter((c) => c <= data.length)
    const parts = cuts.map((c, i) => data.subarray(c, i + 1 < cuts.length ? cuts[i + 1] : data.length))
    return data.length === size ? [...parts, Buffer.from('beyond the size asked')] : parts
  }
  track(await mountFuse(mnt, ops, {}))
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  assert.equal(sha(await readFile(join(mnt, 'parts.bin'))), sha(big))
  assert.equal(sha(await readFile(join(mnt, 'tiny-parts.bin'))), sha(big.subarray(0, 300_000)))
  // Odd offsets and sizes, bypassing the page cache (directIo): each read(2) is one READ.
  const fh = await open(join(mnt, 'parts.bin'), 'r')
  try {
    for (const [pos, len] of [[12_345, 100_000], [4_999_000, 4096], [1, 1]] as const) {
      const buf = Buffer.alloc(len)
      const { bytesRead } = await fh.read(buf, 0, len, pos)
      assert.equal(bytesRead, Math.min(len, big.length - pos))
      assert.ok(buf.subarray(0, bytesRead).equals(big.subarray(pos, pos + bytesRead)), `bytes at ${pos}`)
    }
  } finally {
    await fh.close()
  }
  assert.ok(arrays > 3)
})

test('fuse: notifyStore puts content into the page cache; reads of it then need no READ', { skip }, async (t) => {
  const { dir, track } = await fuseDir(t)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const fs = new MemFs()
  const size = 256 * 1024 + 1000 // the last page is partial: stored up to the end of the file
  const ino = fs.writeFile('f.bin', Buffer.alloc(size, 1))
  const reads: number[] = []
  const counting: FuseOps = Object.assign(Object.create(fs) as MemFs, {
    read: (...a: Parameters<MemFs['read']>) => { reads.push(a[2]); return fs.read(...a) },
  })
  const m = track(await mountFuse(mnt, counting))
  // Opened first: an open without keep_cache (MemFs's) drops the file's cached pages.
  const h = await open(join(mnt, 'f.bin'))
  // Bytes that differ from what READ would answer show that the page cache, not a READ, served them.
  const stored = Buffer.alloc(size - 8192, 7)
  assert.equal(m.notifyStore(ino, 8192, [stored.subarray(0, 100_000), stored.subarray(100_000)], stored.length), true)
  await new Promise((r) => setTimeout(r, 200)) // the store is written from the libuv pool
  const got = Buffer.alloc(stored.length)
  await h.read(got, 0, got.length, 8192)
  assert.ok(got.equals(stored), 'the stored bytes are what a read returns')
  assert.deepEqual(reads.filter((off) => off >= 8192), [], 'no READ for stored pages')
  // Pages before the stored range still come from READ.
  const head = Buffer.alloc(8192)
  await h.read(head, 0, 8192, 0)
  await h.close()
  assert.ok(head.equals(Buffer.alloc(8192, 1)))
  assert.ok(reads.includes(0))
  await m.unmount()
  assert.equal(m.notifyStore(ino, 0, [Buffer.alloc(4096)], 4096), false, 'nothing is stored once the session ended')
})
