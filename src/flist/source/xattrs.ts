// Extended attributes of a whole directory tree. Node has no xattr API, so one `getfattr -R` process (Debian package
// `attr`) dumps them all and we parse its output: one process per tree, not one per file.
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { zerr } from '../../core/errors.js'
import { decodeName } from './paths.js'

/** Relative path ('' = root) → xattr name → value. Only paths that have xattrs appear. */
export type XattrMap = Map<string, Map<string, Buffer>>

export async function readXattrs(root: string, warn: (message: string) => void): Promise<XattrMap> {
  const child = spawn('getfattr', ['-R', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '-h', '--', root], {
    env: { ...process.env, LC_ALL: 'C' }, // C locale: every non-ASCII byte is escaped as \ooo, so output is ASCII
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const spawned = new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true))
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') resolve(false)
      else resolve(true) // reported through the exit code below
    })
  })
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  if (!(await spawned)) {
    warn(`getfattr not found (install the Debian package 'attr'): extended attributes under ${root} are not packed`)
    return new Map()
  }
  let stderr = ''
  child.stderr.setEncoding('latin1')
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 65536) stderr += s
  })
  child.stdout.setEncoding('latin1')

  let out: XattrMap
  try {
    out = await parseGetfattr(createInterface({ input: child.stdout, crlfDelay: Infinity }), root)
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  }
  const status = await exited
  // A filesystem without xattr support is not an error: its files simply have none.
  const problems = stderr.split('\n').filter((l) => l !== '' && !l.includes('Operation not supported'))
  if (status !== 0 && problems.length > 0) {
    const first = problems[0] ?? ''
    const code = first.includes('Permission denied') ? 'PERMISSION' : first.includes('No such file') ? 'SOURCE_CHANGED' : 'INVALID_ARGUMENT'
    throw zerr(code, `cannot read extended attributes under ${root}: ${first}`, { root })
  }
  return out
}

/** Parses `getfattr -d -e hex --absolute-names` output for the tree at `root`. */
export async function parseGetfattr(lines: AsyncIterable<string>, root: string): Promise<XattrMap> {
  const out: XattrMap = new Map()
  const prefix = root.endsWith('/') ? root : `${root}/`
  let current: Map<string, Buffer> | undefined
  for await (const line of lines) {
    if (line.startsWith('# file: ')) {
      const abs = unescape(line.slice('# file: '.length)).toString('utf8')
      const rel = abs === root || `${abs}/` === prefix ? '' : abs.startsWith(prefix) ? abs.slice(prefix.length) : undefined
      current = undefined
      if (rel !== undefined) out.set(rel, (current = new Map()))
    } else if (line !== '' && current !== undefined) {
      // "name=0xHEX"; hex values have no '=', so the last '=' splits (names may contain '=').
      const eq = line.lastIndexOf('=')
      const hex = eq < 0 ? undefined : /^0x([0-9a-fA-F]*)$/.exec(line.slice(eq + 1))?.[1]
      const name = decodeName(unescape(hex === undefined ? line : line.slice(0, eq)), `xattr name under ${root}`)
      current.set(name, hex === undefined ? Buffer.alloc(0) : Buffer.from(hex, 'hex'))
    }
  }
  return out
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
