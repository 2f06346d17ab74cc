// ./zos, the checkout's launcher: it asks scripts/setup.mjs (Node start, dpkg-query, npm and build checks) only
// when something setup looks at changed since setup's last complete run, and otherwise runs the CLI at once.
// Run here on a scratch checkout whose setup and CLI only say that they ran.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tmp.js'
import { MALLOC_TUNABLES } from '../../src/core/malloc.js'

const fromSource = import.meta.url.endsWith('.ts')
const launcher = fileURLToPath(new URL(fromSource ? '../../zos' : '../../../zos', import.meta.url))
const command = fileURLToPath(new URL(fromSource ? '../../bin/zos' : '../../../bin/zos', import.meta.url))

test('launcher - runs setup only when a source, package or config file is newer than its stamp', async (t) => {
  const root = await tempDir(t, 'zos-launcher-')
  for (const d of ['scripts', 'dist/src/cli', 'src', 'test', 'bench/.work', 'contracts', 'bin']) mkdirSync(join(root, d), { recursive: true })
  copyFileSync(launcher, join(root, 'zos'))
  copyFileSync(command, join(root, 'bin', 'zos'))
  chmodSync(join(root, 'bin', 'zos'), 0o755)
  const stamp = join(root, 'dist', `.setup-stamp-${process.getuid?.() ?? 0}`)
  // The stand-in setup leaves the stamp the way the real one does, after "installing".
  writeFileSync(join(root, 'scripts', 'setup.mjs'), `import { writeFileSync } from 'node:fs'\nprocess.stdout.write('setup ')\nwriteFileSync(${JSON.stringify(stamp)}, 'x')\n`)
  writeFileSync(join(root, 'dist', 'src', 'cli', 'main.js'), `process.stdout.write('cli ' + process.argv.slice(2).join(' '))\n`)
  for (const f of ['src/a.ts', 'package-lock.json', 'tsconfig.json']) writeFileSync(join(root, f), '')
  writeFileSync(join(root, 'package.json'), '{"type":"module"}')
  const run = (): string => {
    const r = spawnSync('bash', [join(root, 'zos'), 'flist', '--json'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    return r.stdout
  }
  const age = (path: string, secondsFromNow: number): void => {
    const when = new Date(Date.now() + secondsFromNow * 1000)
    utimesSync(path, when, when)
  }

  assert.equal(run(), 'setup cli flist --json', 'no stamp yet: setup first')
  age(stamp, 10)
  assert.equal(run(), 'cli flist --json', 'nothing changed since: straight to the CLI')
  age(join(root, 'bench', '.work'), 20)
  writeFileSync(join(root, 'bench', '.work', 'corpus'), '')
  age(join(root, 'bench', '.work', 'corpus'), 20)
  assert.equal(run(), 'cli flist --json', 'benchmark corpora are not sources')
  for (const changed of ['src/a.ts', 'package-lock.json', 'tsconfig.json']) {
    age(stamp, 10)
    age(join(root, changed), 30)
    assert.equal(run(), 'setup cli flist --json', `${changed} changed: setup again`)
    age(join(root, changed), 0)
  }
})

test('bin/zos - runs every command with the malloc settings of core/malloc.ts; settings given win, ZOS_MALLOC_TUNING=0 adds none', async (t) => {
  const root = await tempDir(t, 'zos-bin-')
  mkdirSync(join(root, 'bin'))
  mkdirSync(join(root, 'dist', 'src', 'cli'), { recursive: true })
  copyFileSync(command, join(root, 'bin', 'zos'))
  writeFileSync(join(root, 'dist', 'src', 'cli', 'main.js'), `process.stdout.write(process.env.GLIBC_TUNABLES ?? 'none')\n`)
  const tunables = (env: Record<string, string>): string => {
    const r = spawnSync('bash', [join(root, 'bin', 'zos'), 'flist', 'pack', '--help'], { encoding: 'utf8', env: { PATH: process.env.PATH!, ...env } })
    assert.equal(r.status, 0, r.stderr)
    return r.stdout
  }
  const all = Object.entries(MALLOC_TUNABLES).map(([name, value]) => `${name}=${value}`)
  assert.equal(tunables({}), all.join(':'))
  assert.equal(tunables({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0:glibc.pthread.rseq=0' }), ['glibc.malloc.hugetlb=0', 'glibc.pthread.rseq=0', ...all.slice(1)].join(':'))
  assert.equal(tunables({ ZOS_MALLOC_TUNING: '0' }), 'none')
})

test('bin/zos - lists the malloc settings the CLI gives the processes it spawns (core/malloc.ts)', () => {
  const line = readFileSync(command, 'utf8').split('\n').find((l) => l.includes('for t in glibc.malloc.'))
  assert.ok(line, 'bin/zos lists its malloc tunables')
  const listed = line.replace(/^.*for t in /, '').replace(/; do.*$/, '').split(' ')
  assert.deepEqual(listed, Object.entries(MALLOC_TUNABLES).map(([name, value]) => `${name}=${value}`))
})
