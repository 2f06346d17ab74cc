// The provisioning engine (zosbase pkg/provision/engine.go): it verifies a deployment before anything changes
// on the node, stores it with its job in one transaction, and provisions it later from the durable job queue,
// one job at a time. A job leaves the queue only once it has run, so a crash runs it again at the next start;
// primitives are idempotent, so running it again is safe. At start every active deployment is provisioned
// again (containers and mounts come back after a reboot). A workload that fails is a recorded error result;
// only engine failures (the database) are errors of the engine.
import { isDeepStrictEqual } from 'node:util'
import { ZosError, errorMessage, zerr } from '../../core/errors.js'
import { capacity as makeCapacity, type Capacity } from '../types/capacity.js'
import {
  capacityOf,
  deploymentHash,
  parseDeployment,
  planUpgrade,
  sortByTypeOrder,
  verifyDeploymentSignatures,
  type Deployment,
  type DeploymentWorkload,
} from '../types/deployment.js'
import { workloadId, type ResultState, type WorkloadResult } from '../types/workload.js'
import type { NodeLogger } from '../log.js'
import type { PrimitiveRegistry, WorkloadContext } from '../primitives/primitive.js'
import { addCapacity, admit, type NodeCapacity } from './capacity.js'
import type { DeploymentStore, Job, JobOp, StoredDeployment, Transaction } from './store.js'

export type ContractStateName = 'Created' | 'GracePeriod' | 'Deleted'

/** What the engine needs to know of a contract on the ledger. */
export interface ContractView {
  id: number
  twinId: number
  nodeId: number
  kind: 'node' | 'name' | 'rent'
  /** The state the node acts on (a node contract on a rent in grace is in grace). */
  state: ContractStateName
  deploymentHash: string
}

/** The engine's view of the ledger. */
export interface ChainView {
  /** The contract; a ZosError NOT_FOUND when the ledger has none with this id. */
  contract(id: number): Promise<ContractView>
  /** The ledger account of a twin: the address its deployment signatures must recover to. */
  accountOf(twinId: number): Promise<string>
}

export interface EngineOptions {
  nodeId: number
  store: DeploymentStore
  primitives: PrimitiveRegistry
  chain: ChainView
  /** The node's capacity; asked at every admission (it may be refreshed). */
  capacity: () => NodeCapacity
  log: NodeLogger
  /** Called after every job that changed a deployment (usage reports). */
  onChange?: (contractId: number, op: JobOp) => void
  /** Delay before a job that failed inside the engine is tried again (default 2 s). */
  retryDelayMs?: number
  /** Attempts before such a job is dropped (default 5). */
  maxAttempts?: number
}

/** States whose workloads hold capacity. */
const HOLDING: readonly ResultState[] = ['init', 'ok', 'paused', 'unchanged']
/**
 * States whose workloads are provisioned again at start. Failed ones are tried again too (a store or disk that
 * was away may be back); the same failure again records nothing new.
 */
const REPROVISION: readonly ResultState[] = ['init', 'ok', 'paused', 'unchanged', 'error']

const now = (): number => Math.floor(Date.now() / 1000)

export interface Statistics {
  total: Capacity
  used: Capacity
  system: Capacity
  users: { deployments: number; workloads: number; twins: number; last_deployment_timestamp: number }
}

export class Engine {
  private readonly store: DeploymentStore
  private readonly log: NodeLogger
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private stopping = false
  private working = false
  private idleWaiters: (() => void)[] = []

  constructor(private readonly opts: EngineOptions) {
    this.store = opts.store
    this.log = opts.log
  }

  // ---- API (verify, admit, store, enqueue; provisioning happens later) ----

