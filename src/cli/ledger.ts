// `zos ledger up|down|status|deploy|compile`: run the embedded ledger (anvil + the zos contracts), inspect a
// ledger, deploy the contracts to another EVM network, compile the contracts.
import { writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Command } from 'commander'
import { zerr } from '../core/errors.js'
import { emit } from './output.js'
import { defaultLedgerDirText, kv, parseAddress, parseUint, withLedger, withLedgerOptions } from './ledger-common.js'

function dataDirOf(opt: string | undefined): string {
  return opt ?? join(process.env.ZOS_HOME ?? join(homedir(), '.zos'), 'ledger')
}

function parsePort(text: string): number {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n > 65535) throw zerr('INVALID_ARGUMENT', `--port must be a number 0..65535, got ${text}`)
  return n
}

export function registerLedger(program: Command): void {
  const ledger = program.command('ledger').description('the ledger: run the embedded one (anvil), inspect or deploy one')

  ledger
    .command('up')
    .description('start the embedded ledger (anvil on loopback, state persisted under --data), deploy the contracts on first start, print the JSON-RPC URL; runs until SIGINT/SIGTERM unless --detach')
    .option('--data <dir>', `data directory: state.json, addressbook.json, anvil.log, keys/ (default ${defaultLedgerDirText()})`)
    .option('--port <n>', 'TCP port on 127.0.0.1 (0 picks a free one)', '8545')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--state-interval <seconds>', 'seconds between state dumps (what a crash can lose)', '2')
    .option('--detach', 'start in the background (a daemon supervising anvil; pids in DATA/ledger.pid.json, log in DATA/ledger.log) and return; stop with `zos ledger down`')
    .option('--reset', 'delete the existing state and address book first (a new, empty ledger)')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { data?: string; port: string; host: string; stateInterval: string; detach?: boolean; reset?: boolean }, cmd: Command) => {
      const { startLedger } = await import('../ledger/server.js')
      const dataDir = dataDirOf(opts.data)
      const srv = await startLedger({
        dataDir,
        port: parsePort(opts.port),
        host: opts.host,
        stateInterval: Math.max(1, parseUint(opts.stateInterval, '--state-interval')),
        detached: opts.detach === true,
        reset: opts.reset === true,
      })
      const result = {
        rpcUrl: srv.url,
        pid: srv.pid,
        chainId: srv.addressBook.chainId,
        dataDir,
        addressBook: srv.addressBookFile,
        deployed: srv.deployed,
        contracts: srv.addressBook.contracts,
        devKeys: join(dataDir, 'keys'),
      }
      emit(cmd, result, (r) => r.rpcUrl)
      process.stderr.write(
        `zos: ledger ${srv.deployed ? 'deployed and ' : ''}up at ${srv.url} (pid ${srv.pid}); address book ${srv.addressBookFile}\n` +
          `zos: development keys (council-1..3, foundation, sales, staking-pool) in ${join(dataDir, 'keys')}\n`,
      )
      if (opts.detach) return
      process.stderr.write('zos: Ctrl-C stops the ledger (its state is kept)\n')
      const signalled = await new Promise<boolean>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          resolve(true)
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
        void srv.exited.then(() => resolve(false))
      })
      await srv.stop()
      if (!signalled) throw zerr('LEDGER_UNAVAILABLE', `anvil (pid ${srv.pid}) exited on its own; see ${join(dataDir, 'anvil.log')}`)
      process.stderr.write('zos: ledger stopped, state saved\n')
    })

  ledger
    .command('down')
    .description('stop the ledger of a data dir (started with `zos ledger up --detach`) by its recorded pid')
    .option('--data <dir>', `data directory (default ${defaultLedgerDirText()})`)
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { data?: string }, cmd: Command) => {
      const { stopDetachedLedger } = await import('../ledger/server.js')
      const dataDir = dataDirOf(opts.data)
      const stopped = await stopDetachedLedger(dataDir)
      emit(cmd, { dataDir, stopped }, (r) => (r.stopped ? `ledger in ${r.dataDir} stopped` : `no detached ledger running for ${r.dataDir}`))
    })

  withLedgerOptions(
    ledger.command('status').description('show the chain, the contracts and what the ledger holds'),
    { key: 'none' },
  ).action(async (_opts: unknown, cmd: Command) => {
    const { readPidRecord, isLiveSupervisor } = await import('../ledger/server.js')
    const o = cmd.opts<{ ledger?: string }>()
    const dataDir = dataDirOf(o.ledger)
    const rec = await readPidRecord(dataDir)
    const status = await withLedger(cmd, false, async (l) => {
      const [chain, twins, farms, nodes, contracts, council, release, eco] = await Promise.all([
        l.chainInfo(),
        l.twins.count(),
        l.farms.count(),
        l.nodes.count(),
        l.contracts.count(),
        l.council.info(),
        l.council.release(l.addressBook.network),
        l.pricing.economics(),
      ])
      return {
        rpcUrl: chain.rpcUrl,
        network: l.addressBook.network,
        chainId: chain.chainId,
        blockNumber: chain.blockNumber,
        blockTime: chain.timestamp,
        supervisorPid: rec && isLiveSupervisor(rec.pid) ? rec.pid : null,
        counts: { twins, farms, nodes, contracts },
        council: { members: council.members, threshold: council.threshold, proposals: council.proposalCount },
        release,
        tokenPriceMusd: eco.effectivePriceMusd,
        gracePeriodSeconds: eco.gracePeriodSeconds,
        contracts: l.addressBook.contracts,
      }
    })
    emit(cmd, status, (s) =>
      kv([
        ['rpc', s.rpcUrl],
        ['network', `${s.network} (chain ${s.chainId})`],
        ['block', `${s.blockNumber} at ${new Date(s.blockTime * 1000).toISOString()}`],
        ['pid', s.supervisorPid ?? '(not an embedded ledger of this machine)'],
        ['twins', s.counts.twins],
        ['farms', s.counts.farms],
        ['nodes', s.counts.nodes],
        ['contracts', s.counts.contracts],
        ['council', `${s.council.threshold} of ${s.council.members.length}, ${s.council.proposals} proposals`],
        ['release', s.release ? `${s.release.version} (${s.release.flistHash})${s.release.safeToUpgrade ? ' safe to upgrade' : ''}` : 'none approved'],
        ['token price', `${s.tokenPriceMusd} mUSD`],
        ['grace period', `${s.gracePeriodSeconds} s`],
        ...Object.entries(s.contracts).map(([k, v]): [string, unknown] => [`  ${k}`, v]),
      ]),
    )
  })

  withLedgerOptions(
    ledger
      .command('events')
      .description('print ledger events (contracts created, billed, grace periods, nodes, farms, council...); --follow keeps watching')
      .option('--from <block>', 'first block (default: the deploy block; with --follow: the next block)')
      .option('--to <block>', 'last block (default: the latest)')
      .option('--type <name>', 'only this event type (repeatable), e.g. ContractBilled', (v: string, acc: string[]) => [...acc, v], [] as string[])
      .option('--follow', 'keep watching for new events until SIGINT/SIGTERM (JSON: one object per line)'),
    { key: 'none' },
  ).action(async (opts: { from?: string; to?: string; type: string[]; follow?: boolean }, cmd: Command) => {
    const { wantsJson } = await import('./output.js')
    const json = wantsJson(cmd)
    const types = opts.type.length ? (opts.type as import('../ledger/types.js').LedgerEventType[]) : undefined
    const fromBlock = opts.from === undefined ? undefined : parseUint(opts.from, '--from')
    const line = (ev: import('../ledger/types.js').LedgerEvent): string => {
      if (json) return JSON.stringify(ev, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
      const { block, tx: _tx, logIndex: _i, type, ...rest } = ev
      const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) : String(v)}`)
      return `${String(block).padStart(7)}  ${type.padEnd(27)} ${fields.join(' ')}`
    }
    await withLedger(cmd, false, async (l) => {
      if (!opts.follow) {
        const events = await l.events.query({ fromBlock, toBlock: opts.to === undefined ? undefined : parseUint(opts.to, '--to'), types })
        if (json) emit(cmd, events, () => '')
        else for (const ev of events) process.stdout.write(line(ev) + '\n')
        return
      }
      await new Promise<void>((resolve) => {
        const stopWatch = l.events.watch((ev) => void process.stdout.write(line(ev) + '\n'), {
          fromBlock,
          types,
          pollMs: 250,
          onError: (err) => process.stderr.write(`zos: ${err instanceof Error ? err.message : String(err)}\n`),
        })
        const stop = (): void => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          stopWatch()
          resolve()
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      })
    })
  })

  ledger
    .command('deploy')
    .description('deploy the zos contracts to any EVM JSON-RPC endpoint and write the address book to --ledger DIR')
    .requiredOption('--rpc <url>', 'JSON-RPC URL of the network')
    .requiredOption('--key <file>', 'deployer key file (pays the deployment gas)')
    .requiredOption('--council <addresses>', 'comma-separated council member addresses')
    .requiredOption('--threshold <n>', 'approvals a council action needs')
    .requiredOption('--foundation <address>', 'account receiving the foundation share (10 %)')
    .requiredOption('--sales <address>', 'account receiving the sales share (50 %)')
    .requiredOption('--staking-pool <address>', 'account receiving the staking share (5 %)')
    .option('--ledger <dir>', `where to write addressbook.json (default ${defaultLedgerDirText()})`)
    .option('--network <name>', 'network name (releases are approved per network)', 'main')
    .option('--faucet', 'enable the test-token faucet on this chain (development networks only)')
    .option('--gas-free', 'the network charges no gas (zero gas price)')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(
      async (
        opts: { rpc: string; key: string; council: string; threshold: string; foundation: string; sales: string; stakingPool: string; ledger?: string; network: string; faucet?: boolean; gasFree?: boolean },
        cmd: Command,
      ) => {
        const { deployGrid } = await import('../ledger/deploy.js')
        const { writeAddressBook } = await import('../ledger/addressbook.js')
        const { loadKey } = await import('../core/keys.js')
        const key = await loadKey(opts.key)
        const members = opts.council.split(',').map((a, i) => parseAddress(a.trim(), `--council[${i}]`))
        const book = await deployGrid({
          rpcUrl: opts.rpc,
          deployerKey: `0x${key.privateKey.toString('hex')}`,
          network: opts.network,
          council: { members, threshold: parseUint(opts.threshold, '--threshold') },
          foundation: parseAddress(opts.foundation, '--foundation'),
          sales: parseAddress(opts.sales, '--sales'),
          stakingPool: parseAddress(opts.stakingPool, '--staking-pool'),
          faucet: opts.faucet === true,
          gasFree: opts.gasFree === true,
        })
        const file = await writeAddressBook(dataDirOf(opts.ledger), book)
        emit(cmd, { addressBook: file, ...book }, (r) => `deployed to ${r.rpcUrl} (chain ${r.chainId}); address book ${r.addressBook}`)
      },
    )

  ledger
    .command('compile')
    .description('compile contracts/*.sol with solc-js (cached by source hash); --abi-out regenerates the typed ABIs')
    .option('--abi-out <file>', 'write the typed ABI module (src/ledger/abi.ts) here')
    .option('--json', 'print machine-readable JSON on stdout')
    .action(async (opts: { abiOut?: string }, cmd: Command) => {
      const { loadArtifacts, renderAbiModule } = await import('../ledger/artifacts.js')
      const a = await loadArtifacts()
      if (opts.abiOut) await writeFile(opts.abiOut, renderAbiModule(a))
      const sizes = Object.fromEntries(Object.entries(a.contracts).map(([k, v]) => [k, v.codeSize]))
      emit(cmd, { solc: a.solcVersion, sourceHash: a.sourceHash, abiHash: a.abiHash, codeSizes: sizes, abiOut: opts.abiOut ?? null }, (r) =>
        kv([['solc', r.solc], ['source hash', r.sourceHash], ['abi hash', r.abiHash], ...Object.entries(r.codeSizes).map(([k, v]): [string, unknown] => [`  ${k}`, `${v} bytes`])]),
      )
    })
}
