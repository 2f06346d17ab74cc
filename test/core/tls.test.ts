import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { DEFERRED_CA_ENV, deferExtraCaCerts, tlsCaOptions } from '../../src/core/tls.js'
import { readyPipeOptions } from '../../src/flist/ready.js'
import { HttpStore } from '../../src/store/http.js'
import { tempDir } from '../helpers/tmp.js'

describe('deferred extra CA certificates', () => {
  it('hands NODE_EXTRA_CA_CERTS over as ZOS_EXTRA_CA_CERTS, and leaves an environment without it alone', () => {
    const env = deferExtraCaCerts({ PATH: '/bin', NODE_EXTRA_CA_CERTS: '/etc/extra.pem' })
    assert.deepEqual(env, { PATH: '/bin', [DEFERRED_CA_ENV]: '/etc/extra.pem' })
    const plain = { PATH: '/bin' }
    assert.deepEqual(deferExtraCaCerts(plain), plain)
    assert.deepEqual(tlsCaOptions({}), {}, 'no deferred file: Node\'s own defaults')
  })

  it('applies to a mount\'s serving process', () => {
    const saved = process.env.NODE_EXTRA_CA_CERTS
    process.env.NODE_EXTRA_CA_CERTS = '/etc/extra.pem'
    try {
      const { env } = readyPipeOptions(1)
      assert.equal(env.NODE_EXTRA_CA_CERTS, undefined)
      assert.equal(env[DEFERRED_CA_ENV], '/etc/extra.pem')
    } finally {
      if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS
      else process.env.NODE_EXTRA_CA_CERTS = saved
    }
  })

  it('lets an HTTPS store signed by that CA be read, as NODE_EXTRA_CA_CERTS would', async (t) => {
    const dir = await tempDir(t)
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' })
    const pack = Buffer.from('0123456789abcdef')
    const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(200, { 'content-length': pack.length })
      res.end(req.method === 'HEAD' ? undefined : pack)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))))
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    const id = 'a'.repeat(64)
    const saved = process.env[DEFERRED_CA_ENV]
    try {
      delete process.env[DEFERRED_CA_ENV]
      const untrusted = new HttpStore(url, { retries: 0 })
      await assert.rejects(untrusted.statPack(id), { code: 'STORE_UNAVAILABLE' })
      await untrusted.close()
      process.env[DEFERRED_CA_ENV] = cert
      const trusted = new HttpStore(url, { retries: 0 })
      assert.equal(await trusted.statPack(id), pack.length)
      await trusted.close()
    } finally {
      if (saved === undefined) delete process.env[DEFERRED_CA_ENV]
      else process.env[DEFERRED_CA_ENV] = saved
    }
  })
})
