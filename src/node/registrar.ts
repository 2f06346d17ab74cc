// Capacity discovery and registration (zosbase pkg/registrar): the node finds what it has (CPU, memory, the
// disk holding its state dir), keeps a share for the system, and registers its twin (relay, key) and itself
// (farm, resources) on the ledger, updating them when they changed. Uptime is reported periodically.
import { statfs } from 'node:fs/promises'
import { availableParallelism, totalmem, uptime } from 'node:os'
import { ZosError, zerr } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import type { Ledger, Node, Twin } from '../ledger/types.js'
import { capacity, GIB, MIB, type Capacity } from './types/capacity.js'
import type { NodeCapacity } from './engine/capacity.js'

export interface CapacityOverrides {
  cru?: number
  mru?: number
  sru?: number
  hru?: number
}

/**
 * What the node has: logical CPUs, RAM, and the size of the filesystem its state dir is on (every disk
 * workload lives there), unless configured otherwise (several nodes on one machine each declare a share).
 * Reserved for the system: memory max(10 %, 512 MiB), storage the chunk cache + 1 GiB, both at most half.
 */
export async function discoverCapacity(stateDir: string, overrides: CapacityOverrides = {}, cacheBytes = 2 * GIB): Promise<NodeCapacity> {
  const fs = await statfs(stateDir)
  const total: Capacity = capacity({
    cru: overrides.cru ?? availableParallelism(),
    mru: overrides.mru ?? totalmem(),
    sru: overrides.sru ?? fs.blocks * fs.bsize,
    hru: overrides.hru ?? 0,
  })
  const reserved = capacity({
    mru: Math.min(Math.floor(total.mru / 2), Math.max(Math.floor(total.mru / 10), 512 * MIB)),
    sru: Math.min(Math.floor(total.sru / 2), cacheBytes + GIB),
  })
  return { total, reserved }
}

export interface Registration {
  twin: Twin
  node: Node
}

/** Creates or updates the node's twin and node on the ledger. */
export async function register(ledger: Ledger, key: KeyPair, opts: { farmId: number; relays: string[]; total: Capacity }): Promise<Registration> {
  const relay = opts.relays.join('_')
  const pk = `0x${key.publicKey.toString('hex')}` as const
  let twin: Twin
  try {
    twin = await ledger.twins.mine()
    if (twin.relay !== relay || twin.pk.toLowerCase() !== pk) twin = await ledger.twins.update({ relay, pk })
  } catch (err) {
    if (!(ZosError.is(err) && err.code === 'NO_TWIN')) throw err
    twin = await ledger.twins.create({ relay, pk })
  }
  // Fails with NOT_FOUND for an unknown farm, before anything is written for the node.
  await ledger.farms.get(opts.farmId)
  const resources = { cru: opts.total.cru, mru: opts.total.mru, sru: opts.total.sru, hru: opts.total.hru }
  let node = await ledger.nodes.byTwin(twin.id)
  if (!node) node = await ledger.nodes.create({ farmId: opts.farmId, resources })
  else if (node.farmId !== opts.farmId || node.resources.cru !== resources.cru || node.resources.mru !== resources.mru || node.resources.sru !== resources.sru || node.resources.hru !== resources.hru) {
    node = await ledger.nodes.update({ farmId: opts.farmId, resources })
  }
  if (node.deleted) throw zerr('INVALID_STATE', `node ${node.id} was deleted by its farmer; this key cannot serve again (start with a new --state)`)
  return { twin, node }
}

/** Seconds since the machine booted. */
export function machineUptime(): number {
  return Math.floor(uptime())
}
