// `zos store serve` and `zos store stats` as a user runs them: a real process, real signals.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DirStore } from '../../src/store/dir.js'
import { tempDir } from '../helpers/tmp.js'
import { buildPack } from './fixtures.js'

// Compiled: dist/test/store → dist/src/cli/main.js. From source (tsx): test/store → src/cli/main.ts.
const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

test('cli store - serve prints its URL, serves packs, stats reads it, SIGTERM stops it cleanly', async (t) => {
  const root = await tempDir(t)
  const store = await DirStore.open(root, { create: true })
  const p = buildPack(3, 100)
  await store.putPack(p.id, p.data, p.chunks)
  await store.close()

  const child = spawn(process.execPath, [...nodeArgs, 'store', 'serve', root, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\n/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)))
  })
  const res = await fetch(`${url}/packs/${p.id}`, { headers: { range: 'bytes=100-199' } })
  assert.equal(res.status, 206)
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), p.data.subarray(100, 200))

  const stats = spawnSync(process.execPath, [...nodeArgs, 'store', 'stats', url, '--json'], { encoding: 'utf8' })
  assert.equal(stats.status, 0, stats.stderr)
  assert.deepEqual(JSON.parse(stats.stdout), { url, packs: 1, bytes: 300, chunks: 3 })
  const human = spawnSync(process.execPath, [...nodeArgs, 'store', 'stats', `dir://${root}`], { encoding: 'utf8' })
  assert.match(human.stdout, /packs\s+1\nbytes\s+300 \(300 B\)\nchunks\s+3/)

  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code))) // 'close': stdio drained too
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
  assert.match(stderr, /stopped/)
  await assert.rejects(fetch(`${url}/healthz`))
})

test('cli store - bad arguments exit with INVALID_ARGUMENT / NOT_FOUND codes', async (t) => {
  const root = await tempDir(t)
  const bad = spawnSync(process.execPath, [...nodeArgs, 'store', 'serve', root, '--port', 'x'], { encoding: 'utf8' })
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /--port/)
  const missing = spawnSync(process.execPath, [...nodeArgs, 'store', 'stats', join(root, 'missing'), '--json'], { encoding: 'utf8' })
  assert.equal(missing.status, 4)
  assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, 'NOT_FOUND')
  const scheme = spawnSync(process.execPath, [...nodeArgs, 'store', 'stats', 'zdb://h:9900'], { encoding: 'utf8' })
  assert.equal(scheme.status, 2)
  assert.match(scheme.stderr, /supported: dir:\/\/, http:\/\/, https:\/\//)
})
