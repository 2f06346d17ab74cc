// Runtime over runc. Each node has its own runc state root under its --state dir, so `list` shows only its
// containers and two nodes on one machine never see each other's. Containers run detached (`run -d`): they
// outlive the agent, which finds them again by id after a restart.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { zerr } from '../../core/errors.js'
import { exec } from '../../core/exec.js'
import { ociConfig } from './oci.js'
import type { ContainerSpec, ContainerState, ContainerStatus, Runtime } from './runtime.js'

const StateSchema = z.object({ id: z.string(), status: z.string(), pid: z.number().int().nonnegative().default(0), bundle: z.string().default('') }).passthrough()

function stateOf(raw: unknown): ContainerState {
  const s = StateSchema.parse(raw)
  const status = (['creating', 'created', 'running', 'paused', 'stopped'].includes(s.status) ? s.status : 'stopped') as ContainerStatus
  return { id: s.id, status, pid: s.pid, bundle: s.bundle }
}

export class RuncRuntime implements Runtime {
  constructor(
    private readonly root: string,
    private readonly binary = 'runc',
  ) {}

  private runc(args: string[], opts: Parameters<typeof exec>[2] = {}): ReturnType<typeof exec> {
    return exec(this.binary, ['--root', this.root, ...args], opts)
  }

  async run(spec: ContainerSpec, logFd: number): Promise<ContainerState> {
    await writeFile(join(spec.bundle, 'config.json'), JSON.stringify(ociConfig(spec), null, 2))
    // The container inherits runc's stdout and stderr: both must be the log file (a pipe would keep this call
    // waiting for as long as the container runs). runc's own errors are read back from its JSON log.
    const runcLog = join(spec.bundle, 'runc.log')
    await writeFile(runcLog, '')
    const r = await exec(this.binary, ['--root', this.root, '--log', runcLog, '--log-format', 'json', 'run', '--detach', '--bundle', spec.bundle, spec.id], {
      stdio: ['ignore', logFd, logFd],
      timeoutMs: 60_000,
    })
    if (r.code !== 0) {
      const why = lastRuncError(await readFile(runcLog, 'utf8').catch(() => ''))
      await this.delete(spec.id, true)
      throw zerr('RUNTIME_FAILED', `the container did not start: ${why || `runc exited ${r.code}`}`, { id: spec.id })
    }
    const st = await this.state(spec.id)
    if (!st) throw zerr('RUNTIME_FAILED', `runc started container ${spec.id} but does not know it`)
    return st
  }

  async state(id: string): Promise<ContainerState | null> {
    const r = await this.runc(['state', id])
    if (r.code !== 0) return null
    try {
      return stateOf(JSON.parse(r.stdout))
    } catch {
      return null
    }
  }

  async kill(id: string, signal: 'TERM' | 'KILL'): Promise<void> {
    await this.runc(['kill', id, signal])
  }

  async delete(id: string, force = false): Promise<void> {
    const r = await this.runc(['delete', ...(force ? ['--force'] : []), id])
    if (r.code !== 0 && !/does not exist|not exist/.test(r.stderr)) {
      throw zerr('RUNTIME_FAILED', `cannot delete container ${id}: ${cleanRuncError(r.stderr)}`, { id })
    }
  }

  async pause(id: string): Promise<void> {
    const r = await this.runc(['pause', id])
    if (r.code !== 0) throw zerr('RUNTIME_FAILED', `cannot pause container ${id}: ${cleanRuncError(r.stderr)}`, { id })
  }

  async resume(id: string): Promise<void> {
    const r = await this.runc(['resume', id])
    if (r.code !== 0) throw zerr('RUNTIME_FAILED', `cannot resume container ${id}: ${cleanRuncError(r.stderr)}`, { id })
  }

  async list(): Promise<ContainerState[]> {
    const r = await this.runc(['list', '--format', 'json'])
    if (r.code !== 0) return []
    const parsed: unknown = JSON.parse(r.stdout || 'null')
    return Array.isArray(parsed) ? parsed.map(stateOf) : []
  }
}

/** runc's error lines carry logrus decoration (time=… level=error msg="…"): keep the message. */
export function cleanRuncError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim())
  const msgs = lines.map((l) => /msg="((?:[^"\\]|\\.)*)"/.exec(l)?.[1]?.replace(/\\"/g, '"') ?? l.trim())
  return msgs.slice(-2).join('; ')
}

/** The last error message in a runc JSON log (one object per line: {"level","msg","time"}). */
export function lastRuncError(log: string): string {
  let out = ''
  for (const line of log.split('\n')) {
    if (!line.trim()) continue
    try {
      const o = JSON.parse(line) as { level?: string; msg?: string }
      if ((o.level === 'error' || o.level === 'fatal') && o.msg) out = o.msg
    } catch {
      // not JSON: ignore
    }
  }
  return out
}