  /** Verifies a new deployment and queues its provisioning. Nothing changes on the node when this throws. */
  async deploy(sender: number, raw: unknown): Promise<Deployment> {
    const t0 = performance.now()
    const d = parseDeployment(raw)
    this.checkSender(d, sender)
    if (d.contract_id < 1) throw zerr('INVALID_ARGUMENT', 'deployment.contract_id: create the node contract on the ledger first and set its id', { field: 'deployment.contract_id' })
    if (d.version !== 0) throw zerr('INVALID_ARGUMENT', `deployment.version: a new deployment has version 0, got ${d.version} (use zos.deployment.update to change one)`, { field: 'deployment.version' })
    this.checkNew(d)
    await verifyDeploymentSignatures(d, (t) => this.opts.chain.accountOf(t))
    await this.checkContract(d)
    this.store.atomically(() => {
      this.checkNew(d)
      admit(this.opts.capacity(), this.usedCapacity(), capacityOf(d.workloads))
      this.store.create(d)
      this.store.enqueue('provision', d.contract_id)
    })
    this.log.info({ twin: d.twin_id, contract: d.contract_id, workloads: d.workloads.length, verifyMs: Math.round((performance.now() - t0) * 10) / 10 }, 'deployment accepted')
    this.kick()
    return this.get(sender, d.contract_id)
  }

  /** Verifies an update (version + 1, same twin and contract, new hash on the contract) and queues it. */
  async update(sender: number, raw: unknown): Promise<Deployment> {
    const next = parseDeployment(raw)
    this.checkSender(next, sender)
    const current = this.owned(sender, next.contract_id)
    planUpgrade(current.deployment, next)
    await verifyDeploymentSignatures(next, (t) => this.opts.chain.accountOf(t))
    await this.checkContract(next)
    this.store.atomically(() => {
      const cur = this.owned(sender, next.contract_id)
      const plan = planUpgrade(cur.deployment, next)
      admit(this.opts.capacity(), subtract(this.usedCapacity(), this.heldBy(cur)), capacityOf(next.workloads))
      const previous = stripResults(cur.deployment)
      this.store.replace(next, [...plan.add, ...plan.update.map((u) => u.to)].map((w) => w.name))
      this.store.enqueue('update', next.contract_id, { v: 1, previous })
    })
    this.log.info({ twin: next.twin_id, contract: next.contract_id, version: next.version }, 'deployment update accepted')
    this.kick()
    return this.get(sender, next.contract_id)
  }

  /** A deployment of the sender (deleted ones included), with its results. */
  get(sender: number, contractId: number): Deployment {
    return this.ownedAny(sender, contractId).deployment
  }

  /** The sender's active deployments. */
  list(sender: number): Deployment[] {
    return this.store.list({ twinId: sender }).map((s) => s.deployment)
  }

  /** The result history of a deployment of the sender: every workload as it was, with its result, oldest first. */
  changes(sender: number, contractId: number): (DeploymentWorkload & { result: WorkloadResult })[] {
    this.ownedAny(sender, contractId)
    return this.store.changes(contractId).map((t: Transaction) => ({ ...t.workload, result: t.result }))
  }

  /** The stored deployment (any twin): for the node's own use (logs, reports). */
  stored(contractId: number): StoredDeployment | undefined {
    return this.store.get(contractId)
  }

  /** Capacity held by the workloads of one deployment (what the node reports as used on its contract). */
  usage(contractId: number): Capacity {
    const sd = this.store.get(contractId)
    if (!sd || sd.state === 'deleted') return makeCapacity()
    return capacityOf(sd.deployment.workloads.filter((w) => w.result?.state === 'ok' || w.result?.state === 'paused' || w.result?.state === 'unchanged'))
  }

  /** Capacity held by every active deployment (admitted workloads count before they are provisioned). */
  usedCapacity(): Capacity {
    return this.store.list().reduce((acc, sd) => addCapacity(acc, this.heldBy(sd)), makeCapacity())
  }

