// `zos hub …`: run a hub (serve) and use one (push, ls, info, tag, rm, signers). Client commands talk to
// --hub URL (default $ZOS_HUB, else http://127.0.0.1:8080) and sign writes with --key (default
// $ZOS_HOME/key.json).
import type { Command } from 'commander'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { zerr } from '../core/errors.js'
import { emit, formatBytes, parseSize, wantsJson, untilStopped } from './output.js'

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

function zosHome(): string {
  return process.env.ZOS_HOME ?? join(homedir(), '.zos')
}

function parsePort(text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n > 65535) throw zerr('INVALID_ARGUMENT', `--port must be a number 0..65535, got ${text}`)
  return n
}

function size(option: string, text: string): number {
  try {
    return parseSize(text)
  } catch {
    throw zerr('INVALID_ARGUMENT', `${option}: not a size: ${text} (use e.g. 512M, 10G)`)
  }
}

function hours(option: string, text: string): number {
  const n = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n)) throw zerr('INVALID_ARGUMENT', `${option} must be a number of hours, got ${text}`)
  return n
}

function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--hub <url>', 'hub base URL (default $ZOS_HUB, else http://127.0.0.1:8080)')
    .option('--key <file>', 'secp256k1 key file that signs writes (default $ZOS_HOME/key.json)')
    .option('--json', 'print machine-readable JSON on stdout')
}

async function clientFrom(opts: { hub?: string; key?: string }, needKey: boolean) {
  const [{ HubClient }, { loadKey, defaultKeyPath }, { existsSync }] = await Promise.all([import('../hub/client.js'), import('../core/keys.js'), import('node:fs')])
  const keyFile = opts.key ?? defaultKeyPath()
  const key = needKey || opts.key !== undefined || existsSync(keyFile) ? await loadKey(keyFile) : undefined
  return new HubClient(opts.hub, key ? { key } : {})
}

/** NAME from a file or directory name: without .fl/.tar/.tar.gz/… and with unusable characters replaced. */
function defaultName(source: string): string {
  const base = source.replace(/\/+$/, '').split('/').pop() ?? ''
  const name = base.replace(/\.(fl|tar|tar\.gz|tgz|tar\.zst|tzst|tar\.zstd|oci)$/i, '').replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '')
  if (name === '' || name.endsWith('.fl')) throw zerr('INVALID_ARGUMENT', `cannot make a name from ${source}: pass --name NAME[:TAG]`)
  return name.slice(0, 128)
}

async function isFlistFile(path: string): Promise<boolean> {
  const { open } = await import('node:fs/promises')
  const fh = await open(path, 'r')
  try {
    const head = Buffer.alloc(16)
    await fh.read(head, 0, 16, 0)
    return head.toString('latin1') === 'SQLite format 3\0'
  } finally {
    await fh.close()
  }
}

