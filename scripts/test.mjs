#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Arguments filter test files by substring: `npm test -- flist/chunker`.
import { spawnSync } from 'node:child_process'
import { readdirSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const testRoot = join(root, 'dist', 'test')
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('-'))

function collect(dir) {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true }).flatMap((ent) => {
    const p = join(dir, ent.name)
    if (ent.isDirectory()) return collect(p)
    return ent.name.endsWith('.test.js') ? [p] : []
  })
}

const files = collect(testRoot)
  .filter((f) => filters.length === 0 || filters.some((x) => relative(testRoot, f).includes(x)))
  .sort()
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`)
  process.exit(1)
}
// Tests get a ZOS_HOME of their own, so a developer's ~/.zos (keys, a current local grid, hub caches) neither
// changes what they do nor collects what they leave; ZOS_LEDGER, ZOS_KEY and ZOS_HUB from the shell are dropped
// for the same reason.
const home = mkdtempSync(join(tmpdir(), 'zos-test-home-'))
const env = { ...process.env, ZOS_HOME: home }
for (const k of ['ZOS_LEDGER', 'ZOS_KEY', 'ZOS_HUB', 'ZOS_STORE']) delete env[k]
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', ...passthrough, ...files], { stdio: 'inherit', cwd: root, env })
try {
  rmSync(home, { recursive: true, force: true })
} catch (err) {
  process.stderr.write(`test: could not remove ${home}: ${err.message}\n`)
}
process.exit(r.status ?? 1)
