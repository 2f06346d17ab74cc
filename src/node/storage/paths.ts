// Everything a node keeps lives under its --state directory, so several nodes can share a machine and a node
// never touches what it did not create. Workload ids ("<twin>-<contract>-<name>") are safe path components.
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'

export class NodePaths {
  readonly root: string

  constructor(stateDir: string) {
    this.root = resolve(stateDir)
  }

  get keyFile(): string {
    return join(this.root, 'identity', 'key.json')
  }
  get database(): string {
    return join(this.root, 'db', 'node.db')
  }
  get cache(): string {
    return join(this.root, 'cache')
  }
  get runcRoot(): string {
    return join(this.root, 'runc')
  }
  get logs(): string {
    return join(this.root, 'logs')
  }
  /** zmount disk images. */
  disk(wid: string): string {
    return join(this.root, 'disks', `${wid}.img`)
  }
  /** Where a zmount is mounted when a container uses it. */
  diskMount(wid: string): string {
    return join(this.root, 'disks', wid)
  }
  volumeImage(wid: string): string {
    return join(this.root, 'volumes', `${wid}.img`)
  }
  volumeMount(wid: string): string {
    return join(this.root, 'volumes', wid)
  }
  /** The bundle directory of a zmachine (config.json, rootfs/, rw/, console.log). */
  zmachine(wid: string): string {
    return join(this.root, 'zmachines', wid)
  }
  flistFiles(): string {
    return join(this.root, 'flists', 'files')
  }
  flistMount(root: string): string {
    return join(this.root, 'flists', 'mounts', root.slice(0, 16))
  }
  flistRefs(root: string): string {
    return join(this.root, 'flists', 'refs', root.slice(0, 16))
  }
  flistRun(root: string): string {
    return join(this.root, 'flists', 'run', root.slice(0, 16))
  }
}

/** A short, stable tag that makes container and cgroup names unique to one node (from its key's address). */
export function nodeTag(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('hex').slice(0, 8)
}
