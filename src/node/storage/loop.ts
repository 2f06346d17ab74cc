// Disk images: sparse files, optionally formatted ext4 and mounted through a loop device. `mount -o loop`
// sets autoclear, so the loop device goes away with the unmount; detachLoops removes any left behind (a crash
// between losetup and mount), found by their backing file, which is always under the node's state dir.
import { mkdir, open, readFile, readdir, readlink, rm, rmdir, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { zerr } from '../../core/errors.js'
import { exec, execOk } from '../../core/exec.js'
import { findMount, unmountAll } from './mounts.js'

/** Creates a sparse file of `size` bytes (no-op when it exists). Returns false when it already existed. */
export async function createSparse(path: string, size: number): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true })
  let fh
  try {
    fh = await open(path, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw zerr('RUNTIME_FAILED', `cannot create the disk image ${path}: ${(err as Error).message}`, { path }, err)
  }
  try {
    await fh.truncate(size)
  } finally {
    await fh.close()
  }
  return true
}

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch {
    return undefined
  }
}

/** The filesystem type on an image, or '' when it has none. */
export async function filesystemOf(path: string): Promise<string> {
  const r = await exec('blkid', ['-p', '-o', 'value', '-s', 'TYPE', path])
  return r.code === 0 ? r.stdout.trim() : ''
}

export async function formatExt4(path: string, label: string): Promise<void> {
  await execOk('mkfs.ext4', ['-q', '-F', '-m', '0', '-L', label.slice(0, 16), '-E', 'lazy_itable_init=1,lazy_journal_init=1,nodiscard', path], `cannot format ${path}`)
}

/** Creates (sparse, ext4) and mounts an image at `target`; returns whether the image already existed. */
export async function ensureMountedImage(image: string, size: number, target: string, label: string): Promise<{ existed: boolean }> {
  const created = await createSparse(image, size)
  if (created || (await filesystemOf(image)) === '') await formatExt4(image, label)
  const m = await findMount(target)
  if (m) {
    // Mounted already: it must be this image's loop device.
    return { existed: !created }
  }
  await mkdir(target, { recursive: true })
  await detachLoops(image)
  await execOk('mount', ['-o', 'loop,noatime', image, target], `cannot mount the disk image ${image}`)
  return { existed: !created }
}

/** Loop devices whose backing file is `image`. */
export async function loopsOf(image: string): Promise<string[]> {
  const r = await exec('losetup', ['-j', resolve(image), '-O', 'NAME', '-n'])
  if (r.code !== 0) return []
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/dev/'))
}

export async function detachLoops(image: string): Promise<void> {
  for (const dev of await loopsOf(image)) await exec('losetup', ['-d', dev])
}

/** Unmounts `target` (if mounted), detaches the image's loop devices, and optionally deletes the image. */
export async function releaseImage(image: string, target: string | undefined, opts: { remove: boolean }): Promise<void> {
  if (target) {
    await unmountAll(target)
    // rmdir, never rm -r: if something were still mounted there, its data must not be deleted.
    await rmdir(target).catch(() => undefined)
  }
  await detachLoops(image)
  if (opts.remove) await rm(image, { force: true })
}

/** Grows an image (never shrinks) and, when it is mounted at `target`, the ext4 filesystem on it, online. */
export async function growImage(image: string, size: number, target: string | undefined): Promise<void> {
  const current = await fileSize(image)
  if (current === undefined) throw zerr('NOT_FOUND', `the disk image ${image} does not exist`)
  if (size < current) throw zerr('INVALID_ARGUMENT', `a disk can only grow: it has ${current} bytes, the update asks for ${size}`)
  if (size === current) return
  const fh = await open(image, 'r+')
  try {
    await fh.truncate(size)
  } finally {
    await fh.close()
  }
  const m = target ? await findMount(target) : undefined
  if (target && m && m.source.startsWith('/dev/loop')) {
    await execOk('losetup', ['-c', m.source], `cannot resize the loop device of ${image}`)
    const online = await exec('resize2fs', [m.source])
    if (online.code === 0) return
    // Online growth needs CAP_SYS_RESOURCE; without it, grow offline, but only if no other mount namespace
    // (a container) uses the filesystem.
    const users = await otherNamespaceUsers(target)
    if (users > 0) {
      throw zerr('INVALID_STATE', `cannot grow ${image} while a container uses it: this kernel refuses online resizing (${online.stderr.split('\n').pop()}); stop the zmachine that mounts it, or grow it together with an update of that zmachine`)
    }
    // A strict unmount: a lazy one would let the filesystem be resized under a user.
    const um = await exec('umount', [resolve(target)])
    if (um.code !== 0) throw zerr('INVALID_STATE', `cannot grow ${image}: it is in use (${um.stderr}) and this kernel refuses online resizing`)
    try {
      await offlineGrow(image)
    } finally {
      await execOk('mount', ['-o', 'loop,noatime', image, target], `cannot mount the disk image ${image} again`)
    }
  } else if ((await filesystemOf(image)) === 'ext4') {
    await offlineGrow(image)
  }
}

async function offlineGrow(image: string): Promise<void> {
  await exec('e2fsck', ['-f', '-p', image]) // resize2fs wants a freshly checked filesystem; fixes are fine
  await execOk('resize2fs', [image], `cannot grow the filesystem of ${image}`)
}

/** How many processes outside this mount namespace have the filesystem mounted at `target` mounted. */
async function otherNamespaceUsers(target: string): Promise<number> {
  const mine = await readFile('/proc/self/mountinfo', 'utf8')
  const line = mine.split('\n').find((l) => l.split(' ')[4] === resolve(target))
  const dev = line?.split(' ')[2]
  if (!dev) return 0
  const myNs = await readlink('/proc/self/ns/mnt').catch(() => '')
  const seen = new Set<string>()
  let users = 0
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue
    const ns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => '')
    if (!ns || ns === myNs || seen.has(ns)) continue
    seen.add(ns)
    const info = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => '')
    if (info.split('\n').some((l) => l.split(' ')[2] === dev)) users++
  }
  return users
}
