import type { Command } from 'commander'

export function registerFlist(program: Command): void {
  program.command('flist').description('pack, inspect, verify, unpack and mount flists')
}
