// Extended attributes of a whole directory tree. Node has no xattr API, so one `getfattr -R` process (Debian package
// `attr`) dumps them all and we parse its output: one process per tree, not one per file.
//
// The getfattr processes are started by a small long-lived shell, itself started once: Node (libuv) starts a child
// with fork(), which costs in proportion to the memory the process has mapped (~50 ms with a few hundred MB) and
// write-protects every page of it, so that each page the packer writes afterwards takes a fault (measured: a third
// of the CPU time of packing ten 23 MB trees in one process). Call startXattrReader() early, while the process is
// small.
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { zerr } from '../../core/errors.js'
import { decodeName } from './paths.js'

/** Relative path ('' = root) → xattr name → value. Only paths that have xattrs appear. */
export type XattrMap = Map<string, Map<string, Buffer>>

const END = '#zos-end '
const ERR = '#zos-err '
// Reads a PATH line and a root line per request; answers with getfattr's output, its stderr lines prefixed with
// ERR and a last line END + exit status. Only shell builtins besides getfattr and mktemp.
const SCRIPT = `tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
while IFS= read -r path && IFS= read -r root; do
  PATH=$path getfattr -R -d -m - -e hex --absolute-names -h -- "$root" 2>"$tmp"
  code=$?
  while IFS= read -r l || [ -n "$l" ]; do printf '${ERR}%s\\n' "$l"; done < "$tmp"
  printf '${END}%s\\n' "$code"
done`

interface Request {
  root: string
  parser: GetfattrParser
  stderr: string[]
  done(status: number): void
  fail(err: Error): void
}

/** The shell that runs getfattr for us; restarted if it dies. */
class XattrReader {
  private readonly child: ChildProcess
  private readonly queue: Request[] = []

  constructor() {
    this.child = spawn('/bin/sh', ['-c', SCRIPT], { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'ignore'] })
    const out = this.child.stdout as Readable
    out.setEncoding('latin1') // C locale: every non-ASCII byte is escaped as \ooo, so output is ASCII
    createInterface({ input: out, crlfDelay: Infinity }).on('line', (line) => this.line(line))
    const gone = (err: Error): void => {
      if (reader === this) reader = undefined
      for (const r of this.queue.splice(0)) r.fail(err)
    }
    this.child.on('error', gone)
    this.child.on('exit', (code) => gone(new Error(`the getfattr helper exited (status ${code})`)))
    ;(this.child.stdin as Writable).on('error', () => {}) // reported through 'exit'
    this.idle()
  }

  /** Idle, the helper must not keep the process alive. */
  private idle(): void {
    this.child.unref()
    ;(this.child.stdout as Readable & { unref?(): void }).unref?.()
    ;(this.child.stdin as Writable & { unref?(): void }).unref?.()
  }

  private busy(): void {
    this.child.ref()
    ;(this.child.stdout as Readable & { ref?(): void }).ref?.()
    ;(this.child.stdin as Writable & { ref?(): void }).ref?.()
  }

  read(root: string, req: Omit<Request, 'root'>): void {
    this.queue.push({ root, ...req })
    this.busy()
    ;(this.child.stdin as Writable).write(`${process.env.PATH ?? ''}\n${root}\n`)
  }

  private line(line: string): void {
    const r = this.queue[0]
    if (!r) return
    if (line.startsWith(END)) {
      this.queue.shift()
      if (this.queue.length === 0) this.idle()
      r.done(Number(line.slice(END.length)))
    } else if (line.startsWith(ERR)) {
      if (r.stderr.length < 1000) r.stderr.push(line.slice(ERR.length))
    } else {
      r.parser.line(line)
    }
  }
}

let reader: XattrReader | undefined

/** Starts the getfattr helper now (cheap while the process is small); readXattrs starts it otherwise. */
export function startXattrReader(): void {
  reader ??= new XattrReader()
}

