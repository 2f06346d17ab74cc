// The relay subsystem (RMB): signed, end-to-end encrypted messages between twins over relays that twins dial
// out to. Peers: connect / request / handle / close. Relays: startRelay. Twin lookups: TwinDirectory.
import type { Ledger } from '../ledger/types.js'
import { CachingDirectory, LedgerDirectory, type CacheOptions } from './directory.js'

export { connect, Peer, type ConnectOptions, type RequestOptions, type Handler, type HandlerContext, type PeerStats, type PeerDropReason } from './peer.js'
export { startRelay, Relay, type RelayOptions, type RelayStats, type RelayDropReason, type RelayLogger } from './relay.js'
export {
  CachingDirectory,
  LedgerDirectory,
  StaticDirectory,
  readTwinsFile,
  relayUrl,
  parseRelays,
  twinInfoOf,
  type TwinDirectory,
  type TwinInfo,
  type CacheOptions,
} from './directory.js'
export { parseMetrics } from './metrics.js'

/** The twin directory every daemon uses: the ledger's twins, cached. */
export function ledgerDirectory(ledger: Pick<Ledger, 'twins'>, opts?: CacheOptions): CachingDirectory {
  return new CachingDirectory(new LedgerDirectory(ledger), opts)
}
