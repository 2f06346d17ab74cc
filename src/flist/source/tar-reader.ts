// A tar header reader over a byte range of a file: ustar, pax (local and global), GNU long names, v7.
//
// Why not tar-stream: it decodes pax records as UTF-8, which destroys binary xattr values (security.capability,
// SCHILY.xattr.* are raw bytes) and hides non-UTF-8 names; and reading from a file lets us seek past contents instead
// of streaming them, since entries point at their data by offset.
import type { FileHandle } from 'node:fs/promises'
import { zerr } from '../../core/errors.js'
import { decodeName } from './paths.js'

const BLOCK = 512
const WINDOW = 128 * 1024 // read-ahead: many small members per read, little waste before a large one
const MAX_META = 16 << 20 // cap for a pax or GNU long-name payload

export type TarKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'

export interface TarHeader {
  /** 1-based number of the member (metadata headers are not counted), for messages. */
  readonly index: number
  /** The member name, decoded but not normalised. */
  readonly name: string
  readonly kind: TarKind
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Content length for 'file'; 0 for other kinds. */
  readonly size: number
  readonly mtimeNs: bigint
  readonly atimeNs?: bigint
  readonly ctimeNs?: bigint
  /** Link target (hardlink or symlink), decoded; '' when absent. */
  readonly linkname: string
  readonly devMajor: number
  readonly devMinor: number
  readonly xattrs?: Map<string, Buffer>
  /** Absolute file offset of the content. */
  readonly dataOffset: number
}

const NO_PAX: Map<string, Buffer> = new Map()

const KINDS: Record<string, TarKind> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
  D: 'dir', // GNU dumpdir: a directory whose body lists names; the body is skipped
}

export class TarReader {
  private window: Buffer = Buffer.alloc(0)
  private windowStart = 0

  /** Reads members of the archive stored in [start, end) of `fh`; `label` names it in errors. */
  constructor(
    private readonly fh: FileHandle,
    private readonly start: number,
    private readonly end: number,
    private readonly label: string,
  ) {}

