// `zos flist …`: pack, inspect, ls, cat, unpack, verify, diff.
import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { zerr } from '../core/errors.js'
import { emit, formatBytes, rendered, wantsJson } from './output.js'

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

function storeOption(value: string | undefined): string {
  const url = value ?? process.env.ZOS_STORE
  if (!url) throw zerr('INVALID_ARGUMENT', 'no store given: pass --store URL (dir:///path or http://host:port) or set ZOS_STORE')
  return url
}

async function trustList(specs: readonly string[]): Promise<{ describe: string; matches(pk: Uint8Array): boolean }[]> {
  if (specs.length === 0) return [] // the key code takes 60-250 ms to load: only when a key is given
  const { parseTrust } = await import('../core/keys.js')
  return Promise.all(specs.map(parseTrust))
}

async function openFlist(path: string, trust: readonly string[] = []) {
  const { FlistReader } = await import('../flist/reader.js')
  return FlistReader.open(path, { trust: await trustList(trust) })
}

/** A hub://… reference becomes a downloaded, checked .fl plus the hub's store; anything else passes through. */
async function resolveFlist(file: string, store: string | undefined): Promise<{ file: string; store: string | undefined }> {
  // The hub client brings zod, tiny-secp256k1 (wasm) and the key code: 100-300 ms of a mount's start under
  // load. Only hub references need it.
  if (!(await import('../hub/names.js')).isHubUrl(file)) return { file, store }
  return (await import('../hub/resolve.js')).resolveFlistArg(file, store)
}

const FLIST_ARG = 'flist metadata file, or hub://[HOST:PORT/][NS/]NAME[:TAG]'


/**
 * Re-runs this command without --daemon as a detached process and returns once that process reports, on a
 * pipe, that the mount is up and its flist verified (or fails with what the child printed). The mount may appear
 * in the mount table before the flist's checks have passed (they overlap with mount(8)): appearing is not ready.
 */
/** What `zos flist mount … --daemon` prints once its serving process (`pid`, logging to `log`) serves. */
function daemonAnswer(cmd: Command, mountpoint: string, pid: number, log: string): string {
  return rendered(cmd, { mountpoint, pid, log }, (r) => `mounted at ${r.mountpoint} (pid ${r.pid}, log ${r.log}); stop with \`zos flist umount ${r.mountpoint}\``)
}

async function daemonize(mountpoint: string, cmd: Command): Promise<void> {
  const [fs, path, ready, { takeMountDaemon }] = await Promise.all([import('node:fs'), import('node:path'), import('../flist/ready.js'), import('./mount-daemon.js')])
  const target = path.resolve(mountpoint)
  const { child, logFile } = takeMountDaemon()
  const { state, failure } = await ready.awaitReady(child)
  if (state !== 'ready') {
    const out = fs.readFileSync(logFile, 'utf8').trim()
    fs.rmSync(logFile, { force: true })
    if (state === 'timeout') {
      child.kill()
      throw zerr('TIMEOUT', `the mount did not come up${out ? `: ${out}` : ''}`)
    }
    // The serving process's own error (code and message), as it reported it on the ready pipe.
    throw failure ?? zerr('MOUNT_FAILED', out.replace(/^zos: /, '') || 'the mount did not come up')
  }
  child.unref()
  process.stdout.write(daemonAnswer(cmd, target, child.pid!, logFile))
  // Done, and a workload is waiting for this command to return: leave now rather than tear the runtime down
  // (20-40 ms here between the answer and the exit). Output to files, pipes and terminals is written
  // synchronously on Linux, so it is all out.
  process.exit(0)
}

