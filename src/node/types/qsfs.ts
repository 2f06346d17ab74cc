// qsfs: a quantum-safe filesystem (0-db-fs + zstor) mounted into zmachines (pkg/gridtypes/zos/qsfs.go). Its
// config is large; zos hashes the cache size then the config as canonical JSON (keys sorted), which differs
// from Zero-OS's field-by-field stream.
import { z } from 'zod'
import { capacity, GIB } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'

export const QsfsSchema = z
  .object({
    cache: z.number().int().positive().max(2 ** 44),
    config: z.record(z.unknown()),
  })
  .strict()

export type QsfsData = z.infer<typeof QsfsSchema>

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}

export const qsfsType: WorkloadTypeDef<QsfsData> = {
  type: 'qsfs',
  schema: QsfsSchema,
  challenge: (w, d) => void w.int(d.cache).str(canonicalJson(d.config)),
  capacity: (d) => capacity({ cru: 1, mru: GIB, sru: d.cache }),
}
