// Test helpers: a temp dir per test, removed when the test ends (registered at once, hypercore style).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

export async function tempDir(t: TestContext, prefix = 'zos-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export const isRoot = process.getuid?.() === 0
