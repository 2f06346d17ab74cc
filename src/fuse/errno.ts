// Errors a filesystem implementation throws to answer a FUSE request with an errno, and the mapping from any
// thrown value to the negative errno the kernel receives. Anything unrecognised becomes EIO (and is logged by the
// session), so a bug in one operation fails that request only.
import { constants } from 'node:os'
import { ZosError } from '../core/errors.js'

const ERRNO: Readonly<Record<string, number>> = constants.errno

export const EPERM = 1
export const ENOENT = 2
export const EINTR = 4
export const EIO = 5
export const EBADF = 9
export const EAGAIN = 11
export const EACCES = 13
export const ENOTDIR = 20
export const EISDIR = 21
export const EINVAL = 22
export const ERANGE = 34
export const ENOSYS = 38
export const ENOTEMPTY = 39
export const ENODATA = 61
export const EROFS = 30
export const EOPNOTSUPP = 95
export const E2BIG = 7
export const ENODEV = 19
export const ENOTCONN = 107

/** Thrown by a filesystem operation to answer the request with `-errno`: `throw new FuseError('ENOENT')`. */
export class FuseError extends Error {
  readonly errno: number

  constructor(errno: number | string, message?: string) {
    const n = typeof errno === 'number' ? errno : ERRNO[errno]
    if (n === undefined || !Number.isInteger(n) || n <= 0 || n > 4095) {
      throw new TypeError(`FuseError: unknown errno ${String(errno)}; use a positive errno number or a name such as 'ENOENT'`)
    }
    super(message ?? `${errnoName(n)}`)
    this.name = 'FuseError'
    this.errno = n
  }
}

const NAMES = new Map<number, string>(Object.entries(ERRNO).map(([k, v]) => [v, k]))

/** 'ENOENT' for 2, `errno 1234` for unknown numbers. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`
}

/** ZosError codes that have an obvious errno; the rest are I/O errors. */
const ZOS_ERRNO: Partial<Record<string, number>> = {
  NOT_FOUND: ENOENT,
  PERMISSION: EACCES,
  INVALID_ARGUMENT: EINVAL,
  UNSUPPORTED: EOPNOTSUPP,
  STORE_READONLY: EROFS,
  TIMEOUT: ERRNO.ETIMEDOUT ?? 110,
}

export interface ErrnoVerdict {
  /** Positive errno to send (negated on the wire). */
  errno: number
  /** True when the error was not an expected, coded one: the session logs it. */
  unexpected: boolean
}

/**
 * Maps a thrown value to an errno: FuseError → its errno; an AbortError (the request was interrupted) → EINTR;
 * a Node system error (`err.code` 'ENOENT', or a numeric `errno`, which Node makes negative) → that errno;
 * a ZosError → the errno its code implies (NOT_FOUND → ENOENT, …) and otherwise EIO; anything else → EIO, unexpected.
 */
export function toErrno(err: unknown): ErrnoVerdict {
  if (err instanceof FuseError) return { errno: err.errno, unexpected: false }
  if (typeof err === 'object' && err !== null) {
    const e = err as { name?: unknown; code?: unknown; errno?: unknown }
    if (e.name === 'AbortError' || e.code === 'ABORT_ERR') return { errno: EINTR, unexpected: false }
    if (ZosError.is(err)) {
      const n = ZOS_ERRNO[err.code]
      return n === undefined ? { errno: EIO, unexpected: true } : { errno: n, unexpected: false }
    }
    if (typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) {
      const n = ERRNO[e.code]
      if (n !== undefined && n > 0) return { errno: n, unexpected: false }
    }
    if (typeof e.errno === 'number' && Number.isInteger(e.errno) && e.errno !== 0 && Math.abs(e.errno) <= 4095) {
      return { errno: Math.abs(e.errno), unexpected: false }
    }
  }
  return { errno: EIO, unexpected: true }
}
