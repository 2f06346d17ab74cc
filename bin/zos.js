#!/usr/bin/env node
// The installed entry point: the CLI is compiled to dist/ by `npm run build` (or ./zos, which builds when stale).
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('zos is not built yet: run `npm run setup` (or use ./zos, which builds on demand)\n')
    process.exit(1)
  }
  throw err
})
