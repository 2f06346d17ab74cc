import type { Command } from 'commander'

export function registerKey(program: Command): void {
  program.command('key').description('publisher keys (secp256k1)')
}