export async function readXattrs(root: string, warn: (message: string) => void): Promise<XattrMap> {
  const parser = new GetfattrParser(root)
  let status: number
  let stderr: string[]
  if (/[\n\0]/.test(root)) {
    ;({ status, stderr } = await runGetfattr(root, parser))
  } else {
    startXattrReader()
    stderr = []
    status = await new Promise<number>((done, fail) => reader!.read(root, { parser, stderr, done, fail }))
  }
  if (status === 127) {
    warn(`getfattr not found (install the Debian package 'attr'): extended attributes under ${root} are not packed`)
    return new Map()
  }
  // A filesystem without xattr support is not an error: its files simply have none.
  const problems = stderr.filter((l) => l !== '' && !l.includes('Operation not supported'))
  if (status !== 0 && problems.length > 0) {
    const first = problems[0] ?? ''
    const code = first.includes('Permission denied') ? 'PERMISSION' : first.includes('No such file') ? 'SOURCE_CHANGED' : 'INVALID_ARGUMENT'
    throw zerr(code, `cannot read extended attributes under ${root}: ${first}`, { root })
  }
  return parser.result
}

/** getfattr as a child of its own (for a root the helper's line protocol cannot carry). */
async function runGetfattr(root: string, parser: GetfattrParser): Promise<{ status: number; stderr: string[] }> {
  const child = spawn('getfattr', ['-R', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '-h', '--', root], {
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const spawned = new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true))
    child.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ENOENT'))
  })
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  if (!(await spawned)) return { status: 127, stderr: [] }
  let stderr = ''
  child.stderr.setEncoding('latin1')
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 65536) stderr += s
  })
  child.stdout.setEncoding('latin1')
  try {
    for await (const line of createInterface({ input: child.stdout, crlfDelay: Infinity })) parser.line(line)
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  }
  return { status: (await exited) ?? 1, stderr: stderr.split('\n') }
}

/** Parses `getfattr -d -e hex --absolute-names` output for the tree at `root`, line by line. */
export class GetfattrParser {
  readonly result: XattrMap = new Map()
  private readonly prefix: string
  private current: Map<string, Buffer> | undefined

  constructor(private readonly root: string) {
    this.prefix = root.endsWith('/') ? root : `${root}/`
  }

  line(line: string): void {
    if (line.startsWith('# file: ')) {
      const abs = unescape(line.slice('# file: '.length)).toString('utf8')
      const rel = abs === this.root || `${abs}/` === this.prefix ? '' : abs.startsWith(this.prefix) ? abs.slice(this.prefix.length) : undefined
      this.current = undefined
      if (rel !== undefined) this.result.set(rel, (this.current = new Map()))
    } else if (line !== '' && this.current !== undefined) {
      // "name=0xHEX"; hex values have no '=', so the last '=' splits (names may contain '=').
      const eq = line.lastIndexOf('=')
      const hex = eq < 0 ? undefined : /^0x([0-9a-fA-F]*)$/.exec(line.slice(eq + 1))?.[1]
      const name = decodeName(unescape(hex === undefined ? line : line.slice(0, eq)), `xattr name under ${this.root}`)
      this.current.set(name, hex === undefined ? Buffer.alloc(0) : Buffer.from(hex, 'hex'))
    }
  }
}

/** Parses `getfattr -d -e hex --absolute-names` output for the tree at `root`. */
export async function parseGetfattr(lines: AsyncIterable<string>, root: string): Promise<XattrMap> {
  const parser = new GetfattrParser(root)
  for await (const line of lines) parser.line(line)
  return parser.result
}

/** getfattr writes unusual bytes as backslash + 3 octal digits. */
function unescape(text: string): Buffer {
  if (!text.includes('\\')) return Buffer.from(text, 'latin1')
  const parts: Buffer[] = []
  let last = 0
  for (const m of text.matchAll(/\\([0-7]{3})/g)) {
    const at = m.index ?? 0
    parts.push(Buffer.from(text.slice(last, at), 'latin1'), Buffer.of(parseInt(m[1] ?? '0', 8)))
    last = at + m[0].length
  }
  parts.push(Buffer.from(text.slice(last), 'latin1'))
  return Buffer.concat(parts)
}
