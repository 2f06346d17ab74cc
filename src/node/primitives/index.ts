// The one place that knows which code provisions each workload type (zosbase pkg/primitives/provisioner.go).
// A type missing here is a compile error; types this node cannot run yet answer a clear error result.
import type { WorkloadType } from '../types/workload.js'
import { unsupported, type Primitive, type PrimitiveRegistry } from './primitive.js'
import type { NodeServices } from './services.js'
import { VolumePrimitive } from './volume.js'
import { ZmachinePrimitive } from './zmachine.js'
import { ZmountPrimitive } from './zmount.js'

export interface NodePrimitives {
  registry: PrimitiveRegistry
  zmachine: ZmachinePrimitive
}

export function createPrimitives(services: NodeServices): NodePrimitives {
  const zmachine = new ZmachinePrimitive(services)
  const registry: Record<WorkloadType, Primitive> = {
    zmount: new ZmountPrimitive(services),
    volume: new VolumePrimitive(services),
    zmachine,
    qsfs: unsupported('qsfs', 'quantum-safe storage comes in a later zos release'),
    network: unsupported('network', 'private networks come in a later zos release'),
    ip: unsupported('ip', 'public IPs need networks, which come in a later zos release'),
    zlogs: unsupported('zlogs', 'read the console with zos.deployment.logs instead'),
    zdb: unsupported('zdb', '0-db namespaces come in a later zos release'),
    'gateway-name-proxy': unsupported('gateway-name-proxy', 'gateways come in a later zos release'),
    'gateway-fqdn-proxy': unsupported('gateway-fqdn-proxy', 'gateways come in a later zos release'),
  }
  return { registry, zmachine }
}

export { containerId, cgroupPath, type NodeServices } from './services.js'