  statistics(): Statistics {
    const node = this.opts.capacity()
    const active = this.store.list()
    const workloads = active.reduce((n, sd) => n + sd.deployment.workloads.filter((w) => HOLDING.includes(w.result?.state ?? 'init')).length, 0)
    return {
      total: node.total,
      used: this.usedCapacity(),
      system: node.reserved,
      users: {
        deployments: active.length,
        workloads,
        twins: new Set(active.map((s) => s.twinId)).size,
        last_deployment_timestamp: active.reduce((t, s) => Math.max(t, s.created), 0),
      },
    }
  }

  /** Active deployments (contract ids), for reconciliation and reports. */
  activeContracts(): number[] {
    return this.store.list().map((s) => s.contractId)
  }

  // ---- contract events ----

  /** The contract was cancelled (or is gone from the ledger): deprovision in reverse order. */
  cancel(contractId: number, reason = 'contract cancelled'): void {
    const sd = this.store.get(contractId)
    if (!sd || sd.state === 'deleted' || this.store.hasJob('deprovision', contractId)) return
    this.store.enqueue('deprovision', contractId, { v: 1, reason })
    this.kick()
  }

  /** The contract entered its grace period: pause every workload. */
  pause(contractId: number): void {
    const sd = this.store.get(contractId)
    if (!sd || sd.state === 'deleted' || sd.paused) return
    this.store.atomically(() => {
      this.store.setPaused(contractId, true)
      this.store.enqueue('pause', contractId)
    })
    this.kick()
  }

  /** The grace period ended (paid): resume. */
  resume(contractId: number): void {
    const sd = this.store.get(contractId)
    if (!sd || sd.state === 'deleted' || !sd.paused) return
    this.store.atomically(() => {
      this.store.setPaused(contractId, false)
      this.store.enqueue('resume', contractId)
    })
    this.kick()
  }

  /**
   * Brings local deployments in line with the ledger: a contract that is gone or deleted is deprovisioned, one
   * in grace is paused, one back to Created is resumed. `stateOf` returns null for a contract the ledger lacks.
   */
  async reconcile(stateOf: (contractId: number) => Promise<ContractStateName | null>): Promise<{ cancelled: number[]; paused: number[]; resumed: number[] }> {
    const out = { cancelled: [] as number[], paused: [] as number[], resumed: [] as number[] }
    for (const sd of this.store.list()) {
      let state: ContractStateName | null
      try {
        state = await stateOf(sd.contractId)
      } catch (err) {
        this.log.warn({ contract: sd.contractId, err: errorMessage(err) }, 'reconcile: cannot read the contract; will try again')
        continue
      }
      if (state === null || state === 'Deleted') {
        this.cancel(sd.contractId, state === null ? 'contract not on the ledger' : 'contract deleted')
        out.cancelled.push(sd.contractId)
      } else if (state === 'GracePeriod' && !sd.paused) {
        this.pause(sd.contractId)
        out.paused.push(sd.contractId)
      } else if (state === 'Created' && sd.paused) {
        this.resume(sd.contractId)
        out.resumed.push(sd.contractId)
      }
    }
    return out
  }

  // ---- the worker ----

  /** Queues a re-provisioning of every active deployment (boot) and starts the worker. */
  start(opts: { reprovision?: boolean } = {}): void {
    if (this.loop) return
    if (opts.reprovision !== false) {
      for (const sd of this.store.list()) if (!this.store.hasJob('reprovision', sd.contractId)) this.store.enqueue('reprovision', sd.contractId)
    }
    this.store.purgeDeleted(now() - 7 * 24 * 3600)
    this.stopping = false
    this.loop = this.run()
  }

  /** Stops after the running job (if any) is done. */
  async stop(): Promise<void> {
    this.stopping = true
    this.wake?.()
    await this.loop
    this.loop = undefined
  }

