// One peer's connection to one relay: dials out with a fresh auth token, reconnects with backoff when the
// socket closes or goes quiet, and hands binary frames (envelopes) and text frames (relay notices) to the peer.
import WebSocket from 'ws'
import { errorMessage } from '../core/errors.js'
import { Backoff, type BackoffOptions } from './backoff.js'
import { MAX_ENVELOPE_BYTES } from './envelope.js'

export interface LinkHooks {
  token(): string
  onOpen(link: RelayLink): void
  onClose(link: RelayLink): void
  onFrame(link: RelayLink, frame: Buffer): void
  onNotice(link: RelayLink, text: string): void
}

export interface LinkOptions {
  backoff?: BackoffOptions
  /** Time allowed for the TCP connect, upgrade and authentication (default 10 s). */
  handshakeTimeoutMs?: number
  /** The link pings the relay this often; two missed answers close it (default 20 s). */
  pingIntervalMs?: number
}

/** Output beyond this is waited for before more stream pieces are written. */
export const HIGH_WATER_BYTES = 4 * 1024 * 1024

export class RelayLink {
  private ws: WebSocket | null = null
  private readonly backoff: Backoff
  private retryTimer: NodeJS.Timeout | null = null
  private pingTimer: NodeJS.Timeout | null = null
  private lastSeen = 0
  private stopped = false
  open = false
  lastError: string | null = null
  /** Successful connections so far. */
  connects = 0

  constructor(
    readonly url: string,
    private readonly hooks: LinkHooks,
    private readonly opts: LinkOptions = {},
  ) {
    this.backoff = new Backoff(opts.backoff)
  }

  start(): void {
    this.dial()
  }

  /** Writes a frame; false when the link is not open. Resolves once the frame is handed to the kernel when
   * the socket's output is above the high-water mark (so streams of pieces keep memory bounded). */
  async write(frame: Buffer): Promise<boolean> {
    const ws = this.ws
    if (!ws || !this.open || ws.readyState !== WebSocket.OPEN) return false
    if (ws.bufferedAmount < HIGH_WATER_BYTES) {
      ws.send(frame)
      return true
    }
    return new Promise<boolean>((resolve) => ws.send(frame, (err) => resolve(!err)))
  }

  stop(): void {
    this.stopped = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.pingTimer) clearInterval(this.pingTimer)
    this.retryTimer = this.pingTimer = null
    const ws = this.ws
    this.ws = null
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'peer closing')
      else ws.terminate()
      setTimeout(() => ws.terminate(), 500).unref()
    }
    if (this.open) {
      this.open = false
      this.hooks.onClose(this)
    }
  }

  private dial(): void {
    if (this.stopped) return
    let token: string
    try {
      token = this.hooks.token()
    } catch (err) {
      this.lastError = `cannot make an auth token: ${errorMessage(err)}`
      this.schedule()
      return
    }
    const ws = new WebSocket(this.url, {
      headers: { authorization: `Bearer ${token}` },
      maxPayload: MAX_ENVELOPE_BYTES + 4096,
      perMessageDeflate: false,
      handshakeTimeout: this.opts.handshakeTimeoutMs ?? 10_000,
    })
    this.ws = ws
    let ended = false
    let refused = false
    const end = (): void => {
      if (ended) return
      ended = true
      if (this.pingTimer) clearInterval(this.pingTimer)
      this.pingTimer = null
      if (this.ws === ws) this.ws = null
      if (this.open) {
        this.open = false
        this.hooks.onClose(this)
      }
      this.schedule()
    }
    ws.on('open', () => {
      if (this.stopped) return
      this.open = true
      this.connects++
      this.lastError = null
      this.lastSeen = Date.now()
      this.backoff.reset()
      const every = this.opts.pingIntervalMs ?? 20_000
      this.pingTimer = setInterval(() => {
        if (Date.now() - this.lastSeen > 2.5 * every) {
          this.lastError = `relay ${this.url} stopped answering pings`
          ws.terminate()
          return
        }
        ws.ping()
      }, every).unref()
      this.hooks.onOpen(this)
    })
    ws.on('message', (data, isBinary) => {
      this.lastSeen = Date.now()
      if (this.ws !== ws) return
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
      try {
        if (isBinary) this.hooks.onFrame(this, buf)
        else this.hooks.onNotice(this, buf.toString('utf8'))
      } catch (err) {
        this.lastError = `handling a frame from ${this.url} failed: ${errorMessage(err)}`
      }
    })
    ws.on('ping', () => {
      this.lastSeen = Date.now()
    })
    ws.on('pong', () => {
      this.lastSeen = Date.now()
    })
    ws.on('unexpected-response', (req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        if (body.length < 2048) body += d
      })
      res.on('end', () => {
        let message = body
        try {
          const b = JSON.parse(body) as { message?: unknown }
          if (typeof b.message === 'string') message = b.message
        } catch {
          // keep the raw text
        }
        refused = true
        this.lastError = `relay ${this.url} refused the connection (HTTP ${res.statusCode}): ${message.slice(0, 500)}`
        req.destroy()
        ws.terminate()
        end()
      })
      res.on('error', () => end())
    })
    ws.on('error', (err) => {
      if (!refused) this.lastError = `relay ${this.url}: ${err.message}`
    })
    ws.on('close', (code, reason) => {
      if (code === 4000) this.lastError = `relay ${this.url} closed the link: ${reason.toString() || 'replaced'}`
      end()
    })
  }

  private schedule(): void {
    if (this.stopped || this.retryTimer) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.dial()
    }, this.backoff.next())
  }
}
