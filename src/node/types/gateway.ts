// gateway-name-proxy and gateway-fqdn-proxy: reverse proxies from a name (under the node's domain) or a full
// domain to backends (pkg/gridtypes/zos/gw.go).
import { z } from 'zod'
import { capacity } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'

const backends = z.array(z.string().min(1).max(256)).min(1, 'a gateway needs at least one backend').max(32)

export const GatewayNameSchema = z
  .object({
    name: z.string().min(1).max(64).regex(/^[a-zA-Z0-9-_]+$/, 'a gateway name may only contain letters, digits, - and _'),
    tls_passthrough: z.boolean().default(false),
    backends,
    network: z.string().max(36).default(''),
  })
  .strict()

export const GatewayFqdnSchema = z
  .object({
    fqdn: z.string().min(1).max(253).regex(/^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$/, 'fqdn must be a full domain name'),
    tls_passthrough: z.boolean().default(false),
    backends,
    network: z.string().max(36).default(''),
  })
  .strict()

export type GatewayNameData = z.infer<typeof GatewayNameSchema>
export type GatewayFqdnData = z.infer<typeof GatewayFqdnSchema>

export const gatewayNameType: WorkloadTypeDef<GatewayNameData> = {
  type: 'gateway-name-proxy',
  schema: GatewayNameSchema,
  challenge(w, d) {
    w.str(d.name).bool(d.tls_passthrough)
    for (const b of d.backends) w.str(b)
    w.str(d.network)
  },
  capacity: () => capacity(),
}

export const gatewayFqdnType: WorkloadTypeDef<GatewayFqdnData> = {
  type: 'gateway-fqdn-proxy',
  schema: GatewayFqdnSchema,
  challenge(w, d) {
    w.str(d.fqdn).bool(d.tls_passthrough)
    for (const b of d.backends) w.str(b)
    w.str(d.network)
  },
  capacity: () => capacity(),
}
