// The miner proxy in front of a real anvil (--no-mining): forwards JSON-RPC, mines after transactions, keeps
// mining while transactions are left pending by full blocks, and answers clearly when anvil is gone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { privateKeyToAccount } from 'viem/accounts'
import { startAnvil } from '../../src/ledger/anvil.js'
import { devPrivateKey } from '../../src/ledger/deploy.js'
import { startMinerProxy } from '../../src/ledger/miner-proxy.js'
import { tempDir } from '../helpers/tmp.js'

async function rpc(url: string, body: unknown): Promise<unknown> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return res.json()
}

test('miner proxy - a burst bigger than a block is mined completely; idle, nothing is mined', async (t) => {
  const dir = await tempDir(t)
  const anvil = await startAnvil({ port: 0, logFile: join(dir, 'anvil.log'), mining: 'manual' })
  t.after(() => anvil.stop())
  const proxy = await startMinerProxy({ host: '127.0.0.1', port: 0, upstream: anvil.url })
  t.after(() => proxy.close())

  const account = privateKeyToAccount(devPrivateKey(5))
  const to = privateKeyToAccount(devPrivateKey(6)).address
  // each transfer declares 29.9 M gas of the 30 M block: a block takes only a handful of them
  const raws = await Promise.all(
    Array.from({ length: 60 }, (_, nonce) =>
      account.signTransaction({ type: 'eip1559', chainId: 31337, nonce, to, value: 1n, gas: 29_900_000n, maxFeePerGas: 0n, maxPriorityFeePerGas: 0n }),
    ),
  )
  const head0 = Number(BigInt(((await rpc(proxy.url, { jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] })) as { result: string }).result))
  const replies = (await rpc(proxy.url, raws.map((raw, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_sendRawTransaction', params: [raw] })))) as { result?: string }[]
  assert.equal(replies.length, 60)
  const hashes = replies.map((r) => r.result!)
  const deadline = Date.now() + 20_000
  let mined = 0
  while (Date.now() < deadline) {
    const receipts = (await rpc(proxy.url, hashes.map((h, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_getTransactionReceipt', params: [h] })))) as { result: unknown }[]
    mined = receipts.filter((r) => r.result !== null).length
    if (mined === 60) break
    await sleep(50)
  }
  assert.equal(mined, 60, 'every transaction of the burst is mined')
  const head1 = Number(BigInt(((await rpc(proxy.url, { jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] })) as { result: string }).result))
  assert.ok(head1 - head0 >= 10, `the burst needed several blocks (${head1 - head0})`)
  assert.equal(proxy.stats().transactions, 60)

  await sleep(300)
  const head2 = Number(BigInt(((await rpc(proxy.url, { jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] })) as { result: string }).result))
  assert.equal(head2, head1, 'idle: no blocks are mined')
})

test('miner proxy - reports an unreachable anvil as a JSON-RPC error, refuses a busy port, only POSTs JSON-RPC', async (t) => {
  const dir = await tempDir(t)
  const anvil = await startAnvil({ port: 0, logFile: join(dir, 'anvil.log'), mining: 'manual' })
  const proxy = await startMinerProxy({ host: '127.0.0.1', port: 0, upstream: anvil.url })
  t.after(() => proxy.close())
  await assert.rejects(startMinerProxy({ host: '127.0.0.1', port: proxy.port, upstream: anvil.url }), /in use/)
  assert.equal((await fetch(`${proxy.url}/healthz`)).status, 200)
  assert.equal((await fetch(proxy.url, { method: 'PUT' })).status, 405)
  await anvil.stop()
  const res = await fetch(proxy.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' })
  assert.equal(res.status, 502)
  assert.match(((await res.json()) as { error: { message: string } }).error.message, /not answering/)
})
