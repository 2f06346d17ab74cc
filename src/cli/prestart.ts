// Work a command can start before the CLI itself is loaded. A worker thread boots in 60–120 ms on a small VM,
// longer than loading commander and the command modules, so `zos flist pack` starts its pack workers first; the
// getfattr helper of a directory source starts before them, while the process is smallest and has no other
// threads (it is a fork of this process: see flist/source/xattrs.ts). This only peeks at argv: commander checks
// everything later, and a wrong guess costs an unused start, nothing else. `zos flist mount --daemon` starts its
// serving process first (cli/mount-daemon.ts).
import { statSync } from 'node:fs'

/** Options of `zos flist pack` and `zos flist mount` that take a value (the value may be the next argument). */
const PACK_VALUE_OPTIONS = new Set(['-o', '--output', '-s', '--store', '--sign', '--level', '--tag', '--prefetch', '--workers'])
const MOUNT_VALUE_OPTIONS = new Set(['-s', '--store', '--cache', '--cache-size', '--memory-cache', '--trust', '--writable', '--trace'])

/** The positional arguments and the options (last value wins; true when given without one) of a command line. */
function scan(args: readonly string[], valueOptions: ReadonlySet<string>): { positional: string[]; options: Map<string, string | true> } {
  const positional: string[] = []
  const options = new Map<string, string | true>()
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--') {
      positional.push(...args.slice(i + 1))
      break
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a)
      continue
    }
    const eq = a.indexOf('=')
    const name = eq > 0 ? a.slice(0, eq) : a
    const value = eq > 0 ? a.slice(eq + 1) : valueOptions.has(name) ? args[++i] : undefined
    options.set(name, value ?? true)
  }
  return { positional, options }
}

/** For `zos [--json] flist pack …`: its source argument and --workers value as given; undefined for other commands. */
export function packArguments(args: readonly string[]): { source?: string; workers?: string } | undefined {
  const { positional, options } = scan(args, PACK_VALUE_OPTIONS)
  if (positional[0] !== 'flist' || positional[1] !== 'pack') return undefined
  const workers = options.get('--workers')
  return { ...(positional[2] !== undefined ? { source: positional[2] } : {}), ...(typeof workers === 'string' ? { workers } : {}) }
}

/** True for `zos [--json] flist mount …`. */
function isFlistMount(args: readonly string[]): boolean {
  const { positional } = scan(args, MOUNT_VALUE_OPTIONS)
  return positional[0] === 'flist' && positional[1] === 'mount'
}

/** True for `zos [--json] flist mount FILE MOUNTPOINT … --daemon` (not asking for help). */
export function isMountDaemon(args: readonly string[]): boolean {
  return mountDaemonArguments(args) !== undefined
}

/**
 * For `zos [--json] flist mount FILE MOUNTPOINT … --daemon`: FILE, and whether this process may run the flist's
 * checks for its serving process (not when signers must be trusted: the serving process then checks with the
 * keys commander parses). Undefined for other commands.
 */
export function mountDaemonArguments(args: readonly string[]): { flist: string; checkHere: boolean } | undefined {
  const { positional, options } = scan(args, MOUNT_VALUE_OPTIONS)
  const daemon = positional[0] === 'flist' && positional[1] === 'mount' && positional.length === 4 && options.get('--daemon') === true &&
    !options.has('-h') && !options.has('--help')
  return daemon ? { flist: positional[2]!, checkHere: !options.has('--trust') } : undefined
}

export async function prestart(args: readonly string[]): Promise<void> {
  const mount = mountDaemonArguments(args)
  // Started by the launcher (bin/zos) as the serving process of a daemon mount: serve (below), or hand back a
  // command that turns out not to be one.
  if (process.env.ZOS_MOUNT_LAUNCHER !== undefined && process.env.ZOS_MOUNT_READY_FD === '3') {
    if (!mount) (await import('../flist/ready.js')).redoWithoutLauncher()
  } else if (mount) {
    await (await import('./mount-daemon.js')).prestartMountDaemon(mount.checkHere ? { flist: mount.flist } : undefined)
    return
  }
  // The serving process of a `--daemon` mount: its modules start loading now (their files are read on the libuv
  // pool while commander loads and parses); the command's own imports then find them loaded or loading.
  if (process.env.ZOS_MOUNT_READY_FD === '3' && isFlistMount(args)) {
    for (const load of [import('../fuse/index.js'), import('../flist/mount.js'), import('../flist/cache.js'), import('../store/open.js')]) load.catch(() => {})
    return
  }
  const pack = packArguments(args)
  if (!pack) return
  if (pack.source !== undefined && pack.source !== '-' && statSync(pack.source, { throwIfNoEntry: false })?.isDirectory()) {
    ;(await import('../flist/source/xattrs.js')).startXattrReader()
  }
  const workers = pack.workers === undefined ? undefined : Number(pack.workers)
  try {
    ;(await import('../flist/pack-pool.js')).prestartPackPool(workers)
  } catch {
    // A bad --workers value: the command reports it.
  }
}
