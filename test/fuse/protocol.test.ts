// FUSE wire structures: exact sizes and offsets against linux/fuse.h, bounds checks on everything decoded, dirent
// alignment, time splitting, and the errno mapping of thrown values.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeInHeader, decodeName, decodeReadIn, decodeInitIn, decodeBatchForgetIn, decodeGetxattrIn, decodeGetattrIn,
  encodeOutHeader, encodeAttr, encodeEntryOut, encodeAttrOut, encodeOpenOut, encodeStatfsOut, encodeInitOut,
  encodeDirent, encodeDirentplus, encodeXattrList, direntSize, direntplusSize, splitNs, splitTtl, checkName,
  ProtocolError, IN_HEADER_SIZE, ENTRY_OUT_SIZE, ATTR_OUT_SIZE, STATFS_OUT_SIZE, INIT_OUT_SIZE, Op, WRITE_OPS,
  S_IFREG, S_IFDIR,
} from '../../src/fuse/protocol.js'
import { FuseError, toErrno, EIO, ENOENT, EINTR, EACCES, ENODATA } from '../../src/fuse/errno.js'
import { zerr } from '../../src/core/errors.js'
import type { Attr } from '../../src/fuse/types.js'

function inHeader(len: number, opcode: number, unique: bigint, nodeid: bigint): Buffer {
  const b = Buffer.alloc(len)
  b.writeUInt32LE(len, 0)
  b.writeUInt32LE(opcode, 4)
  b.writeBigUInt64LE(unique, 8)
  b.writeBigUInt64LE(nodeid, 16)
  b.writeUInt32LE(1000, 24)
  b.writeUInt32LE(100, 28)
  b.writeUInt32LE(4242, 32)
  return b
}

const attr: Attr = {
  ino: 7n, mode: S_IFREG | 0o644, nlink: 2, uid: 1000, gid: 100, rdev: 0, size: 5000, blksize: 4096,
  atimeNs: 1_700_000_000_000_000_001n, mtimeNs: 2_000_000_000n, ctimeNs: -1n,
}

test('protocol: fuse_in_header decodes and must match the bytes read', () => {
  const b = inHeader(48, Op.READ, 0x1_0000_0002n, 0xffff_ffff_ffff_fff0n)
  const h = decodeInHeader(b, 48)
  assert.deepEqual(h, { len: 48, opcode: 15, unique: 0x1_0000_0002, nodeid: 0xffff_ffff_ffff_fff0n, uid: 1000, gid: 100, pid: 4242, totalExtlen: 0 })
  assert.throws(() => decodeInHeader(b, 47), ProtocolError)
  assert.throws(() => decodeInHeader(b.subarray(0, 30), 30), ProtocolError)
})

test('protocol: names need a NUL inside the message; bodies are bounds-checked', () => {
  const b = Buffer.concat([inHeader(IN_HEADER_SIZE, Op.LOOKUP, 2n, 1n), Buffer.from('hello\0')])
  assert.equal(decodeName(b, IN_HEADER_SIZE, b.length).toString(), 'hello')
  assert.throws(() => decodeName(b, IN_HEADER_SIZE, b.length - 1), /NUL/)
  assert.throws(() => decodeReadIn(b, IN_HEADER_SIZE, IN_HEADER_SIZE + 10), ProtocolError)
  assert.throws(() => decodeInitIn(b, IN_HEADER_SIZE, IN_HEADER_SIZE + 8), ProtocolError)
  const g = Buffer.alloc(8 + 12)
  g.writeUInt32LE(0, 0)
  g.write('user.x\0', 8)
  assert.deepEqual({ ...decodeGetxattrIn(g, 0, g.length), name: decodeGetxattrIn(g, 0, g.length).name.toString() }, { size: 0, name: 'user.x' })
  // batch forget: count must fit the message
  const f = Buffer.alloc(8 + 32)
  f.writeUInt32LE(2, 0)
  f.writeBigUInt64LE(5n, 8); f.writeBigUInt64LE(1n, 16); f.writeBigUInt64LE(6n, 24); f.writeBigUInt64LE(3n, 32)
  assert.deepEqual(decodeBatchForgetIn(f, 0, f.length), [{ nodeid: 5n, nlookup: 1n }, { nodeid: 6n, nlookup: 3n }])
  f.writeUInt32LE(3, 0)
  assert.throws(() => decodeBatchForgetIn(f, 0, f.length), ProtocolError)
  // getattr: fh only when FUSE_GETATTR_FH is set
  const ga = Buffer.alloc(16)
  ga.writeBigUInt64LE(99n, 8)
  assert.equal(decodeGetattrIn(ga, 0, 16).fh, undefined)
  ga.writeUInt32LE(1, 0)
  assert.equal(decodeGetattrIn(ga, 0, 16).fh, 99n)
  // offsets above 2^53 are refused rather than rounded
  const r = Buffer.alloc(40)
  r.writeBigUInt64LE(2n ** 60n, 8)
  assert.throws(() => decodeReadIn(r, 0, 40), /2\^53/)
})

