// `zos key new|show`: secp256k1 publisher/twin keys (EVM accounts).
import type { Command } from 'commander'
import { emit } from './output.js'

export function registerKey(program: Command): void {
  const key = program.command('key').description('publisher and twin keys (secp256k1, the same as EVM accounts)')

  key
    .command('new')
    .description('create a key file (mode 0600)')
    .option('-o, --output <file>', 'where to write it (default $ZOS_HOME/key.json or ~/.zos/key.json)')
    .option('--force', 'replace an existing key file (the old key is lost)')
    .action(async (opts: { output?: string; force?: boolean }, cmd: Command) => {
      const { generateKey, saveKey, defaultKeyPath } = await import('../core/keys.js')
      const path = opts.output ?? defaultKeyPath()
      const k = generateKey()
      await saveKey(path, k, { overwrite: Boolean(opts.force) })
      emit(cmd, { path, address: k.address, publicKey: k.publicKey.toString('hex') }, (r) => `created ${r.path}\n  address     ${r.address}\n  public key  ${r.publicKey}`)
    })

  key
    .command('show')
    .description('print the address and public key of a key file')
    .argument('[file]', 'key file (default $ZOS_HOME/key.json or ~/.zos/key.json)')
    .action(async (file: string | undefined, _opts: unknown, cmd: Command) => {
      const { loadKey, defaultKeyPath } = await import('../core/keys.js')
      const path = file ?? defaultKeyPath()
      const k = await loadKey(path)
      emit(cmd, { path, address: k.address, publicKey: k.publicKey.toString('hex') }, (r) => `${r.path}\n  address     ${r.address}\n  public key  ${r.publicKey}`)
    })
}
