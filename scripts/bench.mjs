#!/usr/bin/env node
// Runs benchmarks compiled from bench/<name>.ts: `npm run bench -- flist-pack` (all when no name is given).
import { spawnSync } from 'node:child_process'
import { readdirSync, existsSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = join(root, 'dist', 'bench')
const all = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)) : []
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'))
const chosen = names.length ? names : all
let status = 0
for (const name of chosen) {
  if (!all.includes(name)) { process.stderr.write(`no benchmark named ${name}; have: ${all.join(', ')}\n`); status = 1; continue }
  process.stderr.write(`== bench ${name}\n`)
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`), ...flags], { stdio: 'inherit', cwd: root })
  if (r.status !== 0) status = r.status ?? 1
}
process.exit(status)
