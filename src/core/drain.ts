// Waiting for the first of a few events: back-pressure for a stream we write to by hand (its 'drain', or its
// 'close': a peer that went away must not leave the writer waiting for a 'drain' that never comes), and a
// foreground daemon waiting for SIGINT or SIGTERM.
import type { EventEmitter } from 'node:events'

/** Resolves at the first of `events` on `emitter`, and stops listening to all of them. */
export function firstEvent(emitter: EventEmitter, events: readonly string[]): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      for (const e of events) emitter.off(e, done)
      resolve()
    }
    for (const e of events) emitter.on(e, done)
  })
}

/** Resolves at the stream's next 'drain' or 'close'. */
export function drainedOrClosed(stream: EventEmitter): Promise<void> {
  return firstEvent(stream, ['drain', 'close'])
}
