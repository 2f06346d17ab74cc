// Test helpers: a temp dir per test, removed when the test ends (registered at once, hypercore style).
// Anything still mounted below it is detached first, so a failed test cannot leave a mount behind.
import { mkdtemp, rm, readFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
}

async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  return text
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length)
}

function lazyUnmount(path: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('umount', ['-l', path], { stdio: 'ignore' })
    child.on('error', () => resolve())
    child.on('close', () => resolve())
  })
}

export async function tempDir(t: TestContext, prefix = 'zos-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(async () => {
    for (const m of await mountsBelow(dir)) await lazyUnmount(m)
    // Retried: a daemon detached just above may still be finishing writes below (its chunk cache).
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 })
  })
  return dir
}

export const isRoot = process.getuid?.() === 0
