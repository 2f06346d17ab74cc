// `zos twin create|show|update`: the caller's ledger identity (relay address and encryption key).
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import type { Twin } from '../ledger/types.js'
import { emit } from './output.js'
import { kv, parseAddress, parseId, when, withLedger, withLedgerOptions } from './ledger-common.js'

function show(t: Twin): string {
  return kv([
    ['twin', t.id],
    ['account', t.account],
    ['relay', t.relay],
    ['pk', t.pk === '0x' ? '' : t.pk],
    ['created', when(t.createdAt)],
    ['updated', when(t.updatedAt)],
  ])
}

function pkOption(text: string | undefined): `0x${string}` | undefined {
  if (text === undefined) return undefined
  if (!/^0x([0-9a-fA-F]{66}|[0-9a-fA-F]{130})?$/.test(text)) throw zerr('INVALID_ARGUMENT', `--pk must be a 33- or 65-byte secp256k1 public key in 0x hex (or 0x for none), got "${text}"`)
  return text as `0x${string}`
}

export function registerTwin(program: Command): void {
  const twin = program.command('twin').description('twins: ledger identities (account, relay, encryption key)')

  withLedgerOptions(
    twin
      .command('create')
      .description("create the key's twin (one per account)")
      .option('--relay <relays>', "relay address(es) peers reach the twin through, joined with '_'", '')
      .option('--pk <hex>', 'encryption public key (default: the compressed public key of --key)'),
    { key: 'required' },
  ).action(async (opts: { relay: string; pk?: string }, cmd: Command) => {
    const t = await withLedger(cmd, true, (l) => l.twins.create({ relay: opts.relay, pk: pkOption(opts.pk) }))
    emit(cmd, t, show)
  })

  withLedgerOptions(
    twin
      .command('update')
      .description("replace the key's twin relay and encryption key")
      .requiredOption('--relay <relays>', "relay address(es), joined with '_'")
      .option('--pk <hex>', 'encryption public key (default: the compressed public key of --key)'),
    { key: 'required' },
  ).action(async (opts: { relay: string; pk?: string }, cmd: Command) => {
    const t = await withLedger(cmd, true, (l) => l.twins.update({ relay: opts.relay, pk: pkOption(opts.pk) }))
    emit(cmd, t, show)
  })

  withLedgerOptions(
    twin
      .command('show')
      .description("show a twin by id, by --account, or the key's own")
      .argument('[id]', 'twin id')
      .option('--account <address>', 'the twin of this account'),
  ).action(async (idText: string | undefined, opts: { account?: string }, cmd: Command) => {
    const t = await withLedger(cmd, idText === undefined && opts.account === undefined, async (l) => {
      if (idText !== undefined) return l.twins.get(parseId(idText, 'twin id'))
      if (opts.account !== undefined) {
        const found = await l.twins.byAccount(parseAddress(opts.account, '--account'))
        if (!found) throw zerr('NOT_FOUND', `account ${opts.account} has no twin`)
        return found
      }
      return l.twins.mine()
    })
    emit(cmd, t, show)
  })
}
