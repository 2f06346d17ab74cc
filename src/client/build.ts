// Builds deployments the way a user describes them: a container (zmachine) with its root size, volumes,
// environment and entrypoint. Names and versions follow the Zero-OS rules; the result is validated by the same
// code the node runs (parseDeployment), so a bad description fails here, before any contract is created.
import { zerr } from '../core/errors.js'
import { parseDeployment, type Deployment } from '../node/types/deployment.js'

export interface VolumeSpec {
  size: number
  mountpoint: string
  name?: string
}

export interface ContainerSpec {
  twinId: number
  flist: string
  cpu: number
  memory: number
  /** Root filesystem size in bytes (0 = the node's default). */
  rootSize?: number
  volumes?: VolumeSpec[]
  env?: Record<string, string>
  entrypoint?: string
  name?: string
  description?: string
  metadata?: string
}

/** A new (version 0, contract 0) deployment of one container and its volumes, signed by nobody yet. */
export function containerDeployment(spec: ContainerSpec): Deployment {
  const name = spec.name ?? 'vm'
  const volumes = (spec.volumes ?? []).map((v, i) => ({ ...v, name: v.name ?? `${name}_vol${i + 1}` }))
  const workloads: unknown[] = volumes.map((v) => ({ version: 0, name: v.name, type: 'volume', data: { size: v.size }, metadata: '', description: '' }))
  workloads.push({
    version: 0,
    name,
    type: 'zmachine',
    metadata: '',
    description: '',
    data: {
      flist: spec.flist,
      network: { public_ip: '', planetary: false, interfaces: [] },
      size: spec.rootSize ?? 0,
      compute_capacity: { cpu: spec.cpu, memory: spec.memory },
      mounts: volumes.map((v) => ({ name: v.name, mountpoint: v.mountpoint })),
      entrypoint: spec.entrypoint ?? '',
      env: spec.env ?? {},
      corex: false,
      gpu: [],
    },
  })
  return parseDeployment({
    version: 0,
    twin_id: spec.twinId,
    contract_id: 0,
    metadata: spec.metadata ?? '',
    description: spec.description ?? '',
    expiration: 0,
    signature_requirement: { requests: [{ twin_id: spec.twinId, required: true, weight: 1 }], weight_required: 1, signatures: [], signature_style: '' },
    workloads,
  })
}

/** Parses "SIZE:PATH" (e.g. 1G:/data) with the given size parser. */
export function parseVolumeSpec(text: string, parseSize: (s: string, what: string) => number): VolumeSpec {
  const i = text.indexOf(':')
  if (i <= 0) throw zerr('INVALID_ARGUMENT', `--volume must be SIZE:PATH like 1G:/data, got "${text}"`)
  return { size: parseSize(text.slice(0, i), '--volume size'), mountpoint: text.slice(i + 1) }
}

/** Parses K=V pairs into an env object. */
export function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const p of pairs) {
    const i = p.indexOf('=')
    if (i <= 0) throw zerr('INVALID_ARGUMENT', `--env must be KEY=VALUE, got "${p}"`)
    env[p.slice(0, i)] = p.slice(i + 1)
  }
  return env
}
