// What the primitives of one node share: where its state lives, its unique tag (container and cgroup names),
// flist mounts, the container runtime and the supervisor that restarts crashed containers.
import type { NodeLogger } from '../log.js'
import type { Runtime } from '../runtime/runtime.js'
import type { Supervisor } from '../runtime/supervisor.js'
import type { FlistManager } from '../storage/flists.js'
import type { NodePaths } from '../storage/paths.js'

export interface NodeServices {
  paths: NodePaths
  /** Short tag unique to this node (nodeTag of its key's address). */
  tag: string
  flists: FlistManager
  runtime: Runtime
  supervisor: Supervisor
  log: NodeLogger
  /** How long a stopping container gets between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number
}

/** The runc id of a zmachine's container: unique on the machine. */
export function containerId(tag: string, wid: string): string {
  return `zos-${tag}-${wid}`
}

/** The cgroup (v1 path under every controller) of a zmachine: all of a node's containers sit under /zos-<tag>. */
export function cgroupPath(tag: string, wid: string): string {
  return `/zos-${tag}/${wid}`
}
