// The node's identity: one secp256k1 key, created on first start and kept under the state dir (the only state a
// node needs besides workload data). Its address is the node twin's ledger account; its public key is the
// twin's relay key.
import { generateKey, loadKey, saveKey, type KeyPair } from '../core/keys.js'
import { ZosError } from '../core/errors.js'

export async function loadOrCreateKey(path: string): Promise<{ key: KeyPair; created: boolean }> {
  try {
    return { key: await loadKey(path), created: false }
  } catch (err) {
    if (!(ZosError.is(err) && err.code === 'NOT_FOUND')) throw err
  }
  const key = generateKey()
  await saveKey(path, key)
  return { key, created: true }
}
