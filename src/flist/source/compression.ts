// Compression of tar streams, recognised by magic bytes (never by file name, which lies as often as not).
import type { Transform } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { DecompressStream } from 'zstd-napi'
import { zerr } from '../../core/errors.js'

export type Compression = 'plain' | 'gzip' | 'zstd'

/** Bytes needed by sniffCompression to decide. */
export const MAGIC_BYTES = 6

export function sniffCompression(head: Uint8Array, where: string): Compression {
  const is = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b)
  if (is(0x1f, 0x8b)) return 'gzip'
  if (is(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd'
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) {
    throw zerr('UNSUPPORTED', `${where} is xz-compressed; decompress it first (xz -dc FILE | zos flist pack - ...)`, { where })
  }
  if (is(0x42, 0x5a, 0x68)) {
    throw zerr('UNSUPPORTED', `${where} is bzip2-compressed; decompress it first (bzip2 -dc FILE | zos flist pack - ...)`, { where })
  }
  return 'plain'
}

/** A streaming decompressor with large output pieces (fewer, bigger writes downstream). */
export function decompressor(kind: Exclude<Compression, 'plain'>): Transform {
  return kind === 'gzip' ? createGunzip({ chunkSize: 256 * 1024 }) : new DecompressStream()
}
