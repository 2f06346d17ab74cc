import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Semaphore } from '../../src/core/semaphore.js'

test('semaphore: waiters are served in order, those asking to go first ahead of the rest', async () => {
  const s = new Semaphore(2)
  await s.acquire()
  await s.acquire()
  const served: string[] = []
  const wait = (name: string, weight: number, first = false): Promise<void> => s.acquire(weight, { first }).then(() => void served.push(name))
  const all = [wait('a', 1), wait('b', 1), wait('big', 2, true), wait('c', 1, true)]
  s.release()
  await new Promise(setImmediate)
  assert.deepEqual(served, [], 'the first waiter (big, weight 2) blocks the ones behind it until it fits')
  s.release()
  await new Promise(setImmediate)
  assert.deepEqual(served, ['big'])
  s.release(2) // big is done: c and a fit
  await new Promise(setImmediate)
  assert.deepEqual(served, ['big', 'c', 'a'])
  s.release()
  await Promise.all(all)
  assert.deepEqual(served, ['big', 'c', 'a', 'b'])
})

test('semaphore: a weight above the capacity is clamped and runs alone', async () => {
  const s = new Semaphore(3)
  await s.acquire(10)
  let got = false
  const next = s.acquire(1).then(() => (got = true))
  await new Promise(setImmediate)
  assert.equal(got, false)
  s.release(10)
  await next
  assert.equal(got, true)
})
