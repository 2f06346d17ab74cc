// Shared pieces of the node tests: a busybox flist built at run time (so the fixture works from dist/ too), a
// way to tamper one of its chunks, node services on a temp state dir, and teardown that leaves no container,
// mount, loop device or helper process behind.
import { existsSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { pack } from '../../src/flist/pack.js'
import { FlistReader } from '../../src/flist/reader.js'
import { openDir } from '../../src/flist/source/dir.js'
import { openWritableStore } from '../../src/store/open.js'
import { exec } from '../../src/core/exec.js'
import { SILENT_LOGGER, type NodeLogger } from '../../src/node/log.js'
import { createPrimitives, type NodePrimitives } from '../../src/node/primitives/index.js'
import type { NodeServices } from '../../src/node/primitives/services.js'
import { RuncRuntime } from '../../src/node/runtime/runc.js'
import { Supervisor } from '../../src/node/runtime/supervisor.js'
import { FlistManager } from '../../src/node/storage/flists.js'
import { NodePaths } from '../../src/node/storage/paths.js'
import { teardownNode } from '../../src/node/storage/teardown.js'
import { mountsUnder } from '../../src/node/storage/mounts.js'
import { isRoot } from '../helpers/tmp.js'

export const BUSYBOX = existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox'

/** Why the real-parts node tests cannot run here, or false. */
export async function cannotRun(): Promise<string | false> {
  if (!isRoot) return 'needs root'
  if (!existsSync('/dev/fuse')) return 'needs /dev/fuse'
  if (!existsSync(BUSYBOX)) return 'needs busybox-static'
  if ((await exec('runc', ['--version'])).code !== 0) return 'needs runc'
  if ((await exec('mkfs.ext4', ['-V'])).code !== 0) return 'needs e2fsprogs'
  return false
}

export interface BuiltFlist {
  fl: string
  storeDir: string
  storeUrl: string
}

/** A busybox root (sh and friends, /etc/passwd) packed into an flist with image tags. */
export async function busyboxFlist(dir: string, opts: { tags?: Record<string, string>; files?: Record<string, string>; name?: string } = {}): Promise<BuiltFlist> {
  await mkdir(dir, { recursive: true })
  const root = join(dir, `${opts.name ?? 'bb'}-root`)
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root']) await mkdir(join(root, d), { recursive: true })
  await copyFile(BUSYBOX, join(root, 'bin/busybox'))
  await chmod(join(root, 'bin/busybox'), 0o755)
  for (const app of ['sh', 'cat', 'echo', 'ls', 'sleep', 'date', 'id', 'env', 'mount', 'df', 'touch', 'kill', 'true']) await symlink('busybox', join(root, 'bin', app))
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n')
  await writeFile(join(root, 'etc/group'), 'root:x:0:\napp:x:1000:\n')
  for (const [p, content] of Object.entries(opts.files ?? {})) {
    await mkdir(join(root, p, '..'), { recursive: true })
    await writeFile(join(root, p), content)
    await chmod(join(root, p), 0o755)
  }
  const storeDir = join(dir, 'store')
  const store = await openWritableStore(storeDir)
  const fl = join(dir, `${opts.name ?? 'bb'}.fl`)
  try {
    await pack({ source: await openDir(root), output: fl, store, workers: 1, tags: opts.tags ?? {} })
  } finally {
    await store.close()
  }
  return { fl, storeDir, storeUrl: `dir://${storeDir}` }
}

/** Flips a byte of the first chunk of `path` in the flist's store: reading that file must fail. */
export async function tamperChunk(flist: BuiltFlist, path: string): Promise<void> {
  const reader = FlistReader.open(flist.fl)
  const chunk = reader.chunk(reader.extents(reader.resolve(path).ino)[0]!.chunk)
  reader.close()
  const packPath = join(flist.storeDir, 'packs', chunk.pack.slice(0, 2), `${chunk.pack}.pack`)
  const data = await readFile(packPath)
  data[chunk.offset + Math.floor(chunk.length / 2)]! ^= 0x80
  await writeFile(packPath, data)
}

export interface TestNode {
  paths: NodePaths
  services: NodeServices
  primitives: NodePrimitives
  /** Services over the same state, as a restarted agent would build them. */
  restart(): TestNode
}

/**
 * Node services on a fresh state dir of their own. Its teardown (containers, mounts, loop devices, helpers) and
 * removal run as one after-hook, so no other hook can remove the dir while something is still mounted in it.
 */
export async function testNode(t: TestContext, opts: { store: string; log?: NodeLogger; tag?: string }): Promise<TestNode> {
  const paths = new NodePaths(await mkdtemp(join(tmpdir(), 'zos-node-test-')))
  const tag = opts.tag ?? `t${process.pid.toString(16)}`.slice(0, 8)
  const make = (): TestNode => {
    const log = opts.log ?? SILENT_LOGGER
    const runtime = new RuncRuntime(paths.runcRoot)
    const supervisor = new Supervisor({ runtime, log, backoff: { initialMs: 50, maxMs: 400, resetAfterMs: 60_000 } })
    const services: NodeServices = { paths, tag, flists: new FlistManager({ paths, store: opts.store, log, cacheBytes: 64 * 2 ** 20 }), runtime, supervisor, log, stopGraceMs: 1000 }
    return { paths, services, primitives: createPrimitives(services), restart: make }
  }
  let current: TestNode | undefined
  t.after(async () => {
    current?.services.supervisor.stop()
    const report = await teardownNode(paths, tag)
    if (report.containers.length + report.mounts.length + report.loops.length > 0) {
      // Tests clean up through deprovision; teardown only catches what a failed test left.
      process.stderr.write(`node teardown cleaned up after a test: ${JSON.stringify(report)}\n`)
    }
    if ((await mountsUnder(paths.root)).length === 0) await rm(paths.root, { recursive: true, force: true })
  })
  const wrap = (): TestNode => {
    const n = make()
    // A restarted agent: the old one's supervisor is gone.
    current?.services.supervisor.stop()
    current = n
    return { ...n, restart: wrap }
  }
  return wrap()
}

/** Polls `cond` every 50 ms until it holds (fails after `ms`). */
export async function until(cond: () => Promise<boolean> | boolean, ms = 20_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Loop devices whose backing file is under `dir`. */
export async function loopsUnder(dir: string): Promise<string[]> {
  const r = await exec('losetup', ['--list', '--json', '-O', 'NAME,BACK-FILE'])
  if (r.code !== 0 || !r.stdout.trim()) return []
  const parsed = JSON.parse(r.stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] }
  return (parsed.loopdevices ?? []).filter((l) => (l['back-file'] ?? '').startsWith(dir + '/')).map((l) => l.name)
}
