// Reads requests from /dev/fuse on a dedicated thread, so that no libuv pool thread is pinned in a blocking read
// (the pool has only 4 threads by default and the filesystem needs them for its own I/O; many mounts in one process
// would starve it). The thread blocks in read(2) and publishes each request into a ring of slots in a
// SharedArrayBuffer; the main thread wakes with Atomics.waitAsync (no pool, no message copies), handles every
// published slot synchronously (copying out what it keeps) and hands the slot back.
//
// The thread can be started before the descriptor is mounted (prepare): starting a thread costs 40-60 ms, which
// then overlaps with mount(8) instead of delaying the kernel's INIT; it reads nothing until start().
//
// Control words (Int32): [0] published count (wraps), [1] stop flag, [2] go flag (set by start), [3] unused,
// [4 + i] slot i state: 0 free, n > 0 holds an n-byte request, < 0 the reader ended (-1 unmounted, -2 descriptor
// closed, -3 error).
import { Worker } from 'node:worker_threads'

const HEAD = 0
const STOP = 1
const GO = 2
const LEN = 4

export const END_UNMOUNTED = -1
export const END_CLOSED = -2
export const END_ERROR = -3

// Plain CommonJS, run with `eval: true`, so it works the same from TypeScript sources (tsx) and compiled dist/.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads')
const { readSync } = require('node:fs')
const { fd, sab, slots, slotSize, ctlInts } = workerData
const ctl = new Int32Array(sab, 0, ctlInts)
const data = new Uint8Array(sab, ctlInts * 4, slots * slotSize)
const sleeper = new Int32Array(new SharedArrayBuffer(4))
function main() {
  let i = 0
  let errors = 0
  while (Atomics.load(ctl, ${GO}) === 0) {
    if (Atomics.load(ctl, ${STOP}) !== 0) return
    Atomics.wait(ctl, ${GO}, 0, 1000)
  }
  for (;;) {
    for (;;) {
      if (Atomics.load(ctl, ${STOP}) !== 0) return
      const v = Atomics.load(ctl, ${LEN} + i)
      if (v === 0) break
      Atomics.wait(ctl, ${LEN} + i, v, 1000)
    }
    let n
    try {
      n = readSync(fd, data, i * slotSize, slotSize, null)
      errors = 0
    } catch (e) {
      const code = e && e.code
      if (code === 'EINTR' || code === 'EAGAIN' || code === 'ENOENT') continue
      let end = ${END_ERROR}
      if (code === 'ENODEV' || code === 'ECONNABORTED') end = ${END_UNMOUNTED}
      else if (code === 'EBADF') end = ${END_CLOSED}
      else if (++errors < 100) {
        parentPort.postMessage({ warn: String(e && e.message), code: String(code) })
        Atomics.wait(sleeper, 0, 0, 10)
        continue
      } else parentPort.postMessage({ error: String(e && e.message), code: String(code) })
      Atomics.store(ctl, ${LEN} + i, end)
      Atomics.add(ctl, ${HEAD}, 1)
      Atomics.notify(ctl, ${HEAD})
      return
    }
    Atomics.store(ctl, ${LEN} + i, n > 0 ? n : ${END_ERROR})
    Atomics.add(ctl, ${HEAD}, 1)
    Atomics.notify(ctl, ${HEAD})
    if (n <= 0) return
    i = (i + 1) % slots
  }
}
main()
`

type WaitAsync = (arr: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string }
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync

export interface ReaderHandlers {
  /** One request of `n` bytes in `buf` (valid only during the call). */
  message(buf: Buffer, n: number): void
  /** The reader stopped: END_UNMOUNTED, END_CLOSED or END_ERROR (with the error when known). */
  end(code: number, error?: Error): void
  /** A transient read error the reader is retrying. */
  warn(message: string, code: string): void
}

export class DevReader {
  private readonly ctl: Int32Array
  private readonly views: Buffer[] = []
  private worker: Worker | null = null
  private next = 0
  private seen = 0
  private stopped = false
  private lastError: Error | undefined

  /** Handlers may be bound later (bind), before start(): a mount made early boots its thread before the filesystem exists. */
  constructor(private readonly fd: number, private readonly slots: number, private readonly slotSize: number, private h?: ReaderHandlers) {
    const ctlInts = LEN + slots
    const sab = new SharedArrayBuffer(ctlInts * 4 + slots * slotSize)
    this.ctl = new Int32Array(sab, 0, ctlInts)
    for (let i = 0; i < slots; i++) this.views.push(Buffer.from(sab, ctlInts * 4 + i * slotSize, slotSize))
  }

  /** Starts the thread; it waits for start() before reading (see the header). */
  prepare(): void {
    if (this.worker !== null) return
    const ctlInts = this.ctl.length
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { fd: this.fd, sab: this.ctl.buffer, slots: this.slots, slotSize: this.slotSize, ctlInts },
      // The thread only reads: keep its heap small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
      stdout: false,
      stderr: false,
    })
    // A thread that only waits for start() must not keep the process alive (a mount started early and then
    // abandoned because the command failed); once reading, it does. (A 'message' listener would keep its port
    // alive: the thread posts messages only once reading, so the listener comes with start().)
    this.worker.unref()
    this.worker.on('error', (err) => {
      this.lastError = err
      this.finish(END_ERROR)
    })
    this.worker.on('exit', () => {
      // Normally after publishing its end marker: handle what is left, then end if that marker was not there.
      this.drain()
      this.finish(END_ERROR)
    })
  }

  /** The handlers of a reader made without them. */
  bind(h: ReaderHandlers): void {
    if (this.h) throw new Error('DevReader: handlers are bound already')
    this.h = h
  }

  /** Lets the thread read requests (preparing it first if needed). */
  start(): void {
    if (!this.h) throw new Error('DevReader: start() before bind()')
    this.prepare()
    this.worker!.on('message', (m: { warn?: string; error?: string; code?: string }) => {
      if (m.error !== undefined) this.lastError = Object.assign(new Error(m.error), { code: m.code })
      else if (m.warn !== undefined) this.h!.warn(m.warn, m.code ?? '')
    })
    this.worker!.ref()
    Atomics.store(this.ctl, GO, 1)
    Atomics.notify(this.ctl, GO)
    void this.pump()
  }

  /** Stops a thread that was prepared but never started (a mount that failed before serving). */
  cancel(): void {
    if (Atomics.load(this.ctl, GO) !== 0) return
    this.stopped = true // its exit is expected: no end report
    Atomics.store(this.ctl, STOP, 1)
    Atomics.notify(this.ctl, GO)
  }

  private async pump(): Promise<void> {
    while (!this.stopped) {
      const head = this.drain()
      if (this.stopped) return
      const w = waitAsync(this.ctl, HEAD, head)
      if (w.async) await w.value
    }
  }

  /** Handles every published slot; returns the published count it caught up with. */
  private drain(): number {
    const ctl = this.ctl
    let head = Atomics.load(ctl, HEAD)
    while (this.seen !== head && !this.stopped) {
      const i = this.next
      const n = Atomics.load(ctl, LEN + i)
      if (n < 0) {
        this.finish(n)
        break
      }
      try {
        this.h!.message(this.views[i]!, n)
      } finally {
        Atomics.store(ctl, LEN + i, 0)
        Atomics.notify(ctl, LEN + i)
        this.next = (i + 1) % this.slots
        this.seen = (this.seen + 1) | 0
      }
      if (this.seen === head) head = Atomics.load(ctl, HEAD)
    }
    return head
  }

  private finish(code: number): void {
    if (this.stopped) return
    this.stopped = true
    Atomics.store(this.ctl, STOP, 1)
    for (let i = 0; i < this.slots; i++) Atomics.notify(this.ctl, LEN + i)
    Atomics.notify(this.ctl, HEAD)
    this.h?.end(code, this.lastError)
  }
}