  /** Settles when the queue is empty and no job runs. */
  idle(): Promise<void> {
    if (!this.working && this.store.nextJob() === undefined) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private kick(): void {
    this.wake?.()
  }

  private async run(): Promise<void> {
    const retryMs = this.opts.retryDelayMs ?? 2000
    const maxAttempts = this.opts.maxAttempts ?? 5
    while (!this.stopping) {
      let job: Job | undefined
      try {
        job = this.store.nextJob()
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'cannot read the job queue')
      }
      if (!job) {
        const waiters = this.idleWaiters.splice(0)
        for (const w of waiters) w()
        await new Promise<void>((resolve) => {
          this.wake = resolve
          // A periodic look: jobs can also be queued by another path that did not kick.
          setTimeout(resolve, 1000).unref()
        })
        this.wake = undefined
        continue
      }
      this.working = true
      const attempts = this.store.attempt(job.id)
      const log = this.log.child({ job: job.id, op: job.op, contract: job.contractId })
      try {
        await this.execute(job, log)
        this.store.finishJob(job.id)
        try {
          this.opts.onChange?.(job.contractId, job.op)
        } catch (err) {
          log.warn({ err: errorMessage(err) }, 'change listener failed')
        }
      } catch (err) {
        if (attempts >= maxAttempts) {
          log.error({ err: errorMessage(err), attempts }, 'job failed too often; dropped')
          this.store.finishJob(job.id)
        } else {
          log.error({ err: errorMessage(err), attempts }, 'job failed inside the engine; will retry')
          await new Promise((r) => setTimeout(r, retryMs))
        }
      } finally {
        this.working = false
      }
    }
  }

  private async execute(job: Job, log: NodeLogger): Promise<void> {
    const sd = this.store.get(job.contractId)
    if (!sd || sd.state === 'deleted') return
    switch (job.op) {
      case 'provision':
        for (const wl of sortByTypeOrder(sd.deployment.workloads)) if (wl.result?.state === 'init') await this.install(job.contractId, wl.name, log)
        return
      case 'reprovision': {
        for (const wl of sortByTypeOrder(sd.deployment.workloads)) {
          if (REPROVISION.includes(wl.result?.state ?? 'init')) await this.install(job.contractId, wl.name, log, true)
        }
        if (sd.paused) await this.pauseAll(job.contractId, log)
        return
      }
      case 'update':
        return this.applyUpdate(job, log)
      case 'deprovision': {
        for (const wl of sortByTypeOrder(sd.deployment.workloads).reverse()) {
          if (wl.result?.state === 'deleted') continue
          await this.remove(job.contractId, wl, job.body.reason ?? 'contract cancelled', log)
        }
        this.store.setState(job.contractId, 'deleted')
        log.info({}, 'deployment deprovisioned')
        return
      }
      case 'pause':
        return this.pauseAll(job.contractId, log)
      case 'resume': {
        for (const wl of sortByTypeOrder(sd.deployment.workloads)) {
          if (wl.result?.state !== 'paused') continue
          const p = this.opts.primitives[wl.type]
          const ctx = this.context(job.contractId, wl, log)
          try {
            await p.resume?.(ctx)
            this.store.addResult(job.contractId, wl, { created: now(), state: 'ok', message: '', data: wl.result.data })
          } catch (err) {
            this.store.addResult(job.contractId, wl, { created: now(), state: 'error', message: `resume failed: ${errorMessage(err)}` })
          }
        }
        return
      }
    }
  }

  private async pauseAll(contractId: number, log: NodeLogger): Promise<void> {
    const sd = this.store.get(contractId)
    if (!sd) return
    for (const wl of sortByTypeOrder(sd.deployment.workloads).reverse()) {
      if (wl.result?.state !== 'ok') continue
      const ctx = this.context(contractId, wl, log)
      try {
        await this.opts.primitives[wl.type].pause?.(ctx)
        this.store.addResult(contractId, wl, { created: now(), state: 'paused', message: 'paused: the contract is in its grace period', data: wl.result.data })
      } catch (err) {
        this.store.addResult(contractId, wl, { created: now(), state: 'error', message: `pause failed: ${errorMessage(err)}` })
      }
    }
  }

