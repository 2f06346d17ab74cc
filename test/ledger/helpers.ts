// A real embedded ledger per test file: anvil on 127.0.0.1 (free port), contracts deployed, stopped by pid and
// its data dir removed when the file's tests end. Time is moved with anvil's evm_* methods, never waited for.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { devPrivateKey, openLedger, startLedger, type Hex, type Ledger, type LedgerServer, type LedgerServerOptions } from '../../src/ledger/index.js'
import { DEV_ROLES } from '../../src/ledger/deploy.js'

export const GIB = 2 ** 30
/** One token in base units (7 decimals). */
export const TOKEN = 10n ** 7n

export interface TestLedger {
  readonly srv: LedgerServer
  readonly dir: string
  readonly url: string
  /** A ledger client for `key` (a fresh random account when omitted). */
  client(key?: Hex): Promise<Ledger>
  /** A client for development council member 1..3. */
  councilMember(n: 1 | 2 | 3): Promise<Ledger>
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>
  /** The next block gets exactly this timestamp. */
  setNextTimestamp(ts: number): Promise<void>
  /** Timestamp of the latest block. */
  now(): Promise<number>
  stop(): Promise<void>
}

export function newKey(): Hex {
  return generatePrivateKey()
}

export function addressOfKey(key: Hex): `0x${string}` {
  return privateKeyToAccount(key).address
}

export async function startTestLedger(opts: Partial<LedgerServerOptions> = {}): Promise<TestLedger> {
  const dir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'zos-ledger-test-')))
  const srv = await startLedger({ port: 0, ...opts, dataDir: dir })
  const clients: Ledger[] = []
  let id = 0
  const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const res = await fetch(srv.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }),
    })
    const body = (await res.json()) as { result?: T; error?: { message: string } }
    if (body.error) throw new Error(`${method}: ${body.error.message}`)
    return body.result as T
  }
  const client = async (key?: Hex): Promise<Ledger> => {
    const l = await openLedger({ ledgerDir: dir, privateKey: key ?? newKey(), receiptPollMs: 20 })
    clients.push(l)
    return l
  }
  return {
    srv,
    dir,
    url: srv.url,
    client,
    councilMember: (n) => client(devPrivateKey(DEV_ROLES.council[n - 1]!)),
    rpc,
    setNextTimestamp: async (ts) => {
      await rpc('evm_setNextBlockTimestamp', [ts])
    },
    now: async () => {
      const b = await rpc<{ timestamp: string }>('eth_getBlockByNumber', ['latest', false])
      return Number(BigInt(b.timestamp))
    },
    stop: async () => {
      for (const c of clients) await c.close()
      await srv.stop()
      if (!opts.dataDir) await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A funded user with a twin. */
export async function userWithTwin(t: TestLedger, tokens = 1000n): Promise<Ledger> {
  const l = await t.client()
  if (tokens > 0n) await l.token.faucet(tokens * TOKEN)
  await l.twins.create({ relay: 'relay.test' })
  return l
}

/** A farmer with a farm (and optional public IPs) and one node with the given resources. */
export async function farmWithNode(
  t: TestLedger,
  opts: { name: string; ips?: number; resources?: { cru: number; mru: number; sru: number; hru: number } },
): Promise<{ farmer: Ledger; node: Ledger; farmId: number; nodeId: number }> {
  const farmer = await userWithTwin(t, 10n)
  const publicIps = Array.from({ length: opts.ips ?? 0 }, (_, i) => ({ ip: `185.10.${(farmer.account!.charCodeAt(5) % 200) + 1}.${10 + i}/24`, gateway: `185.10.${(farmer.account!.charCodeAt(5) % 200) + 1}.1` }))
  const farm = await farmer.farms.create({ name: opts.name, publicIps })
  const node = await userWithTwin(t, 0n)
  const n = await node.nodes.create({ farmId: farm.id, resources: opts.resources ?? { cru: 4, mru: 8 * GIB, sru: 500 * GIB, hru: 0 } })
  return { farmer, node, farmId: farm.id, nodeId: n.id }
}

let hashCounter = 0
/** A fresh, unique deployment hash. */
export function nextHash(): Hex {
  hashCounter++
  return `0x${hashCounter.toString(16).padStart(8, '0')}${'ab'.repeat(28)}` as Hex
}
