// Runs a system command (mount, losetup, mkfs, runc, ip) without blocking the event loop: the node serves FUSE
// mounts and relay requests from the same process, so nothing may wait synchronously on the kernel.
import { spawn, type StdioOptions } from 'node:child_process'
import { zerr, type ErrorCode } from './errors.js'

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

export interface ExecOptions {
  /** Kill the command (SIGKILL) after this long (default 60 s). */
  timeoutMs?: number
  /** stdin, stdout, stderr: defaults pipe all three (stdin closed at once). Pass fds to hand files over. */
  stdio?: StdioOptions
  input?: string
}

export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d
    })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1 << 20) stderr += d
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      resolve({ code: -1, stdout, stderr: err.message })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr: stderr.trim() })
    })
    if (child.stdin) {
      child.stdin.on('error', () => {})
      child.stdin.end(opts.input ?? '')
    }
  })
}

/** Like exec, but a non-zero exit is a ZosError (`code`, default RUNTIME_FAILED) quoting the command's stderr. */
export async function execOk(cmd: string, args: readonly string[], what: string, opts: ExecOptions & { code?: ErrorCode } = {}): Promise<string> {
  const r = await exec(cmd, args, opts)
  if (r.code !== 0) throw zerr(opts.code ?? 'RUNTIME_FAILED', `${what}: ${cmd} exited ${r.code}${r.stderr ? `: ${r.stderr.split('\n').slice(-3).join(' ')}` : ''}`, { cmd, args: [...args] })
  return r.stdout
}
