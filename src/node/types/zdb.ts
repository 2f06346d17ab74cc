// zdb: a 0-DB namespace on an HDD (pkg/gridtypes/zos/zdb.go).
import { z } from 'zod'
import { capacity } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'
import { DISK_MAX } from './zmount.js'

export const ZdbSchema = z
  .object({
    size: z.number().int().positive().max(DISK_MAX),
    mode: z.enum(['user', 'seq']).default('user'),
    password: z.string().max(256).default(''),
    public: z.boolean().default(false),
  })
  .strict()

export type ZdbData = z.infer<typeof ZdbSchema>

export const zdbType: WorkloadTypeDef<ZdbData> = {
  type: 'zdb',
  schema: ZdbSchema,
  challenge: (w, d) => void w.int(d.size).str(d.mode).str(d.password).bool(d.public),
  capacity: (d) => capacity({ hru: d.size }),
}