test('protocol: fuse_attr, entry_out, attr_out have the kernel layout', () => {
  const b = Buffer.alloc(ENTRY_OUT_SIZE + 8)
  assert.equal(encodeEntryOut(b, 0, { ino: 7n, generation: 3n, attr, entryTtlMs: 1500 }, 1000, 250), ENTRY_OUT_SIZE)
  assert.equal(b.readBigUInt64LE(0), 7n) // nodeid
  assert.equal(b.readBigUInt64LE(8), 3n) // generation
  assert.equal(b.readBigUInt64LE(16), 1n) // entry_valid 1.5 s
  assert.equal(b.readUInt32LE(32), 500_000_000)
  assert.equal(b.readBigUInt64LE(24), 0n) // attr_valid 0.25 s
  assert.equal(b.readUInt32LE(36), 250_000_000)
  const a = 40
  assert.equal(b.readBigUInt64LE(a), 7n) // ino
  assert.equal(b.readBigUInt64LE(a + 8), 5000n) // size
  assert.equal(b.readBigUInt64LE(a + 16), 10n) // blocks = ceil(5000/512)
  assert.equal(b.readBigInt64LE(a + 24), 1_700_000_000n) // atime
  assert.equal(b.readUInt32LE(a + 48), 1) // atimensec
  assert.equal(b.readBigInt64LE(a + 32), 2n) // mtime
  assert.equal(b.readBigInt64LE(a + 40), -1n) // ctime: -1 ns is -1 s + 999999999 ns
  assert.equal(b.readUInt32LE(a + 56), 999_999_999)
  assert.equal(b.readUInt32LE(a + 60), S_IFREG | 0o644)
  assert.equal(b.readUInt32LE(a + 64), 2)
  assert.equal(b.readUInt32LE(a + 68), 1000)
  assert.equal(b.readUInt32LE(a + 72), 100)
  assert.equal(b.readUInt32LE(a + 80), 4096)
  const o = Buffer.alloc(ATTR_OUT_SIZE)
  assert.equal(encodeAttrOut(o, 0, attr, 2000), ATTR_OUT_SIZE)
  assert.equal(o.readBigUInt64LE(0), 2n)
  assert.ok(o.subarray(16).equals(b.subarray(40, 128)))
  assert.throws(() => encodeAttr(Buffer.alloc(80), 0, attr), RangeError)
  assert.throws(() => encodeAttr(Buffer.alloc(88), 0, { ...attr, uid: -1 }), /uid/)
  // negative entry: nodeid 0, attributes zeroed
  const n = Buffer.alloc(ENTRY_OUT_SIZE, 0xaa)
  encodeEntryOut(n, 0, { ino: 0n, attr, entryTtlMs: 5000 }, 1000, 1000)
  assert.equal(n.readBigUInt64LE(0), 0n)
  assert.ok(n.subarray(40).every((x) => x === 0))
})

test('protocol: open_out, statfs_out, init_out, out_header', () => {
  const h = Buffer.alloc(16)
  encodeOutHeader(h, 0, 16, -ENOENT, 2 ** 40 + 6)
  assert.equal(h.readInt32LE(4), -2)
  assert.equal(h.readBigUInt64LE(8), 2n ** 40n + 6n)
  const o = Buffer.alloc(16)
  encodeOpenOut(o, 0, 0xdeadbeefn, 3)
  assert.equal(o.readBigUInt64LE(0), 0xdeadbeefn)
  assert.equal(o.readUInt32LE(8), 3)
  const s = Buffer.alloc(STATFS_OUT_SIZE, 0xff)
  encodeStatfsOut(s, 0, { blocks: 10, bfree: 1, bavail: 2, files: 3n, ffree: 4 })
  assert.deepEqual([s.readBigUInt64LE(0), s.readBigUInt64LE(24), s.readUInt32LE(40), s.readUInt32LE(44), s.readUInt32LE(48)], [10n, 3n, 4096, 255, 4096])
  assert.ok(s.subarray(52).every((x) => x === 0))
  const i = Buffer.alloc(INIT_OUT_SIZE)
  encodeInitOut(i, 0, { major: 7, minor: 38, maxReadahead: 131072, flags: 2 ** 31 + 1, maxBackground: 64, congestionThreshold: 48, maxWrite: 4096, timeGran: 1, maxPages: 256, flags2: 0 })
  assert.deepEqual([i.readUInt32LE(0), i.readUInt32LE(4), i.readUInt32LE(12), i.readUInt16LE(16), i.readUInt16LE(18), i.readUInt32LE(20), i.readUInt32LE(24), i.readUInt16LE(28)],
    [7, 38, 2 ** 31 + 1, 64, 48, 4096, 1, 256])
})

