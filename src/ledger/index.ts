// Entry point of the ledger subsystem: open a Ledger from an address book (a directory or the data), with an
// optional key. Everything else in zos reaches the chain through the Ledger this returns.
import { loadKey } from '../core/keys.js'
import { zerr } from '../core/errors.js'
import { defaultLedgerDir, parseAddressBook, readAddressBook } from './addressbook.js'
import { EvmLedger } from './client.js'
import type { AddressBookData, Hex, Ledger } from './types.js'

export interface OpenLedgerOptions {
  /** Directory holding addressbook.json (default $ZOS_HOME/ledger, i.e. ~/.zos/ledger). */
  ledgerDir?: string
  /** The address book itself (instead of ledgerDir). */
  addressBook?: AddressBookData
  /** JSON-RPC URL; overrides the address book's. */
  rpcUrl?: string
  /** The caller's key: a 0x private key, or a key file written by `zos key new`. */
  privateKey?: Hex
  keyFile?: string
  /** Skip the chain id / contract code check at open (default: check). */
  skipVerify?: boolean
  receiptPollMs?: number
}

export async function openLedger(opts: OpenLedgerOptions = {}): Promise<Ledger> {
  const book = opts.addressBook ? parseAddressBook(opts.addressBook, 'given') : await readAddressBook(opts.ledgerDir ?? defaultLedgerDir())
  let privateKey = opts.privateKey
  if (!privateKey && opts.keyFile) {
    const key = await loadKey(opts.keyFile)
    privateKey = `0x${key.privateKey.toString('hex')}` as Hex
  }
  if (privateKey !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(privateKey)) throw zerr('INVALID_ARGUMENT', 'privateKey must be 32 bytes of 0x-prefixed hex')
  const ledger = new EvmLedger({ addressBook: book, rpcUrl: opts.rpcUrl, privateKey, receiptPollMs: opts.receiptPollMs })
  if (!opts.skipVerify) await ledger.verify()
  return ledger
}

export { EvmLedger } from './client.js'
export { defaultLedgerDir, readAddressBook, writeAddressBook, addressBookPath } from './addressbook.js'
export { startLedger, stopDetachedLedger, type LedgerServer, type LedgerServerOptions } from './server.js'
export { deployGrid, devPrivateKey, DEV_ROLES, DEFAULT_POLICY, DEFAULT_GRACE_PERIOD, type DeployOptions } from './deploy.js'
export { formatTokens } from './errors.js'
export * from './types.js'
