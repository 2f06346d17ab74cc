// Back-pressure for a stream we write to by hand: wait until it wants more, or until it is closed (a peer that
// went away must not leave the writer waiting for a 'drain' that never comes).
import type { EventEmitter } from 'node:events'

/** Resolves at the stream's next 'drain' or 'close'. */
export function drainedOrClosed(stream: EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('close', done)
  })
}