  private async applyUpdate(job: Job, log: NodeLogger): Promise<void> {
    const sd = this.store.get(job.contractId)!
    const previous = job.body.previous
    if (!previous) throw zerr('INTERNAL', `update job ${job.id} carries no previous deployment`)
    const plan = planUpgrade(previous, stripResults(sd.deployment))
    const results = this.store.results(job.contractId)
    for (const wl of sortByTypeOrder(plan.remove).reverse()) {
      const last = results.get(wl.name)
      if (last?.result.state === 'deleted') continue
      await this.remove(job.contractId, { ...wl, result: last?.result }, 'removed by an update', log)
    }
    const updates = new Map(plan.update.map((u) => [u.to.name, u.from]))
    for (const wl of sortByTypeOrder([...plan.add, ...plan.update.map((u) => u.to)])) {
      const current = this.store.get(job.contractId)!.deployment.workloads.find((w) => w.name === wl.name)
      if (current?.result?.state !== 'init') continue // already done before a crash
      const from = updates.get(wl.name)
      if (!from) {
        await this.install(job.contractId, wl.name, log)
        continue
      }
      const p = this.opts.primitives[wl.type]
      const before = this.store.lastSettled(job.contractId, wl.name)
      const ctx = this.context(job.contractId, current, log)
      if (before?.state !== 'ok') {
        // It never ran (error): provisioning the new definition is the update.
        await this.install(job.contractId, wl.name, log)
        continue
      }
      if (!p.update) {
        this.store.addResult(job.contractId, current, { created: now(), state: 'unchanged', message: `${wl.type} workloads cannot be updated; it keeps running as it was`, data: before.data })
        continue
      }
      try {
        const out = await p.update(ctx, from)
        this.store.addResult(job.contractId, current, { created: now(), state: 'ok', message: '', data: out.data })
      } catch (err) {
        log.warn({ workload: wl.name, type: wl.type, err: errorMessage(err) }, 'workload update failed')
        this.store.addResult(job.contractId, current, { created: now(), state: 'error', message: errorMessage(err), data: before?.data })
      }
    }
  }

  private context(contractId: number, wl: DeploymentWorkload, log: NodeLogger): WorkloadContext {
    const sd = this.store.get(contractId)!
    const id = workloadId(sd.twinId, contractId, wl.name)
    return {
      id,
      twinId: sd.twinId,
      contractId,
      workload: wl,
      deployment: sd.deployment,
      log: log.child({ twin: sd.twinId, contract: contractId, workload: wl.name, type: wl.type }),
    }
  }

  private async install(contractId: number, name: string, log: NodeLogger, boot = false): Promise<void> {
    const sd = this.store.get(contractId)
    const wl = sd?.deployment.workloads.find((w) => w.name === name)
    if (!sd || !wl) return
    const last = wl.result
    const ctx = this.context(contractId, wl, log)
    const p = this.opts.primitives[wl.type]
    try {
      const out = await p.provision(ctx)
      if (out.existed && last?.state === 'ok' && isDeepStrictEqual(last.data, out.data)) return
      if (boot && last?.state === 'paused' && out.existed) return
      this.store.addResult(contractId, wl, { created: now(), state: 'ok', message: '', data: out.data })
      ctx.log.info({}, out.existed ? 'workload already in place' : 'workload provisioned')
    } catch (err) {
      const message = errorMessage(err)
      ctx.log.warn({ err: message, code: ZosError.is(err) ? err.code : undefined }, 'workload failed')
      if (boot && last?.state === 'error' && last.message === message) return
      this.store.addResult(contractId, wl, { created: now(), state: 'error', message })
    }
  }

  private async remove(contractId: number, wl: DeploymentWorkload, reason: string, log: NodeLogger): Promise<void> {
    const ctx = this.context(contractId, wl, log)
    try {
      await this.opts.primitives[wl.type].deprovision(ctx)
      this.store.addResult(contractId, wl, { created: now(), state: 'deleted', message: `deleted: ${reason}` })
      ctx.log.info({ reason }, 'workload deprovisioned')
    } catch (err) {
      ctx.log.error({ err: errorMessage(err) }, 'workload deprovision failed')
      this.store.addResult(contractId, wl, { created: now(), state: 'error', message: `deprovision failed: ${errorMessage(err)}` })
    }
  }

