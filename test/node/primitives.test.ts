// The primitives on real parts: ext4 images on loop devices, sparse disks, and zmachine containers under runc
// from a real flist mount (FUSE, served by a detached helper) with an overlay root. Checks idempotence, limits,
// the console log, restart on crash, pause/resume, surviving an agent restart, tampered chunks, and that
// deprovisioning leaves no mount, loop device, cgroup, container or helper behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { exec } from '../../src/core/exec.js'
import { SILENT_LOGGER } from '../../src/node/log.js'
import type { WorkloadContext } from '../../src/node/primitives/primitive.js'
import { containerId } from '../../src/node/primitives/services.js'
import { mountsUnder } from '../../src/node/storage/mounts.js'
import { parseDeployment, type Deployment } from '../../src/node/types/index.js'
import { tempDir } from '../helpers/tmp.js'
import { busyboxFlist, cannotRun, loopsUnder, tamperChunk, testNode, until, type TestNode } from './helpers.js'

const MIB = 2 ** 20
const skip = await cannotRun()

function deployment(workloads: unknown[]): Deployment {
  const version = Math.max(0, ...workloads.map((w) => (w as { version: number }).version))
  return parseDeployment({ version, twin_id: 7, contract_id: 11, signature_requirement: { requests: [{ twin_id: 7, weight: 1 }], weight_required: 1 }, workloads })
}

/** A context for workload `name` of `d`, with results as given (the engine would fill them in). */
function ctx(d: Deployment, name: string, results: Record<string, 'ok' | 'error'> = {}): WorkloadContext {
  const withResults: Deployment = { ...d, workloads: d.workloads.map((w) => ({ ...w, result: { created: 0, state: results[w.name] ?? 'ok', message: '' } })) }
  return { id: `7-11-${name}`, twinId: 7, contractId: 11, workload: withResults.workloads.find((w) => w.name === name)!, deployment: withResults, log: SILENT_LOGGER }
}

async function cgroupExists(node: TestNode, wid: string): Promise<boolean> {
  return existsSync(`/sys/fs/cgroup/memory/zos-${node.services.tag}/${wid}`)
}

test('volume - an ext4 image of the given size, mounted; idempotent; deprovision removes it', { skip }, async (t) => {
  const node = await testNode(t, { store: 'dir:///nonexistent' })
  const d = deployment([{ version: 0, name: 'data', type: 'volume', data: { size: 32 * MIB } }])
  const vol = node.primitives.registry.volume
  const r1 = await vol.provision(ctx(d, 'data'))
  assert.deepEqual(r1, { data: { id: '7-11-data' }, existed: false })
  const mnt = node.paths.volumeMount('7-11-data')
  const df = await exec('df', ['-B1', '--output=size', mnt])
  const size = Number(df.stdout.trim().split('\n')[1])
  assert.ok(size > 20 * MIB && size <= 32 * MIB, `filesystem size ${size}`)
  await writeFile(join(mnt, 'keep'), 'kept')
  // A full volume refuses writes: the size is a limit.
  const fill = await exec('dd', ['if=/dev/zero', `of=${join(mnt, 'big')}`, 'bs=1M', 'count=64'])
  assert.notEqual(fill.code, 0)
  assert.match(fill.stderr, /No space left/)
  const r2 = await vol.provision(ctx(d, 'data'))
  assert.equal(r2.existed, true)
  // Grow online.
  const bigger = deployment([{ version: 1, name: 'data', type: 'volume', data: { size: 64 * MIB } }])
  await vol.update!(ctx(bigger, 'data'), d.workloads[0]!)
  const df2 = await exec('df', ['-B1', '--output=size', mnt])
  assert.ok(Number(df2.stdout.trim().split('\n')[1]) > 48 * MIB)
  assert.equal(await readFile(join(mnt, 'keep'), 'utf8'), 'kept')
  await vol.deprovision(ctx(d, 'data'))
  assert.deepEqual(await mountsUnder(node.paths.root), [])
  assert.deepEqual(await loopsUnder(node.paths.root), [])
  assert.equal(existsSync(node.paths.volumeImage('7-11-data')), false)
})