  /** Yields each member's header; content is not read (use dataOffset). */
  async *headers(): AsyncGenerator<TarHeader> {
    if (this.end === this.start) return // a zero-byte file is an empty archive
    let pos = this.start
    let index = 0
    let last = 'the start of the archive'
    let global = new Map<string, Buffer>()
    let pax: Map<string, Buffer> | undefined
    let longName: Buffer | undefined
    let longLink: Buffer | undefined
    for (;;) {
      if (pos + BLOCK > this.end) throw this.truncated(`after ${last}: no end-of-archive marker`)
      const block = await this.bytes(pos, BLOCK)
      if (isZeroBlock(block)) return
      if (!checksumOk(block)) {
        const what = index === 0 && pos === this.start ? 'is not a tar archive (bad header checksum)' : `has a corrupt header after ${last}`
        throw zerr('BAD_ARCHIVE', `${this.label} ${what} at byte ${pos - this.start}`, { archive: this.label, offset: pos - this.start })
      }
      const flag = String.fromCharCode(block[156] ?? 0)
      const headerSize = this.numeric(block, 124, 12, 'size', last)
      const dataOffset = pos + BLOCK

      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (headerSize > MAX_META) throw zerr('BAD_ARCHIVE', `${this.label}: metadata header after ${last} is larger than 16 MiB`)
        if (dataOffset + headerSize > this.end) throw this.truncated(`in a metadata header after ${last}`)
        const payload = Buffer.from(await this.bytes(dataOffset, headerSize)) // copy: the window is reused
        if (flag === 'x') pax = this.parsePax(payload, last)
        else if (flag === 'g') global = new Map([...global, ...this.parsePax(payload, last)])
        else if (flag === 'L') longName = cString(payload)
        else longLink = cString(payload)
        pos = dataOffset + roundUp(headerSize)
        continue
      }
      if (flag === 'V') {
        pos = dataOffset + roundUp(headerSize) // volume label: not a member
        continue
      }

      index++
      const where = `${this.label}: entry ${index}`
      const ext = global.size === 0 ? pax ?? NO_PAX : new Map([...global, ...(pax ?? [])])
      const nameBytes = nonEmpty(ext.get('path')) ?? longName ?? ustarName(block)
      const name = decodeName(nameBytes, where)
      last = `entry ${index} '${name}'`
      let kind = KINDS[flag]
      if (kind === undefined || (ext.size > 0 && [...ext.keys()].some((k) => k.startsWith('GNU.sparse.')))) {
        const what = flag === 'S' || kind !== undefined ? 'a GNU sparse file' : `of unknown type '${flag}'`
        throw zerr('UNSUPPORTED', `${this.label}: ${last} is ${what}; re-create the archive without it`, { archive: this.label, entry: name })
      }
      if (kind === 'file' && flag !== '7' && name.endsWith('/')) kind = 'dir' // pre-POSIX archives mark directories so
      const paxSize = ext.get('size')
      const size = paxSize !== undefined && paxSize.length > 0 ? this.decimal(paxSize, 'size', last) : headerSize
      const linkBytes = nonEmpty(ext.get('linkpath')) ?? longLink ?? cString(block.subarray(157, 257))
      const header: TarHeader = {
        index,
        name,
        kind,
        mode: this.numeric(block, 100, 8, 'mode', last) & 0o7777,
        uid: this.paxNumber(ext, 'uid', last) ?? this.numeric(block, 108, 8, 'uid', last),
        gid: this.paxNumber(ext, 'gid', last) ?? this.numeric(block, 116, 8, 'gid', last),
        size: kind === 'file' ? size : 0,
        mtimeNs: this.paxTime(ext, 'mtime', last) ?? BigInt(this.numeric(block, 136, 12, 'mtime', last)) * 1_000_000_000n,
        atimeNs: this.paxTime(ext, 'atime', last),
        ctimeNs: this.paxTime(ext, 'ctime', last),
        linkname: linkBytes.length > 0 ? decodeName(linkBytes, `${where} (link target of '${name}')`) : '',
        devMajor: this.paxNumber(ext, 'SCHILY.devmajor', last) ?? this.numeric(block, 329, 8, 'devmajor', last),
        devMinor: this.paxNumber(ext, 'SCHILY.devminor', last) ?? this.numeric(block, 337, 8, 'devminor', last),
        xattrs: ext.size === 0 ? undefined : xattrsOf(ext, where),
        dataOffset,
      }
      // Bodies: regular files, hard links with data (pax allows it) and GNU dumpdirs; other kinds have none.
      const bodySize = kind === 'file' || kind === 'hardlink' || flag === 'D' ? size : 0
      if (dataOffset + bodySize > this.end) {
        throw this.truncated(`at ${last}: its ${bodySize} bytes of content run past the end of the archive`)
      }
      yield header
      pos = dataOffset + roundUp(bodySize)
      pax = longName = longLink = undefined
    }
  }

  /** A view of [pos, pos+n) valid until the next call; the caller ensured pos+n <= end. */
  private async bytes(pos: number, n: number): Promise<Buffer> {
    const offset = pos - this.windowStart
    if (offset >= 0 && offset + n <= this.window.length) return this.window.subarray(offset, offset + n)
    const length = Math.min(Math.max(n, WINDOW), this.end - pos)
    const buf = length <= this.window.length && this.window.length <= 2 * WINDOW ? this.window : Buffer.allocUnsafe(length)
    let got = 0
    while (got < length) {
      const { bytesRead } = await this.fh.read(buf, got, length - got, pos + got)
      if (bytesRead === 0) throw this.truncated('while reading: the file is shorter than expected (was it changed?)')
      got += bytesRead
    }
    this.window = buf.subarray(0, length)
    this.windowStart = pos
    return this.window.subarray(0, n)
  }

  private truncated(where: string): Error {
    return zerr('BAD_ARCHIVE', `${this.label} is truncated ${where}`, { archive: this.label })
  }

  private bad(field: string, last: string): Error {
    return zerr('BAD_ARCHIVE', `${this.label}: invalid ${field} field in the header after ${last}`, { archive: this.label, field })
  }

  /** An octal or base-256 (GNU) numeric header field. */
  private numeric(b: Buffer, off: number, len: number, field: string, last: string): number {
    const first = b[off] ?? 0
    if (first & 0x80) {
      let v = BigInt(first & 0x7f) - (first === 0xff ? 128n : 0n) // 0xff prefix: two's complement negative
      for (let i = off + 1; i < off + len; i++) v = v * 256n + BigInt(b[i] ?? 0)
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw this.bad(field, last)
      return Number(v)
    }
    let i = off
    const stop = off + len
    while (i < stop && b[i] === 0x20) i++
    let v = 0
    for (; i < stop; i++) {
      const c = b[i] ?? 0
      if (c === 0 || c === 0x20) break
      if (c < 0x30 || c > 0x37) throw this.bad(field, last)
      v = v * 8 + (c - 0x30)
    }
    return v
  }

  private decimal(v: Buffer, field: string, last: string): number {
    const s = v.toString('latin1')
    if (!/^\d{1,16}$/.test(s) || !Number.isSafeInteger(Number(s))) throw this.bad(`pax ${field}`, last)
    return Number(s)
  }

  private paxNumber(ext: Map<string, Buffer>, key: string, last: string): number | undefined {
    const v = ext.get(key)
    return v === undefined || v.length === 0 ? undefined : this.decimal(v, key, last)
  }

  /** pax times are decimal seconds with an optional fraction: "1700000000.123456789" → ns. */
  private paxTime(ext: Map<string, Buffer>, key: string, last: string): bigint | undefined {
    const v = ext.get(key)
    if (v === undefined || v.length === 0) return undefined
    const m = /^(-?)(\d{1,15})(?:\.(\d*))?$/.exec(v.toString('latin1'))
    if (!m) throw this.bad(`pax ${key}`, last)
    const ns = BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'))
    return m[1] === '-' ? -ns : ns
  }

  /** pax records are "LEN KEY=VALUE\n" with raw-byte values; keys are kept, values are copied buffers. */
  private parsePax(buf: Buffer, last: string): Map<string, Buffer> {
    const out = new Map<string, Buffer>()
    let pos = 0
    while (pos < buf.length && buf[pos] !== 0) {
      const space = buf.indexOf(0x20, pos)
      const lenText = space < 0 ? '' : buf.toString('latin1', pos, space)
      const len = /^\d{1,8}$/.test(lenText) ? Number(lenText) : 0
      const endRec = pos + len
      if (len <= space - pos + 1 || endRec > buf.length || buf[endRec - 1] !== 0x0a) throw this.bad('pax record', last)
      const eq = buf.indexOf(0x3d, space + 1)
      if (eq < 0 || eq >= endRec) throw this.bad('pax record', last)
      out.set(decodeName(buf.subarray(space + 1, eq), `${this.label}: pax key after ${last}`), buf.subarray(eq + 1, endRec - 1))
      pos = endRec
    }
    return out
  }
}

