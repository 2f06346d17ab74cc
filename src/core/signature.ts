// Checking signatures without the signing code: domain-separated digests, their verification with libsecp256k1
// and EVM addresses of public keys. Light to import (no pure-JS curve), so an flist reader can load it statically
// and stay synchronous on every Node.js 20; keys.ts re-exports all of it next to key generation and signing.
import { createHash } from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { uncompressed, verifyDigest } from './secp.js'

/** Digest of a domain-separated message: sha256(domain || 0x00 || message). */
export function domainDigest(domain: string, message: Uint8Array): Buffer {
  return createHash('sha256').update(domain).update(Buffer.of(0)).update(message).digest()
}

/** Checks a signature made by signDomain (65 bytes; the recovery byte is not needed). Low s only. */
export function verifyDomain(publicKey: Uint8Array, domain: string, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 65) return false
  return verifyDigest(domainDigest(domain, message), publicKey, signature.subarray(0, 64))
}

/** EVM address of a public key (compressed or uncompressed), EIP-55 checksummed. */
export function addressOf(publicKey: Uint8Array): `0x${string}` {
  // libsecp256k1 decompresses a point in microseconds; the pure-JS curve takes about a millisecond.
  const point = uncompressed(publicKey)
  const raw = Buffer.from(keccak_256(point.subarray(1))).subarray(12).toString('hex')
  const hash = Buffer.from(keccak_256(Buffer.from(raw, 'ascii'))).toString('hex')
  let out = ''
  for (let i = 0; i < raw.length; i++) out += parseInt(hash[i]!, 16) >= 8 ? raw[i]!.toUpperCase() : raw[i]
  return `0x${out}`
}
