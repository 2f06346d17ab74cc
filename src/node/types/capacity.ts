// Capacity: what a workload or deployment takes from a node. Bytes for memory and storage, logical cores for
// CPU, whole public IPv4 addresses (the Zero-OS `Capacity{cru, sru, hru, mru, ipv4u}`).

export interface Capacity {
  cru: number
  mru: number
  sru: number
  hru: number
  ipv4u: number
}

export const EMPTY_CAPACITY: Readonly<Capacity> = Object.freeze({ cru: 0, mru: 0, sru: 0, hru: 0, ipv4u: 0 })

export function capacity(partial: Partial<Capacity> = {}): Capacity {
  return { ...EMPTY_CAPACITY, ...partial }
}

export function addCapacity(a: Capacity, b: Capacity): Capacity {
  return { cru: a.cru + b.cru, mru: a.mru + b.mru, sru: a.sru + b.sru, hru: a.hru + b.hru, ipv4u: a.ipv4u + b.ipv4u }
}

export function subCapacity(a: Capacity, b: Capacity): Capacity {
  return { cru: a.cru - b.cru, mru: a.mru - b.mru, sru: a.sru - b.sru, hru: a.hru - b.hru, ipv4u: a.ipv4u - b.ipv4u }
}

export const GIB = 2 ** 30
export const MIB = 2 ** 20
