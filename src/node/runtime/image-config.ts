// The process a zmachine container runs: its argv, environment, working directory and user, from the workload
// (entrypoint, env) and the flist's image tags (entrypoint, cmd, env, working-dir, user: docs/flist-format.md).
// Paths are resolved inside the container's root, following symlinks the way the container will see them
// (an absolute link target is relative to the root, never to the host).
import { createReadStream } from 'node:fs'
import { lstat, readFile, readlink } from 'node:fs/promises'
import { posix } from 'node:path'
import { zerr } from '../../core/errors.js'

export interface ImageProcess {
  args: string[]
  env: string[]
  cwd: string
  uid: number
  gid: number
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** Splits a command line into words: spaces separate, '…' and "…" quote, backslash escapes. */
export function shellSplit(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let has = false
  let quote: '"' | "'" | null = null
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote === "'") {
      if (c === "'") quote = null
      else cur += c
      continue
    }
    if (c === '\\' && i + 1 < line.length) {
      cur += line[++i]
      has = true
      continue
    }
    if (quote === '"') {
      if (c === '"') quote = null
      else cur += c
      continue
    }
    if (c === '"' || c === "'") {
      quote = c
      has = true
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur)
      cur = ''
      has = false
    } else cur += c
  }
  if (quote) throw zerr('INVALID_ARGUMENT', `entrypoint has an unclosed ${quote} quote: ${line}`)
  if (has || cur) out.push(cur)
  return out
}

function jsonList(tags: Record<string, string>, key: string): string[] {
  const v = tags[key]
  if (v === undefined || v === '') return []
  try {
    const parsed: unknown = JSON.parse(v)
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) return parsed as string[]
  } catch {
    // a plain string: one word list
  }
  return shellSplit(v)
}

/** Resolves `path` (absolute, in the container) to a host path under `root`, following symlinks. */
export async function resolveInRoot(root: string, path: string, hops = 0): Promise<string> {
  const parts = posix.normalize(path).split('/').filter(Boolean)
  let cur = '/'
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(cur, parts[i]!)
    const host = posix.join(root, next)
    let st
    try {
      st = await lstat(host)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw zerr('NOT_FOUND', `${path} does not exist in the container's root`, { path })
      throw err
    }
    if (st.isSymbolicLink()) {
      if (hops > 40) throw zerr('INVALID_ARGUMENT', `too many symbolic links resolving ${path}`)
      const target = await readlink(host)
      const rest = parts.slice(i + 1).join('/')
      const joined = target.startsWith('/') ? posix.join(target, rest) : posix.join(cur, target, rest)
      return resolveInRoot(root, posix.normalize('/' + joined), hops + 1)
    }
    cur = next
  }
  return posix.join(root, cur)
}

async function lookupId(root: string, file: 'passwd' | 'group', name: string): Promise<{ id: number; gid?: number } | undefined> {
  const text = await readFile(posix.join(root, 'etc', file), 'utf8').catch(() => '')
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f[0] === name && f[2] !== undefined) return { id: Number(f[2]), ...(f[3] !== undefined ? { gid: Number(f[3]) } : {}) }
  }
  return undefined
}

async function resolveUser(root: string, spec: string): Promise<{ uid: number; gid: number }> {
  if (!spec) return { uid: 0, gid: 0 }
  const [u = '', g] = spec.split(':')
  let uid: number
  let gid: number | undefined
  if (/^\d+$/.test(u)) uid = Number(u)
  else {
    const found = await lookupId(root, 'passwd', u)
    if (!found) throw zerr('INVALID_ARGUMENT', `the flist's user "${u}" is not in its /etc/passwd`)
    uid = found.id
    gid = found.gid
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g)
    else {
      const found = await lookupId(root, 'group', g)
      if (!found) throw zerr('INVALID_ARGUMENT', `the flist's group "${g}" is not in its /etc/group`)
      gid = found.id
    }
  }
  return { uid, gid: gid ?? uid }
}

/** Works out the container's process from the workload and the flist tags. */
export async function imageProcess(root: string, tags: Record<string, string>, workload: { entrypoint: string; env: Record<string, string> }): Promise<ImageProcess> {
  const args = workload.entrypoint.trim() !== '' ? shellSplit(workload.entrypoint) : [...jsonList(tags, 'entrypoint'), ...jsonList(tags, 'cmd')]
  if (args.length === 0) throw zerr('INVALID_ARGUMENT', 'the zmachine has no entrypoint and its flist has no entrypoint or cmd tag; set one')
  const env = new Map<string, string>()
  for (const kv of jsonList(tags, 'env')) {
    const eq = kv.indexOf('=')
    if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1))
  }
  for (const [k, v] of Object.entries(workload.env)) env.set(k, v)
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH)
  const cwd = tags['working-dir'] || '/'
  const user = await resolveUser(root, tags.user ?? '')
  return { args, env: [...env].map(([k, v]) => `${k}=${v}`), cwd, ...user }
}

/** The host path of the program argv[0] names (searched in PATH when it has no slash). */
export async function findProgram(root: string, argv0: string, path: string): Promise<string> {
  if (argv0.includes('/')) return resolveInRoot(root, argv0.startsWith('/') ? argv0 : '/' + argv0)
  for (const dir of path.split(':').filter(Boolean)) {
    try {
      const host = await resolveInRoot(root, posix.join(dir, argv0))
      const st = await lstat(host)
      if (st.isFile()) return host
    } catch {
      // not in this dir
    }
  }
  throw zerr('NOT_FOUND', `the entrypoint ${argv0} is not in the flist (searched PATH ${path})`, { program: argv0 })
}

/** Reads a file to the end: every chunk of it is fetched and verified before the container starts. */
export async function readThrough(file: string): Promise<number> {
  let n = 0
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(file, { highWaterMark: 1 << 20 })
    s.on('data', (b) => (n += b.length))
    s.on('error', reject)
    s.on('end', () => resolve())
  })
  return n
}