/** Extended attributes from SCHILY.xattr.NAME (raw value) and LIBARCHIVE.xattr.URLENCODED-NAME (base64 value). */
function xattrsOf(ext: Map<string, Buffer>, where: string): Map<string, Buffer> | undefined {
  let out: Map<string, Buffer> | undefined
  for (const [key, value] of ext) {
    let name: string
    let data: Buffer
    if (key.startsWith('SCHILY.xattr.')) {
      name = key.slice('SCHILY.xattr.'.length)
      data = value
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      try {
        name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length))
      } catch {
        throw zerr('BAD_NAME', `${where}: xattr name '${key}' is not valid percent-encoded UTF-8`, { where })
      }
      data = Buffer.from(value.toString('latin1'), 'base64')
    } else {
      continue
    }
    if (name === '') throw zerr('BAD_ARCHIVE', `${where}: empty xattr name in pax header`, { where })
    ;(out ??= new Map()).set(name, Buffer.from(data))
  }
  return out
}

function ustarName(block: Buffer): Buffer {
  const name = cString(block.subarray(0, 100))
  const ustar = block.toString('latin1', 257, 263) === 'ustar\0'
  if (!ustar || block[345] === 0) return name
  return Buffer.concat([cString(block.subarray(345, 500)), Buffer.from('/'), name])
}

function cString(b: Buffer): Buffer {
  const nul = b.indexOf(0)
  return nul < 0 ? b : b.subarray(0, nul)
}

function nonEmpty(b: Buffer | undefined): Buffer | undefined {
  return b !== undefined && b.length > 0 ? b : undefined
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK
}

function isZeroBlock(b: Buffer): boolean {
  if (b[0] !== 0 || b[148] !== 0 || b[156] !== 0) return false
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false
  return true
}

/** The checksum treats its own field as spaces; old writers summed signed bytes, so both sums are accepted. */
function checksumOk(b: Buffer): boolean {
  let unsigned = 0
  for (let i = 0; i < BLOCK; i++) unsigned += b[i] as number
  for (let i = 148; i < 156; i++) unsigned += 0x20 - (b[i] as number)
  let stored = 0
  let i = 148
  while (i < 156 && b[i] === 0x20) i++
  for (; i < 156; i++) {
    const c = b[i] ?? 0
    if (c === 0 || c === 0x20) break
    if (c < 0x30 || c > 0x37) return false
    stored = stored * 8 + (c - 0x30)
  }
  if (stored === unsigned) return true
  let signed = unsigned
  for (let i = 0; i < BLOCK; i++) if ((b[i] as number) > 127 && (i < 148 || i >= 156)) signed -= 256
  return stored === signed
}
