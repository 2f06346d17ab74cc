// The node's logger shape: pino's call form (fields first, then the message); pino's Logger fits.
export interface NodeLogger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  child(bindings: Record<string, unknown>): NodeLogger
}

export const SILENT_LOGGER: NodeLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return SILENT_LOGGER
  },
}
