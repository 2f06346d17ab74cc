// What every flist source (directory, tar stream, OCI image) produces: a stream of validated entries.
// The packer consumes nothing else, so a new source is one new file that yields SourceEntry values.

export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'socket'

export interface SourceEntry {
  /**
   * Path relative to the tree root, '/'-separated, already normalised and validated by the source:
   * no leading '/', no '.', '..' or empty components, valid UTF-8, no NUL. The root itself is ''.
   */
  readonly path: string
  readonly kind: EntryKind
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777); the type comes from `kind`. */
  readonly mode: number
  readonly uid: number
  readonly gid: number
  /** Times in nanoseconds since the epoch. */
  readonly mtimeNs: bigint
  readonly atimeNs?: bigint
  readonly ctimeNs?: bigint
  /** Byte size of a regular file's content; 0 for every other kind. */
  readonly size: number
  /** Device numbers for 'char' and 'block'. */
  readonly rdevMajor?: number
  readonly rdevMinor?: number
  /** Symlink target (stored verbatim) or, for 'hardlink', the path of the earlier entry it links to. */
  readonly target?: string
  /** Extended attributes, name → raw value. */
  readonly xattrs?: ReadonlyMap<string, Buffer>
  /** Content of a regular file, read once, in order. Absent for every other kind. */
  readonly content?: FileContent
}

export interface FileContent {
  /** Yields the file's bytes in order, in pieces of any size; the total must equal `size`. */
  stream(): AsyncIterable<Buffer>
  /**
   * When the bytes are in a local file (a directory source, or a spooled archive member), where they are:
   * the packer's workers then read them directly instead of copying them through the main thread.
   * `fileSize` is the size the whole file must still have (a changed file is an error).
   */
  readonly local?: { readonly path: string; readonly offset: number; readonly fileSize: number }
}

/** Image configuration kept from an OCI image, stored as flist tags. */
export interface ImageConfig {
  entrypoint?: string[]
  cmd?: string[]
  env?: string[]
  workingDir?: string
  user?: string
  exposedPorts?: string[]
  labels?: Record<string, string>
}

export interface EntriesOptions {
  /**
   * The consumer takes xattrs late (`Source.lateXattrs`): a source that learns them after the entries (the
   * directory walk, from getfattr in a separate process) then yields each entry at once instead of holding the
   * walk back until they are known.
   */
  lateXattrs?: boolean
}

export interface Source {
  /** Human-readable description for progress output ("directory /srv/x", "tar rootfs.tar.gz"). */
  readonly description: string
  /**
   * Entries, each exactly once per path (a later entry for the same path never follows). Parents need not
   * precede children (tar archives may omit directories): the packer creates missing parents as 0755 dirs.
   */
  entries(options?: EntriesOptions): AsyncIterable<SourceEntry>
  /**
   * After `entries({ lateXattrs: true })` is consumed: the extended attributes of the entries it yielded without
   * them, by path (none for hard links). Sources whose xattrs come with the entries have no such method.
   */
  lateXattrs?(): Promise<ReadonlyMap<string, ReadonlyMap<string, Buffer>>>
  /** Image configuration, known after entries() has been fully consumed (undefined for plain trees). */
  imageConfig(): ImageConfig | undefined
  /** Releases temporary files; safe to call twice. */
  close(): Promise<void>
}
