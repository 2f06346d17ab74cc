// Usage and billing on the ledger (zos provisiond reporter): the resources each contract's workloads hold are
// reported after every change (coalesced) and periodically; the node bills its contracts hourly. Failures are
// logged and retried at the next round: a node never stops serving because the ledger is away.
import { errorMessage } from '../core/errors.js'
import type { Ledger } from '../ledger/types.js'
import type { Engine } from './engine/engine.js'
import type { NodeLogger } from './log.js'

const BATCH = 64

export interface ReporterOptions {
  ledger: Ledger
  engine: Engine
  log: NodeLogger
  /** Coalescing delay after a change (default 500 ms). */
  debounceMs?: number
}

export class Reporter {
  private pending = new Set<number>()
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> = Promise.resolve()
  /** What was last reported per contract, so unchanged figures are not sent again by the change path. */
  private readonly last = new Map<number, string>()

  constructor(private readonly opts: ReporterOptions) {}

  /** A deployment changed: report its usage soon. */
  changed(contractId: number): void {
    this.pending.add(contractId)
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      const ids = [...this.pending]
      this.pending.clear()
      this.running = this.running.then(() => this.report(ids, false))
    }, this.opts.debounceMs ?? 500)
    this.timer.unref()
  }

  /** Reports every active contract (periodic; also re-sends unchanged figures). */
  reportAll(): Promise<void> {
    this.running = this.running.then(() => this.report(this.opts.engine.activeContracts(), true))
    return this.running
  }

  /** Waits for reports in flight (and a pending coalesced one). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
      const ids = [...this.pending]
      this.pending.clear()
      this.running = this.running.then(() => this.report(ids, false))
    }
    await this.running
  }

  private async report(ids: number[], force: boolean): Promise<void> {
    try {
      await this.reportNow(ids, force)
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err) }, 'usage report failed')
    }
  }

  private async reportNow(ids: number[], force: boolean): Promise<void> {
    const reports = ids
      .map((contractId) => {
        const u = this.opts.engine.usage(contractId)
        return { contractId, used: { cru: u.cru, mru: u.mru, sru: u.sru, hru: u.hru } }
      })
      .filter((r) => force || this.last.get(r.contractId) !== JSON.stringify(r.used))
    for (let i = 0; i < reports.length; i += BATCH) {
      const batch = reports.slice(i, i + BATCH)
      try {
        await this.opts.ledger.billing.reportResources(batch)
      } catch (err) {
        // One bad contract (deleted meanwhile) must not block the others: send them one by one.
        this.opts.log.warn({ err: errorMessage(err), contracts: batch.length }, 'usage report failed; retrying one by one')
        for (const r of batch) {
          try {
            await this.opts.ledger.billing.reportResources([r])
          } catch (e) {
            this.opts.log.warn({ contract: r.contractId, err: errorMessage(e) }, 'usage report failed')
            continue
          }
          this.last.set(r.contractId, JSON.stringify(r.used))
        }
        continue
      }
      for (const r of batch) this.last.set(r.contractId, JSON.stringify(r.used))
      this.opts.log.debug({ contracts: batch.map((r) => r.contractId) }, 'usage reported')
    }
  }

  /** Bills every active contract of the node (the hourly trigger). */
  async billAll(): Promise<number> {
    const ids = this.opts.engine.activeContracts()
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH)
      try {
        await this.opts.ledger.billing.billMany(batch)
      } catch (err) {
        this.opts.log.warn({ err: errorMessage(err), contracts: batch }, 'billing failed; will try at the next round')
      }
    }
    if (ids.length) this.opts.log.info({ contracts: ids.length }, 'contracts billed')
    return ids.length
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }
}
