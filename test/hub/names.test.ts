import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatRef, hubUrlOf, normalizeNs, parseHubUrl, parseRef } from '../../src/hub/names.js'

const ADDR = '0x' + 'Ab'.repeat(20)
const DIGEST = 'e'.repeat(64)

test('names - references: namespace, tag default, digest', () => {
  assert.deepEqual(parseRef('alpine'), { name: 'alpine', tag: 'latest' })
  assert.deepEqual(parseRef('alpine', { defaultTag: false }), { name: 'alpine' })
  assert.deepEqual(parseRef('alpine:3.19'), { name: 'alpine', tag: '3.19' })
  assert.deepEqual(parseRef('42/alpine:edge'), { ns: '42', name: 'alpine', tag: 'edge' })
  assert.deepEqual(parseRef(`${ADDR}/web@sha256:${DIGEST}`), { ns: ADDR.toLowerCase(), name: 'web', digest: DIGEST })
  assert.equal(formatRef(parseRef('42/alpine:edge')), '42/alpine:edge')
  for (const bad of ['', 'a/b/c', '-x', 'x:', 'x:-y', 'ns!/x', '0/x', 'x@abc', 'x.fl', 'a b', `x:${'t'.repeat(129)}`]) {
    assert.throws(() => parseRef(bad), { code: 'INVALID_ARGUMENT' }, bad)
  }
})

test('names - namespaces are twin ids or lowercase addresses', () => {
  assert.equal(normalizeNs('7'), '7')
  assert.equal(normalizeNs(ADDR), ADDR.toLowerCase())
  for (const bad of ['0', '07', '-1', '0x12', 'alice', ADDR + '0']) assert.throws(() => normalizeNs(bad), { code: 'INVALID_ARGUMENT' }, bad)
})

test('names - hub:// URLs: host only when it looks like one', () => {
  const dflt = 'http://hub.example:9000'
  assert.deepEqual(parseHubUrl('hub://alpine:3', dflt), { hub: dflt, name: 'alpine', tag: '3' })
  assert.deepEqual(parseHubUrl('hub://42/alpine', dflt), { hub: dflt, ns: '42', name: 'alpine', tag: 'latest' })
  assert.deepEqual(parseHubUrl('hub://127.0.0.1:8080/alpine:3', dflt), { hub: 'http://127.0.0.1:8080', name: 'alpine', tag: '3' })
  assert.deepEqual(parseHubUrl('hub://localhost/42/a:b', dflt), { hub: 'http://localhost', ns: '42', name: 'a', tag: 'b' })
  assert.deepEqual(parseHubUrl('hubs://hub.grid.example/7/web:1', dflt), { hub: 'https://hub.grid.example', ns: '7', name: 'web', tag: '1' })
  assert.deepEqual(parseHubUrl('hub://[::1]:8080/7/web', dflt), { hub: 'http://[::1]:8080', ns: '7', name: 'web', tag: 'latest' })
  for (const bad of ['hub://', 'hub://h.x/a/b/c', 'hub://h.x//a', 'http://x/a', 'hub://bad host.x/a']) assert.throws(() => parseHubUrl(bad, dflt), { code: 'INVALID_ARGUMENT' }, bad)
  assert.equal(hubUrlOf('http://127.0.0.1:8080', { ns: '7', name: 'web', tag: '1' }), 'hub://127.0.0.1:8080/7/web:1')
  assert.equal(hubUrlOf('https://h.example', { ns: '7', name: 'web', tag: '1' }), 'hubs://h.example/7/web:1')
})
