// The address book: where a ledger's contracts live and how to reach it. Written atomically by the deploy
// (`zos ledger up` / `zos ledger deploy`), read by every client (`--ledger DIR`, default $ZOS_HOME/ledger).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { zerr } from '../core/errors.js'
import type { AddressBookData } from './types.js'

export const ADDRESS_BOOK_FILE = 'addressbook.json'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address') as unknown as z.ZodType<`0x${string}`>

const AddressBookSchema = z.object({
  version: z.literal(1),
  network: z.string().min(1).max(32),
  chainId: z.number().int().positive(),
  rpcUrl: z.string().url(),
  gasFree: z.boolean(),
  abiHash: z.string().regex(/^[0-9a-f]{64}$/),
  sourceHash: z.string().regex(/^[0-9a-f]{64}$/),
  deployedAt: z.string(),
  deployBlock: z.number().int().nonnegative(),
  deployer: address,
  contracts: z.object({
    token: address,
    council: address,
    twins: address,
    farms: address,
    nodes: address,
    pricing: address,
    gridContracts: address,
    billing: address,
  }),
})

/** $ZOS_HOME/ledger, or ~/.zos/ledger: the default data dir of `zos ledger up` and address book dir of clients. */
/** $ZOS_LEDGER (set by a current local grid, see src/grid/context.ts), else $ZOS_HOME/ledger, else ~/.zos/ledger. */
export function defaultLedgerDir(): string {
  return process.env.ZOS_LEDGER ?? join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'ledger')
}

export function addressBookPath(dir: string): string {
  return join(dir, ADDRESS_BOOK_FILE)
}

export function parseAddressBook(value: unknown, where: string): AddressBookData {
  const r = AddressBookSchema.safeParse(value)
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw zerr('INVALID_ARGUMENT', `address book ${where} is not valid: ${issues}`, { path: where })
  }
  return r.data as AddressBookData
}

export async function readAddressBook(dir: string): Promise<AddressBookData> {
  const file = addressBookPath(dir)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw zerr(
      'NOT_FOUND',
      `no ledger address book at ${file}: start a ledger with \`zos ledger up --data ${dir}\` or pass --ledger DIR of one`,
      { path: file },
      err,
    )
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw zerr('INVALID_ARGUMENT', `address book ${file} is not JSON`, { path: file }, err)
  }
  return parseAddressBook(json, file)
}

/** Writes the address book through a temp file and a rename, so readers never see half a file. */
export async function writeAddressBook(dir: string, book: AddressBookData): Promise<string> {
  parseAddressBook(book, 'being written')
  await mkdir(dir, { recursive: true })
  const file = addressBookPath(dir)
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(book, null, 2) + '\n')
  await rename(tmp, file)
  return file
}
