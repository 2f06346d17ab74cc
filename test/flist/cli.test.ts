// `zos flist …` and `zos key …` as a user runs them: real processes, --json output and exit codes.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { mkdir, writeFile, readFile, readdir, stat, chmod, rm } from 'node:fs/promises'
import { tempDir, isRoot } from '../helpers/tmp.js'

const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]
/** The installed command (npm's `zos`): runs dist/ (built before the tests run). */
const binZos = fileURLToPath(new URL(fromSource ? '../../bin/zos' : '../../../bin/zos', import.meta.url))

function zos(args: string[], options: { uid?: number; gid?: number; env?: Record<string, string>; bin?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.bin ? binZos : process.execPath, options.bin ? args : [...nodeArgs, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function tree(dir: string, version: number): Promise<void> {
  await mkdir(join(dir, 'etc'), { recursive: true })
  await writeFile(join(dir, 'etc/version'), `v${version}\n`)
  await writeFile(join(dir, 'big.txt'), Array.from({ length: 50000 }, (_, i) => `row ${i} ${i * version === 7 ? 'x' : ''}`).join('\n'))
}

test('cli flist - pack, inspect, ls, cat, verify, diff, unpack with --json and exit codes', async (t) => {
  const dir = await tempDir(t)
  await tree(join(dir, 'v1'), 1)
  await tree(join(dir, 'v2'), 2)
  const store = join(dir, 'store')
  const keyFile = join(dir, 'key.json')
  const key = await zos(['key', 'new', '-o', keyFile, '--json'])
  assert.equal(key.code, 0, key.stderr)
  const address = (JSON.parse(key.stdout) as { address: string }).address
  assert.equal(((await stat(keyFile)).mode & 0o777).toString(8), '600')
  assert.equal((await zos(['key', 'new', '-o', keyFile])).code, 5, 'an existing key is not overwritten')

  const p1 = await zos(['flist', 'pack', join(dir, 'v1'), '-o', join(dir, 'v1.fl'), '--store', store, '--sign', keyFile, '--tag', 'version=1', '--json'])
  assert.equal(p1.code, 0, p1.stderr)
  const packed = JSON.parse(p1.stdout) as { root: string; files: number }
  assert.equal(packed.files, 2)
  const p2 = await zos(['flist', 'pack', join(dir, 'v2'), '-o', join(dir, 'v2.fl'), '--store', store, '--json'])
  assert.equal(p2.code, 0, p2.stderr)

  const inspect = JSON.parse((await zos(['flist', 'inspect', join(dir, 'v1.fl'), '--trust', address, '--json'])).stdout) as { root: string; tags: Record<string, string>; signers: { publicKey: string; address: string; valid: boolean }[] }
  assert.equal(inspect.root, packed.root)
  assert.equal(inspect.tags.version, '1')
  assert.deepEqual(inspect.signers, [{ publicKey: inspect.signers[0]!.publicKey, address, valid: true }])
  const untrusted = await zos(['flist', 'inspect', join(dir, 'v2.fl'), '--trust', address])
  assert.equal(untrusted.code, 13)
  assert.match(untrusted.stderr, /not signed/)

  const ls = JSON.parse((await zos(['flist', 'ls', join(dir, 'v1.fl'), '/', '-R', '--json'])).stdout) as { path: string }[]
  assert.deepEqual(ls.map((e) => e.path).sort(), ['/big.txt', '/etc', '/etc/version'])
  const cat = await zos(['flist', 'cat', join(dir, 'v1.fl'), '/etc/version', '--store', store])
  assert.equal(cat.stdout, 'v1\n')
  const verify = JSON.parse((await zos(['flist', 'verify', join(dir, 'v2.fl'), '--store', store, '--json'])).stdout) as { ok: boolean }
  assert.equal(verify.ok, true)
  const d = await zos(['flist', 'diff', join(dir, 'v1.fl'), join(dir, 'v2.fl'), '--json'])
  assert.equal(d.code, 1, 'diff exits 1 when the flists differ')
  assert.deepEqual((JSON.parse(d.stdout) as { changes: { path: string }[] }).changes.map((c) => c.path), ['big.txt', 'etc/version'])
  const u = await zos(['flist', 'unpack', join(dir, 'v2.fl'), join(dir, 'out'), '--store', store, '--json'])
  assert.equal(u.code, 0, u.stderr)
  assert.equal(await readFile(join(dir, 'out/etc/version'), 'utf8'), 'v2\n')

  // Errors name the problem and exit with its code.
  const missing = await zos(['flist', 'inspect', join(dir, 'nope.fl'), '--json'])
  assert.equal(missing.code, 4)
  assert.equal((JSON.parse(missing.stdout) as { error: { code: string } }).error.code, 'NOT_FOUND')
  const noStore = await zos(['flist', 'cat', join(dir, 'v1.fl'), '/etc/version'], { env: { ZOS_STORE: '' } })
  assert.equal(noStore.code, 2)
  assert.match(noStore.stderr, /--store/)
  assert.equal((await zos(['flist', 'cat', join(dir, 'v1.fl'), '/nope', '--store', store])).code, 4)
  assert.equal((await zos(['flist', 'pack'])).code, 2, 'missing arguments are a usage error')
})

test('cli flist - pack refuses a bad --workers and writes nothing', async (t) => {
  const dir = await tempDir(t)
  await tree(join(dir, 'v1'), 1)
  for (const n of ['0', 'abc', '2.5']) {
    const r = await zos(['flist', 'pack', join(dir, 'v1'), '-o', join(dir, 'v1.fl'), '--store', join(dir, 'store'), '--workers', n, '--json'])
    assert.equal(r.code, 2, `--workers ${n}: ${r.stderr}`)
    assert.match(r.stderr, /pack workers must be an integer/)
  }
  await assert.rejects(stat(join(dir, 'v1.fl')))
})

test('cli flist - an unprivileged unpack of an flist with devices is refused and writes nothing', { skip: isRoot ? false : 'needs root to make the device and switch user' }, async (t) => {
  const dir = await tempDir(t)
  await chmod(dir, 0o777)
  await mkdir(join(dir, 'src/dev'), { recursive: true })
  await writeFile(join(dir, 'src/readme'), 'hi\n')
  const mk = await new Promise<number | null>((resolve) => spawn('mknod', [join(dir, 'src/dev/null'), 'c', '1', '3']).on('close', resolve))
  assert.equal(mk, 0)
  const p = await zos(['flist', 'pack', join(dir, 'src'), '-o', join(dir, 'dev.fl'), '--store', join(dir, 'store')])
  assert.equal(p.code, 0, p.stderr)
  await chmod(join(dir, 'dev.fl'), 0o644)
  const r = await zos(['flist', 'unpack', join(dir, 'dev.fl'), join(dir, 'out'), '--store', join(dir, 'store')], { uid: 65534, env: { HOME: dir } })
  assert.equal(r.code, 6, r.stderr)
  assert.match(r.stderr, /device/)
  await assert.rejects(stat(join(dir, 'out')))
})

const fuseSkip = !isRoot || !(await stat('/dev/fuse').then(() => true, () => false)) ? 'needs root and /dev/fuse' : false

for (const [entry, bin] of [['the CLI', false], ['bin/zos (the serving process started by the launcher)', true]] as const) {
  test(`cli flist - mount --daemon through ${entry} returns once the flist is verified and served; a modified flist is refused and nothing stays mounted or in TMPDIR`, { skip: fuseSkip }, (t) => daemonMount(t, bin))
}

async function daemonMount(t: TestContext, bin: boolean): Promise<void> {
  const dir = await tempDir(t)
  const tmp = join(dir, 'tmp')
  await mkdir(tmp)
  const run = (args: string[]): ReturnType<typeof zos> => zos(args, { bin, env: { TMPDIR: tmp } })
  await tree(join(dir, 'v1'), 1)
  const store = join(dir, 'store')
  const fl = join(dir, 'v1.fl')
  const packed = await run(['flist', 'pack', join(dir, 'v1'), '-o', fl, '--store', `dir://${store}`])
  assert.equal(packed.code, 0, packed.stderr)
  const mnt = join(dir, 'mnt')
  await mkdir(mnt)
  const mountedAt = async (): Promise<boolean> => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === mnt)

  const up = await run(['flist', 'mount', fl, mnt, '--store', `dir://${store}`, '--cache', join(dir, 'cache'), '--daemon', '--json'])
  assert.equal(up.code, 0, up.stderr)
  t.after(() => run(['flist', 'umount', mnt]))
  t.after(() => rm((JSON.parse(up.stdout) as { log: string }).log, { force: true })) // the serving process's log
  // Served at once when --daemon returns (no waiting for the mount to appear).
  assert.equal(await readFile(join(mnt, 'etc/version'), 'utf8'), 'v1\n')
  const down = await run(['flist', 'umount', mnt])
  assert.equal(down.code, 0, down.stderr)
  assert.equal(await mountedAt(), false)

  // Change one attribute behind the seal: the root hash no longer matches. The check runs while mount(8) runs,
  // so the mount may exist for a moment; --daemon must still fail, and nothing may stay mounted.
  const Database = (await import('better-sqlite3')).default
  const bad = join(dir, 'bad.fl')
  await writeFile(bad, await readFile(fl))
  const db = new Database(bad)
  db.prepare('UPDATE inode SET uid = uid + 1 WHERE ino = 1').run()
  db.close()
  const refused = await run(['flist', 'mount', bad, mnt, '--store', `dir://${store}`, '--cache', join(dir, 'cache'), '--daemon'])
  assert.notEqual(refused.code, 0)
  assert.match(refused.stderr + refused.stdout, /root hash|FLIST_CORRUPT/)
  // The caller ran the checks on the file it handed over: the message names the user's file, not the descriptor.
  assert.match(refused.stderr, /bad\.fl/)
  assert.doesNotMatch(refused.stderr, /\/proc\/self\/fd/)
  assert.equal(await mountedAt(), false)

  // With --trust the serving process checks the file itself (the caller does not parse keys before it starts):
  // an unsigned flist is refused for want of a trusted signer.
  const key = join(dir, 'key.json')
  assert.equal((await run(['key', 'new', '-o', key])).code, 0)
  const untrusted = await run(['--json', 'flist', 'mount', fl, mnt, '--store', `dir://${store}`, '--cache', join(dir, 'cache'), '--trust', key, '--daemon'])
  assert.notEqual(untrusted.code, 0)
  assert.match(untrusted.stderr, /not signed/)
  // The serving process's own error code, not one guessed from its exit status (shared with SIGNATURE_INVALID).
  assert.equal((JSON.parse(untrusted.stdout) as { error: { code: string } }).error.code, 'UNTRUSTED_SIGNER')
  assert.equal(await mountedAt(), false)
  // The refused mounts' logs are gone; the served one's stays until the test removes it.
  assert.deepEqual(await readdir(tmp), [basename((JSON.parse(up.stdout) as { log: string }).log)])
}
