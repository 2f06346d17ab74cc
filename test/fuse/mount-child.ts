// A separate process for the lifecycle tests: mounts a small MemFs and waits, so a test can kill it (-9 leaves a
// stale mount), signal it (unmountOnSignals), or see how mountFuse fails for it (not root, no /dev/fuse).
// `abandon` starts a mount (startMount) that nothing takes over and lets the process end by itself.
// Usage: mount-child <hold|signals|try|abandon> <mountpoint>
import { setTimeout as sleep } from 'node:timers/promises'
import { mountAt, mountFuse, startMount, unmountOnSignals } from '../../src/fuse/index.js'
import { ZosError } from '../../src/core/errors.js'
import { MemFs } from './memfs.js'

const [mode, mountpoint] = process.argv.slice(2)
if ((mode !== 'hold' && mode !== 'signals' && mode !== 'try' && mode !== 'abandon') || mountpoint === undefined) {
  process.stderr.write('usage: mount-child <hold|signals|try|abandon> <mountpoint>\n')
  process.exit(2)
}
if (mode === 'abandon') {
  startMount(mountpoint, { fsname: 'zos-test-child', subtype: 'zostest' })
  let info
  for (let i = 0; i < 500 && !(info = mountAt(mountpoint)); i++) await sleep(20)
  // Nothing keeps the process alive now: it must end by itself, and detach the mount on the way out.
  process.stdout.write(JSON.stringify({ ready: info !== undefined, device: info?.device, pid: process.pid }) + '\n')
} else {
  const fs = new MemFs()
  fs.writeFile('child.txt', `served by ${process.pid}\n`)
  try {
    const m = await mountFuse(mountpoint, fs, { fsname: 'zos-test-child', subtype: 'zostest' })
    if (mode === 'signals') unmountOnSignals(m)
    process.stdout.write(JSON.stringify({ ready: true, device: m.device, pid: process.pid }) + '\n')
    if (mode === 'try') {
      await m.unmount()
      process.exit(0)
    }
    setInterval(() => {}, 1 << 30)
  } catch (err) {
    process.stdout.write(JSON.stringify({ ready: false, code: ZosError.is(err) ? err.code : 'UNEXPECTED', message: String(err) }) + '\n')
    process.exit(1)
  }
}