export function registerHub(program: Command): void {
  const hub = program.command('hub').description('the flist hub: serve one, push images to it, list, tag and remove them')

  hub
    .command('serve')
    .description('run a hub: flists and packs over HTTP, uploads, conversion of tar/OCI archives, tags, quotas (until SIGINT/SIGTERM)')
    .option('--data <dir>', 'data directory (default $ZOS_HOME/hub)')
    .option('--port <n>', 'TCP port (0 picks a free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--ledger [dir]', 'identify writers by their twin on the ledger (address book dir; default $ZOS_HOME/ledger); without it, an account address is its own namespace')
    .option('--rpc <url>', 'ledger JSON-RPC URL (default: the address book\'s)')
    .option('--quota <size>', 'storage per twin, e.g. 10G', '10G')
    .option('--quota-for <ns=size>', 'a different quota for one namespace (repeatable)', collect, [])
    .option('--max-pack <size>', 'largest pack upload', '64M')
    .option('--max-flist <size>', 'largest flist metadata upload', '512M')
    .option('--max-archive <size>', 'largest archive uploaded for conversion', '4G')
    .option('--workers <n>', 'worker threads per conversion')
    .option('--gc-grace <hours>', 'keep packs no flist refers to this long before deleting them', '24')
    .option('--public-url <url>', 'base URL clients reach this hub at (default http://HOST:PORT)')
    .option('--log-level <level>', 'pino log level: debug logs every request', 'info')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: Record<string, unknown>, cmd: Command) => {
      const port = parsePort(String(opts.port))
      const quotaFor = new Map<string, number>()
      const { normalizeNs } = await import('../hub/names.js')
      for (const q of opts.quotaFor as string[]) {
        const i = q.indexOf('=')
        if (i <= 0) throw zerr('INVALID_ARGUMENT', `--quota-for ${q}: use NS=SIZE`)
        quotaFor.set(normalizeNs(q.slice(0, i)), size('--quota-for', q.slice(i + 1)))
      }
      const { pino } = await import('pino')
      const log = pino({ level: String(opts.logLevel), base: { svc: 'hub' } }, pino.destination(2))
      const { startHub } = await import('../hub/server.js')
      let directory
      if (opts.ledger !== undefined) {
        const [{ openLedger, defaultLedgerDir }, { LedgerDirectory }] = await Promise.all([import('../ledger/index.js'), import('../hub/auth.js')])
        const ledger = await openLedger({ ledgerDir: typeof opts.ledger === 'string' ? opts.ledger : defaultLedgerDir(), ...(opts.rpc ? { rpcUrl: String(opts.rpc) } : {}) })
        directory = new LedgerDirectory(ledger.twins, () => ledger.close())
      }
      const data = (opts.data as string | undefined) ?? join(zosHome(), 'hub')
      const server = await startHub({
        data,
        host: String(opts.host),
        port,
        quota: size('--quota', String(opts.quota)),
        quotaFor,
        limits: { pack: size('--max-pack', String(opts.maxPack)), flist: size('--max-flist', String(opts.maxFlist)), archive: size('--max-archive', String(opts.maxArchive)) },
        ...(opts.workers ? { workers: Number(opts.workers) } : {}),
        gcGraceMs: hours('--gc-grace', String(opts.gcGrace)) * 3600_000,
        ...(opts.publicUrl ? { publicUrl: String(opts.publicUrl) } : {}),
        ...(directory ? { directory } : {}),
        logger: log,
        onRequest: (e) => (e.method === 'GET' || e.method === 'HEAD' ? log.debug(e, 'request') : log.info(e, 'request')),
      })
      emit(cmd, { url: server.url, data, identity: directory ? 'ledger' : 'address', signer: server.hub.key.address }, (r) => r.url)
      process.stderr.write(`zos: hub at ${server.url} (data ${data}, namespaces by ${directory ? 'twin id' : 'account address'}; Ctrl-C to stop)\n`)
      await untilStopped()
      await server.close()
      process.stderr.write('zos: hub stopped\n')
    })

  withClientOptions(
    hub
      .command('push')
      .description('publish an flist (only the chunks the hub lacks move), or a directory/archive (packed and signed here, then pushed; --convert lets the hub convert an archive)')
      .argument('<source>', 'FILE.fl, a directory, a tar/tar.gz/tar.zst, a docker-save tarball or an OCI archive')
      .option('--name <name[:tag]>', 'NAME[:TAG] to publish as (default: the source file name, tag latest)')
      .option('-s, --store <url>', 'for FILE.fl: the local store holding its packs (default $ZOS_STORE)')
      .option('--convert', 'upload the archive and let the hub convert it (signed by the hub, not by you)')
      .option('--no-latest', 'do not move the latest tag'),
  ).action(async (source: string, opts: Record<string, unknown>, cmd: Command) => {
    const [{ parseRef, hubUrlOf }, push, { createProgress }, fs] = await Promise.all([
      import('../hub/names.js'),
      import('../hub/push.js'),
      import('../core/progress.js'),
      import('node:fs/promises'),
    ])
    const ref = parseRef(opts.name ? String(opts.name) : defaultName(source))
    if (ref.digest) throw zerr('INVALID_ARGUMENT', '--name takes NAME[:TAG], not a digest')
    const client = await clientFrom(opts as { hub?: string; key?: string }, true)
    const bar = createProgress('pushing', { enabled: !wantsJson(cmd) })
    const onProgress = (p: { phase: string; done: number; total: number }): void => {
      bar.setTotal(p.total)
      bar.update(p.done, p.phase)
    }
    try {
      const st = await fs.stat(source).catch(() => undefined)
      if (!st) throw zerr('NOT_FOUND', `${source} does not exist`)
      // Without NS the push learns the namespace from its first query (a conversion asks /whoami).
      const base = { ...(ref.ns !== undefined ? { ns: ref.ns } : {}), name: ref.name, tag: ref.tag ?? 'latest', latest: opts.latest !== false, onProgress }
      if (opts.convert) {
        if (!st.isFile() || (await isFlistFile(source))) throw zerr('INVALID_ARGUMENT', '--convert uploads an archive file (tar, tar.gz, tar.zst, docker save or OCI archive)')
        const r = await push.convertOnHub(client, source, base)
        bar.stop()
        emit(cmd, { ...r, ref: hubUrlOf(client.url, { ns: r.version.ns, name: ref.name, tag: base.tag }) }, (x) =>
          [
            `converted ${source} on the hub into ${x.version.ns}/${x.version.name}:${base.tag}`,
            `  root     ${x.version.root}`,
            `  digest   ${x.version.digest}`,
            `  content  ${formatBytes(x.version.bytes)} in ${x.version.files} files; signed by the hub (${x.version.signers.join(', ')})`,
            `  time     ${x.seconds.toFixed(2)} s`,
            `  use      zos flist mount ${x.ref} DIR`,
          ].join('\n'),
        )
        return
      }
      let r
      if (st.isFile() && (await isFlistFile(source))) {
        const storeUrl = (opts.store as string | undefined) ?? process.env.ZOS_STORE
        const store = storeUrl ? await (await import('../store/open.js')).openStore(storeUrl) : undefined
        try {
          r = await push.pushFlist(client, source, { ...base, ...(store ? { store } : {}) })
        } finally {
          await store?.close()
        }
      } else {
        const { loadKey, defaultKeyPath } = await import('../core/keys.js')
        const key = await loadKey((opts.key as string | undefined) ?? defaultKeyPath())
        r = await push.pushSource(client, source, { ...base, key })
      }
      bar.stop()
      const hubRef = hubUrlOf(client.url, { ns: r.ns, name: r.name, tag: r.tag })
      emit(cmd, { ...r, ref: hubRef }, (x) =>
        [
          `pushed ${x.ns}/${x.name}:${x.tag}${x.latest && x.tag !== 'latest' ? ' (and latest)' : ''}${x.previous === x.version.digest ? ' (unchanged)' : ''}`,
          `  root      ${x.version.root}`,
          `  digest    ${x.version.digest}`,
          `  uploaded  ${x.uploadedPacks} packs, ${formatBytes(x.uploadedBytes)} (${x.wholePacks} whole, ${x.copiedChunks} chunks copied out of packs)`,
          `  reused    ${x.presentChunks} chunks in packs the hub had, ${x.reusedChunks} found elsewhere on the hub`,
          `  metadata  ${formatBytes(x.metadataBytes)}; signed by ${x.version.signers.join(', ')}`,
          `  time      ${x.seconds.toFixed(2)} s`,
          `  use       zos flist mount ${x.ref} DIR`,
        ].join('\n'),
      )
    } finally {
      bar.stop()
      client.close()
    }
  })

  withClientOptions(
    hub
      .command('ls')
      .description('list the flists of a namespace (default: yours), or search the whole hub')
      .argument('[twin]', 'namespace: a twin id or account address (default: the one of --key)')
      .option('--search <text>', 'names containing this text, in every namespace')
      .option('--all', 'every namespace'),
  ).action(async (twin: string | undefined, opts: Record<string, unknown>, cmd: Command) => {
    const client = await clientFrom(opts as { hub?: string; key?: string }, false)
    try {
      let ns = twin
      if (ns === undefined && !opts.all && opts.search === undefined) ns = (await client.whoami()).ns
      const r = await client.list({ ...(ns !== undefined ? { ns } : {}), ...(opts.search ? { q: String(opts.search) } : {}), limit: 1000 })
      emit(cmd, r, (x) =>
        x.items.length === 0
          ? `no flists${ns ? ` in namespace ${ns}` : ''}`
          : x.items
              .map((it) => {
                const v = it.newest
                return `${it.ns}/${it.name}  ${it.tags.map((t) => t.tag).join(',')}  ${formatBytes(v.bytes)} in ${v.files} files  signed by ${v.signers.join(',')}  ${new Date(it.updated).toISOString()}`
              })
              .join('\n'),
      )
    } finally {
      client.close()
    }
  })

  withClientOptions(
    hub
      .command('info')
      .description('versions, tags and tag history of a name')
      .argument('<name>', '[NS/]NAME'),
  ).action(async (text: string, opts: Record<string, unknown>, cmd: Command) => {
    const { parseRef } = await import('../hub/names.js')
    const ref = parseRef(text, { defaultTag: false })
    const client = await clientFrom(opts as { hub?: string; key?: string }, false)
    try {
      const ns = ref.ns ?? (await client.whoami()).ns
      const [detail, history] = await Promise.all([client.detail(ns, ref.name), client.history(ns, ref.name)])
      emit(cmd, { ...detail, history: history.events }, (x) =>
        [
          `${x.ns}/${x.name}`,
          ...x.tags.map((t) => `  tag ${t.tag.padEnd(16)} → ${t.digest.slice(0, 16)}… (root ${t.root.slice(0, 16)}…) since ${new Date(t.updated).toISOString()}`),
          ...x.versions.map((v) => `  version ${v.digest.slice(0, 16)}…  ${formatBytes(v.bytes)} in ${v.files} files, signed by ${v.signers.join(',')}${v.converted ? ' (converted)' : ''}  ${new Date(v.created).toISOString()}`),
          ...x.history.slice(0, 20).map((e) => `  ${new Date(e.at).toISOString()}  ${e.tag} ${e.digest ? `→ ${e.digest.slice(0, 16)}…` : 'removed'} by ${e.actor}`),
        ].join('\n'),
      )
    } finally {
      client.close()
    }
  })

  withClientOptions(
    hub
      .command('tag')
      .description('point a tag at the version another tag (or a digest) names; tags move, their history is kept')
      .argument('<source>', '[NS/]NAME:TAG or [NS/]NAME@DIGEST')
      .argument('<tag>', 'the tag to set (e.g. stable, latest)'),
  ).action(async (sourceText: string, tag: string, opts: Record<string, unknown>, cmd: Command) => {
    const { parseRef, checkTag } = await import('../hub/names.js')
    const src = parseRef(sourceText)
    checkTag(tag)
    const client = await clientFrom(opts as { hub?: string; key?: string }, true)
    try {
      const ns = src.ns ?? (await client.whoami()).ns
      const digest = src.digest ?? (await client.version(ns, src.name, src.tag ?? 'latest')).digest
      const r = await client.moveTag(ns, src.name, tag, digest)
      emit(cmd, r, (x) => `${x.ns}/${x.name}:${x.tag} → ${x.digest}${x.previous ? ` (was ${x.previous})` : ''}`)
    } finally {
      client.close()
    }
  })

  withClientOptions(
    hub
      .command('rm')
      .description('remove a tag (versions no tag names any more are deleted), or with --all a whole name')
      .argument('<ref>', '[NS/]NAME:TAG, or [NS/]NAME with --all')
      .option('--all', 'remove every tag and version of NAME'),
  ).action(async (text: string, opts: Record<string, unknown>, cmd: Command) => {
    const { parseRef } = await import('../hub/names.js')
    const ref = parseRef(text, { defaultTag: false })
    if (ref.digest) throw zerr('INVALID_ARGUMENT', 'remove a tag (NAME:TAG) or a name (NAME --all), not a digest')
    if (!ref.tag && !opts.all) throw zerr('INVALID_ARGUMENT', `say which tag to remove (${ref.name}:TAG), or pass --all to remove ${ref.name} entirely`)
    const client = await clientFrom(opts as { hub?: string; key?: string }, true)
    try {
      const ns = ref.ns ?? (await client.whoami()).ns
      if (ref.tag) {
        const r = await client.removeTag(ns, ref.name, ref.tag)
        emit(cmd, r, (x) => `removed ${ns}/${ref.name}:${ref.tag}${x.removed.length ? `; deleted ${x.removed.length} untagged version(s)` : ''}`)
      } else {
        const r = await client.removeName(ns, ref.name)
        emit(cmd, r, (x) => `removed ${ns}/${ref.name}: tags ${x.tags.join(', ') || 'none'}, ${x.removed.length} version(s)`)
      }
    } finally {
      client.close()
    }
  })

  withClientOptions(
    hub
      .command('signers')
      .description('list, add or remove extra keys whose signatures your namespace accepts (e.g. a CI key)')
      .option('--add <address>', 'accept flists signed by this account (repeatable)', collect, [])
      .option('--remove <address>', 'stop accepting this account (repeatable)', collect, []),
  ).action(async (opts: Record<string, unknown>, cmd: Command) => {
    const add = opts.add as string[]
    const remove = (opts.remove as string[]).map((a) => a.toLowerCase())
    const client = await clientFrom(opts as { hub?: string; key?: string }, true)
    try {
      const me = await client.whoami()
      let r = { ns: me.ns, signers: me.signers }
      if (add.length || remove.length) {
        const next = [...new Set([...me.signers, ...add.map((a) => a.toLowerCase())])].filter((a) => !remove.includes(a))
        r = await client.setSigners(me.ns, next)
      }
      emit(cmd, r, (x) => `namespace ${x.ns} accepts flists signed by ${me.address}${x.signers.length ? ` and ${x.signers.join(', ')}` : ''}`)
    } finally {
      client.close()
    }
  })
}
