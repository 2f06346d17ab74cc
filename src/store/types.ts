// The Store interface: where packs (files of concatenated encoded chunks) live. Readers address bytes by
// (pack id, offset, length); packers ask which chunks a store already holds (cross-flist dedup) and add packs.
// Chunk encoding is not the store's business: a store moves opaque bytes.

/** A byte range inside a pack. */
export interface PackRange {
  readonly pack: string // pack id: lowercase hex SHA-256 of the pack's bytes (64 chars)
  readonly offset: number
  readonly length: number
}

/** Where a chunk lives in a store, and how it was encoded (recorded by the packer, returned by lookups). */
export interface ChunkLocation extends PackRange {
  /** Store-visible chunk id (hex): the SHA-256 of the plaintext, or a keyed id for encrypted flists. */
  readonly sid: string
  /** Plaintext size in bytes. */
  readonly size: number
  /** Codec number (see src/flist/codec.ts); opaque to the store. */
  readonly codec: number
  /** sid of the delta base chunk, if the codec needs one; opaque to the store. */
  readonly base?: string
}

export interface StoreStats {
  packs: number
  bytes: number
  chunks: number
}

export interface Store {
  /** The URL the store was opened with, credentials removed. */
  readonly url: string
  readonly writable: boolean
  /**
   * Reads several ranges, in any order, returning buffers in the order asked. Implementations coalesce
   * neighbouring ranges of one pack into one read/request; the buffers may be views of one larger buffer (copy
   * what you keep for long; decodeChunk does). Fails with CHUNK_MISSING (pack absent or short)
   * or STORE_UNAVAILABLE (I/O or network failure, after retries).
   */
  readRanges(ranges: readonly PackRange[], options?: { signal?: AbortSignal }): Promise<Buffer[]>
  /** Whether the pack exists and its size (undefined if absent). */
  statPack(pack: string): Promise<number | undefined>
  /** The local file a pack is kept in, for stores that keep packs as files (it may be streamed, not read whole). */
  packFile?(pack: string): string
  /** Releases connections and handles; safe to call twice. */
  close(): Promise<void>
}

export interface PutPackOptions {
  /**
   * The SHA-256 (hex) the caller computed over exactly these bytes in this process (the packer names the packs
   * it builds; the hub hashes an upload as it streams in), so the store compares it with the id instead of
   * hashing the bytes again. Never pass a digest someone else claimed: bytes from elsewhere are always hashed.
   */
  readonly sha256?: string
}

export interface WritableStore extends Store {
  readonly writable: true
  /** Chunks the store already holds, by sid; missing sids are absent from the result. */
  lookupChunks(sids: readonly string[]): Promise<Map<string, ChunkLocation>>
  /**
   * Stores one pack atomically (written to a temp name, fsynced, renamed) and records its chunks in the
   * store's index. The pack id must equal the SHA-256 of `data` (hashed, unless `options.sha256` gives the caller's own digest).
   * Idempotent.
   */
  putPack(pack: string, data: Buffer, chunks: readonly ChunkLocation[], options?: PutPackOptions): Promise<void>
  /** Delta hints: the sids a path had the last time it was packed into this store (key is opaque). */
  getPathHint(key: string): Promise<string[] | undefined>
  /** getPathHint for many keys in one call (one index query per few hundred keys); absent keys are left out. */
  getPathHints?(keys: readonly string[]): Promise<Map<string, string[]>>
  setPathHints(hints: ReadonlyMap<string, readonly string[]>): Promise<void>
  stats(): Promise<StoreStats>
}
