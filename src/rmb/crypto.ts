// Relay cryptography on secp256k1:
//
// Signatures: ECDSA over sha256(domain || 0x00 || message), the digest of `domainDigest` in core/keys.ts, as
// 64 bytes r || s with s in the lower half of the curve order (so each signature has one form), made and checked
// with libsecp256k1 (tiny-secp256k1, WebAssembly: several times faster than OpenSSL's generic curve code or a
// pure-JS curve here). The signing key of a twin is the key it published on the ledger (`pk`); that record was
// written by the twin's account, so the ledger vouches for it.
//
// Payload encryption (Node's OpenSSL): the sender keeps an ephemeral key pair per session (rotated hourly), derives
//   key = HKDF-SHA256(ikm = x(ECDH(ephemeral, receiver pk)), salt = ephemeralPub || receiverPk, info)
// once per receiver, and seals each payload as ephemeralPub(33) || nonce(12) || AES-256-GCM(payload) || tag(16)
// with the envelope header as additional data. The nonce is a per-key counter, so it never repeats.
// Because anyone can encrypt to a receiver, decryption proves integrity and the signature proves the sender:
// a changed header or payload fails GCM ("tampered"); a payload sealed by someone else fails the signature
// ("forged").
import { createCipheriv, createDecipheriv, createECDH, hkdfSync, type ECDH } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import * as ecc from 'tiny-secp256k1'
import { zerr } from '../core/errors.js'
import { domainDigest, type KeyPair } from '../core/keys.js'

export const ENVELOPE_DOMAIN = 'zos/rmb/envelope/v1'
export const TOKEN_DOMAIN = 'zos/rmb/token/v1'
const HKDF_INFO = Buffer.from('zos/rmb/v1/payload-key')

export const PUBLIC_KEY_BYTES = 33
export const NONCE_BYTES = 12
export const TAG_BYTES = 16
/** Bytes a sealed payload adds to its plaintext. */
export const SEAL_OVERHEAD = PUBLIC_KEY_BYTES + NONCE_BYTES + TAG_BYTES
export const SIGNATURE_BYTES = 64

/** A valid secp256k1 public key (33 or 65 bytes) in compressed form; throws INVALID_ARGUMENT otherwise. */
export function compressPublicKey(pk: Uint8Array): Buffer {
  try {
    return Buffer.from(secp256k1.Point.fromBytes(pk).toBytes(true))
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `not a secp256k1 public key (${pk.length} bytes)`, {}, err)
  }
}

/** Signs domain-separated messages with one key. */
export class Signer {
  readonly publicKey: Buffer
  private readonly privateKey: Buffer

  constructor(key: KeyPair) {
    this.publicKey = compressPublicKey(key.publicKey)
    this.privateKey = Buffer.from(key.privateKey)
  }

  /** 64-byte low-s signature of sha256(domain || 0x00 || message) (RFC 6979 nonces). */
  sign(domain: string, message: Uint8Array): Buffer {
    return Buffer.from(ecc.sign(domainDigest(domain, message), this.privateKey))
  }
}

/**
 * Verifies a signature from `Signer.sign` against a compressed public key; false (never a throw) for any bad
 * input. High-s forms are refused.
 */
export function verifySignature(publicKey: Uint8Array, domain: string, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) return false
  try {
    return ecc.verify(domainDigest(domain, message), publicKey, signature, true)
  } catch {
    return false
  }
}

/** A bounded map that forgets its oldest entries (insertion order). */
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>()
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    return this.map.get(k)
  }
  set(k: K, v: V): void {
    if (!this.map.has(k) && this.map.size >= this.max) this.map.delete(this.map.keys().next().value as K)
    this.map.set(k, v)
  }
  delete(k: K): void {
    this.map.delete(k)
  }
  get size(): number {
    return this.map.size
  }
}

function deriveKey(sharedX: Buffer, ephemeralPub: Buffer, receiverPk: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', sharedX, Buffer.concat([ephemeralPub, receiverPk]), HKDF_INFO, 32))
}

export interface SealerOptions {
  /** Replace the ephemeral key after this long (default 1 h). */
  rotateAfterMs?: number
  /** Receivers whose derived key is kept (default 1024). */
  maxReceivers?: number
}

