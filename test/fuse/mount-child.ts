// A separate process for the lifecycle tests: mounts a small MemFs and waits, so a test can kill it (-9 leaves a
// stale mount), signal it (unmountOnSignals), or see how mountFuse fails for it (not root, no /dev/fuse).
// Usage: mount-child <hold|signals|try> <mountpoint>
import { mountFuse, unmountOnSignals } from '../../src/fuse/index.js'
import { ZosError } from '../../src/core/errors.js'
import { MemFs } from './memfs.js'

const [mode, mountpoint] = process.argv.slice(2)
if ((mode !== 'hold' && mode !== 'signals' && mode !== 'try') || mountpoint === undefined) {
  process.stderr.write('usage: mount-child <hold|signals|try> <mountpoint>\n')
  process.exit(2)
}
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
