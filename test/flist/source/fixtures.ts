// Helpers for source tests: read a Source fully, build tar archives byte by byte (for inputs no real tool writes),
// run system tools.
import { execFileSync } from 'node:child_process'
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { openSource, type OpenOptions } from '../../../src/flist/source/open.js'
import type { Source, SourceEntry } from '../../../src/flist/source/types.js'

export interface Collected {
  readonly entry: SourceEntry
  readonly data?: Buffer
}

/** How many contents collect() cross-checked through FileContent.local. */
export let localReads = 0

/**
 * Every entry with its content, checking each path appears once, content length equals size and, when the content
 * says where it is on disk (FileContent.local), that those bytes are the same.
 */
export async function collect(source: Source): Promise<Map<string, Collected>> {
  const out = new Map<string, Collected>()
  for await (const entry of source.entries()) {
    if (out.has(entry.path)) throw new Error(`path ${entry.path} yielded twice`)
    let data: Buffer | undefined
    if (entry.content !== undefined) {
      const parts: Buffer[] = []
      for await (const piece of entry.content.stream()) parts.push(piece)
      data = Buffer.concat(parts)
      if (data.length !== entry.size) throw new Error(`${entry.path}: ${data.length} bytes of content, size says ${entry.size}`)
      const local = entry.content.local
      if (local !== undefined) {
        // What the packer's workers read instead of stream(): it must be the same bytes.
        if (statSync(local.path).size !== local.fileSize) throw new Error(`${entry.path}: local fileSize is wrong`)
        const direct = Buffer.alloc(entry.size)
        const fd = openSync(local.path, 'r')
        try {
          readSync(fd, direct, 0, entry.size, local.offset)
        } finally {
          closeSync(fd)
        }
        if (!direct.equals(data)) throw new Error(`${entry.path}: local range differs from stream()`)
        localReads++
      }
    }
    out.set(entry.path, data === undefined ? { entry } : { entry, data })
  }
  return out
}

/** Opens `spec`, collects it and closes it, even when collecting fails. */
export async function collectSpec(spec: string, options: OpenOptions = {}): Promise<Map<string, Collected>> {
  const source = await openSource(spec, options)
  try {
    return await collect(source)
  } finally {
    await source.close()
  }
}

/** Entry at `path`, failing the test when absent. */
export function at(entries: Map<string, Collected>, path: string): Collected {
  const c = entries.get(path)
  if (c === undefined) throw new Error(`no entry '${path}' (have: ${[...entries.keys()].join(', ')})`)
  return c
}

export function run(cmd: string, args: string[], options: { cwd?: string; input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Buffer {
  return execFileSync(cmd, args, { ...options, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export interface Member {
  name: string | Buffer
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo. */
  type?: string
  data?: Buffer | string
  linkname?: string | Buffer
  mode?: number
  uid?: number
  gid?: number
  mtime?: number
  devmajor?: number
  devminor?: number
  /** pax records written in an 'x' header before this member. */
  pax?: Record<string, string | Buffer>
}

/** A ustar archive of `members`; `end: false` leaves out the end-of-archive blocks. */
export function tarBytes(members: Member[], options: { end?: boolean } = {}): Buffer {
  const blocks: Buffer[] = []
  for (const m of members) {
    if (m.pax !== undefined) {
      const body = Buffer.concat(Object.entries(m.pax).map(([k, v]) => paxRecord(k, typeof v === 'string' ? Buffer.from(v) : v)))
      blocks.push(header({ name: 'PaxHeader', type: 'x', size: body.length }), pad(body))
    }
    const data = typeof m.data === 'string' ? Buffer.from(m.data) : m.data ?? Buffer.alloc(0)
    blocks.push(header({ ...m, size: data.length }), pad(data))
  }
  if (options.end !== false) blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')])
  let len = body.length + 1
  while (String(len).length + body.length !== len) len = String(len).length + body.length
  return Buffer.concat([Buffer.from(String(len)), body])
}

function header(m: Member & { size: number }): Buffer {
  const b = Buffer.alloc(512)
  const name = typeof m.name === 'string' ? Buffer.from(m.name) : m.name
  if (name.length > 100) throw new Error('test tar helper: name longer than 100 bytes')
  name.copy(b, 0)
  const oct = (v: number, off: number, len: number): void => {
    b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, 'latin1')
  }
  oct(m.mode ?? 0o644, 100, 8)
  oct(m.uid ?? 0, 108, 8)
  oct(m.gid ?? 0, 116, 8)
  oct(m.size, 124, 12)
  oct(m.mtime ?? 1_600_000_000, 136, 12)
  b.write(m.type ?? '0', 156, 'latin1')
  if (m.linkname !== undefined) (typeof m.linkname === 'string' ? Buffer.from(m.linkname) : m.linkname).copy(b, 157)
  b.write('ustar\0' + '00', 257, 'latin1')
  oct(m.devmajor ?? 0, 329, 8)
  oct(m.devminor ?? 0, 337, 8)
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of b) sum += byte
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
  return b
}

function pad(data: Buffer): Buffer {
  const rest = data.length % 512
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(512 - rest)])
}
