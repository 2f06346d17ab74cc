// libsecp256k1 (tiny-secp256k1, WebAssembly), loaded the first time a signature is made or checked rather than
// when a module imports this one: compiling the WebAssembly costs start-up time that commands which never sign
// or verify should not pay. Its CommonJS build loads synchronously, so callers stay synchronous.
// About 0.5 ms per verification against 3-8 ms for the pure-JS curve (@noble/curves).
import { createRequire } from 'node:module'
import type * as Ecc from 'tiny-secp256k1'

let loaded: typeof Ecc | undefined

/** The libsecp256k1 binding, loaded on first use. */
export function ecc(): typeof Ecc {
  loaded ??= createRequire(import.meta.url)('tiny-secp256k1') as typeof Ecc
  return loaded
}

/**
 * Checks a 64-byte r||s ECDSA signature over a 32-byte digest. Low s only (like @noble/curves' default), so
 * that a signature has one valid form. Never throws: a malformed key or signature is simply not valid.
 */
export function verifyDigest(digest: Uint8Array, publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64 || digest.length !== 32) return false
  try {
    return ecc().verify(digest, publicKey, signature, true)
  } catch {
    return false
  }
}

/** The 65-byte uncompressed form of a public key (throws on a key that is not a curve point). */
export function uncompressed(publicKey: Uint8Array): Uint8Array {
  const p = ecc().pointCompress(publicKey, false)
  return p
}
