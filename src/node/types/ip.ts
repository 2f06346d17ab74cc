// ip: a public IPv4 (from the contract's reserved IPs) and/or IPv6 for a zmachine (pkg/gridtypes/zos/ip.go).
import { z } from 'zod'
import { capacity } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'

export const IpSchema = z
  .object({ v4: z.boolean().default(false), v6: z.boolean().default(false) })
  .strict()
  .refine((d) => d.v4 || d.v6, { message: 'an ip workload needs v4 or v6 (or both)' })

export type IpData = z.infer<typeof IpSchema>

export const ipType: WorkloadTypeDef<IpData> = {
  type: 'ip',
  schema: IpSchema,
  challenge: (w, d) => void w.bool(d.v4).bool(d.v6),
  capacity: (d) => capacity({ ipv4u: d.v4 ? 1 : 0 }),
}
