import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { MALLOC_TUNABLES, withMallocTunables } from '../../src/core/malloc.js'
import { READY_FD_ENV, readyPipeOptions } from '../../src/flist/ready.js'

const ours = Object.entries(MALLOC_TUNABLES).map(([k, v]) => `${k}=${v}`)

describe('withMallocTunables', () => {
  it('adds the settings to an environment without any', () => {
    const env = withMallocTunables({ PATH: '/bin' })
    assert.equal(env.PATH, '/bin')
    assert.deepEqual(env.GLIBC_TUNABLES!.split(':').sort(), [...ours].sort())
  })

  it('keeps what the caller set, and the caller wins on a name both set', () => {
    const env = withMallocTunables({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=0:glibc.cpu.hwcaps=-AVX2' })
    const items = env.GLIBC_TUNABLES!.split(':')
    assert.ok(items.includes('glibc.malloc.top_pad=0'))
    assert.ok(items.includes('glibc.cpu.hwcaps=-AVX2'))
    assert.equal(items.filter((s) => s.startsWith('glibc.malloc.top_pad=')).length, 1)
    assert.ok(items.includes('glibc.malloc.hugetlb=1'))
  })

  it('leaves the environment alone with ZOS_MALLOC_TUNING=0, and never changes its argument', () => {
    const given = { ZOS_MALLOC_TUNING: '0', GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }
    assert.deepEqual(withMallocTunables(given), given)
    const plain: NodeJS.ProcessEnv = {}
    withMallocTunables(plain)
    assert.equal(plain.GLIBC_TUNABLES, undefined)
  })

  it('is in the environment of a mount\'s serving process', () => {
    const { env } = readyPipeOptions(1)
    assert.equal(env[READY_FD_ENV], '3')
    if (process.env.ZOS_MALLOC_TUNING !== '0') assert.ok(env.GLIBC_TUNABLES!.includes('glibc.malloc.hugetlb=1'))
  })
})

describe('malloc tunables in a child process', () => {
  const thp = (() => {
    try {
      return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))
    } catch {
      return false
    }
  })()
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime
  const skip = !thp ? 'the kernel offers no transparent huge pages' : !glibc || Number(glibc.split('.')[1]) < 35 ? `glibc ${glibc ?? 'missing'} has no malloc.hugetlb (needs 2.35)` : false

  it('backs Buffers with huge pages', { skip }, () => {
    // 64 MiB of 1 MiB Buffers, touched; then the anonymous huge pages of the process.
    const script = `const b = []; for (let i = 0; i < 64; i++) b.push(Buffer.alloc(1 << 20, 1));
      process.stdout.write(/AnonHugePages:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/smaps_rollup', 'utf8'))[1])`
    const huge = (env: NodeJS.ProcessEnv): number => Number(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }))
    const plain = { ...process.env, ZOS_MALLOC_TUNING: '0', GLIBC_TUNABLES: '' }
    assert.ok(huge(withMallocTunables({ ...plain, ZOS_MALLOC_TUNING: '' })) >= 32 * 1024, 'at least half of 64 MiB in huge pages (kB)')
    assert.ok(huge(plain) < 32 * 1024, 'without the settings, 1 MiB Buffers get no huge pages')
  })
})
