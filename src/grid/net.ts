// The grid's private network: one Linux bridge on the host with the grid's services on its first address, and
// one network namespace per node, joined to the bridge by a veth pair. Names derive from the grid's id (a hash
// of its directory), so two grids on one machine never share a link, and the same directory finds its own
// links again after a restart. Everything here is idempotent: `ensure` creates what is missing, `remove`
// deletes what exists.
import { exec, execOk } from '../core/exec.js'
import { zerr } from '../core/errors.js'

export interface GridNet {
  /** The bridge on the host, e.g. zosbr1a2b3c. */
  bridge: string
  /** The /24 the grid uses, e.g. 10.77.42.0 (the bridge is .1, node i is .(10 + i)). */
  subnet: string
}

export interface NodeNet {
  /** Network namespace (`ip netns` name). */
  netns: string
  /** The veth end on the host, attached to the bridge. */
  hostVeth: string
  /** The node's address on the bridge. */
  ip: string
}

/** The first three octets of the subnet; callers add the host part. */
function prefix(subnet: string): string {
  return subnet.split('.').slice(0, 3).join('.')
}

export function bridgeIp(net: GridNet): string {
  return `${prefix(net.subnet)}.1`
}

export function nodeNet(gridId: string, net: GridNet, index: number): NodeNet {
  return { netns: `zos-${gridId}-n${index}`, hostVeth: `zv${gridId}n${index}`, ip: `${prefix(net.subnet)}.${10 + index}` }
}

export function bridgeName(gridId: string): string {
  return `zosbr${gridId}`
}

/** IPv4 /24s already on this machine's links or routes, as "a.b.c" prefixes. */
async function usedPrefixes(): Promise<Set<string>> {
  const used = new Set<string>()
  const text = (await exec('ip', ['-4', '-o', 'addr', 'show'])).stdout + '\n' + (await exec('ip', ['-4', 'route', 'show', 'table', 'all'])).stdout
  for (const m of text.matchAll(/\b(\d+)\.(\d+)\.(\d+)\.\d+(?:\/(\d+))?/g)) {
    const bits = m[4] === undefined ? 32 : Number(m[4])
    // A route wider than a /16 in 10/8 (a default route, 10.0.0.0/8) blocks nothing we would pick by itself.
    if (bits < 16) continue
    if (bits < 24) {
      for (let c = 0; c < 256; c++) used.add(`${m[1]}.${m[2]}.${c}`)
    } else used.add(`${m[1]}.${m[2]}.${m[3]}`)
  }
  return used
}

/** Picks a free 10.77.X.0/24, starting at a place derived from the grid id so concurrent grids spread out. */
export async function pickSubnet(gridId: string): Promise<string> {
  // A bridge left by a first `up` that failed before it saved the grid keeps its subnet.
  const existing = /inet (10\.77\.\d+)\.1\/24/.exec((await exec('ip', ['-4', '-o', 'addr', 'show', 'dev', bridgeName(gridId)])).stdout)?.[1]
  if (existing) return `${existing}.0`
  const used = await usedPrefixes()
  const start = Number.parseInt(gridId.slice(0, 4), 16) % 250
  for (let i = 0; i < 250; i++) {
    const c = ((start + i) % 250) + 1
    if (!used.has(`10.77.${c}`)) return `10.77.${c}.0`
  }
  throw zerr('INVALID_STATE', 'no free 10.77.X.0/24 subnet for the grid\'s bridge: remove unused links or grids (`zos grid down`)')
}

async function linkExists(name: string): Promise<boolean> {
  return (await exec('ip', ['link', 'show', 'dev', name])).code === 0
}

export async function netnsList(): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'])
  return r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean)
}

/** Creates the bridge with the services' address, if missing. */
export async function ensureBridge(net: GridNet): Promise<void> {
  if (!(await linkExists(net.bridge))) {
    await execOk('ip', ['link', 'add', net.bridge, 'type', 'bridge'], `creating bridge ${net.bridge}`, { code: 'PERMISSION' })
  }
  const addr = `${bridgeIp(net)}/24`
  const shown = (await exec('ip', ['-4', '-o', 'addr', 'show', 'dev', net.bridge])).stdout
  if (!shown.includes(` ${addr} `)) await execOk('ip', ['addr', 'add', addr, 'dev', net.bridge], `addressing bridge ${net.bridge}`)
  await execOk('ip', ['link', 'set', net.bridge, 'up'], `bringing up bridge ${net.bridge}`)
}

/** Creates node `n`'s namespace and veth pair (eth0 inside) with its address and a route to the bridge. */
export async function ensureNodeNet(net: GridNet, n: NodeNet): Promise<void> {
  if (!(await netnsList()).includes(n.netns)) await execOk('ip', ['netns', 'add', n.netns], `creating network namespace ${n.netns}`, { code: 'PERMISSION' })
  const inNs = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => exec('ip', ['-n', n.netns, ...args])
  await execOk('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up'], `bringing up lo in ${n.netns}`)
  if ((await inNs(['link', 'show', 'dev', 'eth0'])).code !== 0) {
    // A host end left from an earlier run whose namespace was deleted would block the name.
    if (await linkExists(n.hostVeth)) await exec('ip', ['link', 'del', n.hostVeth])
    await execOk('ip', ['link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns], `creating veth ${n.hostVeth}`)
  }
  await execOk('ip', ['link', 'set', n.hostVeth, 'master', net.bridge, 'up'], `attaching ${n.hostVeth} to ${net.bridge}`)
  const addr = `${n.ip}/24`
  if (!(await inNs(['-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(` ${addr} `)) {
    await execOk('ip', ['-n', n.netns, 'addr', 'add', addr, 'dev', 'eth0'], `addressing eth0 in ${n.netns}`)
  }
  await execOk('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up'], `bringing up eth0 in ${n.netns}`)
  await exec('ip', ['-n', n.netns, 'route', 'replace', 'default', 'via', bridgeIp(net)])
}

/** Deletes a node's namespace (its veth pair goes with it) and any host end left over. */
export async function removeNodeNet(n: NodeNet): Promise<void> {
  if ((await netnsList()).includes(n.netns)) await execOk('ip', ['netns', 'del', n.netns], `deleting network namespace ${n.netns}`)
  if (await linkExists(n.hostVeth)) await exec('ip', ['link', 'del', n.hostVeth])
}

export async function removeBridge(net: GridNet): Promise<void> {
  if (await linkExists(net.bridge)) await execOk('ip', ['link', 'del', net.bridge], `deleting bridge ${net.bridge}`)
}

/** Whether the kernel can do what the grid needs: network namespaces, bridges and veth (root). */
export async function checkNetworking(): Promise<void> {
  if (process.getuid?.() !== 0) throw zerr('PERMISSION', 'a local grid needs root (network namespaces, bridges, FUSE mounts, runc): run it with sudo or as root')
  const r = await exec('ip', ['-V'])
  if (r.code !== 0) throw zerr('UNSUPPORTED', 'the `ip` command (iproute2) is missing: apt-get install iproute2')
  const nsenter = await exec('nsenter', ['--version'])
  if (nsenter.code !== 0) throw zerr('UNSUPPORTED', 'the `nsenter` command (util-linux) is missing: apt-get install util-linux')
}