function modeString(mode: number): string {
  const types: Record<number, string> = { 0o140000: 's', 0o120000: 'l', 0o100000: '-', 0o060000: 'b', 0o040000: 'd', 0o020000: 'c', 0o010000: 'p' }
  let s = types[mode & 0o170000] ?? '?'
  const rwx = ['r', 'w', 'x']
  for (let i = 8; i >= 0; i--) s += mode & (1 << i) ? rwx[(8 - i) % 3] : '-'
  const chars = s.split('')
  if (mode & 0o4000) chars[3] = chars[3] === 'x' ? 's' : 'S'
  if (mode & 0o2000) chars[6] = chars[6] === 'x' ? 's' : 'S'
  if (mode & 0o1000) chars[9] = chars[9] === 'x' ? 't' : 'T'
  return chars.join('')
}

function isoTime(ns: bigint): string {
  return new Date(Number(ns / 1000000n)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '')
}

export function registerFlist(program: Command): void {
  const flist = program.command('flist').description('pack, inspect, verify, unpack and mount flists')

  flist
    .command('pack')
    .description('pack a directory, tar archive (plain, gzip, zstd; - for stdin) or OCI image into an flist')
    .argument('<source>', 'directory, tar file, docker-save tarball or OCI layout directory')
    .requiredOption('-o, --output <file>', 'flist metadata file to write (e.g. image.fl)')
    .option('-s, --store <url>', 'store for the chunks (dir:///path); default $ZOS_STORE')
    .option('--encrypt', 'encrypt chunks with AES-256-GCM (the key is kept in the flist: keep it private)')
    .option('--sign <keyfile>', 'sign the flist root with this publisher key (repeatable)', collect, [])
    .option('--level <n>', 'zstd level 1-19', '3')
    .option('--tag <key=value>', 'add a tag (repeatable)', collect, [])
    .option('--prefetch <listfile>', 'what to fetch first at mount, one `/path` or `OFFSET+LENGTH /path` per line (e.g. from `zos flist mount --trace`)')
    .option('--no-delta', 'do not delta-compress against earlier versions in the store')
    .option('--workers <n>', 'worker threads (default: number of cores)')
    .action(async (source: string, opts: Record<string, unknown>, cmd: Command) => {
      // Usually started by cli/prestart.ts already, with the getfattr helper of a directory source.
      const pool = (await import('../flist/pack-pool.js')).takePackPool(opts.workers === undefined ? undefined : Number(opts.workers))
      const [{ pack }, { openSource }, { openWritableStore }, { createProgress }] = await Promise.all([
        import('../flist/pack.js'),
        import('../flist/source/open.js'),
        import('../store/open.js'),
        import('../core/progress.js'),
      ])
      const loadKey = async (path: string) => (await import('../core/keys.js')).loadKey(path)
      const tags: Record<string, string> = {}
      for (const t of opts.tag as string[]) {
        const i = t.indexOf('=')
        if (i <= 0) throw zerr('INVALID_ARGUMENT', `--tag ${t}: use key=value`)
        tags[t.slice(0, i)] = t.slice(i + 1)
      }
      const prefetch = opts.prefetch ? (await import('../flist/prefetch.js')).parsePrefetchList(await readFile(String(opts.prefetch), 'utf8')) : undefined
      const signers = await Promise.all((opts.sign as string[]).map(loadKey))
      const store = await openWritableStore(storeOption(opts.store as string | undefined))
      const src = await openSource(source)
      const progress = createProgress('packing', { enabled: !wantsJson(cmd) })
      try {
        const result = await pack({
          source: src,
          output: String(opts.output),
          store,
          level: Number(opts.level),
          encrypt: Boolean(opts.encrypt),
          signers,
          tags,
          ...(prefetch ? { prefetch } : {}),
          delta: opts.delta !== false,
          pool,
          onProgress: (bytes, path) => progress.update(bytes, path),
        })
        progress.stop()
        emit(cmd, result, (r) =>
          [
            `packed ${src.description} into ${r.output}`,
            `  root       ${r.root}`,
            `  tree       ${r.files} files, ${r.dirs} dirs, ${r.symlinks} symlinks, ${r.hardlinks} hard links, ${r.specials} special`,
            `  content    ${formatBytes(r.bytes)} in ${r.chunks} chunks`,
            `  new        ${r.newChunks} chunks (${r.deltaChunks} as deltas), ${formatBytes(r.storedBytes)} in ${r.packs} packs`,
            `  time       ${r.seconds.toFixed(2)} s (${(r.bytes / 1048576 / Math.max(r.seconds, 1e-6)).toFixed(0)} MiB/s)`,
          ].join('\n'),
        )
      } finally {
        progress.stop()
        await pool.close()
        await store.close()
      }
      // Written, synced and closed: exit now rather than drain the event loop first (20–40 ms here).
      process.exit()
    })

  flist
    .command('inspect')
    .description('summary of an flist: files, bytes, chunks, dedup, tags, signers')
    .argument('<file>', 'flist metadata file')
    .option('--trust <key>', 'require a valid signature by this key (address, public key or key file; repeatable)', collect, [])
    .action(async (file: string, opts: { trust: string[] }, cmd: Command) => {
      const reader = await openFlist(file, opts.trust)
      try {
        const s = reader.summary()
        emit(cmd, s, (r) =>
          [
            `flist ${file} (format v${r.version})`,
            `  root        ${r.root}`,
            `  files       ${r.files} (${formatBytes(r.bytes)}), ${r.dirs} dirs, ${r.symlinks} symlinks, ${r.hardlinks} hard links, ${r.specials} special`,
            `  chunks      ${r.chunks} (${r.deltaChunks} deltas) in ${r.packs} packs; unique ${formatBytes(r.uniqueBytes)}, stored ${formatBytes(r.storedBytes)}`,
            `  dedup       ${r.dedupRatio.toFixed(2)}x`,
            `  chunker     ${r.chunker.algorithm} ${r.chunker.min}/${r.chunker.avg}/${r.chunker.max}`,
            `  encryption  ${r.encryption}`,
            `  prefetch    ${r.prefetch} ${r.version >= 2 ? 'ranges' : 'files'}`,
            `  signers     ${r.signers.length ? r.signers.map((x) => `${x.address} (${x.valid ? 'valid' : 'INVALID'})`).join(', ') : 'none'}`,
            ...Object.entries(r.tags).map(([k, v]) => `  tag         ${k} = ${v}`),
          ].join('\n'),
        )
      } finally {
        reader.close()
      }
    })

  flist
    .command('ls')
    .description('list a directory of an flist')
    .argument('<file>', 'flist metadata file')
    .argument('[path]', 'directory or file inside the flist', '/')
    .option('-R, --recursive', 'list everything below path')
    .action(async (file: string, path: string, opts: { recursive?: boolean }, cmd: Command) => {
      const reader = await openFlist(file)
      try {
        const node = reader.resolve(path)
        const base = path.replace(/^\/+|\/+$/g, '')
        let rows: { path: string; inode: import('../flist/reader.js').Inode }[]
        if (opts.recursive) rows = [...reader.walk(node.ino, base)].filter((r) => r.path !== base || node.type !== 'dir')
        else if (node.type === 'dir') rows = reader.readdir(node.ino).map((d) => ({ path: base ? `${base}/${d.name}` : d.name, inode: reader.inode(d.ino)! }))
        else rows = [{ path: base, inode: node }]
        const list = rows.map(({ path: p, inode }) => ({
          path: '/' + p,
          type: inode.type,
          mode: (inode.mode & 0o7777).toString(8),
          uid: inode.uid,
          gid: inode.gid,
          size: inode.size,
          mtime: inode.mtime,
          ...(inode.target ? { target: inode.target.toString('utf8') } : {}),
        }))
        emit(cmd, list, (l) =>
          l
            .map((r, i) => {
              const inode = rows[i]!.inode
              const name = r.target !== undefined ? `${r.path} -> ${r.target}` : r.path
              return `${modeString(inode.mode)} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ${String(r.size).padStart(12)} ${isoTime(inode.mtime)} ${name}`
            })
            .join('\n'),
        )
      } finally {
        reader.close()
      }
    })

  flist
    .command('cat')
    .description('print a file of an flist (fetched and verified from the store)')
    .argument('<file>', FLIST_ARG)
    .argument('<path>', 'file inside the flist')
    .option('-s, --store <url>', 'store holding the chunks; default $ZOS_STORE')
    .option('--trust <key>', 'require a valid signature by this key (repeatable)', collect, [])
    .action(async (file: string, path: string, opts: { store?: string; trust: string[] }) => {
      const [{ openStore }, { ChunkFetcher }] = await Promise.all([import('../store/open.js'), import('../flist/fetch.js')])
      const src = await resolveFlist(file, opts.store)
      const reader = await openFlist(src.file, opts.trust)
      const store = await openStore(storeOption(src.store))
      try {
        const node = reader.resolve(path)
        if (node.type !== 'file') throw zerr('INVALID_ARGUMENT', `${path} is a ${node.type}, not a file`)
        const fetcher = new ChunkFetcher(reader, store)
        const extents = reader.extents(node.ino)
        for (let i = 0; i < extents.length; i += 64) {
          for (const plain of await fetcher.fetch(extents.slice(i, i + 64).map((e) => e.chunk))) {
            if (!process.stdout.write(plain)) await new Promise((r) => process.stdout.once('drain', r))
          }
        }
      } finally {
        reader.close()
        await store.close()
      }
    })

  flist
    .command('unpack')
    .description('unpack an flist into a new (or empty) directory; nothing appears there unless it all succeeds')
    .argument('<file>', FLIST_ARG)
    .argument('<dir>', 'target directory')
    .option('-s, --store <url>', 'store holding the chunks; default $ZOS_STORE')
    .option('--trust <key>', 'require a valid signature by this key (repeatable)', collect, [])
    .action(async (file: string, dir: string, opts: { store?: string; trust: string[] }, cmd: Command) => {
      const [{ openStore }, { unpack }, { createProgress }] = await Promise.all([import('../store/open.js'), import('../flist/unpack.js'), import('../core/progress.js')])
      const src = await resolveFlist(file, opts.store)
      const reader = await openFlist(src.file, opts.trust)
      const store = await openStore(storeOption(src.store))
      const progress = createProgress('unpacking', { enabled: !wantsJson(cmd) })
      progress.setTotal(reader.summary().bytes)
      try {
        const r = await unpack(reader, store, dir, { onProgress: (b) => progress.update(b) })
        progress.stop()
        for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
        emit(cmd, r, (x) => `unpacked ${x.files} files (${formatBytes(x.bytes)}) into ${x.target}`)
      } finally {
        progress.stop()
        reader.close()
        await store.close()
      }
    })

  flist
    .command('verify')
    .description('check the signature and that every chunk is in the store and matches its id')
    .argument('<file>', FLIST_ARG)
    .option('-s, --store <url>', 'store holding the chunks; default $ZOS_STORE')
    .option('--trust <key>', 'require a valid signature by this key (repeatable)', collect, [])
    .action(async (file: string, opts: { store?: string; trust: string[] }, cmd: Command) => {
      const [{ openStore }, { verify }, { createProgress }] = await Promise.all([import('../store/open.js'), import('../flist/verify.js'), import('../core/progress.js')])
      const src = await resolveFlist(file, opts.store)
      const reader = await openFlist(src.file, opts.trust)
      const store = await openStore(storeOption(src.store))
      const progress = createProgress('verifying', { enabled: !wantsJson(cmd), unit: 'items' })
      try {
        const r = await verify(reader, store, {
          onProgress: (done, total) => {
            progress.setTotal(total)
            progress.update(done)
          },
        })
        progress.stop()
        emit(cmd, r, (x) =>
          [
            `${x.ok ? 'OK' : 'FAILED'}: ${file}`,
            `  root     ${x.root}`,
            `  signers  ${x.signers.length ? x.signers.map((s) => `${s.address} (${s.valid ? 'valid' : 'INVALID'})`).join(', ') : 'none'}`,
            `  chunks   ${x.chunks} checked, ${formatBytes(x.bytes)}; ${x.problems.length} bad`,
            ...x.problems.map((p) => `  ${p.code} ${p.sid}${p.file ? ` (used by /${p.file})` : ''}: ${p.message}`),
          ].join('\n'),
        )
        if (!r.ok) process.exitCode = r.problems.length ? 12 : 13
      } finally {
        progress.stop()
        reader.close()
        await store.close()
      }
    })

  flist
    .command('mount')
    .description('mount an flist read-only (lazy, verified fetching); with --writable, an overlay on top of it')
    .argument('<file>', FLIST_ARG)
    .argument('<mountpoint>', 'an existing empty directory')
    .option('-s, --store <url>', 'store holding the chunks; default $ZOS_STORE')
    .option('--cache <dir>', 'chunk cache shared by all mounts (default $ZOS_HOME/cache or ~/.zos/cache)')
    .option('--cache-size <size>', 'bound of the chunk cache, e.g. 2G', '2G')
    .option('--memory-cache <size>', "verified chunks this mount keeps in memory, e.g. 256M; 'auto': 1/16 of the RAM, 64M-1G", 'auto')
    .option('--trust <key>', 'require a valid signature by this key (repeatable)', collect, [])
    .option('--writable <dir>', 'mount an overlayfs at the mountpoint: the flist below, DIR/upper and DIR/work on local disk')
    .option('--trace <file>', 'record which parts of which files are read, in order, for `zos flist pack --prefetch`')
    .option('--no-prefetch', "do not fetch the flist's prefetch list at mount")
    .option('--daemon', 'run in the background once mounted (stop it with `zos flist umount`)')
    .action(async (file: string, mountpoint: string, opts: Record<string, unknown>, cmd: Command) => {
      // The launcher (bin/zos) started this process as the serving one already: serve (flist/ready.ts).
      if (opts.daemon && process.env.ZOS_MOUNT_LAUNCHER === undefined) return daemonize(mountpoint, cmd)
      const [{ startMount, unmountOnSignals }, { assertMountable, FLIST_SUBTYPE, flistFsname }, { parseSize }, fs, path, os] = await Promise.all([
        import('../fuse/index.js'),
        import('../flist/mount-options.js'),
        import('./output.js'),
        import('node:fs'),
        import('node:path'),
        import('node:os'),
      ])
      assertMountable()
      const cacheBytes = parseSize(String(opts.cacheSize))
      const memoryBytes = opts.memoryCache === 'auto' ? undefined : parseSize(String(opts.memoryCache))
      const src = await resolveFlist(file, opts.store as string | undefined)
      // Before the cache is opened (and its directory made): a mistyped flist path changes nothing on disk.
      if (!fs.existsSync(src.file)) throw zerr('NOT_FOUND', `flist ${src.file} does not exist`, { path: src.file })
      const writable = opts.writable as string | undefined
      const flistAt = writable ? path.join(writable, 'lower') : mountpoint
      if (writable) fs.mkdirSync(flistAt, { recursive: true })
      // mount(8) and the FUSE reader thread now, while the flist, cache and store code loads (60-100 ms here): the
      // kernel holds every request until the session starts, after the flist's checks.
      const pending = startMount(flistAt, { fsname: flistFsname(src.file), subtype: FLIST_SUBTYPE })
      const [{ mountFlist }, { DiskChunkCache }, { openStore }, overlay, { reportReady, readVerdict, FLIST_FD_ENV, VERDICT_FD_ENV }] = await Promise.all([
        import('../flist/mount.js'),
        import('../flist/cache.js'),
        import('../store/open.js'),
        import('../flist/overlay.js'),
        import('../flist/ready.js'),
      ])
      const cacheDir = (opts.cache as string | undefined) ?? path.join(process.env.ZOS_HOME ?? path.join(os.homedir(), '.zos'), 'cache')
      const cache = await DiskChunkCache.open(cacheDir, cacheBytes)
      const store = await openStore(storeOption(src.store))
      // Started by `--daemon`, which handed over the flist file open (fd 4) and checks it meanwhile (verdict on fd 5).
      const inherited = process.env[FLIST_FD_ENV] === '4' && process.env[VERDICT_FD_ENV] === '5'
      delete process.env[FLIST_FD_ENV]
      delete process.env[VERDICT_FD_ENV]
      const trust = await trustList(opts.trust as string[])
      const verified = inherited && trust.length === 0 ? readVerdict(5) : undefined
      verified?.catch(() => {}) // a failure fails the mount (mountFlist)
      const m = await mountFlist(inherited ? '/proc/self/fd/4' : src.file, flistAt, {
        store,
        cache,
        trust,
        name: src.file,
        ...(verified ? { verified } : {}),
        prefetch: opts.prefetch !== false,
        ...(memoryBytes !== undefined ? { memoryBytes } : {}),
        ...(opts.trace ? { traceFile: String(opts.trace) } : {}),
        fuse: { pending },
      })
      if (writable) {
        try {
          await overlay.mountOverlay({ lower: m.mountpoint, upper: path.join(writable, 'upper'), work: path.join(writable, 'work'), target: mountpoint })
        } catch (err) {
          await m.unmount()
          throw err
        }
      }
      const stopSignals = unmountOnSignals(m.fuse, { exit: false })
      const onSignal = (): void => {
        if (writable) void overlay.unmount(mountpoint).catch(() => {})
      }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      // Without a pause first: the prefetch list's first answers are arriving, and decoding them would come before
      // the waiting caller learns that the mount serves.
      const log = process.env.ZOS_MOUNT_LAUNCHER
      reportReady(log === undefined ? '' : daemonAnswer(cmd, path.resolve(mountpoint), process.pid, log))
      emit(cmd, { mountpoint, flist: file, root: m.reader.root.toString('hex'), pid: process.pid, writable: writable ?? null }, (r) =>
        `mounted ${r.flist} at ${r.mountpoint}${writable ? ` (writable overlay, changes in ${writable}/upper)` : ''}; stop with Ctrl-C or \`zos flist umount ${r.mountpoint}\``,
      )
      const end = await m.fuse.closed
      stopSignals()
      await m.unmount()
      await store.close()
      const s = m.stats()
      process.stderr.write(`unmounted ${mountpoint} (${end.reason}); fetched ${s.fetchedChunks} chunks (${formatBytes(s.fetchedBytes)}, ${formatBytes(s.fetchedPlainBytes)} plaintext) for ${formatBytes(s.readBytes)} read, ${formatBytes(s.pushedBytes)} stored into the page cache\n`)
    })

  flist
    .command('umount')
    .description('unmount an flist mount (and the overlay on it); the serving process exits')
    .argument('<mountpoint>', 'where it is mounted')
    .action(async (mountpoint: string, _opts: unknown, cmd: Command) => {
      const { unmountRoot } = await import('../flist/overlay.js')
      const r = await unmountRoot(mountpoint)
      emit(cmd, r, (x) => `unmounted ${x.unmounted.join(', ')}`)
    })

  flist
    .command('diff')
    .description('compare two flists: added, removed and changed paths, and the new bytes B needs')
    .argument('<a>', 'old flist')
    .argument('<b>', 'new flist')
    .action(async (a: string, b: string, _opts: unknown, cmd: Command) => {
      const { diff } = await import('../flist/diff.js')
      const ra = await openFlist(a)
      const rb = await openFlist(b)
      try {
        const r = diff(ra, rb)
        emit(cmd, r, (x) =>
          [
            ...x.changes.map((c) => `${c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : 'M'} /${c.path}${c.what ? `  (${c.what.join(', ')})` : ''}`),
            `${x.changes.length} changes; ${formatBytes(x.newBytes)} of new content, ${formatBytes(x.sharedBytes)} shared`,
          ].join('\n'),
        )
        if (r.changes.length > 0) process.exitCode = 1
      } finally {
        ra.close()
        rb.close()
      }
    })
}
