// The client side of a deployment (DESIGN.md §3.4): build a Deployment, sign its challenge hash, create the node
// contract carrying the hash on the ledger, send the deployment to the node through the relay, and poll its
// results. Updates re-sign version + 1 and update the contract's hash first; cancelling the contract is how
// a deployment is deleted.
import { randomInt } from 'node:crypto'
import { ZosError, errorMessage, zerr } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'
import type { Ledger } from '../ledger/types.js'
import { connect, ledgerDirectory, type Peer } from '../rmb/index.js'
import { deploymentHash, parseDeployment, signDeployment, type Deployment, type DeploymentWorkload } from '../node/types/deployment.js'
import type { WorkloadResult } from '../node/types/workload.js'
import type { Statistics } from '../node/engine/engine.js'
import type { ZmachineLogs } from '../node/primitives/zmachine.js'

export type Phase = 'sign' | 'contract' | 'message' | 'provision'

export interface DeployOptions {
  /** How long to wait for every workload to get a result (default 120 s); 0 = do not wait. */
  waitMs?: number
  pollMs?: number
  /** Called as each phase ends, with its duration. */
  onPhase?: (phase: Phase, ms: number) => void
  /** Relay request timeout (default 30 s). */
  requestTimeoutMs?: number
}

export interface DeployResult {
  contractId: number
  nodeId: number
  deployment: Deployment
}

export class GridClient {
  private readonly nodeTwins = new Map<number, number>()

  constructor(
    readonly ledger: Ledger,
    readonly key: KeyPair,
    readonly twinId: number,
    readonly peer: Peer,
  ) {}

  /** Opens a client for the ledger's twin of `key` (NO_TWIN when it has none), connected to its relays. */
  static async connect(opts: { ledger: Ledger; key: KeyPair; relays?: string[] }): Promise<GridClient> {
    const twin = await opts.ledger.twins.mine()
    // A random session: the client never takes over another process of the same twin.
    const peer = await connect({ twinId: twin.id, key: opts.key, directory: ledgerDirectory(opts.ledger), ...(opts.relays?.length ? { relays: opts.relays } : {}), session: randomInt(1, 2 ** 31), builtins: false })
    return new GridClient(opts.ledger, opts.key, twin.id, peer)
  }

  async nodeTwin(nodeId: number): Promise<number> {
    let t = this.nodeTwins.get(nodeId)
    if (t === undefined) {
      t = (await this.ledger.nodes.get(nodeId)).twinId
      this.nodeTwins.set(nodeId, t)
    }
    return t
  }

  private async call<T>(nodeId: number, command: string, payload: unknown, timeout = 30_000): Promise<T> {
    return this.peer.request<T>(await this.nodeTwin(nodeId), command, payload, { timeout })
  }

  async nodeOf(contractId: number): Promise<number> {
    const c = await this.ledger.contracts.get(contractId)
    if (c.kind !== 'node') throw zerr('INVALID_ARGUMENT', `contract ${contractId} is a ${c.kind} contract, not a deployment`)
    return c.nodeId
  }

  /** Signs, creates the contract, sends the deployment, and waits for its results. */
  async deploy(nodeId: number, d: Deployment, opts: DeployOptions = {}): Promise<DeployResult> {
    let t = performance.now()
    const lap = (phase: Phase): void => {
      const now = performance.now()
      opts.onPhase?.(phase, now - t)
      t = now
    }
    const signed = signDeployment(parseDeployment(d), this.key, this.twinId)
    lap('sign')
    const contract = await this.ledger.contracts.createNode({ nodeId, deploymentHash: deploymentHash(signed) })
    lap('contract')
    const withId: Deployment = { ...signed, contract_id: contract.id }
    try {
      await this.call(nodeId, 'zos.deployment.deploy', withId, opts.requestTimeoutMs)
    } catch (err) {
      // The node refused it: do not leave a contract behind that bills for nothing.
      await this.ledger.contracts.cancel(contract.id).catch(() => undefined)
      throw err
    }
    lap('message')
    const deployment = await this.waitReady(nodeId, contract.id, opts)
    lap('provision')
    return { contractId: contract.id, nodeId, deployment }
  }

