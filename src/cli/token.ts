// `zos token balance|faucet|transfer`: the grid's payment token (7 decimals).
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import { emit } from './output.js'
import { parseAddress, parseId, parseTokens, withLedger, withLedgerOptions } from './ledger-common.js'

export function registerToken(program: Command): void {
  const token = program.command('token').description('the payment token (ZGT, 7 decimals) contracts are billed in')

  withLedgerOptions(
    token
      .command('balance')
      .description("balance of an address, of a twin's account, or of the key's account")
      .argument('[address]', 'account address')
      .option('--twin <id>', "the twin's account"),
  ).action(async (address: string | undefined, opts: { twin?: string }, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const r = await withLedger(cmd, address === undefined && opts.twin === undefined, async (l) => {
      let account: `0x${string}`
      if (address !== undefined) account = parseAddress(address)
      else if (opts.twin !== undefined) account = (await l.twins.get(parseId(opts.twin, '--twin'))).account
      else if (l.account) account = l.account
      else throw zerr('INVALID_ARGUMENT', 'give an address, --twin ID or --key FILE')
      return { account, balance: await l.token.balanceOf(account) }
    })
    emit(cmd, { ...r, formatted: formatTokens(r.balance) }, (x) => `${x.formatted}  ${x.account}`)
  })

  withLedgerOptions(
    token
      .command('faucet')
      .description('mint test tokens (development ledger only; at most 1,000,000 a call)')
      .argument('[amount]', 'tokens, e.g. 1000 or 0.5', '1000')
      .option('--to <address>', "receiver (default: the key's account)"),
    { key: 'required' },
  ).action(async (amountText: string, opts: { to?: string }, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const amount = parseTokens(amountText)
    const r = await withLedger(cmd, true, async (l) => {
      const to = opts.to === undefined ? l.account! : parseAddress(opts.to, '--to')
      await l.token.faucet(amount, to)
      return { to, minted: amount, balance: await l.token.balanceOf(to) }
    })
    emit(cmd, r, (x) => `minted ${formatTokens(x.minted)} to ${x.to}; balance ${formatTokens(x.balance)}`)
  })

  withLedgerOptions(
    token.command('transfer').description("send tokens from the key's account").argument('<to>', 'receiver address').argument('<amount>', 'tokens, e.g. 25 or 0.1'),
    { key: 'required' },
  ).action(async (to: string, amountText: string, _o: unknown, cmd: Command) => {
    const { formatTokens } = await import('../ledger/errors.js')
    const amount = parseTokens(amountText)
    const receiver = parseAddress(to, 'to')
    const r = await withLedger(cmd, true, async (l) => {
      await l.token.transfer(receiver, amount)
      return { from: l.account, to: receiver, amount, balance: await l.token.balance() }
    })
    emit(cmd, r, (x) => `sent ${formatTokens(x.amount)} to ${x.to}; balance ${formatTokens(x.balance)}`)
  })
}
