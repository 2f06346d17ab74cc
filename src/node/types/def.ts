// What every workload type defines, apart from the node code that provisions it (STYLE.md "What zos takes",
// points 1-3): the zod schema of its data, its part of the challenge stream, and the capacity it takes.
import type { z } from 'zod'
import type { Capacity } from './capacity.js'
import type { ChallengeWriter } from './challenge.js'
import type { WorkloadType } from './workload.js'

export interface WorkloadTypeDef<T> {
  readonly type: WorkloadType
  /** Validates and normalises the `data` of a workload of this type. */
  readonly schema: z.ZodType<T, z.ZodTypeDef, unknown>
  /** Writes the data's fields, in the Zero-OS order, into the challenge stream. */
  challenge(w: ChallengeWriter, data: T): void
  /** Capacity a workload of this type takes on a node. */
  capacity(data: T): Capacity
}
