// `zos store ...`: serve a dir:// store over HTTP, show a store's totals.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import { emit, formatBytes, untilStopped } from './output.js'

function parsePort(text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n > 65535) throw zerr('INVALID_ARGUMENT', `--port must be a number 0..65535, got ${text}`)
  return n
}

export function registerStore(program: Command): void {
  const store = program.command('store').description('chunk stores: serve a dir:// store over HTTP, show statistics')

  store
    .command('serve')
    .description('serve the packs of a dir store read-only over HTTP (GET /packs/<id> with Range) until SIGINT/SIGTERM')
    .argument('<dir>', 'store directory: a path or dir:// URL')
    .option('--port <n>', 'TCP port (0 picks a free one)', '0')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .action(async (dir: string, opts: { port: string; host: string }, cmd: Command) => {
      const port = parsePort(opts.port)
      const { parseStoreUrl } = await import('../store/open.js')
      const { serveStore } = await import('../store/serve.js')
      const loc = parseStoreUrl(dir)
      if (loc.kind !== 'dir') throw zerr('INVALID_ARGUMENT', `zos store serve serves a local directory, not ${loc.url}`)
      const server = await serveStore({ root: loc.path, host: opts.host, port })
      emit(cmd, { url: server.url, root: loc.path }, (r) => r.url)
      process.stderr.write(`zos: serving store ${loc.path} at ${server.url} (Ctrl-C to stop)\n`)
      await untilStopped()
      await server.close()
      process.stderr.write('zos: store server stopped\n')
    })

  store
    .command('stats')
    .description('show how many packs, bytes and chunks a store holds')
    .argument('<url>', 'store URL: dir://PATH, a path, or http(s)://HOST[/BASE] served by zos store serve')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (url: string, _opts: unknown, cmd: Command) => {
      const { openStore } = await import('../store/open.js')
      const { DirStore } = await import('../store/dir.js')
      const { HttpStore } = await import('../store/http.js')
      const s = await openStore(url)
      try {
        if (!(s instanceof DirStore) && !(s instanceof HttpStore)) throw zerr('UNSUPPORTED', `store ${s.url} does not report statistics`)
        const totals = await s.stats()
        emit(cmd, { url: s.url, ...totals }, (r) => `store   ${r.url}\npacks   ${r.packs}\nbytes   ${r.bytes} (${formatBytes(r.bytes)})\nchunks  ${r.chunks}`)
      } finally {
        await s.close()
      }
    })
}
