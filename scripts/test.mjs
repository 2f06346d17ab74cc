#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Arguments filter test files by substring: `npm test -- flist/chunker`.
import { spawnSync } from 'node:child_process'
import { readdirSync, existsSync } from 'node:fs'
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
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', ...passthrough, ...files], { stdio: 'inherit', cwd: root })
process.exit(r.status ?? 1)
