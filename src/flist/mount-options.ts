// How `zos flist mount` names its FUSE mounts, in a module of its own: the CLI starts the mount (mount(8), the
// reader thread: fuse/mount.ts startMount) before it loads the flist code, with these same options.
import { basename } from 'node:path'
import { zerr } from '../core/errors.js'

/** The filesystem type of flist mounts is `fuse.zosflist`. */
export const FLIST_SUBTYPE = 'zosflist'

/**
 * The mount's source in the mount table (what `mount` and `df` show): "zos:" and the flist's name as given (a
 * file's base name, or a hub reference), with the characters mount options cannot carry replaced.
 */
export function flistFsname(name: string): string {
  const base = name.startsWith('hub://') ? name : basename(name)
  return `zos:${base.replace(/[\s,\\]/g, '_').slice(0, 196) || 'flist'}`
}

export function assertMountable(): void {
  if (process.getuid?.() !== 0) throw zerr('PERMISSION', 'mounting an flist needs root (FUSE mounts are made with mount(2))')
}
