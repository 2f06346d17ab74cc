// zmount: a raw disk of `size` bytes (pkg/gridtypes/zos/zmount.go). Result data: {volume_id}.
import { z } from 'zod'
import { capacity, MIB } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'

export const ZMOUNT_MIN = 16 * MIB
export const DISK_MAX = 2 ** 44 // 16 TiB

export const ZmountSchema = z
  .object({ size: z.number().int().min(ZMOUNT_MIN, `size must be at least ${ZMOUNT_MIN} bytes (16 MiB)`).max(DISK_MAX, 'size must be at most 16 TiB') })
  .strict()

export type ZmountData = z.infer<typeof ZmountSchema>

export interface ZmountResult {
  volume_id: string
}

export const zmountType: WorkloadTypeDef<ZmountData> = {
  type: 'zmount',
  schema: ZmountSchema,
  challenge: (w, d) => void w.int(d.size),
  capacity: (d) => capacity({ sru: d.size }),
}
