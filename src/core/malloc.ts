// glibc malloc settings for the processes zos starts that allocate many megabytes quickly (a mount's serving
// process, which keeps chunk plaintext in Buffers; a pack). On a VM, the first touch of a fresh 4 KiB page costs
// 10–15 µs (nested paging): a mount that serves 54 MB to a cold `node` start spent 200 ms of its CPU on 13k such
// faults. With these settings, Buffers come from the malloc heap instead of an mmap each (mmap_threshold), the
// heap grows in 16 MiB steps and keeps that much when it shrinks (top_pad), and malloc asks for transparent huge
// pages on it (hugetlb=1, glibc >= 2.35; THP in "madvise" mode is enough). Touching 64 MiB of new Buffers then
// takes 10–40 ms instead of 190 ms (docs/benchmarks.md). glibc reads GLIBC_TUNABLES only at process start, so
// they go into the environment of the children we spawn; other libcs ignore the variable.

export const MALLOC_TUNABLES: Readonly<Record<string, string>> = {
  'glibc.malloc.hugetlb': '1',
  'glibc.malloc.mmap_threshold': String(32 * 1024 * 1024),
  'glibc.malloc.top_pad': String(16 * 1024 * 1024),
}

/**
 * `env` with MALLOC_TUNABLES added to its GLIBC_TUNABLES; settings the caller already has win.
 * ZOS_MALLOC_TUNING=0 leaves the environment as it is.
 */
export function withMallocTunables(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.ZOS_MALLOC_TUNING === '0') return { ...env }
  const given = (env.GLIBC_TUNABLES ?? '').split(':').filter((s) => s.includes('='))
  const names = new Set(given.map((s) => s.slice(0, s.indexOf('='))))
  const added = Object.entries(MALLOC_TUNABLES).filter(([name]) => !names.has(name)).map(([name, value]) => `${name}=${value}`)
  return { ...env, GLIBC_TUNABLES: [...given, ...added].join(':') }
}
