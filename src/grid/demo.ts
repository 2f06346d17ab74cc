// The demo image a local grid publishes: a static busybox root (every applet linked) whose entrypoint prints
// where it runs and then a heartbeat. Built at run time from the machine's busybox-static, packed, signed by
// the grid's user and pushed to the grid's hub as `demo:latest`.
import { existsSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execOk } from '../core/exec.js'
import { zerr } from '../core/errors.js'
import type { KeyPair } from '../core/keys.js'

export const DEMO_NAME = 'demo'

const ENTRYPOINT = `#!/bin/sh
echo "hello from zos!"
echo "this container runs on a grid node, from the flist hub://${DEMO_NAME}: fetched lazily from the hub, every chunk verified"
echo "kernel $(uname -r), $(nproc) cpu(s)"
echo "root filesystem: $(df -h / | tail -n 1 | awk '{print $2 " total, " $4 " free"}')"
echo "started at $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
n=0
while true; do sleep 60; n=$((n + 1)); echo "still running ($n min)"; done
`

function busyboxPath(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(p)) return p
  throw zerr('UNSUPPORTED', 'the demo image is built from a static busybox, which is missing: apt-get install busybox-static')
}

/** Writes the demo root filesystem into `root`. */
export async function buildDemoRoot(root: string): Promise<void> {
  const busybox = busyboxPath()
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'data']) await mkdir(join(root, d), { recursive: true })
  await copyFile(busybox, join(root, 'bin/busybox'))
  await chmod(join(root, 'bin/busybox'), 0o755)
  const applets = (await execOk(busybox, ['--list'], 'listing busybox applets')).split('\n').filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox')
  for (const app of applets) await symlink('busybox', join(root, 'bin', app)).catch(() => undefined)
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n')
  await writeFile(join(root, 'etc/hostname'), 'zos-demo\n')
  await writeFile(join(root, 'hello.sh'), ENTRYPOINT)
  await chmod(join(root, 'hello.sh'), 0o755)
}

export const DEMO_TAGS: Readonly<Record<string, string>> = {
  entrypoint: JSON.stringify(['/bin/sh', '/hello.sh']),
  cmd: JSON.stringify([]),
  env: JSON.stringify(['PATH=/bin']),
  'working-dir': '/',
}

/** Builds, packs, signs and pushes the demo image as NS/demo:latest; returns the pushed version's digest. */
export async function publishDemo(hubUrl: string, key: KeyPair): Promise<{ ns: string; digest: string }> {
  const [{ HubClient }, { pushFlist }, { pack, createPackPool }, { DirStore }, { openDir }] = await Promise.all([
    import('../hub/client.js'),
    import('../hub/push.js'),
    import('../flist/pack.js'),
    import('../store/dir.js'),
    import('../flist/source/dir.js'),
  ])
  const work = await mkdtemp(join(tmpdir(), 'zos-demo-'))
  const client = new HubClient(hubUrl, { key })
  const pool = createPackPool(1)
  try {
    const root = join(work, 'root')
    await buildDemoRoot(root)
    const store = await DirStore.open(join(work, 'store'), { create: true })
    try {
      const output = join(work, `${DEMO_NAME}.fl`)
      await pack({ source: await openDir(root), output, store, signers: [key], tags: DEMO_TAGS, pool })
      const ns = (await client.whoami()).ns
      const r = await pushFlist(client, output, { ns, name: DEMO_NAME, tag: 'latest', latest: true, store })
      return { ns: r.ns, digest: r.version.digest }
    } finally {
      await store.close()
    }
  } finally {
    await pool.close()
    client.close()
    await rm(work, { recursive: true, force: true })
  }
}
