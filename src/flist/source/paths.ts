// Name and path validation shared by every source: what may become a SourceEntry path, and how bad ones are reported.
import { zerr } from '../../core/errors.js'

// ignoreBOM keeps a leading U+FEFF in the name instead of silently dropping it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Printable form of raw name bytes for error messages: ASCII as is, everything else as \xNN. */
export function showBytes(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`
  return out
}

/** Decodes a name (or path, or link target) that must be valid UTF-8 without NUL; BAD_NAME naming `where` otherwise. */
export function decodeName(bytes: Uint8Array, where: string): string {
  let text: string
  try {
    text = strictUtf8.decode(bytes)
  } catch {
    throw zerr('BAD_NAME', `${where}: name '${showBytes(bytes)}' is not valid UTF-8; rename it (e.g. with convmv) and retry`, {
      where,
      name: showBytes(bytes),
    })
  }
  if (text.includes('\0')) throw zerr('BAD_NAME', `${where}: name '${showBytes(bytes)}' contains a NUL byte`, { where })
  return text
}

// Anything that normalisation would change or reject: '.', '..' or empty components, a leading or trailing '/', NUL.
const NEEDS_WORK = /(?:^|\/)\.{1,2}(?:\/|$)|\/\/|^\/|\/$|\0|^$/

/**
 * Normalises an archive member name to a SourceEntry path: `./a//b/` → `a/b`, `./` → ''. Absolute names and any `..`
 * component are UNSAFE_PATH (we never guess what the author meant).
 */
export function normaliseArchivePath(name: string, where: string): string {
  if (!NEEDS_WORK.test(name)) return name // the common case: already clean
  if (name.includes('\0')) throw zerr('BAD_NAME', `${where}: name contains a NUL byte`, { where })
  if (name.startsWith('/')) {
    throw zerr('UNSAFE_PATH', `${where}: absolute path '${name}' is not allowed in an archive; rebuild it with relative names`, {
      where,
      path: name,
    })
  }
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      throw zerr('UNSAFE_PATH', `${where}: path '${name}' has a '..' component that could escape the tree`, { where, path: name })
    }
    parts.push(part)
  }
  return parts.join('/')
}

/** Parent path of a normalised path ('' for top-level names). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i < 0 ? '' : path.slice(0, i)
}

/** Last component of a normalised path. */
export function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

export function joinPath(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`
}
