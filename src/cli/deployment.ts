// `zos deployment list|show|logs|update|cancel`: the caller's deployments, read from their nodes through the
// relay, changed by signed updates, deleted by cancelling their contract.
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { GridClient } from '../client/client.js'
import type { Deployment } from '../node/types/deployment.js'
import { emit } from './output.js'
import { kv, parseBytes, parseId, parseUint, table, when, withLedgerOptions } from './ledger-common.js'

export interface ClientCliOptions {
  rpc?: string
  ledger?: string
  key?: string
  relay?: string[]
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

/** Opens the ledger with the key, connects a client for its twin, runs `fn`, closes everything. */
export async function withClient<T>(cmd: Command, opts: ClientCliOptions, fn: (client: GridClient) => Promise<T>): Promise<T> {
  const [{ ledgerFrom }, { GridClient }, { loadKey, defaultKeyPath }] = await Promise.all([import('./ledger-common.js'), import('../client/client.js'), import('../core/keys.js')])
  const key = await loadKey(opts.key ?? defaultKeyPath())
  const ledger = await ledgerFrom(cmd, true)
  let client: GridClient | undefined
  try {
    client = await GridClient.connect({ ledger, key, relays: opts.relay ?? [] })
    return await fn(client)
  } finally {
    await client?.close()
    await ledger.close()
  }
}

function summary(d: Deployment): string {
  const counts = new Map<string, number>()
  for (const w of d.workloads) counts.set(w.result?.state ?? 'init', (counts.get(w.result?.state ?? 'init') ?? 0) + 1)
  return [...counts].map(([s, n]) => `${n} ${s}`).join(', ')
}

export function renderDeployment(d: Deployment): string {
  const head = kv([
    ['contract', d.contract_id],
    ['twin', d.twin_id],
    ['version', d.version],
    ['description', d.description],
  ])
  const rows = d.workloads.map((w) => {
    const data = w.result?.data as Record<string, unknown> | undefined
    const detail = w.type === 'zmachine' ? `${(w.data as { flist: string }).flist}` : w.type === 'volume' || w.type === 'zmount' ? `${(w.data as { size: number }).size} bytes` : ''
    return [w.name, w.type, w.version, w.result?.state ?? 'init', when(w.result?.created ?? 0), detail, w.result?.message || (data && typeof data.id === 'string' ? data.id : '')]
  })
  return `${head}\n\n${table(['NAME', 'TYPE', 'VERSION', 'STATE', 'SINCE', 'WHAT', 'MESSAGE'], rows)}`
}

export function registerDeployment(program: Command): Command {
  const dep = program.command('deployment').description('your deployments: list, show, logs, update, cancel')
  const opts = (c: Command): Command => withLedgerOptions(c.option('--relay <url>', 'relay to use (default: the twin\'s relays; repeatable)', collect, []), { key: 'required' })

  opts(dep.command('list').description('your live node contracts and what their nodes report')).action(async (o: ClientCliOptions, cmd: Command) => {
    const list = await withClient(cmd, o, (c) => c.list())
    emit(cmd, list, (l) =>
      table(
        ['CONTRACT', 'NODE', 'STATE', 'VERSION', 'WORKLOADS', 'DESCRIPTION'],
        l.map((x) => [x.contractId, x.nodeId, x.state, x.deployment?.version ?? '', x.deployment ? summary(x.deployment) : x.error, x.deployment?.description ?? '']),
      ),
    )
  })

  opts(dep.command('show').description('a deployment with the result of each workload').argument('<contract>', 'contract id').option('--changes', 'show the full result history')).action(
    async (idText: string, o: ClientCliOptions & { changes?: boolean }, cmd: Command) => {
      const id = parseId(idText, 'contract id')
      if (o.changes) {
        const changes = await withClient(cmd, o, (c) => c.changes(id))
        emit(cmd, changes, (l) => table(['WHEN', 'NAME', 'TYPE', 'VERSION', 'STATE', 'MESSAGE'], l.map((w) => [when(w.result.created), w.name, w.type, w.version, w.result.state, w.result.message])))
        return
      }
      emit(cmd, await withClient(cmd, o, (c) => c.get(id)), renderDeployment)
    },
  )

  opts(
    dep
      .command('logs')
      .description('the console log of a container')
      .argument('<contract>', 'contract id')
      .option('--workload <name>', 'zmachine name (default: the only one)')
      .option('--bytes <n>', 'how much of the end of the log', '65536')
      .option('--follow', 'keep printing new output until interrupted'),
  ).action(async (idText: string, o: ClientCliOptions & { workload?: string; bytes: string; follow?: boolean }, cmd: Command) => {
    const id = parseId(idText, 'contract id')
    const bytes = parseUint(o.bytes, '--bytes')
    await withClient(cmd, o, async (c) => {
      let name = o.workload
      if (!name) {
        const vms = (await c.get(id)).workloads.filter((w) => w.type === 'zmachine')
        if (vms.length !== 1) throw zerr('INVALID_ARGUMENT', `deployment ${id} has ${vms.length} zmachines; pick one with --workload (${vms.map((v) => v.name).join(', ')})`)
        name = vms[0]!.name
      }
      let r = await c.logs(id, name, bytes)
      emit(cmd, r, (x) => x.log)
      if (!o.follow) return
      let seen = r.log
      let stop = false
      process.once('SIGINT', () => (stop = true))
      while (!stop) {
        await new Promise((res) => setTimeout(res, 1000))
        r = await c.logs(id, name, bytes)
        const overlap = seen.length > 0 ? r.log.lastIndexOf(seen.slice(-Math.min(seen.length, 256))) : -1
        const fresh = overlap >= 0 ? r.log.slice(overlap + Math.min(seen.length, 256)) : r.log
        if (fresh) process.stdout.write(fresh)
        seen = r.log
      }
    })
  })

  opts(
    dep
      .command('update')
      .description('change a container deployment (version + 1): resources, env, entrypoint, root size, added volumes')
      .argument('<contract>', 'contract id')
      .option('--workload <name>', 'zmachine to change (default: the only one)')
      .option('--cpu <cores>', 'CPU cores')
      .option('--memory <size>', 'memory, e.g. 512M')
      .option('--disk <size>', 'root filesystem size (grow only)')
      .option('--env <k=v>', 'set an environment variable (repeatable)', collect, [])
      .option('--entrypoint <cmd>', 'command to run')
      .option('--add-volume <size:path>', 'add a volume mounted at PATH (repeatable)', collect, [])
      .option('--description <text>', 'deployment description')
      .option('--timeout <s>', 'seconds to wait for the results', '120'),
  ).action(
    async (
      idText: string,
      o: ClientCliOptions & { workload?: string; cpu?: string; memory?: string; disk?: string; env: string[]; entrypoint?: string; addVolume: string[]; description?: string; timeout: string },
      cmd: Command,
    ) => {
      const id = parseId(idText, 'contract id')
      const { parseEnv, parseVolumeSpec } = await import('../client/build.js')
      const env = parseEnv(o.env)
      const volumes = o.addVolume.map((v) => parseVolumeSpec(v, parseBytes))
      const d = await withClient(cmd, o, (c) =>
        c.update(
          id,
          (cur) => {
            const vms = cur.workloads.filter((w) => w.type === 'zmachine' && (!o.workload || w.name === o.workload))
            if (vms.length !== 1) throw zerr('INVALID_ARGUMENT', `deployment ${id} has ${vms.length} matching zmachines; pick one with --workload`)
            const vm = vms[0]!
            const data = vm.data as { compute_capacity: { cpu: number; memory: number }; size: number; env: Record<string, string>; entrypoint: string; mounts: { name: string; mountpoint: string }[] }
            if (o.cpu) data.compute_capacity.cpu = parseUint(o.cpu, '--cpu')
            if (o.memory) data.compute_capacity.memory = parseBytes(o.memory, '--memory')
            if (o.disk) data.size = parseBytes(o.disk, '--disk')
            Object.assign(data.env, env)
            if (o.entrypoint !== undefined) data.entrypoint = o.entrypoint
            const taken = new Set(cur.workloads.map((w) => w.name))
            let n = 1
            for (const v of volumes) {
              while (taken.has(`${vm.name}_vol${n}`)) n++
              const name = `${vm.name}_vol${n}`
              taken.add(name)
              cur.workloads.unshift({ version: 0, name, type: 'volume', data: { size: v.size }, metadata: '', description: '' })
              data.mounts.push({ name, mountpoint: v.mountpoint })
            }
            if (o.description !== undefined) cur.description = o.description
            return cur
          },
          { waitMs: parseUint(o.timeout, '--timeout') * 1000 },
        ),
      )
      emit(cmd, d, renderDeployment)
      if (d.workloads.some((w) => w.result?.state === 'error')) process.exitCode = 1
    },
  )

  opts(dep.command('cancel').description('cancel the contract: the node removes every workload of the deployment').argument('<contract>', 'contract id')).action(async (idText: string, o: ClientCliOptions, cmd: Command) => {
    const id = parseId(idText, 'contract id')
    await withClient(cmd, o, (c) => c.cancel(id))
    emit(cmd, { contract: id, cancelled: true }, () => `contract ${id} cancelled; the node removes its workloads`)
  })
  return dep
}
