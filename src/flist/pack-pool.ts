// The pack workers' pool, in a module of its own that loads nothing else: a worker thread takes 60–120 ms to
// boot on a small VM, longer than the CLI takes to load, so `zos flist pack` starts its workers before loading
// anything (prestartPackPool, called from cli/main.ts) and pack() gets them from takePackPool.
import { availableParallelism } from 'node:os'
import { zerr } from '../core/errors.js'
import { WorkerPool, siblingModule } from '../core/worker-pool.js'
import type { WorkerRequest, WorkerResponse } from './pack-worker.js'

export type PackPool = WorkerPool<WorkerRequest, WorkerResponse>

const MAX_WORKERS = 256

/** Starts the worker threads that chunk, hash and encode (default: one per core). */
export function createPackPool(workers: number = availableParallelism()): PackPool {
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw zerr('INVALID_ARGUMENT', `the number of pack workers must be an integer from 1 to ${MAX_WORKERS}, got ${workers}`)
  }
  return new WorkerPool<WorkerRequest, WorkerResponse>(siblingModule(import.meta.url, 'pack-worker'), workers)
}

let early: PackPool | undefined

/** Starts a pool now for a takePackPool to come. Its idle workers do not keep the process alive. */
export function prestartPackPool(workers?: number): void {
  early ??= createPackPool(workers)
}

/** The pool prestartPackPool started, if it has that many workers; a new pool otherwise. */
export function takePackPool(workers: number = availableParallelism()): PackPool {
  const pool = early
  early = undefined
  if (pool?.size === workers) return pool
  void pool?.close()
  return createPackPool(workers)
}
