// `zos grid up|status|down`: a whole local grid on this machine (ledger, relay, hub, N nodes in network
// namespaces, a farm, a funded user twin and a demo image on the hub). See docs/grid.md.
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { GridStatus } from '../grid/grid.js'
import { emit, wantsJson } from './output.js'
import { parseBytes, parseUint, table } from './ledger-common.js'

function defaultGridDir(): string {
  return join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'grid')
}

const DATA_HELP = 'the grid\'s directory: state of the ledger, hub and nodes, keys, logs (default $ZOS_HOME/grid, i.e. ~/.zos/grid)'

function renderStatus(s: GridStatus): string {
  const mark = (running: boolean): string => (running ? 'up' : 'DOWN')
  const lines = [
    `grid ${s.id} in ${s.dir}: ${s.up ? 'up' : 'not (all) running: `zos grid up` starts what is missing'}`,
    '',
    table(
      ['SERVICE', 'STATE', 'ENDPOINT', 'PID', 'LOG'],
      [
        ['ledger', mark(s.ledger.running), s.ledger.url, s.ledger.pid, s.ledger.log],
        ['relay', mark(s.relay.running), s.relay.url, s.relay.pid, s.relay.log],
        ['hub', mark(s.hub.running), s.hub.url, s.hub.pid, s.hub.log],
      ],
    ),
    '',
    table(['NODE', 'STATE', 'ADDRESS', 'NETNS', 'TWIN', 'PID', 'LOG'], s.nodes.map((n) => [n.nodeId ?? `(#${n.index})`, mark(n.running), n.ip, n.netns, n.twinId, n.pid, n.log])),
    '',
    `farm ${s.farmId}; your twin ${s.user.twin} (${s.user.address}, key ${s.user.key}); bridge ${s.bridge} on ${s.subnet}`,
  ]
  if (s.demo) lines.push(`demo image: ${s.demo}`)
  return lines.join('\n')
}

export function registerGrid(program: Command): Command {
  const grid = program.command('grid').description('a whole local grid on this machine: ledger, relay, hub and nodes in network namespaces')

  grid
    .command('up')
    .description('start a local grid (or bring an existing one back with its deployments); needs root')
    .option('--data <dir>', DATA_HELP)
    .option('--nodes <n>', 'number of node agents, each in its own network namespace (default 3; a grid only grows)')
    .option('--cache-size <size>', 'bound of each node\'s verified chunk cache', '512M')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { data?: string; nodes?: string; cacheSize: string }, cmd: Command) => {
      const { gridUp } = await import('../grid/grid.js')
      const quiet = wantsJson(cmd)
      const started = Date.now()
      const s = await gridUp({
        dir: opts.data ?? defaultGridDir(),
        ...(opts.nodes !== undefined ? { nodes: parseUint(opts.nodes, '--nodes') } : {}),
        cacheBytes: parseBytes(opts.cacheSize, '--cache-size'),
        onStep: (text) => {
          if (!quiet) process.stderr.write(`zos grid: ${text}\n`)
        },
      })
      const first = s.nodes[0]?.nodeId ?? 1
      const data = opts.data ? ` --data ${opts.data}` : ''
      const hints: [string, string][] = [
        [`zos deploy container --node ${first} --flist hub://demo --logs`, 'run the demo image on a node, show its output'],
        ['zos deployment list', 'your deployments (then: zos deployment logs|show|cancel ID)'],
        ['zos node list', 'the nodes on the ledger'],
        ['zos hub ls --all', 'images on the hub (zos hub push DIR|IMAGE.tar --name NAME publishes yours)'],
        [`zos grid status${data}`, 'services, nodes, pids and logs'],
        [`zos grid down${data} [--purge]`, 'stop it all (the state stays unless --purge)'],
      ]
      const width = Math.max(...hints.map(([c]) => c.length))
      emit(cmd, s, (r) =>
        [
          renderStatus(r),
          '',
          `up in ${((Date.now() - started) / 1000).toFixed(1)} s. Every zos command now uses this grid's ledger, hub and your key by default. Try:`,
          ...hints.map(([c, what]) => `  ${c.padEnd(width)}   # ${what}`),
        ].join('\n'),
      )
    })

  grid
    .command('status')
    .description('show the grid\'s services and nodes, their endpoints, pids and logs')
    .option('--data <dir>', DATA_HELP)
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { data?: string }, cmd: Command) => {
      const { gridStatus } = await import('../grid/grid.js')
      const s = await gridStatus(opts.data ?? defaultGridDir())
      emit(cmd, s, renderStatus)
      if (!s.up) process.exitCode = 3
    })

  grid
    .command('down')
    .description('stop everything the grid started, unmount its nodes\' filesystems, remove its namespaces and bridge; the state stays unless --purge')
    .option('--data <dir>', DATA_HELP)
    .option('--purge', 'also delete the grid\'s directory (ledger, hub, nodes, keys): the next `up` makes a new grid')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { data?: string; purge?: boolean }, cmd: Command) => {
      const { gridDown } = await import('../grid/grid.js')
      const quiet = wantsJson(cmd)
      const r = await gridDown(opts.data ?? defaultGridDir(), {
        purge: opts.purge === true,
        onStep: (text) => {
          if (!quiet) process.stderr.write(`zos grid: ${text}\n`)
        },
      })
      emit(cmd, r, (x) =>
        `grid in ${x.dir} stopped: ${x.stopped.join(', ') || 'nothing was running'}; ${x.mounts.length} mounts and ${x.namespaces.length} namespaces removed` +
        (x.purged ? '; its directory was deleted' : '; its state is kept (`zos grid up` brings it back, `--purge` deletes it)'),
      )
    })
  return grid
}
