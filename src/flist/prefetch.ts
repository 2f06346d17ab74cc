// Prefetch lists as text: what `zos flist mount --trace` writes and `zos flist pack --prefetch` reads. One entry
// per line, in the order to fetch:
//   /path                  the whole file
//   OFFSET+LENGTH /path    LENGTH bytes of the file from OFFSET (decimal), e.g. the parts a workload read
// Blank lines and lines starting with '#' are ignored. A trace names ranges, so that a large file the workload
// only partly reads (a 99 MB binary of which a program's start touches half) is not fetched whole.
import { zerr } from '../core/errors.js'

export interface PrefetchEntry {
  path: string
  /** Absent: the whole file. */
  range?: { offset: number; length: number }
}

const RANGE_LINE = /^(\d+)\+(\d+) (.+)$/

export function parsePrefetchList(text: string): PrefetchEntry[] {
  const out: PrefetchEntry[] = []
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const m = RANGE_LINE.exec(line)
    if (!m) {
      out.push({ path: line })
      return
    }
    const offset = Number(m[1])
    const length = Number(m[2])
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length === 0) {
      throw zerr('INVALID_ARGUMENT', `prefetch list line ${i + 1}: ${JSON.stringify(line)} is not OFFSET+LENGTH /path with a length above 0`)
    }
    out.push({ path: m[3]!, range: { offset, length } })
  })
  return out
}

export function formatPrefetchList(entries: readonly PrefetchEntry[]): string {
  return entries
    .map((e) => {
      const path = `/${e.path.replace(/^\/+/, '')}`
      return `${e.range ? `${e.range.offset}+${e.range.length} ` : ''}${path}\n`
    })
    .join('')
}
