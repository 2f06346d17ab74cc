// A Source built from an in-memory list of entries: lets packer tests control every field exactly.
import type { EntryKind, Source, SourceEntry, ImageConfig } from '../../src/flist/source/types.js'

export interface Spec {
  path: string
  kind?: EntryKind
  mode?: number
  uid?: number
  gid?: number
  mtimeNs?: bigint
  content?: Buffer
  target?: string
  rdevMajor?: number
  rdevMinor?: number
  xattrs?: Record<string, Buffer>
}

export function entryOf(s: Spec): SourceEntry {
  const kind = s.kind ?? (s.content ? 'file' : 'dir')
  const content = s.content
  return {
    path: s.path,
    kind,
    mode: s.mode ?? (kind === 'dir' ? 0o755 : 0o644),
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    mtimeNs: s.mtimeNs ?? 1_700_000_000_123_456_789n,
    size: kind === 'file' ? (content?.length ?? 0) : 0,
    ...(s.target !== undefined ? { target: s.target } : {}),
    ...(s.rdevMajor !== undefined ? { rdevMajor: s.rdevMajor, rdevMinor: s.rdevMinor ?? 0 } : {}),
    ...(s.xattrs ? { xattrs: new Map(Object.entries(s.xattrs)) } : {}),
    ...(kind === 'file'
      ? {
          content: {
            async *stream() {
              // Uneven pieces exercise the packer's segment handling.
              const buf = content ?? Buffer.alloc(0)
              for (let off = 0; off < buf.length; off += 100_003) yield buf.subarray(off, off + 100_003)
            },
          },
        }
      : {}),
  }
}

export function arraySource(specs: readonly Spec[], config?: ImageConfig): Source {
  return {
    description: 'test entries',
    async *entries() {
      for (const s of specs) yield entryOf(s)
    },
    imageConfig: () => config,
    close: async () => {},
  }
}
