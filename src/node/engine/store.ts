// The node's durable state: deployments, the result history of every workload, and the job queue, in one
// SQLite database (WAL, synchronous FULL: an accepted deployment survives a crash). Every change that must
// happen together (a new deployment and its provisioning job; a result and the job's completion) is one
// SQLite transaction.
//
//   deployments   contract → owner twin, version, body (the deployment without results), state, paused
//   transactions  seq → contract, workload name/type/version, the workload as it was, result state/message/data
//   jobs          id → op, contract, body (JSON, versioned); removed only once the job has run
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { zerr } from '../../core/errors.js'
import type { Deployment, DeploymentWorkload } from '../types/deployment.js'
import type { ResultState, WorkloadResult } from '../types/workload.js'

const SCHEMA_VERSION = 1

export type DeploymentState = 'active' | 'deleted'

export interface StoredDeployment {
  contractId: number
  twinId: number
  version: number
  state: DeploymentState
  paused: boolean
  created: number
  updated: number
  /** The deployment with every workload's latest result. */
  deployment: Deployment
}

export interface Transaction {
  seq: number
  contractId: number
  name: string
  type: string
  version: number
  workload: DeploymentWorkload
  result: WorkloadResult
}

export type JobOp = 'provision' | 'update' | 'deprovision' | 'pause' | 'resume' | 'reprovision'

export interface Job {
  id: number
  op: JobOp
  contractId: number
  /** Op-specific data: for 'update' the previous deployment, for 'deprovision' why. Fields may be added or removed, never renamed or retyped. */
  body: { v: 1; previous?: Deployment; reason?: string }
  created: number
  attempts: number
}

interface DeploymentRow {
  contract: number
  twin: number
  version: number
  body: string
  state: DeploymentState
  paused: number
  created: number
  updated: number
}

interface TxRow {
  seq: number
  contract: number
  name: string
  type: string
  version: number
  workload: string
  state: ResultState
  message: string
  data: string | null
  created: number
}

interface JobRow {
  id: number
  op: JobOp
  contract: number
  body: string
  created: number
  attempts: number
}

const now = (): number => Math.floor(Date.now() / 1000)

function stripResults(d: Deployment): Deployment {
  return { ...d, workloads: d.workloads.map(({ result: _r, ...wl }) => wl) }
}

