// One error class for the whole project: a stable `code` that scripts, exit codes, --json output and the relay
// can key on, a message that says what to do, and optional context fields. Subsystems add their codes to the
// table below (and to docs/errors.md) instead of declaring new classes.

export const ERROR_CODES = {
  // generic
  INVALID_ARGUMENT: { exit: 2, what: 'a command-line argument or API option is wrong' },
  NOT_FOUND: { exit: 4, what: 'the named thing does not exist' },
  EXISTS: { exit: 5, what: 'the target already exists' },
  PERMISSION: { exit: 6, what: 'the operation needs root or a capability this process lacks' },
  UNSUPPORTED: { exit: 7, what: 'the input uses a feature this build does not support' },
  INTERNAL: { exit: 70, what: 'a bug: please report it with the command that caused it' },
  // flist format and sources
  FLIST_CORRUPT: { exit: 10, what: 'the flist metadata file is damaged, truncated or not an flist' },
  FLIST_VERSION: { exit: 10, what: 'the flist was written by a newer format version' },
  BAD_ARCHIVE: { exit: 11, what: 'a tar or OCI archive is malformed' },
  UNSAFE_PATH: { exit: 11, what: 'a path escapes the tree (../, absolute, or through a symlink)' },
  BAD_NAME: { exit: 11, what: 'a file name is not valid UTF-8 or contains a NUL or slash' },
  SOURCE_CHANGED: { exit: 11, what: 'a source file or archive changed while it was being read' },
  // integrity
  CHUNK_MISSING: { exit: 12, what: 'a chunk or pack is not in the store' },
  CHUNK_TAMPERED: { exit: 12, what: 'a chunk does not match its id (corrupted or tampered)' },
  SIGNATURE_INVALID: { exit: 13, what: 'the signature does not verify' },
  UNTRUSTED_SIGNER: { exit: 13, what: 'the flist is not signed by a trusted key' },
  // stores
  STORE_UNAVAILABLE: { exit: 14, what: 'the store cannot be reached or answered with an error' },
  STORE_READONLY: { exit: 14, what: 'the store cannot be written' },
  TIMEOUT: { exit: 15, what: 'the operation did not finish in time' },
  // FUSE mounts
  FUSE_UNAVAILABLE: { exit: 16, what: '/dev/fuse is missing or the kernel has no FUSE support' },
  MOUNT_FAILED: { exit: 16, what: 'mounting or unmounting a filesystem failed' },
  // ledger
  NOT_OWNER: { exit: 20, what: "the caller's twin does not own the farm, node or contract" },
  NO_TWIN: { exit: 20, what: 'the calling account has no twin on the ledger' },
  UNAUTHORIZED: { exit: 20, what: 'the caller lacks the role the call needs (council, node, faucet on a dev ledger)' },
  NAME_TAKEN: { exit: 21, what: 'the farm or gateway name is already registered' },
  NO_IPS_FREE: { exit: 21, what: 'the farm has fewer free public IPs than requested' },
  INSUFFICIENT_FUNDS: { exit: 22, what: 'the account balance is too low for the operation' },
  INVALID_STATE: { exit: 23, what: 'the object is in a state that does not allow the operation' },
  LEDGER_UNAVAILABLE: { exit: 24, what: 'the ledger JSON-RPC endpoint cannot be reached or failed' },
  LEDGER_REVERT: { exit: 25, what: 'the ledger rejected the transaction for a reason zos does not know' },
  LEDGER_MISMATCH: { exit: 26, what: 'the ledger was deployed from contracts other than this zos build expects' },
  // relay (RMB)
  RMB_MALFORMED: { exit: 30, what: 'a relay message or auth token is malformed (size, version or a field out of bounds)' },
  RMB_UNREACHABLE: { exit: 31, what: 'no relay of the twin could be reached, or the relay refused to authenticate it' },
  RMB_REJECTED: { exit: 32, what: 'the relay refused the message (rate limit, queue full, too large)' },
  RMB_UNKNOWN_COMMAND: { exit: 33, what: 'the remote twin has no handler for the command' },
  RMB_REMOTE: { exit: 34, what: 'the remote handler failed with an error this build does not know' },
  RMB_CLOSED: { exit: 35, what: 'the relay peer was closed while the call was pending' },
  // node agent
  CAPACITY_EXCEEDED: { exit: 45, what: 'the node has not enough free capacity (memory, CPU, disk) for the deployment' },
  HASH_MISMATCH: { exit: 46, what: "the deployment's challenge hash is not the one its contract carries" },
  CONTRACT_INVALID: { exit: 47, what: 'the contract is missing, deleted, in grace period, or not a node contract of this twin on this node' },
  RUNTIME_FAILED: { exit: 48, what: 'the container runtime (runc), a mount or a disk the workload needs failed' },
  // hub
  HUB_AUTH: { exit: 40, what: 'the hub refused the request token (missing, malformed, expired, replayed, or the account has no twin)' },
  HUB_FORBIDDEN: { exit: 41, what: "the hub namespace belongs to another twin" },
  HUB_QUOTA: { exit: 42, what: "the upload would take the twin's hub storage over its quota" },
  HUB_TOO_LARGE: { exit: 43, what: 'the upload is larger than the hub accepts' },
  HUB_UNAVAILABLE: { exit: 44, what: 'the hub cannot be reached or answered with an error' },
} as const satisfies Record<string, { exit: number; what: string }>

export type ErrorCode = keyof typeof ERROR_CODES

const BRAND = Symbol.for('zos.error')

export class ZosError extends Error {
  readonly code: ErrorCode
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ZosError'
    this.code = code
    this.details = Object.freeze({ ...(options.details ?? {}) })
    Object.defineProperty(this, BRAND, { value: true })
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details }
  }

  /** Works across two copies of the module (a brand, not the prototype chain). */
  static is(err: unknown): err is ZosError {
    return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true
  }
}

/** Shorthand used at validation edges: `throw zerr('INVALID_ARGUMENT', '...')`. */
export function zerr(code: ErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown): ZosError {
  return new ZosError(code, message, { details, cause })
}

/** The message of any thrown value, for logs and wrapping. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
