// A workload as Zero-OS defines it (pkg/gridtypes/workload.go): name, type, version, type-specific data,
// metadata, description and the node's result. Names follow pkg/gridtypes/id.go.
import { z } from 'zod'

/** Every workload type, in the Zero-OS provisioning order (reverse for removal). */
export const WORKLOAD_TYPES = [
  'zmount',
  'volume',
  'qsfs',
  'network',
  'ip',
  'zmachine',
  'zlogs',
  'zdb',
  'gateway-name-proxy',
  'gateway-fqdn-proxy',
] as const

export type WorkloadType = (typeof WORKLOAD_TYPES)[number]

export function isWorkloadType(t: string): t is WorkloadType {
  return (WORKLOAD_TYPES as readonly string[]).includes(t)
}

/** Position of a type in the provisioning order. */
export function typeOrder(t: WorkloadType): number {
  return WORKLOAD_TYPES.indexOf(t)
}

export const RESULT_STATES = ['init', 'ok', 'error', 'deleted', 'paused', 'unchanged'] as const
export type ResultState = (typeof RESULT_STATES)[number]

export const NAME_RE = /^[a-zA-Z0-9_]+$/
export const NAME_MAX = 36
export const RESERVED_NAMES: readonly string[] = ['ygg']

export const MAX_TEXT = 2048

export const WorkloadNameSchema = z
  .string()
  .min(1, 'a workload name must not be empty')
  .max(NAME_MAX, `a workload name has at most ${NAME_MAX} characters`)
  .regex(NAME_RE, 'a workload name may only contain letters, digits and _')
  .refine((n) => !RESERVED_NAMES.includes(n), { message: 'this workload name is reserved' })

export const ResultSchema = z
  .object({
    created: z.number().int().nonnegative(),
    state: z.enum(RESULT_STATES),
    message: z.string().max(8192).default(''),
    data: z.unknown().optional(),
  })
  .strict()

export type WorkloadResult = z.infer<typeof ResultSchema>

const uint = z.number().int().nonnegative().safe()

export const WorkloadSchema = z
  .object({
    version: uint,
    name: WorkloadNameSchema,
    type: z.string().min(1).max(64),
    /** Type-specific data; decoded by the type's schema (registry.ts). */
    data: z.unknown(),
    metadata: z.string().max(MAX_TEXT).default(''),
    description: z.string().max(MAX_TEXT).default(''),
    /** Set by the node; ignored (and not hashed) when a client sends it. */
    result: ResultSchema.optional(),
  })
  .strict()

export type Workload = z.infer<typeof WorkloadSchema>

/** The grid-wide workload id: "<twin>-<contract>-<name>". */
export function workloadId(twinId: number, contractId: number, name: string): string {
  return `${twinId}-${contractId}-${name}`
}
