// The challenge stream of a deployment: its fields written in the Zero-OS order (pkg/gridtypes
// deployment.go / workload.go / zos/*.go) the way Go's fmt prints them (%d for integers, %s for strings,
// %t for booleans), one after the other with no separators. Zero-OS hashes the stream with md5; zos uses
// keccak256 (DESIGN.md §4). The same stream on client and node gives the same hash, which the user signs and
// the contract on the ledger carries.
import { keccak_256 } from '@noble/hashes/sha3.js'

export class ChallengeWriter {
  private readonly parts: Buffer[] = []

  /** %d of an integer (number or bigint). */
  int(v: number | bigint): this {
    this.parts.push(Buffer.from(typeof v === 'bigint' ? v.toString(10) : Math.trunc(v).toString(10), 'ascii'))
    return this
  }

  /** %s of a string (UTF-8). */
  str(v: string): this {
    this.parts.push(Buffer.from(v, 'utf8'))
    return this
  }

  /** %t of a boolean. */
  bool(v: boolean): this {
    this.parts.push(Buffer.from(v ? 'true' : 'false', 'ascii'))
    return this
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts)
  }

  /** keccak256 of the stream: 32 bytes. */
  hash(): Buffer {
    return Buffer.from(keccak_256(this.bytes()))
  }
}
