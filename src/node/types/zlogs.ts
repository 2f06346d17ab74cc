// zlogs: streams a zmachine's console log to a redis:// or ws(s):// endpoint (pkg/gridtypes/zos/zlogs.go).
import { z } from 'zod'
import { capacity } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'
import { WorkloadNameSchema } from './workload.js'

export const ZlogsSchema = z
  .object({
    zmachine: WorkloadNameSchema,
    output: z.string().max(1024).regex(/^(redis|ws|wss):\/\//, 'output must be a redis://, ws:// or wss:// URL'),
  })
  .strict()

export type ZlogsData = z.infer<typeof ZlogsSchema>

export const zlogsType: WorkloadTypeDef<ZlogsData> = {
  type: 'zlogs',
  schema: ZlogsSchema,
  challenge: (w, d) => void w.str(d.zmachine).str(d.output),
  capacity: () => capacity(),
}
