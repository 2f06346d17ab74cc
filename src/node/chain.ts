// The engine's view of the ledger (ChainView) over the Ledger interface.
import { ZosError } from '../core/errors.js'
import type { Ledger } from '../ledger/types.js'
import type { ChainView, ContractStateName, ContractView } from './engine/engine.js'

export class LedgerChainView implements ChainView {
  constructor(private readonly ledger: Ledger) {}

  async contract(id: number): Promise<ContractView> {
    const c = await this.ledger.contracts.get(id)
    const state = c.state === 'Deleted' ? 'Deleted' : await this.ledger.contracts.effectiveState(id)
    return { id: c.id, twinId: c.twinId, nodeId: c.nodeId, kind: c.kind, state, deploymentHash: c.deploymentHash }
  }

  async accountOf(twinId: number): Promise<string> {
    return (await this.ledger.twins.get(twinId)).account
  }

  /** The state the node acts on, or null when the ledger has no such contract. */
  async stateOf(id: number): Promise<ContractStateName | null> {
    try {
      return await this.ledger.contracts.effectiveState(id)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'NOT_FOUND') return null
      throw err
    }
  }
}
