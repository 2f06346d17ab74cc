// `zos deploy container`: build, sign and deploy a container on a node (contract, message, results).
//   zos deploy container --node N --flist URL --cpu C --memory M [--disk SIZE] [--volume SIZE:PATH]...
//                        [--env K=V]... [--entrypoint CMD] [--name NAME] [--no-wait]
import type { Command } from 'commander'
import { setTimeout as sleep } from 'node:timers/promises'
import type { GridClient } from '../client/client.js'
import { emit } from './output.js'
import { parseBytes, parseId, parseUint, withLedgerOptions } from './ledger-common.js'
import { renderDeployment, withClient, type ClientCliOptions } from './deployment.js'

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

interface ContainerOptions extends ClientCliOptions {
  node: string
  flist: string
  cpu: string
  memory: string
  disk?: string
  volume: string[]
  env: string[]
  entrypoint?: string
  name: string
  description?: string
  wait: boolean
  timeout: string
  logs?: boolean
}

/**
 * The container's first output: polls its log until something was written and then nothing more for a second
 * (or `timeoutMs` passed). What `--logs` prints, so a user sees the workload run without a second command.
 */
async function firstOutput(client: GridClient, contractId: number, name: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  let stableSince = Date.now()
  while (Date.now() < deadline) {
    const { log } = await client.logs(contractId, name)
    if (log !== last) {
      last = log
      stableSince = Date.now()
    } else if (last !== '' && Date.now() - stableSince >= 1000) break
    await sleep(250)
  }
  return last
}

export function registerDeploy(program: Command): Command {
  const deploy = program.command('deploy').description('deploy workloads on nodes (signed deployment + node contract)')
  withLedgerOptions(
    deploy
      .command('container')
      .description('deploy a container (zmachine) from an flist, with optional volumes')
      .requiredOption('--node <id>', 'node to deploy on')
      .requiredOption('--flist <url>', 'flist: hub://[HOST:PORT/][NS/]NAME[:TAG] (pinned to its current digest), an http(s):// URL of the .fl file, or a path on the node')
      .option('--cpu <cores>', 'CPU cores', '1')
      .option('--memory <size>', 'memory, e.g. 512M', '256M')
      .option('--disk <size>', 'root filesystem size (default: the node\'s, 1 GiB)')
      .option('--volume <size:path>', 'a volume of SIZE mounted at PATH (repeatable)', collect, [])
      .option('--env <k=v>', 'an environment variable (repeatable)', collect, [])
      .option('--entrypoint <cmd>', 'command to run (default: the flist\'s entrypoint and cmd)')
      .option('--name <name>', 'workload name', 'vm')
      .option('--description <text>', 'deployment description')
      .option('--relay <url>', 'relay to use (default: the twin\'s relays on the ledger; repeatable)', collect, [])
      .option('--no-wait', 'return once the node accepted the deployment')
      .option('--timeout <s>', 'seconds to wait for the results', '120')
      .option('--logs', 'then wait for the container\'s first output and print it'),
    { key: 'required' },
  ).action(async (opts: ContainerOptions, cmd: Command) => {
    const { containerDeployment, parseEnv, parseVolumeSpec } = await import('../client/build.js')
    const nodeId = parseId(opts.node, '--node')
    const timeout = parseUint(opts.timeout, '--timeout')
    const flist = await (await import('../hub/resolve.js')).pinFlistUrl(opts.flist)
    let output: string | undefined
    const result = await withClient(cmd, opts, async (client) => {
      const d = containerDeployment({
        twinId: client.twinId,
        flist,
        cpu: parseUint(opts.cpu, '--cpu'),
        memory: parseBytes(opts.memory, '--memory'),
        rootSize: opts.disk ? parseBytes(opts.disk, '--disk') : 0,
        volumes: opts.volume.map((v) => parseVolumeSpec(v, parseBytes)),
        env: parseEnv(opts.env),
        ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint } : {}),
        name: opts.name,
        ...(opts.description ? { description: opts.description } : {}),
      })
      const r = await client.deploy(nodeId, d, { waitMs: opts.wait ? timeout * 1000 : 0 })
      const ok = r.deployment.workloads.every((w) => w.result?.state === 'ok')
      if (opts.logs && ok) output = await firstOutput(client, r.contractId, opts.name, timeout * 1000)
      return r
    })
    emit(cmd, { contract: result.contractId, node: result.nodeId, deployment: result.deployment, ...(output !== undefined ? { output } : {}) }, (r) =>
      [
        `deployed as contract ${r.contract} on node ${r.node}`,
        renderDeployment(r.deployment),
        ...(r.output !== undefined ? ['', `output of ${opts.name} (more: zos deployment logs ${r.contract} --follow):`, r.output.trimEnd()] : []),
      ].join('\n'),
    )
    const failed = result.deployment.workloads.filter((w) => w.result?.state === 'error')
    if (failed.length > 0) process.exitCode = 1
  })
  return deploy
}