test('protocol: dirents are 8-byte aligned, carry cookies and types, and stop when full', () => {
  assert.equal(direntSize(1), 32)
  assert.equal(direntSize(8), 32)
  assert.equal(direntSize(9), 40)
  assert.equal(direntplusSize(1), 160)
  const b = Buffer.alloc(64, 0xee)
  let off = encodeDirent(b, 0, 64, 5n, 1, S_IFDIR | 0o755, Buffer.from('abc'))
  assert.equal(off, 32)
  assert.equal(b.readBigUInt64LE(0), 5n)
  assert.equal(b.readBigUInt64LE(8), 1n)
  assert.equal(b.readUInt32LE(16), 3)
  assert.equal(b.readUInt32LE(20), 4) // DT_DIR
  assert.equal(b.subarray(24, 27).toString(), 'abc')
  assert.ok(b.subarray(27, 32).every((x) => x === 0), 'padding zeroed')
  off = encodeDirent(b, off, 64, 6n, 2, S_IFREG, Buffer.from('12345678'))
  assert.equal(off, 64)
  assert.equal(b.readUInt32LE(32 + 20), 8) // DT_REG
  assert.equal(encodeDirent(b, off, 64, 7n, 3, S_IFREG, Buffer.from('x')), -1)
  const p = Buffer.alloc(200)
  assert.equal(encodeDirentplus(p, 0, 200, { ino: 9n, attr: { ...attr, ino: 9n } }, 4, Buffer.from('f'), 1000, 1000), 160)
  assert.equal(p.readBigUInt64LE(0), 9n)
  assert.equal(p.readBigUInt64LE(128), 9n)
  assert.equal(p.readBigUInt64LE(136), 4n)
  assert.equal(p.readUInt32LE(148), 8)
  assert.equal(encodeDirentplus(p, 160, 200, { ino: 9n, attr }, 5, Buffer.from('f'), 1000, 1000), -1)
  assert.throws(() => checkName(Buffer.from('a/b')), /'\/'/)
  assert.throws(() => checkName(Buffer.alloc(0)), RangeError)
  assert.throws(() => checkName(Buffer.alloc(1025, 0x61)), RangeError)
  assert.deepEqual(encodeXattrList(['user.a', Buffer.from('user.bb')]), Buffer.from('user.a\0user.bb\0'))
  assert.throws(() => encodeXattrList(['']), RangeError)
})

test('protocol: time and TTL splitting', () => {
  assert.deepEqual(splitNs(1_500_000_000n), [1n, 500_000_000])
  assert.deepEqual(splitNs(-1_500_000_000n), [-2n, 500_000_000])
  assert.deepEqual(splitNs(0n), [0n, 0])
  assert.deepEqual(splitTtl(0), [0, 0])
  assert.deepEqual(splitTtl(-5), [0, 0])
  assert.deepEqual(splitTtl(Number.NaN), [0, 0])
  assert.deepEqual(splitTtl(1234.5), [1, 234_500_000])
  assert.deepEqual(splitTtl(Number.POSITIVE_INFINITY), [1e12, 0])
})

test('protocol: write-type opcodes are the EROFS set', () => {
  for (const op of [Op.SETATTR, Op.MKDIR, Op.UNLINK, Op.WRITE, Op.CREATE, Op.SETXATTR, Op.RENAME2, Op.FALLOCATE]) assert.ok(WRITE_OPS.has(op))
  for (const op of [Op.READ, Op.LOOKUP, Op.GETXATTR, Op.FSYNC, Op.LSEEK]) assert.ok(!WRITE_OPS.has(op))
})

test('errno: thrown values map to errnos; the unknown ones to EIO, flagged', () => {
  assert.deepEqual(toErrno(new FuseError('ENOENT')), { errno: ENOENT, unexpected: false })
  assert.deepEqual(toErrno(new FuseError(ENODATA)), { errno: ENODATA, unexpected: false })
  assert.throws(() => new FuseError('ENOPE'), TypeError)
  assert.throws(() => new FuseError(0), TypeError)
  assert.deepEqual(toErrno(Object.assign(new Error('x'), { code: 'EACCES', errno: -13 })), { errno: EACCES, unexpected: false })
  assert.deepEqual(toErrno(Object.assign(new Error('x'), { errno: -13 })), { errno: EACCES, unexpected: false })
  const abort = new Error('aborted')
  abort.name = 'AbortError'
  assert.deepEqual(toErrno(abort), { errno: EINTR, unexpected: false })
  assert.deepEqual(toErrno(zerr('NOT_FOUND', 'gone')), { errno: ENOENT, unexpected: false })
  assert.deepEqual(toErrno(zerr('CHUNK_TAMPERED', 'bad chunk')), { errno: EIO, unexpected: true })
  assert.deepEqual(toErrno(new TypeError('bug')), { errno: EIO, unexpected: true })
  assert.deepEqual(toErrno('a string'), { errno: EIO, unexpected: true })
  assert.deepEqual(toErrno(Object.assign(new Error('x'), { code: 'ERR_SOMETHING' })), { errno: EIO, unexpected: true })
})