export class DeploymentStore {
  private readonly db: Database.Database
  private closed = false

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true })
    try {
      this.db = new Database(path)
      this.db.pragma('journal_mode = WAL')
      this.db.pragma('synchronous = FULL')
      this.db.pragma('busy_timeout = 5000')
      this.db.pragma('foreign_keys = ON')
    } catch (err) {
      throw zerr('INTERNAL', `cannot open the node database ${path}: ${err instanceof Error ? err.message : String(err)}`, { path }, err)
    }
    const version = this.db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) throw zerr('UNSUPPORTED', `the node database ${path} was written by a newer zos (schema ${version}); upgrade zos`, { path })
    if (version < SCHEMA_VERSION) this.migrate()
  }

  private migrate(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS deployments (
        contract INTEGER PRIMARY KEY,
        twin INTEGER NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS deployments_twin ON deployments (twin);
      CREATE TABLE IF NOT EXISTS transactions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        contract INTEGER NOT NULL REFERENCES deployments (contract) ON DELETE CASCADE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        version INTEGER NOT NULL,
        workload TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT,
        created INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS transactions_contract ON transactions (contract, name, seq);
      CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        op TEXT NOT NULL,
        contract INTEGER NOT NULL,
        body TEXT NOT NULL,
        created INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `)
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`)
  }

  /** Runs `fn` as one SQLite transaction. */
  atomically<T>(fn: () => T): T {
    return this.db.transaction(fn)()
  }

  // ---- deployments ----

  exists(contractId: number): boolean {
    return this.db.prepare('SELECT 1 FROM deployments WHERE contract = ?').get(contractId) !== undefined
  }

  /** Stores a new deployment with an `init` result for every workload. */
  create(d: Deployment): void {
    const t = now()
    const body = stripResults(d)
    this.db.prepare('INSERT INTO deployments (contract, twin, version, body, state, paused, created, updated) VALUES (?, ?, ?, ?, ?, 0, ?, ?)').run(d.contract_id, d.twin_id, d.version, JSON.stringify(body), 'active', t, t)
    for (const wl of body.workloads) this.addResult(d.contract_id, wl, { created: t, state: 'init', message: '' })
  }

  /** Replaces the deployment body (an update); new and changed workloads get an `init` result. */
  replace(d: Deployment, changed: readonly string[]): void {
    const t = now()
    const body = stripResults(d)
    this.db.prepare('UPDATE deployments SET version = ?, body = ?, updated = ? WHERE contract = ?').run(d.version, JSON.stringify(body), t, d.contract_id)
    for (const wl of body.workloads) if (changed.includes(wl.name)) this.addResult(d.contract_id, wl, { created: t, state: 'init', message: '' })
  }

  setState(contractId: number, state: DeploymentState): void {
    this.db.prepare('UPDATE deployments SET state = ?, updated = ? WHERE contract = ?').run(state, now(), contractId)
  }

  setPaused(contractId: number, paused: boolean): void {
    this.db.prepare('UPDATE deployments SET paused = ?, updated = ? WHERE contract = ?').run(paused ? 1 : 0, now(), contractId)
  }

  private latestResults(contractId: number): Map<string, { result: WorkloadResult; workload: DeploymentWorkload }> {
    const rows = this.db
      .prepare('SELECT * FROM transactions WHERE seq IN (SELECT MAX(seq) FROM transactions WHERE contract = ? GROUP BY name)')
      .all(contractId) as TxRow[]
    return new Map(rows.map((r) => [r.name, { result: resultOf(r), workload: JSON.parse(r.workload) as DeploymentWorkload }]))
  }

  private hydrate(row: DeploymentRow): StoredDeployment {
    const body = JSON.parse(row.body) as Deployment
    const results = this.latestResults(row.contract)
    const workloads = body.workloads.map((wl) => ({ ...wl, result: results.get(wl.name)?.result ?? { created: 0, state: 'init' as const, message: '' } }))
    return {
      contractId: row.contract,
      twinId: row.twin,
      version: row.version,
      state: row.state,
      paused: row.paused === 1,
      created: row.created,
      updated: row.updated,
      deployment: { ...body, workloads },
    }
  }

  get(contractId: number): StoredDeployment | undefined {
    const row = this.db.prepare('SELECT * FROM deployments WHERE contract = ?').get(contractId) as DeploymentRow | undefined
    return row ? this.hydrate(row) : undefined
  }

  /** Deployments of a twin (or all), active ones unless `deleted` is set. */
  list(opts: { twinId?: number; includeDeleted?: boolean } = {}): StoredDeployment[] {
    const where: string[] = []
    const args: (number | string)[] = []
    if (opts.twinId !== undefined) {
      where.push('twin = ?')
      args.push(opts.twinId)
    }
    if (!opts.includeDeleted) where.push("state = 'active'")
    const sql = `SELECT * FROM deployments ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY contract`
    return (this.db.prepare(sql).all(...args) as DeploymentRow[]).map((r) => this.hydrate(r))
  }

  /** Latest result of each workload of a deployment, including removed workloads. */
  results(contractId: number): Map<string, { result: WorkloadResult; workload: DeploymentWorkload }> {
    return this.latestResults(contractId)
  }

  /** The latest result of a workload that is not `init` (what it was before an update was queued). */
  lastSettled(contractId: number, name: string): WorkloadResult | undefined {
    const row = this.db.prepare("SELECT * FROM transactions WHERE contract = ? AND name = ? AND state != 'init' ORDER BY seq DESC LIMIT 1").get(contractId, name) as TxRow | undefined
    return row ? resultOf(row) : undefined
  }

  addResult(contractId: number, wl: DeploymentWorkload, result: WorkloadResult): void {
    const { result: _r, ...plain } = wl
    this.db
      .prepare('INSERT INTO transactions (contract, name, type, version, workload, state, message, data, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(contractId, wl.name, wl.type, wl.version, JSON.stringify(plain), result.state, result.message, result.data === undefined ? null : JSON.stringify(result.data), result.created)
  }

  /** The full result history of a deployment, oldest first. */
  changes(contractId: number): Transaction[] {
    const rows = this.db.prepare('SELECT * FROM transactions WHERE contract = ? ORDER BY seq').all(contractId) as TxRow[]
    return rows.map((r) => ({ seq: r.seq, contractId: r.contract, name: r.name, type: r.type, version: r.version, workload: JSON.parse(r.workload) as DeploymentWorkload, result: resultOf(r) }))
  }

  /** Forgets deployments deleted before `before` (unix seconds), with their history. */
  purgeDeleted(before: number): number {
    return this.db.prepare("DELETE FROM deployments WHERE state = 'deleted' AND updated < ?").run(before).changes
  }

  // ---- jobs ----

  enqueue(op: JobOp, contractId: number, body: Job['body'] = { v: 1 }): number {
    const r = this.db.prepare('INSERT INTO jobs (op, contract, body, created) VALUES (?, ?, ?, ?)').run(op, contractId, JSON.stringify(body), now())
    return Number(r.lastInsertRowid)
  }

  /** The oldest job, or undefined when the queue is empty. */
  nextJob(): Job | undefined {
    const row = this.db.prepare('SELECT * FROM jobs ORDER BY id LIMIT 1').get() as JobRow | undefined
    if (!row) return undefined
    const body = JSON.parse(row.body) as Job['body']
    if (body.v !== 1) throw zerr('UNSUPPORTED', `job ${row.id} was written by a newer zos (body version ${String(body.v)})`)
    return { id: row.id, op: row.op, contractId: row.contract, body, created: row.created, attempts: row.attempts }
  }

  jobs(): Job[] {
    return (this.db.prepare('SELECT * FROM jobs ORDER BY id').all() as JobRow[]).map((row) => ({ id: row.id, op: row.op, contractId: row.contract, body: JSON.parse(row.body) as Job['body'], created: row.created, attempts: row.attempts }))
  }

  /** Counts an attempt before a job runs (so a job that crashes the process every time can be spotted). */
  attempt(jobId: number): number {
    this.db.prepare('UPDATE jobs SET attempts = attempts + 1 WHERE id = ?').run(jobId)
    return (this.db.prepare('SELECT attempts FROM jobs WHERE id = ?').get(jobId) as { attempts: number } | undefined)?.attempts ?? 0
  }

  finishJob(jobId: number): void {
    this.db.prepare('DELETE FROM jobs WHERE id = ?').run(jobId)
  }

  hasJob(op: JobOp, contractId: number): boolean {
    return this.db.prepare('SELECT 1 FROM jobs WHERE op = ? AND contract = ?').get(op, contractId) !== undefined
  }

  // ---- meta ----

  getMeta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}

function resultOf(r: TxRow): WorkloadResult {
  const out: WorkloadResult = { created: r.created, state: r.state, message: r.message }
  if (r.data !== null) out.data = JSON.parse(r.data) as unknown
  return out
}
