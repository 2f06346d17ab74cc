import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatVerdict, parseVerdict } from '../../src/flist/ready.js'

test('ready - a verdict names the root checked, or the error, and anything else fails the mount', () => {
  const root = Buffer.alloc(32, 7)
  assert.deepEqual(parseVerdict(formatVerdict({ root })), root)
  assert.throws(() => parseVerdict(formatVerdict({ code: 'SIGNATURE_INVALID', message: 'a.fl: the signature does not verify' })), {
    code: 'SIGNATURE_INVALID',
    message: 'a.fl: the signature does not verify',
  })
  // An unknown code is still a refusal, as a damaged flist.
  assert.throws(() => parseVerdict(formatVerdict({ code: 'NO_SUCH_CODE', message: 'x' })), { code: 'FLIST_CORRUPT' })
  // The caller went away before it had said anything; or said something else.
  assert.throws(() => parseVerdict(''), { code: 'MOUNT_FAILED', message: /ended before it had checked/ })
  for (const bad of ['ok 1234\n', 'ok ' + 'g'.repeat(64), 'fail {', 'fail {"code":"FLIST_CORRUPT"}', 'ready\n']) {
    assert.throws(() => parseVerdict(bad), { code: 'MOUNT_FAILED' }, bad)
  }
})
