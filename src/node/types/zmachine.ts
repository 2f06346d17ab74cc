// zmachine: a container (or, later, a micro-VM) running from an flist (pkg/gridtypes/zos/zmachine.go).
// Result data: {id, ip, planetary_ip, mycelium_ip, console_url}.
import { z } from 'zod'
import { capacity, GIB, MIB } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'
import { WorkloadNameSchema } from './workload.js'

export const MIN_MEMORY = 64 * MIB
export const MAX_CPU = 256
export const ROOT_MIN = 256 * MIB
/** Root (overlay upper) size when the workload asks for 0. */
export const ROOT_DEFAULT = GIB
export const RESERVED_NETWORKS: readonly string[] = ['ygg', 'pub', 'mycelium']

const FORBIDDEN_MOUNT_ROOTS = ['/proc', '/sys', '/dev']

export const MountpointSchema = z
  .string()
  .max(255)
  .refine((p) => p.startsWith('/') && p !== '/', { message: 'a mountpoint must be an absolute path other than /' })
  .refine((p) => !p.split('/').some((s) => s === '..' || s === '.'), { message: 'a mountpoint must not contain . or .. components' })
  .refine((p) => !/[\0\n,:\\]/.test(p), { message: 'a mountpoint must not contain NUL, newline, comma, colon or backslash' })
  .refine((p) => !FORBIDDEN_MOUNT_ROOTS.some((r) => p === r || p.startsWith(r + '/')), { message: 'a mountpoint must not be under /proc, /sys or /dev' })

export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

const InterfaceSchema = z
  .object({
    network: WorkloadNameSchema.refine((n) => !RESERVED_NETWORKS.includes(n), { message: 'ygg, pub and mycelium are reserved network names' }),
    ip: z.string().max(64).default(''),
  })
  .strict()

const MyceliumSchema = z
  .object({
    network: WorkloadNameSchema,
    hex_seed: z.string().regex(/^[0-9a-fA-F]{12}$/, 'the mycelium seed is 6 bytes of hex'),
  })
  .strict()

export const ZmachineNetworkSchema = z
  .object({
    public_ip: z.string().max(36).default(''),
    planetary: z.boolean().default(false),
    mycelium: MyceliumSchema.optional(),
    interfaces: z.array(InterfaceSchema).max(8).default([]),
  })
  .strict()

export const ZmachineSchema = z
  .object({
    flist: z.string().min(1, 'flist must name an flist (a URL or a path)').max(2048),
    network: ZmachineNetworkSchema.default({}),
    /** Root filesystem (overlay upper) size in bytes; 0 = ROOT_DEFAULT. */
    size: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 44)
      .refine((s) => s === 0 || s >= ROOT_MIN, { message: `size must be 0 (default ${ROOT_DEFAULT / GIB} GiB) or at least ${ROOT_MIN / MIB} MiB` }),
    compute_capacity: z
      .object({
        cpu: z.number().int().min(1, 'cpu must be at least 1').max(MAX_CPU),
        memory: z.number().int().min(MIN_MEMORY, `memory must be at least ${MIN_MEMORY / MIB} MiB`).max(2 ** 44),
      })
      .strict(),
    mounts: z.array(z.object({ name: WorkloadNameSchema, mountpoint: MountpointSchema }).strict()).max(16).default([]),
    entrypoint: z.string().max(4096).default(''),
    env: z
      .record(z.string().regex(ENV_KEY_RE, 'an env key must be letters, digits and _ and not start with a digit').max(128), z.string().max(8192))
      .refine((e) => Object.keys(e).length <= 128, { message: 'at most 128 env entries' })
      .default({}),
    corex: z.boolean().default(false),
    gpu: z.array(z.string().max(64)).max(8).default([]),
  })
  .strict()
  .superRefine((d, ctx) => {
    const points = new Set<string>()
    for (const m of d.mounts) {
      if (points.has(m.mountpoint)) ctx.addIssue({ code: 'custom', path: ['mounts'], message: `mountpoint ${m.mountpoint} is used twice` })
      points.add(m.mountpoint)
    }
    const names = new Set<string>()
    for (const m of d.mounts) {
      if (names.has(m.name)) ctx.addIssue({ code: 'custom', path: ['mounts'], message: `workload ${m.name} is mounted twice` })
      names.add(m.name)
    }
  })

export type ZmachineData = z.infer<typeof ZmachineSchema>

export interface ZmachineResult {
  id: string
  ip: string
  planetary_ip: string
  mycelium_ip: string
  console_url: string
}

export function rootSize(d: Pick<ZmachineData, 'size'>): number {
  return d.size === 0 ? ROOT_DEFAULT : d.size
}

export const zmachineType: WorkloadTypeDef<ZmachineData> = {
  type: 'zmachine',
  schema: ZmachineSchema,
  challenge(w, d) {
    w.str(d.flist)
    w.str(d.network.public_ip).bool(d.network.planetary)
    for (const i of d.network.interfaces) w.str(i.network).str(i.ip)
    if (d.network.mycelium) w.str(d.network.mycelium.network).str(d.network.mycelium.hex_seed.toLowerCase())
    w.int(d.size)
    w.int(d.compute_capacity.cpu).int(d.compute_capacity.memory)
    for (const m of d.mounts) w.str(m.name).str(m.mountpoint)
    w.str(d.entrypoint)
    for (const k of Object.keys(d.env).sort()) w.str(`${k}=${d.env[k]}`)
    for (const g of d.gpu) w.str(g)
  },
  capacity: (d) => capacity({ cru: d.compute_capacity.cpu, mru: d.compute_capacity.memory, sru: rootSize(d) }),
}
