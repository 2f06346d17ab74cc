// Publisher and twin keys: secp256k1, the same keys as EVM accounts, so one wallet signs flists, deployments and
// transactions. Key files are JSON, written with mode 0600 through an atomic rename.
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile, rename, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { homedir } from 'node:os'
import { zerr } from './errors.js'
import { ecc } from './secp.js'
import { addressOf, domainDigest } from './signature.js'

// Checking signatures needs none of the signing code: it lives in signature.js, which readers load alone.
export { addressOf, domainDigest, verifyDomain } from './signature.js'

export interface KeyPair {
  readonly privateKey: Buffer // 32 bytes
  readonly publicKey: Buffer // 33 bytes, compressed
  readonly address: `0x${string}` // EVM address (checksummed)
}

/** What a key file must hold (checked by hand: a CLI command that only loads its key need not load zod). */
function keyFileProblems(v: unknown): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['file: expected an object']
  const o = v as Record<string, unknown>
  const problems: string[] = []
  if (o.type !== 'secp256k1') problems.push(`type: expected "secp256k1"`)
  if (typeof o.privateKey !== 'string' || !/^(0x)?[0-9a-fA-F]{64}$/.test(o.privateKey)) problems.push('privateKey: privateKey must be 32 bytes of hex')
  if (o.address !== undefined && typeof o.address !== 'string') problems.push('address: expected a string')
  return problems
}

/** Default key file: $ZOS_KEY (set by a current local grid), else $ZOS_HOME/key.json, else ~/.zos/key.json. */
export function defaultKeyPath(): string {
  return process.env.ZOS_KEY ?? join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'key.json')
}

export function keyFromPrivate(privateKey: Uint8Array): KeyPair {
  // libsecp256k1: the pure-JS curve builds its precomputed tables on first use (hundreds of ms in a CLI start).
  if (privateKey.length !== 32 || !ecc().isPrivate(privateKey)) {
    throw zerr('INVALID_ARGUMENT', 'not a valid secp256k1 private key')
  }
  const publicKey = Buffer.from(ecc().pointFromScalar(privateKey, true)!)
  return { privateKey: Buffer.from(privateKey), publicKey, address: addressOf(publicKey) }
}

export function generateKey(): KeyPair {
  for (;;) {
    const candidate = randomBytes(32)
    if (ecc().isPrivate(candidate)) return keyFromPrivate(candidate)
  }
}

export async function saveKey(path: string, key: KeyPair, options: { overwrite?: boolean } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const body = JSON.stringify(
    { type: 'secp256k1', privateKey: '0x' + key.privateKey.toString('hex'), publicKey: '0x' + key.publicKey.toString('hex'), address: key.address },
    null,
    2,
  )
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, body + '\n', { mode: 0o600, flag: 'wx' })
  if (!options.overwrite) {
    const exists = await readFile(path).then(() => true, () => false)
    if (exists) {
      await import('node:fs/promises').then((fs) => fs.unlink(tmp))
      throw zerr('EXISTS', `key file ${path} already exists; pass --force to replace it (the old key is lost)`)
    }
  }
  await rename(tmp, path)
}

export async function loadKey(path: string): Promise<KeyPair> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw zerr('NOT_FOUND', `cannot read key file ${path}: create one with \`zos key new\``, { path }, err)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `key file ${path} is not JSON`, { path }, err)
  }
  const problems = keyFileProblems(parsed)
  if (problems.length > 0) throw zerr('INVALID_ARGUMENT', `key file ${path} is not a zos key: ${problems.join('; ')}`)
  return keyFromPrivate(Buffer.from((parsed as { privateKey: string }).privateKey.replace(/^0x/, ''), 'hex'))
}

/** Signs a domain-separated message; returns 65 bytes (r || s || recovery). */
export function signDomain(key: KeyPair, domain: string, message: Uint8Array): Buffer {
  const digest = domainDigest(domain, message)
  const sig = secp256k1.sign(digest, key.privateKey, { prehash: false, format: 'recovered' })
  // noble's 'recovered' format is recovery || r || s; store r || s || recovery like Ethereum does
  return Buffer.concat([Buffer.from(sig.subarray(1)), Buffer.from(sig.subarray(0, 1))])
}

/**
 * Parses a trusted-key argument: a hex public key (33 or 65 bytes), an EVM address, or a key file path.
 * Returns a predicate over public keys.
 */
export async function parseTrust(spec: string): Promise<{ describe: string; matches(publicKey: Uint8Array): boolean }> {
  const s = spec.trim()
  if (/^0x[0-9a-fA-F]{40}$/.test(s)) {
    const want = s.toLowerCase()
    return { describe: s, matches: (pk) => addressOf(pk).toLowerCase() === want }
  }
  const hex = s.replace(/^0x/, '')
  if (/^[0-9a-fA-F]{66}$/.test(hex) || /^[0-9a-fA-F]{130}$/.test(hex)) {
    const want = addressOf(Buffer.from(hex, 'hex')).toLowerCase()
    return { describe: s, matches: (pk) => addressOf(pk).toLowerCase() === want }
  }
  const key = await loadKey(s)
  const want = key.address.toLowerCase()
  return { describe: `${s} (${key.address})`, matches: (pk) => addressOf(pk).toLowerCase() === want }
}
