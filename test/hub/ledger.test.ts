// The hub in ledger mode, against a real ledger (anvil): writers are twins, namespaces are twin ids, an account
// without a twin cannot write, and `zos hub serve --ledger` starts in that mode.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { generateKey, keyFromPrivate } from '../../src/core/keys.js'
import { LedgerDirectory } from '../../src/hub/auth.js'
import { pushFlist } from '../../src/hub/push.js'
import { openLedger, type Hex, type Ledger } from '../../src/ledger/index.js'
import { newKey as newLedgerKey, startTestLedger, TOKEN, type TestLedger } from '../ledger/helpers.js'
import { tempDir } from '../helpers/tmp.js'
import { packTree, startTestHub, tree } from './helpers.js'

const fromSource = import.meta.url.endsWith('.ts')
const main = fileURLToPath(new URL(`../../src/cli/main.${fromSource ? 'ts' : 'js'}`, import.meta.url))
const nodeArgs = fromSource ? ['--import', 'tsx', main] : [main]

let chain: TestLedger
let reader: Ledger

before(async () => {
  chain = await startTestLedger()
  reader = await openLedger({ ledgerDir: chain.dir })
})

after(async () => {
  await reader?.close()
  await chain?.stop()
})

async function twin(): Promise<{ key: ReturnType<typeof keyFromPrivate>; id: number }> {
  const hex = newLedgerKey()
  const l = await chain.client(hex as Hex)
  await l.token.faucet(10n * TOKEN)
  const tw = await l.twins.create({ relay: 'relay.test' })
  return { key: keyFromPrivate(Buffer.from(hex.slice(2), 'hex')), id: tw.id }
}

test('ledger hub - namespaces are twin ids; accounts without a twin and other twins cannot write', async (t) => {
  const hub = await startTestHub(t, { directory: new LedgerDirectory(reader.twins) })
  assert.equal((await hub.client().info()).identity, 'ledger')
  const alice = await twin()
  const bob = await twin()
  const me = await hub.client(alice.key).whoami()
  assert.deepEqual({ ns: me.ns, twin: me.twin }, { ns: String(alice.id), twin: alice.id })
  const v1 = await packTree(t, await tempDir(t), 'v1', tree(1), { signers: [alice.key] })
  const r = await pushFlist(hub.client(alice.key), v1.file, { name: 'app', tag: 'v1', store: v1.store })
  assert.equal(r.ns, String(alice.id))
  assert.equal((await hub.client().version(String(alice.id), 'app', 'v1')).root, v1.root)
  await assert.rejects(pushFlist(hub.client(bob.key), v1.file, { ns: String(alice.id), name: 'app', store: v1.store }), { code: 'HUB_FORBIDDEN' })
  await assert.rejects(hub.client(generateKey()).whoami(), { code: 'HUB_AUTH', message: /no twin/ })
  // Bob may publish Alice's signed flist only once he lists her key.
  await assert.rejects(pushFlist(hub.client(bob.key), v1.file, { name: 'app', store: v1.store }), { code: 'UNTRUSTED_SIGNER' })
  await hub.client(bob.key).setSigners(String(bob.id), [alice.key.address])
  assert.equal((await pushFlist(hub.client(bob.key), v1.file, { name: 'app', store: v1.store })).ns, String(bob.id))
})

test('ledger hub - zos hub serve --ledger identifies writers by twin', async (t) => {
  const data = await tempDir(t)
  const child = spawn(process.execPath, [...nodeArgs, 'hub', 'serve', '--data', data, '--port', '0', '--ledger', chain.dir, '--json', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const started = await new Promise<{ url: string; identity: string }>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      try {
        resolve(JSON.parse(out) as { url: string; identity: string })
      } catch {
        // not complete yet
      }
    })
    child.on('exit', (code) => reject(new Error(`hub serve exited with ${code}: ${err}`)))
  })
  assert.equal(started.identity, 'ledger')
  const alice = await twin()
  const { HubClient } = await import('../../src/hub/client.js')
  const c = new HubClient(started.url, { key: alice.key })
  try {
    assert.equal((await c.whoami()).ns, String(alice.id))
  } finally {
    c.close()
  }
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  child.kill('SIGTERM')
  assert.equal(await exit, 0)
})
