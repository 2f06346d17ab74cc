// The tree an archive (or a stack of OCI layers) describes once every member is applied in order: a later member
// replaces an earlier one at the same path, whiteouts delete subtrees, and hard links survive their target being
// replaced (the first remaining link inherits the old content, as it would on a real filesystem).
//
// Invariants of values(): each path once; a 'hardlink' always points at an earlier 'file' entry.
import { zerr } from '../../core/errors.js'
import { parentOf } from './paths.js'
import type { SourceEntry } from './types.js'

export class Tree {
  /** path → entry, in output order (Map insertion order). */
  private readonly byPath = new Map<string, SourceEntry>()
  /** dir path → paths directly under it, for explicit and implicit (never listed) directories alike. */
  private readonly children = new Map<string, Set<string>>()
  /** file path → paths of the hard links pointing at it, in the order they were added. */
  private readonly links = new Map<string, Set<string>>()

  /** `label` names the archive in error messages. */
  constructor(private readonly label: string) {}

  get size(): number {
    return this.byPath.size
  }

  get(path: string): SourceEntry | undefined {
    return this.byPath.get(path)
  }

  values(): IterableIterator<SourceEntry> {
    return this.byPath.values()
  }

  /** Applies one member. */
  put(input: SourceEntry): void {
    let entry = input
    if (entry.path === '' && entry.kind !== 'dir') {
      throw zerr('BAD_ARCHIVE', `${this.label}: the root entry is a ${entry.kind}, not a directory`, { archive: this.label })
    }
    this.checkAncestors(entry.path)
    if (entry.kind === 'hardlink') {
      const resolved = this.resolveLink(entry)
      if (resolved === undefined) return // a link to itself changes nothing
      entry = resolved
    }
    const old = this.byPath.get(entry.path)
    if (entry.kind === 'dir' && (old === undefined || old.kind === 'dir')) {
      // A directory over a directory (listed or implied by earlier members) only changes metadata; children stay.
      this.byPath.set(entry.path, entry)
      if (old === undefined) this.register(entry.path)
      return
    }
    // Anything else at this path goes away first, subtree included; re-inserting moves the path to the end, which
    // keeps every hard link after its target.
    this.removeSubtrees([entry.path])
    this.byPath.set(entry.path, entry)
    this.register(entry.path)
    if (entry.kind === 'hardlink' && entry.target !== undefined) this.linksTo(entry.target).add(entry.path)
  }

  /** Deletes `path` and everything under it (an OCI whiteout); a missing path is fine. */
  remove(path: string): void {
    this.removeSubtrees([path])
  }

  /** Deletes everything under `dir` but keeps `dir` itself (an OCI opaque directory). */
  clear(dir: string): void {
    this.removeSubtrees([...(this.children.get(dir) ?? [])])
  }

  private checkAncestors(path: string): void {
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
      const above = this.byPath.get(path.slice(0, i))
      if (above === undefined || above.kind === 'dir') continue
      if (above.kind === 'symlink') {
        throw zerr('UNSAFE_PATH', `${this.label}: '${path}' goes through the symlink '${above.path}' (which points to '${above.target ?? ''}')`, {
          archive: this.label,
          path,
          symlink: above.path,
        })
      }
      throw zerr('BAD_ARCHIVE', `${this.label}: '${path}' is under '${above.path}', which is a ${above.kind}, not a directory`, {
        archive: this.label,
        path,
      })
    }
  }

  /** Points a hard link at the file that owns the content; a link to a non-file becomes a copy of it. */
  private resolveLink(entry: SourceEntry): SourceEntry | undefined {
    const named = entry.target ?? ''
    let targetPath = named
    let target = this.byPath.get(named)
    if (target?.kind === 'hardlink' && target.target !== undefined) {
      targetPath = target.target
      target = this.byPath.get(targetPath)
    }
    if (target === undefined) {
      throw zerr('BAD_ARCHIVE', `${this.label}: hard link '${entry.path}' points to '${named}', which is not earlier in the archive`, {
        archive: this.label,
        path: entry.path,
        target: named,
      })
    }
    if (targetPath === entry.path) return undefined
    if (target.kind === 'dir') {
      throw zerr('BAD_ARCHIVE', `${this.label}: hard link '${entry.path}' points to the directory '${named}'`, { archive: this.label, path: entry.path })
    }
    if (target.kind !== 'file') return { ...target, path: entry.path }
    const { content: _content, ...meta } = entry
    return { ...meta, target: targetPath, size: 0 }
  }

  /** Removes the given paths with their subtrees; hard links outside keep the content of removed files. */
  private removeSubtrees(roots: string[]): void {
    const removedFiles: Array<[string, SourceEntry]> = []
    const stack = [...roots]
    while (stack.length > 0) {
      const path = stack.pop() as string
      const entry = this.byPath.get(path)
      if (entry !== undefined) {
        this.byPath.delete(path)
        if (entry.kind === 'hardlink' && entry.target !== undefined) this.links.get(entry.target)?.delete(path)
        if (entry.kind === 'file') removedFiles.push([path, entry])
      }
      const under = this.children.get(path)
      if (under !== undefined) {
        this.children.delete(path)
        stack.push(...under)
      }
    }
    for (const root of roots) if (root !== '') this.children.get(parentOf(root))?.delete(root)
    // Only after every removal: the heir of a removed file must be a link that survived.
    for (const [path, entry] of removedFiles) this.promoteHeir(path, entry)
  }

  private promoteHeir(path: string, old: SourceEntry): void {
    const group = this.links.get(path)
    this.links.delete(path)
    if (group === undefined || group.size === 0) return
    const [heir, ...rest] = group
    if (heir === undefined) return
    this.byPath.set(heir, { ...old, path: heir }) // an existing key: the heir keeps its place in the order
    for (const other of rest) {
      const link = this.byPath.get(other)
      if (link !== undefined) this.byPath.set(other, { ...link, target: heir })
    }
    if (rest.length > 0) this.links.set(heir, new Set(rest))
  }

  private linksTo(target: string): Set<string> {
    let set = this.links.get(target)
    if (set === undefined) this.links.set(target, (set = new Set()))
    return set
  }

  /** Records `path` under its parent, and the parent under its own, up to the first one already known. */
  private register(path: string): void {
    let child = path
    while (child !== '') {
      const parent = parentOf(child)
      let set = this.children.get(parent)
      if (set === undefined) this.children.set(parent, (set = new Set()))
      if (set.has(child)) return
      set.add(child)
      child = parent
    }
  }
}
