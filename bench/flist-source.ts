// Throughput of flist sources: walk every entry and read every byte of content, for a directory, a plain tar, a
// tar.gz and a tar.zst of the same tree, against GNU tar doing the same reading (the anchor): `tar -cf -` over the
// directory, `tar -xOf` (extract contents to stdout) over each archive, both piped into `cat >/dev/null`.
// A second tree of many tiny files measures per-entry cost (entries only, no content) against `tar -tvf` and
// `find -ls`, which also read every header / stat every entry and print it.
// The trees live on tmpfs (/dev/shm when present) so this measures the code, not the disk.
//   npm run bench -- flist-source [--quick]
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSource } from '../src/flist/source/open.js'

const quick = process.argv.includes('--quick')
const SMALL = quick ? 1000 : 4000 // files of 0–16 KiB
const LARGE = quick ? 8 : 24 // files of 4 MiB
const ROUNDS = quick ? 1 : 3
const TINY = quick ? 5000 : 20000 // files of 0–300 bytes, for the per-entry figures

function buildTree(dir: string): number {
  // Half random, half repeated text: realistic for compression, and gzip does not take all day.
  const text = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n'.repeat(80000))
  let bytes = 0
  for (let i = 0; i < SMALL; i++) {
    const sub = join(dir, `d${i % 50}`)
    mkdirSync(sub, { recursive: true })
    const size = Math.floor(Math.random() * 16384)
    const data = i % 2 ? randomBytes(size) : text.subarray(i, i + size)
    writeFileSync(join(sub, `f${i}`), data)
    bytes += size
  }
  for (let i = 0; i < LARGE; i++) {
    const data = i % 2 ? randomBytes(4 << 20) : text.subarray(i, i + (4 << 20))
    writeFileSync(join(dir, `large${i}`), data)
    bytes += data.length
  }
  return bytes
}

async function ours(spec: string, content = true): Promise<number> {
  const t0 = performance.now()
  const source = await openSource(spec, { warn: () => {} })
  for await (const e of source.entries()) {
    if (content && e.content) for await (const _ of e.content.stream()) void _
  }
  await source.close()
  return performance.now() - t0
}

function anchor(command: string): number {
  const t0 = performance.now()
  execFileSync('sh', ['-c', `${command} | cat >/dev/null`], { stdio: ['ignore', 'ignore', 'inherit'] })
  return performance.now() - t0
}

async function best(fn: () => Promise<number> | number): Promise<number> {
  let min = Infinity
  for (let i = 0; i < ROUNDS; i++) min = Math.min(min, await fn())
  return min
}

const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()
const root = await mkdtemp(join(base, 'zos-bench-source-'))
try {
  const tree = join(root, 'tree')
  mkdirSync(tree)
  const bytes = buildTree(tree)
  execFileSync('tar', ['-cf', join(root, 't.tar'), '-C', tree, '.'])
  execFileSync('tar', ['-czf', join(root, 't.tgz'), '-C', tree, '.'])
  execFileSync('tar', ['--zstd', '-cf', join(root, 't.tzst'), '-C', tree, '.'])
  process.env.TMPDIR = root // our temp files go to tmpfs as well
  const mb = bytes / 1e6
  console.log(`tree: ${SMALL + LARGE} files, ${mb.toFixed(0)} MB of content; best of ${ROUNDS}`)
  const cases: Array<[string, string, string]> = [
    ['directory', tree, `tar -C ${tree} -cf - .`],
    ['tar', join(root, 't.tar'), `tar -xOf ${join(root, 't.tar')}`],
    ['tar.gz', join(root, 't.tgz'), `tar -xzOf ${join(root, 't.tgz')}`],
    ['tar.zst', join(root, 't.tzst'), `tar --zstd -xOf ${join(root, 't.tzst')}`],
  ]
  console.log('source      ours MB/s   GNU tar MB/s   ratio')
  for (const [name, spec, command] of cases) {
    const a = await best(() => ours(spec))
    const b = await best(() => anchor(command))
    const r = (x: number): string => (mb / (x / 1000)).toFixed(0).padStart(8)
    console.log(`${name.padEnd(10)} ${r(a)}      ${r(b)}      ${(b / a).toFixed(2)}`)
  }

  const tiny = join(root, 'tiny')
  for (let i = 0; i < TINY; i++) {
    const sub = join(tiny, `d${i % 100}`, `e${i % 7}`)
    mkdirSync(sub, { recursive: true })
    writeFileSync(join(sub, `file-${i}.txt`), 'x'.repeat(i % 300))
  }
  execFileSync('tar', ['-cf', join(root, 'tiny.tar'), '-C', tiny, '.'])
  const entriesOf = Number(execFileSync('sh', ['-c', `find ${tiny} | wc -l`]).toString())
  console.log(`\nper-entry cost, ${entriesOf} entries (metadata only)`)
  console.log('source      ours µs/entry   anchor µs/entry   ratio')
  for (const [name, spec, command] of [
    ['directory', tiny, `find ${tiny} -ls`],
    ['tar', join(root, 'tiny.tar'), `tar -tvf ${join(root, 'tiny.tar')}`],
  ] as const) {
    const a = await best(() => ours(spec, false))
    const b = await best(() => anchor(command))
    const us = (x: number): string => ((x * 1000) / entriesOf).toFixed(1).padStart(8)
    console.log(`${name.padEnd(10)} ${us(a)}         ${us(b)}          ${(b / a).toFixed(2)}`)
  }
} finally {
  await rm(root, { recursive: true, force: true })
}