interface SendKey {
  key: Buffer
  counter: number
}

/** Sender side of payload encryption. */
export class Sealer {
  private ephemeral!: ECDH
  private ephemeralPub!: Buffer
  private createdAt = 0
  private readonly rotateAfterMs: number
  private keys: BoundedMap<string, SendKey>

  constructor(private readonly opts: SealerOptions = {}) {
    this.rotateAfterMs = opts.rotateAfterMs ?? 3_600_000
    this.keys = new BoundedMap(opts.maxReceivers ?? 1024)
    this.rotate()
  }

  private rotate(): void {
    this.ephemeral = createECDH('secp256k1')
    this.ephemeral.generateKeys()
    this.ephemeralPub = this.ephemeral.getPublicKey(null, 'compressed')
    this.createdAt = Date.now()
    this.keys = new BoundedMap(this.opts.maxReceivers ?? 1024)
  }

  /** Writes the sealed form of `plaintext` (SEAL_OVERHEAD + plaintext.length bytes) into `out` at `offset`. */
  seal(receiverPk: Buffer, aad: Uint8Array, plaintext: Uint8Array, out: Buffer, offset: number): void {
    if (Date.now() - this.createdAt > this.rotateAfterMs) this.rotate()
    const id = receiverPk.toString('latin1')
    let k = this.keys.get(id)
    if (!k || k.counter >= 0xffffffff) {
      if (k) this.rotate()
      let shared: Buffer
      try {
        shared = this.ephemeral.computeSecret(receiverPk)
      } catch (err) {
        throw zerr('INVALID_ARGUMENT', 'the receiver public key is not a secp256k1 point', {}, err)
      }
      k = { key: deriveKey(shared, this.ephemeralPub, receiverPk), counter: 0 }
      this.keys.set(id, k)
    }
    const nonce = Buffer.alloc(NONCE_BYTES)
    nonce.writeUInt32BE(++k.counter, 8)
    this.ephemeralPub.copy(out, offset)
    nonce.copy(out, offset + PUBLIC_KEY_BYTES)
    const cipher = createCipheriv('aes-256-gcm', k.key, nonce)
    cipher.setAAD(aad)
    let at = offset + PUBLIC_KEY_BYTES + NONCE_BYTES
    at += cipher.update(plaintext).copy(out, at)
    at += cipher.final().copy(out, at)
    cipher.getAuthTag().copy(out, at)
  }
}

/** Receiver side: opens payloads sealed for our key. */
export class Opener {
  private readonly ecdh: ECDH
  private readonly keys: BoundedMap<string, Buffer>

  constructor(privateKey: Buffer, private readonly publicKey: Buffer, opts: { maxSenders?: number } = {}) {
    this.ecdh = createECDH('secp256k1')
    this.ecdh.setPrivateKey(privateKey)
    this.keys = new BoundedMap(opts.maxSenders ?? 1024)
  }

  /** The plaintext, or null when the payload was not sealed for us or was changed (GCM fails). */
  open(sealed: Buffer, aad: Uint8Array): Buffer | null {
    if (sealed.length < SEAL_OVERHEAD) return null
    const ephemeralPub = sealed.subarray(0, PUBLIC_KEY_BYTES)
    const id = ephemeralPub.toString('latin1')
    let key = this.keys.get(id)
    try {
      if (!key) {
        key = deriveKey(this.ecdh.computeSecret(ephemeralPub), Buffer.from(ephemeralPub), this.publicKey)
        this.keys.set(id, key)
      }
      const nonce = sealed.subarray(PUBLIC_KEY_BYTES, PUBLIC_KEY_BYTES + NONCE_BYTES)
      const decipher = createDecipheriv('aes-256-gcm', key, nonce)
      decipher.setAAD(aad)
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
      const body = sealed.subarray(PUBLIC_KEY_BYTES + NONCE_BYTES, sealed.length - TAG_BYTES)
      const a = decipher.update(body)
      const b = decipher.final()
      return b.length === 0 ? a : Buffer.concat([a, b])
    } catch {
      return null
    }
  }
}