  /**
   * Changes a deployment: `change` gets the current one (from the node) and returns the new workloads and
   * fields; workloads that differ get the new version, the contract gets the new hash, the node the update.
   */
  async update(contractId: number, change: (current: Deployment) => Deployment, opts: DeployOptions = {}): Promise<Deployment> {
    const nodeId = await this.nodeOf(contractId)
    const current = stripResults(await this.get(contractId))
    const wanted = change(structuredClone(current))
    const version = current.version + 1
    const before = new Map(current.workloads.map((w) => [w.name, JSON.stringify({ ...w, version: 0 })]))
    const workloads = wanted.workloads.map((w) => {
      const plain = { ...w, result: undefined }
      const same = before.get(w.name) === JSON.stringify({ ...plain, version: 0, result: undefined })
      return { ...plain, version: same ? (current.workloads.find((c) => c.name === w.name)?.version ?? version) : version }
    })
    const next = parseDeployment({
      ...wanted,
      version,
      twin_id: current.twin_id,
      contract_id: contractId,
      workloads: workloads.map(({ result: _r, ...w }) => w),
      signature_requirement: { ...wanted.signature_requirement, signatures: [] },
    })
    const signed = signDeployment(next, this.key, this.twinId)
    await this.ledger.contracts.update(contractId, { deploymentHash: deploymentHash(signed) })
    await this.call(nodeId, 'zos.deployment.update', signed, opts.requestTimeoutMs)
    return this.waitReady(nodeId, contractId, opts)
  }

  /** Polls until no workload is `init` (or the wait is over; then returns what there is). */
  async waitReady(nodeId: number, contractId: number, opts: DeployOptions = {}): Promise<Deployment> {
    const waitMs = opts.waitMs ?? 120_000
    const deadline = Date.now() + waitMs
    for (;;) {
      const d = await this.call<Deployment>(nodeId, 'zos.deployment.get', { contract_id: contractId })
      if (waitMs === 0 || d.workloads.every((w) => w.result && w.result.state !== 'init')) return d
      if (Date.now() > deadline) throw zerr('TIMEOUT', `deployment ${contractId} is still being provisioned after ${Math.round(waitMs / 1000)} s; check it with \`zos deployment show ${contractId}\``, { contract: contractId })
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 250))
    }
  }

  async get(contractId: number): Promise<Deployment> {
    return this.call<Deployment>(await this.nodeOf(contractId), 'zos.deployment.get', { contract_id: contractId })
  }

  async changes(contractId: number): Promise<(DeploymentWorkload & { result: WorkloadResult })[]> {
    return this.call(await this.nodeOf(contractId), 'zos.deployment.changes', { contract_id: contractId })
  }

  async logs(contractId: number, name: string, maxBytes?: number): Promise<ZmachineLogs> {
    return this.call(await this.nodeOf(contractId), 'zos.deployment.logs', { contract_id: contractId, name, ...(maxBytes ? { max_bytes: maxBytes } : {}) })
  }

  /** The twin's active deployments on one node. */
  async listOnNode(nodeId: number): Promise<Deployment[]> {
    return this.call(nodeId, 'zos.deployment.list', {})
  }

  async statistics(nodeId: number): Promise<Statistics> {
    return this.call(nodeId, 'zos.statistics.get', {})
  }

  /** The twin's node contracts on the ledger that are not deleted, with what their node says of them. */
  async list(): Promise<{ contractId: number; nodeId: number; state: string; deployment: Deployment | null; error: string }[]> {
    const contracts = (await this.ledger.contracts.list({ twinId: this.twinId })).filter((c) => c.kind === 'node' && c.state !== 'Deleted')
    const out = []
    for (const c of contracts) {
      try {
        out.push({ contractId: c.id, nodeId: c.nodeId, state: c.state, deployment: await this.call<Deployment>(c.nodeId, 'zos.deployment.get', { contract_id: c.id }, 10_000), error: '' })
      } catch (err) {
        out.push({ contractId: c.id, nodeId: c.nodeId, state: c.state, deployment: null, error: ZosError.is(err) ? `${err.code}: ${err.message}` : errorMessage(err) })
      }
    }
    return out
  }

  /** Cancels the contract: the node then removes every workload of the deployment. */
  async cancel(contractId: number): Promise<void> {
    await this.ledger.contracts.cancel(contractId)
  }

  async close(): Promise<void> {
    await this.peer.close()
  }
}

function stripResults(d: Deployment): Deployment {
  return { ...d, workloads: d.workloads.map(({ result: _r, ...w }) => w as DeploymentWorkload) }
}
