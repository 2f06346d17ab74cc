// `zos hub …` and `zos flist … hub://…` as a user runs them: real processes, a real hub, real FUSE.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKey, saveKey } from '../../src/core/keys.js'
import { isRoot, tempDir } from '../helpers/tmp.js'
import { bytes } from './helpers.js'

const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

function zos(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...nodeArgs, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function json<T>(r: { status: number | null; stdout: string; stderr: string }): T {
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout) as T
}

test('cli hub - serve, push (dir, then a new version), ls, info, tag, rm; flist cat/verify/mount hub://; refusals exit non-zero', async (t) => {
  const dir = await tempDir(t)
  const home = join(dir, 'home')
  const key = generateKey()
  await saveKey(join(home, 'key.json'), key)
  const ns = key.address.toLowerCase()

  const server = spawn(process.execPath, [...nodeArgs, 'hub', 'serve', '--data', join(dir, 'data'), '--port', '0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ZOS_HOME: home },
  })
  t.after(() => {
    if (server.exitCode === null) server.kill('SIGKILL')
  })
  let serverErr = ''
  server.stderr.on('data', (d: Buffer) => (serverErr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    server.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\n/.exec(out)
      if (m) resolve(m[1]!)
    })
    server.on('exit', (code) => reject(new Error(`hub serve exited with ${code}: ${serverErr}`)))
  })
  const env = { ZOS_HOME: home, ZOS_HUB: url }
  const host = new URL(url).host

  const site = join(dir, 'site')
  await mkdir(join(site, 'www'), { recursive: true })
  await writeFile(join(site, 'www', 'index.html'), '<h1>v1</h1>\n')
  await writeFile(join(site, 'www', 'data.bin'), bytes(5, 800_000))
  const p1 = json<{ ns: string; name: string; tag: string; uploadedBytes: number; ref: string; version: { root: string } }>(zos(['hub', 'push', site, '--name', 'site:v1', '--json'], env))
  assert.equal(p1.ns, ns)
  assert.equal(p1.ref, `hub://${host}/${ns}/site:v1`)
  assert.ok(p1.uploadedBytes > 800_000)

  await writeFile(join(site, 'www', 'index.html'), '<h1>v2</h1>\n')
  const p2 = json<{ uploadedBytes: number; reusedChunks: number }>(zos(['hub', 'push', site, '--name', 'site:v2', '--json'], env))
  assert.ok(p2.uploadedBytes < 10_000, `a new version moved ${p2.uploadedBytes} bytes`)
  assert.ok(p2.reusedChunks > 5)

  const human = zos(['hub', 'ls'], env)
  assert.equal(human.status, 0, human.stderr)
  assert.match(human.stdout, new RegExp(`${ns}/site  latest,v1,v2`))
  const ls = json<{ items: { name: string; tags: { tag: string }[] }[] }>(zos(['hub', 'ls', ns, '--json'], env))
  assert.deepEqual(ls.items.map((i) => i.name), ['site'])
  json(zos(['hub', 'tag', 'site:v1', 'stable', '--json'], env))
  const info = json<{ tags: { tag: string; root: string }[]; history: unknown[] }>(zos(['hub', 'info', 'site', '--json'], env))
  assert.deepEqual(info.tags.map((x) => x.tag), ['latest', 'stable', 'v1', 'v2'])
  assert.equal(info.tags.find((x) => x.tag === 'stable')!.root, p1.version.root)

  const cat = zos(['flist', 'cat', `hub://${host}/${ns}/site:stable`, 'www/index.html'], env)
  assert.equal(cat.status, 0, cat.stderr)
  assert.equal(cat.stdout, '<h1>v1</h1>\n')
  const verify = zos(['flist', 'verify', 'hub://site:v2', '--trust', key.address], env)
  assert.equal(verify.status, 0, verify.stderr)
  assert.match(verify.stdout, /^OK: hub:\/\/site:v2/)
  const untrusted = zos(['flist', 'verify', 'hub://site:v2', '--trust', generateKey().address], env)
  assert.equal(untrusted.status, 13)

  if (isRoot && existsSync('/dev/fuse')) {
    const mnt = join(dir, 'mnt')
    await mkdir(mnt)
    const m = spawn(process.execPath, [...nodeArgs, 'flist', 'mount', `hub://${host}/${ns}/site:v2`, mnt, '--cache', join(dir, 'cache')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    t.after(() => {
      if (m.exitCode === null) m.kill('SIGKILL')
    })
    await new Promise<void>((resolve, reject) => {
      m.stdout.once('data', () => resolve())
      m.on('exit', (code) => reject(new Error(`mount exited with ${code}`)))
    })
    assert.equal(await readFile(join(mnt, 'www', 'index.html'), 'utf8'), '<h1>v2</h1>\n')
    assert.deepEqual(await readFile(join(mnt, 'www', 'data.bin')), bytes(5, 800_000))
    const exited = new Promise((r) => m.once('exit', r))
    assert.equal(zos(['flist', 'umount', mnt], env).status, 0)
    await exited
  } else {
    t.diagnostic('FUSE mount through hub:// skipped: needs root and /dev/fuse')
  }

  const junk = join(dir, 'junk.tar')
  await writeFile(junk, 'definitely not a tar archive'.repeat(30))
  const refused = zos(['hub', 'push', junk, '--convert', '--name', 'junk'], env)
  assert.equal(refused.status, 11, refused.stderr)
  assert.match(refused.stderr, /not an archive/)
  const noKey = zos(['hub', 'push', site, '--key', join(dir, 'missing.json')], env)
  assert.equal(noKey.status, 4)

  const rm = zos(['hub', 'rm', 'site:v1'], env)
  assert.equal(rm.status, 0, rm.stderr)
  const needAll = zos(['hub', 'rm', 'site'], env)
  assert.equal(needAll.status, 2)
  assert.match(needAll.stderr, /--all/)
  json(zos(['hub', 'rm', 'site', '--all', '--json'], env))
  assert.equal(json<{ total: number }>(zos(['hub', 'ls', '--json'], env)).total, 0)

  const exit = new Promise<number | null>((r) => server.once('exit', (code) => r(code)))
  server.kill('SIGTERM')
  assert.equal(await exit, 0)
  assert.match(serverErr, /hub stopped/)
})
