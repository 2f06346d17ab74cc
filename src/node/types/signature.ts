// Deployment signatures: secp256k1 over the keccak256 challenge hash, the EIP-191 way (`personal_sign` of the
// 32 raw bytes), so any Ethereum wallet can sign a deployment and the node checks it against the twin's
// ledger account. A signature is 65 bytes r ‖ s ‖ v (v = 27 or 28), hex with 0x.
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { addressOf, type KeyPair } from '../../core/keys.js'

const PREFIX = Buffer.from('\x19Ethereum Signed Message:\n32', 'ascii')
const N_HALF = secp256k1.Point.CURVE().n >> 1n

/** The digest an EIP-191 wallet signs for a 32-byte message. */
export function eip191Digest(hash: Uint8Array): Buffer {
  if (hash.length !== 32) throw new RangeError('the challenge hash is 32 bytes')
  return Buffer.from(keccak_256(Buffer.concat([PREFIX, hash])))
}

export function signHash(key: KeyPair, hash: Uint8Array): `0x${string}` {
  const sig = secp256k1.sign(eip191Digest(hash), key.privateKey, { prehash: false, format: 'recovered' })
  // noble: recovery ‖ r ‖ s; Ethereum: r ‖ s ‖ (27 + recovery)
  const out = Buffer.concat([Buffer.from(sig.subarray(1)), Buffer.of(27 + sig[0]!)])
  return `0x${out.toString('hex')}`
}

/** The account (checksummed address) that made `signature` over `hash`, or null when it does not parse or recover. */
export function recoverSigner(hash: Uint8Array, signature: string): `0x${string}` | null {
  const hex = signature.replace(/^0x/, '')
  if (!/^[0-9a-fA-F]{130}$/.test(hex)) return null
  const raw = Buffer.from(hex, 'hex')
  let v = raw[64]!
  if (v >= 27) v -= 27
  if (v !== 0 && v !== 1) return null
  const s = BigInt('0x' + raw.subarray(32, 64).toString('hex'))
  if (s === 0n || s > N_HALF) return null // one valid form per signature
  try {
    const recovered = Buffer.concat([Buffer.of(v), raw.subarray(0, 64)])
    const pk = secp256k1.recoverPublicKey(recovered, eip191Digest(hash), { prehash: false })
    return addressOf(pk)
  } catch {
    return null
  }
}
