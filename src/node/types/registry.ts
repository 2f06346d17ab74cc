// The one table of workload types (STYLE.md "What zos takes", point 3): a forgotten type is a type error.
import type { z } from 'zod'
import { zerr } from '../../core/errors.js'
import type { Capacity } from './capacity.js'
import type { ChallengeWriter } from './challenge.js'
import type { WorkloadTypeDef } from './def.js'
import { gatewayFqdnType, gatewayNameType } from './gateway.js'
import { ipType } from './ip.js'
import { networkType } from './network.js'
import { qsfsType } from './qsfs.js'
import { volumeType } from './volume.js'
import { isWorkloadType, type WorkloadType } from './workload.js'
import { zdbType } from './zdb.js'
import { zlogsType } from './zlogs.js'
import { zmachineType } from './zmachine.js'
import { zmountType } from './zmount.js'

export interface WorkloadDataOf {
  zmount: z.infer<typeof zmountType.schema>
  volume: z.infer<typeof volumeType.schema>
  qsfs: z.infer<typeof qsfsType.schema>
  network: z.infer<typeof networkType.schema>
  ip: z.infer<typeof ipType.schema>
  zmachine: z.infer<typeof zmachineType.schema>
  zlogs: z.infer<typeof zlogsType.schema>
  zdb: z.infer<typeof zdbType.schema>
  'gateway-name-proxy': z.infer<typeof gatewayNameType.schema>
  'gateway-fqdn-proxy': z.infer<typeof gatewayFqdnType.schema>
}

export const WORKLOAD_TYPE_DEFS: { readonly [K in WorkloadType]: WorkloadTypeDef<WorkloadDataOf[K]> } = {
  zmount: zmountType,
  volume: volumeType,
  qsfs: qsfsType,
  network: networkType,
  ip: ipType,
  zmachine: zmachineType,
  zlogs: zlogsType,
  zdb: zdbType,
  'gateway-name-proxy': gatewayNameType,
  'gateway-fqdn-proxy': gatewayFqdnType,
}

interface AnyDef {
  schema: z.ZodType<unknown, z.ZodTypeDef, unknown>
  challenge(w: ChallengeWriter, data: unknown): void
  capacity(data: unknown): Capacity
}

function defOf(type: WorkloadType): AnyDef {
  return WORKLOAD_TYPE_DEFS[type] as unknown as AnyDef
}

/** Decodes a workload's data with its type's schema; INVALID_ARGUMENT naming the workload and field otherwise. */
export function parseWorkloadData<T extends WorkloadType>(type: T, data: unknown, where: string): WorkloadDataOf[T]
export function parseWorkloadData(type: string, data: unknown, where: string): unknown
export function parseWorkloadData(type: string, data: unknown, where: string): unknown {
  if (!isWorkloadType(type)) throw zerr('INVALID_ARGUMENT', `${where}: unknown workload type "${type}"`, { field: `${where}.type` })
  const r = defOf(type).schema.safeParse(data)
  if (!r.success) {
    const issue = r.error.issues[0]!
    const path = [where, 'data', ...issue.path].join('.')
    throw zerr('INVALID_ARGUMENT', `${path}: ${issue.message}`, { field: path })
  }
  return r.data
}

export function challengeOfData(type: WorkloadType, w: ChallengeWriter, data: unknown): void {
  defOf(type).challenge(w, data)
}

export function capacityOfData(type: WorkloadType, data: unknown): Capacity {
  return defOf(type).capacity(data)
}