test('zmount - a sparse disk image; grows, never shrinks; deprovision deletes it', { skip }, async (t) => {
  const node = await testNode(t, { store: 'dir:///nonexistent' })
  const d = deployment([{ version: 0, name: 'disk', type: 'zmount', data: { size: 64 * MIB } }])
  const zm = node.primitives.registry.zmount
  assert.deepEqual(await zm.provision(ctx(d, 'disk')), { data: { volume_id: '7-11-disk' }, existed: false })
  const img = node.paths.disk('7-11-disk')
  const st = await stat(img)
  assert.equal(st.size, 64 * MIB)
  assert.ok(st.blocks * 512 < MIB, 'sparse')
  assert.equal((await zm.provision(ctx(d, 'disk'))).existed, true)
  const bigger = deployment([{ version: 1, name: 'disk', type: 'zmount', data: { size: 128 * MIB } }])
  await zm.update!(ctx(bigger, 'disk'), d.workloads[0]!)
  assert.equal((await stat(img)).size, 128 * MIB)
  await assert.rejects(zm.update!(ctx(d, 'disk'), bigger.workloads[0]!), /can only grow/)
  await zm.deprovision(ctx(d, 'disk'))
  assert.equal(existsSync(img), false)
})

test('zmachine - a container from an flist: tags, env, limits, volume and disk, console, crash restart, pause, agent restart, cleanup', { skip }, async (t) => {
  const dir = await tempDir(t)
  const fl = await busyboxFlist(dir, { tags: { env: JSON.stringify(['FROM_TAG=tag', 'SHARED=tag']), 'working-dir': '/tmp', cmd: JSON.stringify(['/bin/sh', '-c', 'echo from-cmd']) } })
  const node = await testNode(t, { store: fl.storeUrl })
  const script = 'echo "start $FROM_TAG $SHARED $MINE $(pwd)"; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; date >> /data/boots; echo disk > /disk/x; while true; do sleep 1; done'
  const d = deployment([
    { version: 0, name: 'data', type: 'volume', data: { size: 32 * MIB } },
    { version: 0, name: 'disk', type: 'zmount', data: { size: 32 * MIB } },
    {
      version: 0,
      name: 'vm',
      type: 'zmachine',
      data: {
        flist: fl.fl,
        size: 256 * MIB,
        compute_capacity: { cpu: 1, memory: 128 * MIB },
        mounts: [{ name: 'data', mountpoint: '/data' }, { name: 'disk', mountpoint: '/disk' }],
        entrypoint: `/bin/sh -c '${script}'`,
        env: { MINE: 'mine', SHARED: 'workload' },
      },
    },
  ])
  const p = node.primitives
  await p.registry.zmount.provision(ctx(d, 'disk'))
  await p.registry.volume.provision(ctx(d, 'data'))
  const r = await p.registry.zmachine.provision(ctx(d, 'vm'))
  assert.deepEqual(r, { data: { id: '7-11-vm', ip: '', planetary_ip: '', mycelium_ip: '', console_url: '' }, existed: false })
  const cid = containerId(node.services.tag, '7-11-vm')
  await until(async () => (await p.zmachine.logs('7-11-vm')).log.includes(String(100000)), 20_000, 'console output')
  const log1 = (await p.zmachine.logs('7-11-vm')).log
  assert.match(log1, /start tag workload mine \/tmp/)
  assert.match(log1, new RegExp(String(128 * MIB)))
  assert.ok(await cgroupExists(node, '7-11-vm'))
  await until(async () => (await readFile(join(node.paths.volumeMount('7-11-data'), 'boots'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length === 1, 10_000, 'first boot')
  // the flist is mounted once, by a helper process
  const flistMounts = (await mountsUnder(node.paths.root)).filter((m) => m.fstype.startsWith('fuse'))
  assert.equal(flistMounts.length, 1)

  // Kill the container's process: the supervisor restarts it.
  const st1 = await node.services.runtime.state(cid)
  assert.equal(st1?.status, 'running')
  process.kill(st1!.pid, 'SIGKILL')
  await until(async () => {
    await node.services.supervisor.tick()
    const s = await node.services.runtime.state(cid)
    return s?.status === 'running' && s.pid !== st1!.pid
  }, 20_000, 'restart')
  assert.equal(node.services.supervisor.info(cid)?.restarts, 1)
  await until(async () => (await readFile(join(node.paths.volumeMount('7-11-data'), 'boots'), 'utf8')).split('\n').filter(Boolean).length === 2, 10_000, 'second boot')
  assert.match((await p.zmachine.logs('7-11-vm')).log, /\[zos\] .* the container exited/)

  // Pause and resume (freezer).
  await p.registry.zmachine.pause!(ctx(d, 'vm'))
  assert.equal((await node.services.runtime.state(cid))?.status, 'paused')
  await p.registry.zmachine.resume!(ctx(d, 'vm'))
  assert.equal((await node.services.runtime.state(cid))?.status, 'running')

  // An agent restart: new services over the same state find everything in place.
  const again = node.restart()
  const pid = (await node.services.runtime.state(cid))!.pid
  assert.equal((await again.primitives.registry.zmachine.provision(ctx(d, 'vm'))).existed, true)
  assert.equal((await again.primitives.registry.volume.provision(ctx(d, 'data'))).existed, true)
  assert.equal((await node.services.runtime.state(cid))!.pid, pid)

  // Update: more memory, new env; the root keeps its files.
  await exec('sh', ['-c', `echo kept > ${join(node.paths.zmachine('7-11-vm'), 'rootfs', 'tmp', 'mark')}`])
  const d2 = deployment([
    d.workloads[0],
    d.workloads[1],
    { ...d.workloads[2]!, version: 1, data: { ...(d.workloads[2]!.data as object), size: 320 * MIB, compute_capacity: { cpu: 1, memory: 192 * MIB }, env: { MINE: 'changed', SHARED: 'workload' } } },
  ])
  await again.primitives.registry.zmachine.update!(ctx(d2, 'vm'), d.workloads[2]!)
  await until(async () => (await again.primitives.zmachine.logs('7-11-vm')).log.includes('changed'), 20_000, 'updated output')
  assert.match((await again.primitives.zmachine.logs('7-11-vm')).log, new RegExp(String(192 * MIB)))
  assert.equal(await readFile(join(node.paths.zmachine('7-11-vm'), 'rootfs', 'tmp', 'mark'), 'utf8'), 'kept\n')
  const rootDf = await exec('df', ['-B1', '--output=size', join(node.paths.zmachine('7-11-vm'), 'rw')])
  assert.ok(Number(rootDf.stdout.trim().split('\n')[1]) > 280 * MIB, 'the root grew')

  // Deprovision in reverse order: nothing is left.
  await again.primitives.registry.zmachine.deprovision(ctx(d2, 'vm'))
  await again.primitives.registry.zmount.deprovision(ctx(d2, 'disk'))
  await again.primitives.registry.volume.deprovision(ctx(d2, 'data'))
  assert.deepEqual(await mountsUnder(node.paths.root), [])
  assert.deepEqual(await loopsUnder(node.paths.root), [])
  assert.equal(await node.services.runtime.state(cid), null)
  assert.equal(await cgroupExists(node, '7-11-vm'), false)
  assert.equal(existsSync(`/sys/fs/cgroup/memory/zos-${node.services.tag}`), false)
  assert.equal(existsSync(node.paths.zmachine('7-11-vm')), false)
  const helpers = await exec('pgrep', ['-f', `mount-helper.*${node.paths.root}`])
  assert.equal(helpers.stdout.trim(), '', 'the mount helper exited')
})

test('zmachine - an flist fetched over http; entrypoint and user from its tags', { skip }, async (t) => {
  const dir = await tempDir(t)
  const fl = await busyboxFlist(dir, { tags: { entrypoint: JSON.stringify(['/bin/sh', '-c']), cmd: JSON.stringify(['echo "as $(id -u):$(id -g)"; sleep 30']), user: 'app' } })
  const body = await readFile(fl.fl)
  const server = createServer((req, res) => {
    if (req.url === '/bb.fl') res.end(body)
    else res.writeHead(404).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => server.close(() => r())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const node = await testNode(t, { store: fl.storeUrl })
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(deployment([{ version: 0, name: 'vm', type: 'zmachine', data: { flist: `${base}/nope.fl`, size: 0, compute_capacity: { cpu: 1, memory: 64 * MIB } } }]), 'vm')), /nope\.fl does not exist \(HTTP 404\)/)
  const d = deployment([{ version: 0, name: 'vm', type: 'zmachine', data: { flist: `${base}/bb.fl`, size: 256 * MIB, compute_capacity: { cpu: 1, memory: 64 * MIB } } }])
  await node.primitives.registry.zmachine.provision(ctx(d, 'vm'))
  await until(async () => (await node.primitives.zmachine.logs('7-11-vm')).log.includes('as 1000:1000'), 20_000, 'output as app')
  await node.primitives.registry.zmachine.deprovision(ctx(d, 'vm'))
  assert.deepEqual(await mountsUnder(node.paths.root), [])
})

test('zmachine - refusals: tampered chunk, unknown flist, missing entrypoint, volume not ready; nothing left mounted', { skip }, async (t) => {
  const dir = await tempDir(t)
  const fl = await busyboxFlist(dir)
  await tamperChunk(fl, 'bin/busybox')
  const node = await testNode(t, { store: fl.storeUrl })
  const vm = (over: Record<string, unknown>) => deployment([{ version: 0, name: 'vm', type: 'zmachine', data: { flist: fl.fl, size: 256 * MIB, compute_capacity: { cpu: 1, memory: 64 * MIB }, entrypoint: '/bin/sh -c "sleep 10"', ...over } }])
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(vm({}), 'vm')), (e: unknown) => {
    const err = e as { code: string; message: string }
    assert.equal(err.code, 'CHUNK_TAMPERED', err.message)
    assert.match(err.message, /cannot read \/bin\/busybox from flist .*does not match its hash/)
    return true
  })
  assert.deepEqual(await mountsUnder(node.paths.root), [])
  assert.deepEqual(await loopsUnder(node.paths.root), [])
  assert.equal(existsSync(node.paths.zmachine('7-11-vm')), false)
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(vm({ flist: join(dir, 'nope.fl') }), 'vm')), /nope\.fl does not exist/)
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(vm({ flist: 'ftp://x/y.fl' }), 'vm')), /ftp: are not supported/)
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(vm({ flist: '/dev/zero' }), 'vm')), /\/dev\/zero is not a regular file/)
  await assert.rejects(node.primitives.registry.zmachine.provision(ctx(vm({ flist: '/etc/hostname' }), 'vm')), (e: unknown) => (e as { code: string }).code === 'FLIST_CORRUPT')
  const fl2 = await busyboxFlist(join(dir, 'clean'), { name: 'ok' })
  const node2 = await testNode(t, { store: fl2.storeUrl, tag: 'other' })
  await assert.rejects(node2.primitives.registry.zmachine.provision(ctx(deployment([{ version: 0, name: 'vm', type: 'zmachine', data: { flist: fl2.fl, size: 0, compute_capacity: { cpu: 1, memory: 64 * MIB }, entrypoint: '/bin/nothing' } }]), 'vm')), /\/bin\/nothing does not exist/)
  const withVol = deployment([
    { version: 0, name: 'data', type: 'volume', data: { size: 32 * MIB } },
    { version: 0, name: 'vm', type: 'zmachine', data: { flist: fl2.fl, size: 0, compute_capacity: { cpu: 1, memory: 64 * MIB }, entrypoint: '/bin/true', mounts: [{ name: 'data', mountpoint: '/data' }] } },
  ])
  await assert.rejects(node2.primitives.registry.zmachine.provision(ctx(withVol, 'vm', { data: 'error' })), /the volume is not ready \(error/)
  assert.deepEqual(await mountsUnder(node2.paths.root), [])
  const net = deployment([{ version: 0, name: 'vm', type: 'zmachine', data: { flist: fl2.fl, size: 0, compute_capacity: { cpu: 1, memory: 64 * MIB }, network: { interfaces: [{ network: 'net', ip: '10.1.1.2' }] } } }])
  await assert.rejects(node2.primitives.registry.zmachine.provision(ctx(net, 'vm')), /networks are not supported on this node yet/)
})
