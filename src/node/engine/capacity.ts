// Capacity admission: a deployment is admitted only if what the node's active workloads already take, plus what
// it asks for, fits in the node's total minus the share reserved for the system. Every resource counts:
// memory, CPU cores, SSD, HDD and public IPv4s (Zero-OS admits memory only, pkg/primitives/statistics.go;
// users asked for the rest: reference/zos-node.md §8.7).
import { zerr } from '../../core/errors.js'
import { addCapacity, subCapacity, type Capacity } from '../types/capacity.js'

export interface NodeCapacity {
  /** What the node has (discovered or configured). */
  total: Capacity
  /** Kept for the system: the agent, caches, the kernel. */
  reserved: Capacity
}

const NAMES: Record<keyof Capacity, string> = { cru: 'CPU cores', mru: 'memory', sru: 'SSD storage', hru: 'HDD storage', ipv4u: 'public IPv4 addresses' }

function fmt(key: keyof Capacity, v: number): string {
  if (key === 'cru' || key === 'ipv4u') return String(v)
  const mib = v / 2 ** 20
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB` : `${mib.toFixed(0)} MiB`
}

/** Throws CAPACITY_EXCEEDED naming the first resource that does not fit. */
export function admit(node: NodeCapacity, used: Capacity, wanted: Capacity): void {
  const free = subCapacity(subCapacity(node.total, node.reserved), used)
  for (const key of Object.keys(NAMES) as (keyof Capacity)[]) {
    if (wanted[key] > 0 && wanted[key] > free[key]) {
      throw zerr(
        'CAPACITY_EXCEEDED',
        `not enough ${NAMES[key]} on this node: the deployment needs ${fmt(key, wanted[key])}, ${fmt(key, Math.max(0, free[key]))} is free (total ${fmt(key, node.total[key])}, reserved for the system ${fmt(key, node.reserved[key])}, used ${fmt(key, used[key])})`,
        { resource: key, wanted: wanted[key], free: Math.max(0, free[key]) },
      )
    }
  }
}

export { addCapacity }
