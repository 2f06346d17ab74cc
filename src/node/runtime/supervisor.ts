// Keeps containers running: every tick it checks that each watched container's process is alive (by its
// /proc entry and start time, so a recycled pid is not mistaken for it) and restarts one that exited, with
// exponential backoff (1 s doubling to 60 s, back to 1 s after it ran a minute). It also bounds each console
// log: past `maxLogBytes` the log is copied to `<log>.1` and cut to zero (the container appends, so it keeps
// writing at the new end).
import { appendFile, copyFile, readFile, stat, truncate } from 'node:fs/promises'
import { errorMessage } from '../../core/errors.js'
import type { NodeLogger } from '../log.js'
import type { ContainerState, Runtime } from './runtime.js'

export interface SupervisorOptions {
  runtime: Runtime
  log: NodeLogger
  intervalMs?: number
  backoff?: { initialMs?: number; maxMs?: number; resetAfterMs?: number }
  maxLogBytes?: number
}

export interface WatchOptions {
  logFile: string
  /** Starts the container again (same bundle); returns its new state. */
  restart: () => Promise<ContainerState>
}

export interface ContainerInfo {
  id: string
  running: boolean
  paused: boolean
  pid: number
  startedAt: number
  restarts: number
  lastExitAt: number
  nextRestartAt: number
  lastError: string
}

interface Watched extends ContainerInfo {
  opts: WatchOptions
  starttime: string
  backoffMs: number
  /** The check running now, if any (unwatch waits for it). */
  inflight: Promise<void> | undefined
  /** Set by unwatch: a restart that finishes afterwards is undone. */
  stopped: boolean
}

/** Field 22 (start time) and field 3 (state) of /proc/<pid>/stat, or null when the process is gone. */
async function procStat(pid: number): Promise<{ state: string; starttime: string } | null> {
  if (pid <= 0) return null
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
  if (text === null) return null
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return { state: rest[0] ?? '', starttime: rest[19] ?? '' }
}

export class Supervisor {
  private readonly watched = new Map<string, Watched>()
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly resetAfterMs: number

  constructor(private readonly opts: SupervisorOptions) {
    this.initialMs = opts.backoff?.initialMs ?? 1000
    this.maxMs = opts.backoff?.maxMs ?? 60_000
    this.resetAfterMs = opts.backoff?.resetAfterMs ?? 60_000
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs ?? 1000)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Watches a started container (again: a later call replaces the earlier watch, keeping its counters). */
  async watch(state: ContainerState, opts: WatchOptions): Promise<void> {
    const st = await procStat(state.pid)
    const old = this.watched.get(state.id)
    this.watched.set(state.id, {
      id: state.id,
      running: st !== null,
      paused: state.status === 'paused',
      pid: state.pid,
      startedAt: old?.startedAt ?? Date.now(),
      restarts: old?.restarts ?? 0,
      lastExitAt: old?.lastExitAt ?? 0,
      nextRestartAt: 0,
      lastError: old?.lastError ?? '',
      opts,
      starttime: st?.starttime ?? '',
      backoffMs: old?.backoffMs ?? this.initialMs,
      inflight: undefined,
      stopped: false,
    })
    if (old) old.stopped = true
  }

  /** Stops watching; waits for a check in flight, so no restart can happen after this returns. */
  async unwatch(id: string): Promise<void> {
    const w = this.watched.get(id)
    if (!w) return
    this.watched.delete(id)
    w.stopped = true
    await w.inflight
  }

  setPaused(id: string, paused: boolean): void {
    const w = this.watched.get(id)
    if (w) w.paused = paused
  }

  info(id: string): ContainerInfo | undefined {
    const w = this.watched.get(id)
    if (!w) return undefined
    const { opts: _o, starttime: _s, backoffMs: _b, inflight: _i, stopped: _st, ...info } = w
    return { ...info }
  }

  /** One round of checks (exposed so tests need not wait for the timer). */
  async tick(): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    try {
      for (const w of [...this.watched.values()]) {
        if (w.inflight || w.stopped) continue
        w.inflight = this.check(w)
          .catch((err: unknown) => this.opts.log.warn({ container: w.id, err: errorMessage(err) }, 'supervisor check failed'))
          .finally(() => {
            w.inflight = undefined
          })
        await w.inflight
      }
    } finally {
      this.ticking = false
    }
  }

  private async check(w: Watched): Promise<void> {
    await this.rotate(w.opts.logFile)
    if (w.running) {
      const st = await procStat(w.pid)
      if (st && st.state !== 'Z' && st.starttime === w.starttime) return
      // It exited.
      const ran = Date.now() - w.startedAt
      w.running = false
      w.lastExitAt = Date.now()
      if (ran >= this.resetAfterMs) w.backoffMs = this.initialMs
      w.nextRestartAt = Date.now() + w.backoffMs
      this.opts.log.warn({ container: w.id, ranMs: ran, restartInMs: w.backoffMs }, 'container exited; will restart')
      await appendFile(w.opts.logFile, `[zos] ${new Date().toISOString()} the container exited after ${Math.round(ran / 1000)} s; restarting in ${Math.round(w.backoffMs / 1000)} s\n`).catch(() => undefined)
      await this.opts.runtime.delete(w.id, true).catch(() => undefined)
      return
    }
    if (Date.now() < w.nextRestartAt) return
    w.restarts++
    try {
      const state = await w.opts.restart()
      if (w.stopped) {
        // Unwatched while it was starting (the workload is being stopped or removed): undo the start.
        await this.opts.runtime.delete(state.id, true).catch(() => undefined)
        return
      }
      const st = await procStat(state.pid)
      w.pid = state.pid
      w.starttime = st?.starttime ?? ''
      w.running = st !== null
      w.startedAt = Date.now()
      w.lastError = ''
      this.opts.log.info({ container: w.id, restarts: w.restarts, pid: w.pid }, 'container restarted')
    } catch (err) {
      w.lastError = errorMessage(err)
      this.opts.log.warn({ container: w.id, err: w.lastError }, 'container restart failed')
      await appendFile(w.opts.logFile, `[zos] ${new Date().toISOString()} restart failed: ${w.lastError}\n`).catch(() => undefined)
    }
    w.backoffMs = Math.min(this.maxMs, w.backoffMs * 2)
    if (!w.running) w.nextRestartAt = Date.now() + w.backoffMs
  }

  private async rotate(logFile: string): Promise<void> {
    const max = this.opts.maxLogBytes ?? 2 * 2 ** 20
    const size = await stat(logFile).then((s) => s.size, () => 0)
    if (size <= max) return
    await copyFile(logFile, `${logFile}.1`)
    await truncate(logFile, 0)
  }
}
