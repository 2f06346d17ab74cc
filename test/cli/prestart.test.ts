// What the CLI starts before it loads: the argv peek of cli/prestart.ts, and the pack pool it hands over.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isMountDaemon, packArguments } from '../../src/cli/prestart.js'
import { ZosError } from '../../src/core/errors.js'
import { createPackPool, prestartPackPool, takePackPool } from '../../src/flist/pack-pool.js'

test('prestart - finds the source and --workers of `flist pack` wherever the options are', () => {
  assert.deepEqual(packArguments(['flist', 'pack', 'dir', '-o', 'x.fl']), { source: 'dir' })
  assert.deepEqual(packArguments(['--json', 'flist', 'pack', '-o', 'x.fl', '--store', 'dir:///s', 'dir']), { source: 'dir' })
  assert.deepEqual(packArguments(['flist', 'pack', '--workers', '3', '--tag', 'a=b', '--level=5', 'src']), { source: 'src', workers: '3' })
  assert.deepEqual(packArguments(['flist', 'pack', '--workers=1', '--encrypt', '--no-delta', '-']), { source: '-', workers: '1' })
  assert.deepEqual(packArguments(['flist', 'pack', '-o', 'x.fl', '--', '-odd-name']), { source: '-odd-name' })
  assert.deepEqual(packArguments(['flist', 'pack']), {})
  assert.equal(packArguments(['flist', 'unpack', 'a.fl', 'dir']), undefined)
  assert.equal(packArguments(['hub', 'push', 'dir']), undefined)
  assert.equal(packArguments(['--json']), undefined)
})

test('prestart - recognises `flist mount … --daemon` only when the serving process is wanted', () => {
  assert.equal(isMountDaemon(['flist', 'mount', 'a.fl', '/mnt', '--daemon']), true)
  assert.equal(isMountDaemon(['--json', 'flist', 'mount', '--store', 'http://h', '--trust', 'k', 'a.fl', '/mnt', '--daemon']), true)
  assert.equal(isMountDaemon(['flist', 'mount', '--cache=/c', 'a.fl', '/mnt', '--daemon', '--no-prefetch']), true)
  assert.equal(isMountDaemon(['flist', 'mount', 'a.fl', '/mnt']), false, 'no --daemon')
  assert.equal(isMountDaemon(['flist', 'mount', 'a.fl', '/mnt', '--daemon', '--help']), false, 'help')
  assert.equal(isMountDaemon(['flist', 'mount', 'a.fl', '--daemon']), false, 'no mountpoint')
  assert.equal(isMountDaemon(['flist', 'mount', 'a.fl', '/mnt', '--trace', '--daemon']), false, '--daemon is the trace file')
  assert.equal(isMountDaemon(['flist', 'umount', '/mnt', '--daemon']), false)
})

test('prestart - takePackPool hands over the pool started early only when the worker count matches', async () => {
  prestartPackPool(1)
  const early = takePackPool(1)
  assert.equal(early.size, 1)
  assert.notEqual(takePackPool(1), early, 'a pool is handed over once')
  prestartPackPool(1)
  const other = takePackPool(2)
  assert.equal(other.size, 2)
  await Promise.all([early.close(), other.close()])
})

test('prestart - a bad worker count is refused with INVALID_ARGUMENT', () => {
  for (const n of [0, -1, 1.5, Number.NaN, 100000]) {
    assert.throws(() => createPackPool(n), (err: unknown) => ZosError.is(err) && err.code === 'INVALID_ARGUMENT', String(n))
  }
})

test('prestart - a pool that ran tasks and was never closed does not keep the process alive', () => {
  const fromSource = import.meta.url.endsWith('.ts')
  const pool = fileURLToPath(new URL(`../../src/flist/pack-pool.${fromSource ? 'ts' : 'js'}`, import.meta.url))
  const script = `import(${JSON.stringify(pool)}).then(async ({ createPackPool }) => {
    const p = createPackPool(2)
    const data = new Uint8Array(100000)
    await Promise.all([0, 1, 2].map(() => p.run({ op: 'chunk', params: { algorithm: 'fastcdc-gear32-v1', min: 16384, avg: 65536, max: 262144 }, data: data.slice(), parts: [{ start: 0, length: 100000, final: true }] })))
    console.log('done')
  })`
  const r = spawnSync(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), '-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(r.signal, null, 'the process had to be killed: idle workers kept it alive')
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'done')
})

test('prestart - daemon mounts that fail (a bad option, a missing flist) say why at once and leave no serving process', async () => {
  const fromSource = import.meta.url.endsWith('.ts')
  const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
  const dir = await mkdtemp(join(tmpdir(), 'zos-prestart-'))
  try {
    const mountpoint = join(dir, 'mnt')
    const r = spawnSync(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), main, 'flist', 'mount', join(dir, 'a.fl'), mountpoint, '--daemon', '--no-such-option'], {
      encoding: 'utf8',
      timeout: 20000,
    })
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /unknown option/)
    assert.equal(existsSync(join(tmpdir(), `zos-mount-${r.pid}.log`)), false, 'the stopped serving process left its log')
    const home = join(dir, 'home')
    const missing = spawnSync(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), main, 'flist', 'mount', join(dir, 'a.fl'), mountpoint, '--store', `dir://${dir}`, '--daemon'], {
      encoding: 'utf8',
      timeout: 20000,
      env: { ...process.env, ZOS_HOME: home },
    })
    assert.equal(missing.status, 4, `the serving process's NOT_FOUND, not a timeout: ${missing.stderr}`)
    assert.match(missing.stderr, /does not exist/)
    assert.equal(existsSync(join(tmpdir(), `zos-mount-${missing.pid}.log`)), false, 'the failed serving process left its log')
    assert.equal(existsSync(home), false, 'a failed mount made the default cache directory')
    // The serving process was started before commander ran; it must be gone (it would mount what nobody asked for).
    const deadline = Date.now() + 5000
    let left: string[] = []
    do {
      left = (await readdir('/proc')).filter((p) => /^\d+$/.test(p)).filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(mountpoint)
        } catch {
          return false
        }
      })
      if (left.length === 0) break
      await new Promise((done) => setTimeout(done, 100))
    } while (Date.now() < deadline)
    assert.deepEqual(left, [], 'serving processes left running')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
