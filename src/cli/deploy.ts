// `zos deploy container`: build, sign and deploy a container on a node (contract, message, results).
//   zos deploy container --node N --flist URL --cpu C --memory M [--disk SIZE] [--volume SIZE:PATH]...
//                        [--env K=V]... [--entrypoint CMD] [--name NAME] [--no-wait]
import type { Command } from 'commander'
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
}

export function registerDeploy(program: Command): Command {
  const deploy = program.command('deploy').description('deploy workloads on nodes (signed deployment + node contract)')
  withLedgerOptions(
    deploy
      .command('container')
      .description('deploy a container (zmachine) from an flist, with optional volumes')
      .requiredOption('--node <id>', 'node to deploy on')
      .requiredOption('--flist <url>', 'flist: an http(s):// URL of the .fl file, or a path on the node')
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
      .option('--timeout <s>', 'seconds to wait for the results', '120'),
    { key: 'required' },
  ).action(async (opts: ContainerOptions, cmd: Command) => {
    const { containerDeployment, parseEnv, parseVolumeSpec } = await import('../client/build.js')
    const nodeId = parseId(opts.node, '--node')
    const timeout = parseUint(opts.timeout, '--timeout')
    const result = await withClient(cmd, opts, async (client) => {
      const d = containerDeployment({
        twinId: client.twinId,
        flist: opts.flist,
        cpu: parseUint(opts.cpu, '--cpu'),
        memory: parseBytes(opts.memory, '--memory'),
        rootSize: opts.disk ? parseBytes(opts.disk, '--disk') : 0,
        volumes: opts.volume.map((v) => parseVolumeSpec(v, parseBytes)),
        env: parseEnv(opts.env),
        ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint } : {}),
        name: opts.name,
        ...(opts.description ? { description: opts.description } : {}),
      })
      return client.deploy(nodeId, d, { waitMs: opts.wait ? timeout * 1000 : 0 })
    })
    emit(cmd, { contract: result.contractId, node: result.nodeId, deployment: result.deployment }, (r) => `deployed as contract ${r.contract} on node ${r.node}\n${renderDeployment(r.deployment)}`)
    const failed = result.deployment.workloads.filter((w) => w.result?.state === 'error')
    if (failed.length > 0) process.exitCode = 1
  })
  return deploy
}
