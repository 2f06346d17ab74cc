// The contract between the engine and the code that makes a workload real (STYLE.md "What zos takes", 1, 4, 5;
// zosbase pkg/provision/provisiner.go). provision and deprovision are required; update, pause and resume are
// optional and detected by presence. A primitive is idempotent: provisioning what already exists answers
// `existed: true` with the same data and changes nothing. A primitive that fails throws (a ZosError with a
// message that says what is wrong); the engine records that as the workload's error result and moves on.
import { zerr } from '../../core/errors.js'
import type { Deployment, DeploymentWorkload } from '../types/deployment.js'
import type { WorkloadType } from '../types/workload.js'
import type { NodeLogger } from '../log.js'

export interface WorkloadContext {
  /** Grid-wide workload id "<twin>-<contract>-<name>". */
  readonly id: string
  readonly twinId: number
  readonly contractId: number
  readonly workload: DeploymentWorkload
  /** The deployment, with the latest result of each of its workloads (to find what a workload depends on). */
  readonly deployment: Deployment
  readonly log: NodeLogger
}

export interface ProvisionOutcome {
  /** The result data (e.g. {id} for a volume). */
  data?: unknown
  /** True when everything was already in place and nothing was done. */
  existed?: boolean
}

export interface Primitive {
  provision(ctx: WorkloadContext): Promise<ProvisionOutcome>
  /** Removes everything provision made; removing what is not there is not an error. */
  deprovision(ctx: WorkloadContext): Promise<void>
  /** Changes a running workload to ctx.workload (from `previous`). */
  update?(ctx: WorkloadContext, previous: DeploymentWorkload): Promise<ProvisionOutcome>
  pause?(ctx: WorkloadContext): Promise<void>
  resume?(ctx: WorkloadContext): Promise<void>
}

export type PrimitiveRegistry = Readonly<Record<WorkloadType, Primitive>>

/** A registered type this node cannot run yet: a clear error result, never a crash. */
export function unsupported(type: WorkloadType, why = 'they come in a later zos release'): Primitive {
  return {
    async provision() {
      throw zerr('UNSUPPORTED', `${type} workloads are not supported on this node yet (${why})`, { type })
    },
    async deprovision() {},
  }
}
