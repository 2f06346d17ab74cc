// A fixed pool of worker threads running one module; requests are queued and handed to the first idle worker.
// Used for CPU-bound work (chunking, hashing, compression) so that packing scales with cores.
import { Worker, type TransferListItem } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { ERROR_CODES, ZosError, type ErrorCode } from './errors.js'

interface Task {
  request: unknown
  transfer: readonly TransferListItem[]
  resolve(value: unknown): void
  reject(err: unknown): void
}

interface Slot {
  worker: Worker
  task?: Task
}

export class WorkerPool<Req, Res> {
  private readonly slots: Slot[] = []
  private readonly queue: Task[] = []
  private closed = false
  private failure: Error | undefined

  constructor(moduleUrl: URL, size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i++) this.slots.push(this.spawn(moduleUrl))
  }

  get size(): number {
    return this.slots.length
  }

  /** A worker died: every request from now on fails. */
  get failed(): boolean {
    return this.failure !== undefined
  }

  private spawn(moduleUrl: URL): Slot {
    const slot: Slot = { worker: workerFor(moduleUrl) }
    slot.worker.on('message', (msg: { ok: boolean; value?: unknown; error?: string; code?: string; details?: Record<string, unknown> }) => {
      const task = slot.task
      slot.task = undefined
      if (task) {
        if (msg.ok) task.resolve(msg.value)
        else if (msg.code && msg.code in ERROR_CODES) task.reject(new ZosError(msg.code as ErrorCode, msg.error ?? 'worker failed', msg.details ? { details: msg.details } : {}))
        else task.reject(new Error(msg.error ?? 'worker failed'))
      }
      this.dispatch()
    })
    slot.worker.on('error', (err) => this.fail(err))
    slot.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`worker exited with code ${code}`))
    })
    slot.worker.unref()
    return slot
  }

  private fail(err: Error): void {
    this.failure ??= err
    for (const slot of this.slots) {
      slot.task?.reject(err)
      slot.task = undefined
    }
    for (const task of this.queue.splice(0)) task.reject(err)
  }

  run(request: Req, transfer: readonly TransferListItem[] = []): Promise<Res> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'))
    if (this.failure) return Promise.reject(this.failure)
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ request, transfer, resolve: resolve as (v: unknown) => void, reject })
      this.dispatch()
    })
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) break
      if (slot.task) continue
      const task = this.queue.shift()!
      slot.task = task
      slot.worker.ref()
      slot.worker.postMessage(task.request, task.transfer as TransferListItem[])
    }
    // Idle workers must not keep the process alive.
    for (const slot of this.slots) if (!slot.task) slot.worker.unref()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all(this.slots.map((s) => stopWorker(s.worker)))
  }
}

/**
 * Terminates `worker` and waits until it has stopped, `maxMs` at most, with a timer held meanwhile: awaiting the
 * termination of an unreferenced worker alone can let the event loop run dry, and the awaiting code then never
 * resumes (a hub whose close never returned, about once in 20 test runs). A thread stuck in native code longer than
 * `maxMs` is left to stop on its own.
 */
export async function stopWorker(worker: Worker, maxMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([worker.terminate(), new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs)))])
  clearTimeout(timer)
}

/** A worker thread running `moduleUrl`, also from the TypeScript sources. */
export function workerFor(moduleUrl: URL): Worker {
  // Under tsx (development runs of the TypeScript sources) the worker registers the loader itself:
  // Node 20 does not carry --import hooks into worker threads.
  return moduleUrl.pathname.endsWith('.ts')
    ? new Worker(`import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(moduleUrl.href)}) })`, { eval: true })
    : new Worker(moduleUrl)
}

/** URL of a sibling module that works from both the TypeScript sources (tsx) and the compiled dist/. */
export function siblingModule(base: string, name: string): URL {
  const ext = base.endsWith('.ts') ? '.ts' : '.js'
  return new URL(`./${name}${ext}`, base)
}
