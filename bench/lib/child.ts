// Child processes the benchmarks start.
import type { ChildProcess } from 'node:child_process'

/**
 * The first `http://…` line a server child prints on stdout. Lines before it are skipped (node options such as
 * `--trace-gc` print there first), and so is everything after it, without stopping the child's output: a pipe
 * nobody reads would block the child once full.
 */
export function urlFromStdout(child: ChildProcess, what: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = ''
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = /^(http:\/\/\S+)\n/m.exec(out)
      if (!m) return
      child.stdout!.off('data', onData)
      resolve(m[1]!)
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)))
  })
}
