// The process that serves one flist mount for a node. The node starts it detached, so the mount (and the
// containers whose root sits on it) outlives a restart or upgrade of the agent. It exits when the mount goes
// away (the node unmounts it) or on SIGTERM/SIGINT (it unmounts first). Argument: one JSON object
// {flist, mountpoint, store, cache, cacheBytes, trust[]}. Logs go to stderr (a file the node chose).
import { z } from 'zod'
import { errorMessage } from '../../core/errors.js'
import { DiskChunkCache } from '../../flist/cache.js'
import { mountFlist } from '../../flist/mount.js'
import { reportReady } from '../../flist/ready.js'
import { unmountOnSignals } from '../../fuse/index.js'
import { openStore } from '../../store/open.js'

const ArgsSchema = z.object({
  flist: z.string().min(1),
  mountpoint: z.string().min(1),
  store: z.string().min(1),
  cache: z.string().min(1),
  cacheBytes: z.number().int().positive(),
  trust: z.array(z.string()).default([]),
})

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg, ...fields }) + '\n')
}

async function main(): Promise<void> {
  const args = ArgsSchema.parse(JSON.parse(process.argv[2] ?? '{}'))
  const cache = await DiskChunkCache.open(args.cache, args.cacheBytes)
  const store = await openStore(args.store)
  // The key code takes 60-250 ms to load: only when the node asks for a signer.
  const trust = args.trust.length ? await import('../../core/keys.js').then(({ parseTrust }) => Promise.all(args.trust.map(parseTrust))) : []
  const m = await mountFlist(args.flist, args.mountpoint, {
    store,
    cache,
    trust,
    // Not the RAM-sized default of `zos flist mount`: a node runs one helper per workload and sells its memory to
    // workloads (docs/node.md), so each mount keeps a small fixed share; the page cache serves repeated reads.
    memoryBytes: 64 * 1024 * 1024,
    logger: { warn: (o, msg) => log(msg, o), error: (o, msg) => log(msg, o) },
  })
  log('mounted', { flist: args.flist, mountpoint: m.mountpoint, root: m.reader.root.toString('hex') })
  reportReady()
  const stop = unmountOnSignals(m.fuse, { exit: false })
  const end = await m.fuse.closed
  stop()
  await m.unmount().catch(() => undefined)
  await store.close()
  const s = m.stats()
  log('unmounted', { reason: end.reason, fetchedChunks: s.fetchedChunks, fetchedBytes: s.fetchedBytes, badChunks: s.badChunks })
  process.exit(0)
}

main().catch((err: unknown) => {
  log('mount failed', { err: errorMessage(err), code: (err as { code?: unknown }).code })
  process.exit(1)
})
