import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { ERROR_CODES, ZosError, zerr } from '../../src/core/errors.js'

// test/core (sources) or dist/test/core (compiled): the repository root is two or three levels up.
const doc = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../docs/errors.md' : '../../../docs/errors.md', import.meta.url))

test('errors - every code has an exit status and a description, and docs/errors.md lists them all', async () => {
  const text = await readFile(doc, 'utf8')
  for (const [code, { exit, what }] of Object.entries(ERROR_CODES)) {
    assert.ok(Number.isInteger(exit) && exit > 0 && exit < 126, `${code} exit ${exit}`)
    assert.ok(what.length > 10, `${code} needs a description`)
    assert.ok(text.includes(`| \`${code}\` | ${exit} |`), `docs/errors.md does not list ${code} with exit ${exit}`)
  }
})

test('errors - ZosError carries code, details and exit code, and is recognised across copies', () => {
  const err = zerr('CHUNK_TAMPERED', 'chunk abc is corrupt', { sid: 'abc' })
  assert.equal(err.code, 'CHUNK_TAMPERED')
  assert.equal(err.exitCode, 12)
  assert.deepEqual(err.toJSON(), { code: 'CHUNK_TAMPERED', message: 'chunk abc is corrupt', details: { sid: 'abc' } })
  assert.ok(ZosError.is(err))
  assert.ok(!ZosError.is(new Error('x')))
  const foreign = Object.assign(new Error('y'), { [Symbol.for('zos.error')]: true })
  assert.ok(ZosError.is(foreign))
})
