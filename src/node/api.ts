// The node's API, served only through the relay (reference/zos-node.md §3.2, our payloads). Every payload is
// validated here; the caller's twin (verified by the relay layer) scopes what it may read or change.
//
//   zos.deployment.deploy    Deployment                     → Deployment (results "init"; provisioning is queued)
//   zos.deployment.update    Deployment (version + 1)       → Deployment
//   zos.deployment.get       {contract_id}                  → Deployment with results
//   zos.deployment.list      {}                             → Deployment[] (the caller's active ones)
//   zos.deployment.changes   {contract_id}                  → Workload[] (each with the result it got, oldest first)
//   zos.deployment.logs      {contract_id, name, max_bytes?} → {log, truncated, container}
//   zos.deployment.delete    —                              → always an error: cancel the contract instead
//   zos.statistics.get       {}                             → {total, used, system, users}
//   zos.system.version       {}                             → {zos, runc}
//   zos.network.list_wg_ports {}                            → [] (placeholder: this node has no networks yet)
import { z } from 'zod'
import { zerr } from '../core/errors.js'
import type { Handler } from '../rmb/peer.js'
import type { Engine } from './engine/engine.js'
import type { ZmachinePrimitive } from './primitives/zmachine.js'
import { workloadId } from './types/workload.js'

const ContractRef = z.object({ contract_id: z.number().int().positive().safe() }).strict()
const LogsRef = z
  .object({
    contract_id: z.number().int().positive().safe(),
    name: z.string().min(1).max(36),
    max_bytes: z.number().int().min(1).max(4 * 2 ** 20).default(64 * 1024),
  })
  .strict()
const Empty = z.union([z.object({}).strict(), z.null(), z.undefined()])

function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, payload: unknown, command: string): T {
  const r = schema.safeParse(payload)
  if (!r.success) {
    const i = r.error.issues[0]!
    throw zerr('INVALID_ARGUMENT', `${command}: ${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`, { field: i.path.join('.') })
  }
  return r.data
}

export interface ApiDeps {
  engine: Engine
  zmachine: ZmachinePrimitive
  version: string
  runcVersion: string
}

export function apiHandlers(deps: ApiDeps): Record<string, Handler> {
  const { engine } = deps
  return {
    'zos.deployment.deploy': async (payload, ctx) => engine.deploy(ctx.twinId, payload),
    'zos.deployment.update': async (payload, ctx) => engine.update(ctx.twinId, payload),
    'zos.deployment.get': async (payload, ctx) => engine.get(ctx.twinId, parse(ContractRef, payload, 'zos.deployment.get').contract_id),
    'zos.deployment.list': async (payload, ctx) => {
      parse(Empty, payload, 'zos.deployment.list')
      return engine.list(ctx.twinId)
    },
    'zos.deployment.changes': async (payload, ctx) => engine.changes(ctx.twinId, parse(ContractRef, payload, 'zos.deployment.changes').contract_id),
    'zos.deployment.logs': async (payload, ctx) => {
      const ref = parse(LogsRef, payload, 'zos.deployment.logs')
      const d = engine.get(ctx.twinId, ref.contract_id)
      const wl = d.workloads.find((w) => w.name === ref.name)
      if (!wl) throw zerr('NOT_FOUND', `deployment ${ref.contract_id} has no workload named ${ref.name}`)
      if (wl.type !== 'zmachine') throw zerr('INVALID_ARGUMENT', `${ref.name} is a ${wl.type}; only zmachines have a console log`)
      return deps.zmachine.logs(workloadId(d.twin_id, d.contract_id, wl.name), ref.max_bytes)
    },
    'zos.deployment.delete': async () => {
      throw zerr('UNSUPPORTED', 'deployments are deleted by cancelling their contract on the ledger (zos deployment cancel / zos contract cancel), never over the API')
    },
    'zos.statistics.get': async (payload) => {
      parse(Empty, payload, 'zos.statistics.get')
      return engine.statistics()
    },
    'zos.system.version': async () => ({ zos: deps.version, runc: deps.runcVersion }),
    'zos.network.list_wg_ports': async () => [],
  }
}
