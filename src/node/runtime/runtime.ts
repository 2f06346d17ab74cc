// The container runtime interface the zmachine primitive uses (DESIGN.md §6 runtime). runc implements it;
// a micro-VM runtime can implement it later with the same bundle.

export interface ContainerMount {
  source: string
  destination: string
  readonly?: boolean
}

export interface ContainerSpec {
  /** Unique on the machine (the node's tag is part of it). */
  id: string
  /** Directory holding config.json; the root filesystem is `rootfs` in it. */
  bundle: string
  rootfs: string
  args: string[]
  env: string[]
  cwd: string
  uid: number
  gid: number
  hostname: string
  /** Memory limit in bytes. */
  memory: number
  /** CPU cores (a CFS quota of cpu × period). */
  cpu: number
  mounts: ContainerMount[]
  /** cgroup path, unique per node and workload. */
  cgroupsPath: string
  /** Network namespace to join (a path); a fresh one (loopback only) when absent. */
  netns?: string
}

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped'

export interface ContainerState {
  id: string
  status: ContainerStatus
  pid: number
  bundle: string
}

export interface Runtime {
  /** Writes the bundle's config and starts the container detached; stdout and stderr go to `logFd`. */
  run(spec: ContainerSpec, logFd: number): Promise<ContainerState>
  /** The container's state, or null when the runtime does not know it. */
  state(id: string): Promise<ContainerState | null>
  kill(id: string, signal: 'TERM' | 'KILL'): Promise<void>
  /** Removes a stopped container (force: also a running one). No error when it does not exist. */
  delete(id: string, force?: boolean): Promise<void>
  pause(id: string): Promise<void>
  resume(id: string): Promise<void>
  list(): Promise<ContainerState[]>
}
