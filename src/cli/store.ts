import type { Command } from 'commander'

export function registerStore(program: Command): void {
  program.command('store').description('chunk stores: serve a dir:// store over HTTP, show statistics')
}
