// network: a user's private network resource on the node (pkg/gridtypes/zos/network.go). Sharable per twin by
// name. Nodes of this build do not provision networks yet; the type is defined so deployments that carry one
// validate, hash and get a clear "not supported" result.
import { z } from 'zod'
import { capacity } from './capacity.js'
import type { WorkloadTypeDef } from './def.js'

const cidr = z.string().max(64).regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'must be an address range like 10.20.0.0/16')

const PeerSchema = z
  .object({
    subnet: cidr,
    wireguard_public_key: z.string().max(64),
    allowed_ips: z.array(cidr).max(64),
    endpoint: z.string().max(128).default(''),
  })
  .strict()

export const NetworkSchema = z
  .object({
    ip_range: cidr,
    subnet: cidr,
    wireguard_private_key: z.string().max(64),
    wireguard_listen_port: z.number().int().min(0).max(65535),
    peers: z.array(PeerSchema).max(256).default([]),
    mycelium: z.object({ hex_key: z.string().regex(/^[0-9a-fA-F]{64}$/, 'the mycelium key is 32 bytes of hex'), peers: z.array(z.string()).max(0, 'mycelium peers must be empty') }).strict().optional(),
  })
  .strict()

export type NetworkData = z.infer<typeof NetworkSchema>

export const networkType: WorkloadTypeDef<NetworkData> = {
  type: 'network',
  schema: NetworkSchema,
  challenge(w, d) {
    w.str(d.ip_range).str(d.subnet).str(d.wireguard_private_key).int(d.wireguard_listen_port)
    for (const p of d.peers) {
      w.str(p.wireguard_public_key).str(p.endpoint).str(p.subnet)
      for (const a of p.allowed_ips) w.str(a)
    }
    if (d.mycelium) w.str(d.mycelium.hex_key.toLowerCase())
  },
  capacity: () => capacity(),
}
