// volume: a size-limited filesystem shared into zmachines (pkg/gridtypes/zos/volume.go). Result data: {id}.
import { z } from 'zod'
import { capacity, MIB } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'
import { DISK_MAX } from './zmount.js'

export const VOLUME_MIN = 16 * MIB

export const VolumeSchema = z
  .object({ size: z.number().int().min(VOLUME_MIN, `size must be at least ${VOLUME_MIN} bytes (16 MiB)`).max(DISK_MAX, 'size must be at most 16 TiB') })
  .strict()

export type VolumeData = z.infer<typeof VolumeSchema>

export interface VolumeResult {
  id: string
}

export const volumeType: WorkloadTypeDef<VolumeData> = {
  type: 'volume',
  schema: VolumeSchema,
  challenge: (w, d) => void w.int(d.size),
  capacity: (d) => capacity({ sru: d.size }),
}