  // ---- checks ----

  private checkSender(d: Deployment, sender: number): void {
    if (d.twin_id !== sender) throw zerr('UNAUTHORIZED', `the deployment belongs to twin ${d.twin_id}, but twin ${sender} sent it; only the owner may deploy`, { twin: d.twin_id, sender })
  }

  private checkNew(d: Deployment): void {
    if (this.store.exists(d.contract_id)) throw zerr('EXISTS', `contract ${d.contract_id} already has a deployment on this node; send an update (version + 1) instead`, { contract: d.contract_id })
  }

  private async checkContract(d: Deployment): Promise<void> {
    let c: ContractView
    try {
      c = await this.opts.chain.contract(d.contract_id)
    } catch (err) {
      if (ZosError.is(err) && err.code === 'NOT_FOUND') throw zerr('CONTRACT_INVALID', `contract ${d.contract_id} does not exist on the ledger; create it first`, { contract: d.contract_id })
      throw err
    }
    const node = this.opts.nodeId
    if (c.kind !== 'node') throw zerr('CONTRACT_INVALID', `contract ${c.id} is a ${c.kind} contract, not a node contract`, { contract: c.id })
    if (c.nodeId !== node) throw zerr('CONTRACT_INVALID', `contract ${c.id} is for node ${c.nodeId}, and this is node ${node}`, { contract: c.id, node: c.nodeId })
    if (c.twinId !== d.twin_id) throw zerr('CONTRACT_INVALID', `contract ${c.id} belongs to twin ${c.twinId}, not to the deployment's twin ${d.twin_id}`, { contract: c.id, twin: c.twinId })
    if (c.state === 'Deleted') throw zerr('CONTRACT_INVALID', `contract ${c.id} is deleted; create a new contract`, { contract: c.id })
    if (c.state === 'GracePeriod') throw zerr('CONTRACT_INVALID', `contract ${c.id} is in its grace period (unpaid); fund the twin's account first`, { contract: c.id })
    const hash = deploymentHash(d)
    if (c.deploymentHash.toLowerCase() !== hash) {
      throw zerr('HASH_MISMATCH', `the deployment hashes to ${hash}, but contract ${c.id} carries ${c.deploymentHash}; update the contract with this hash (or send the deployment it was made for)`, { contract: c.id, hash, onContract: c.deploymentHash })
    }
  }

  private owned(sender: number, contractId: number): StoredDeployment {
    const sd = this.ownedStored(sender, contractId)
    if (sd.state === 'deleted') throw zerr('INVALID_STATE', `the deployment of contract ${contractId} was deleted; it cannot be updated`, { contract: contractId })
    return sd
  }

  private ownedAny(sender: number, contractId: number): StoredDeployment {
    return this.ownedStored(sender, contractId)
  }

  private ownedStored(sender: number, contractId: number): StoredDeployment {
    const sd = this.store.get(contractId)
    // Another twin's deployment looks like no deployment at all.
    if (!sd || sd.twinId !== sender) throw zerr('NOT_FOUND', `no deployment of contract ${contractId} for twin ${sender} on this node`, { contract: contractId })
    return sd
  }

  private heldBy(sd: StoredDeployment): Capacity {
    return capacityOf(sd.deployment.workloads.filter((w) => HOLDING.includes(w.result?.state ?? 'init')))
  }
}

function subtract(a: Capacity, b: Capacity): Capacity {
  return { cru: a.cru - b.cru, mru: a.mru - b.mru, sru: a.sru - b.sru, hru: a.hru - b.hru, ipv4u: a.ipv4u - b.ipv4u }
}

function stripResults(d: Deployment): Deployment {
  return { ...d, workloads: d.workloads.map(({ result: _r, ...wl }) => wl as DeploymentWorkload) }
}
