// Extra CA certificates (NODE_EXTRA_CA_CERTS) for the processes zos starts on a workload's start path, read when
// a TLS connection needs them instead of at start-up. Node reads and parses that file at every start, whether
// the process ever talks TLS or not: 55 ms of CPU per start on a machine whose variable names the system bundle
// (144 certificates), which a mount's serving process paid before it could serve (most stores are plain HTTP on
// a node's network). The child gets the file's name as ZOS_EXTRA_CA_CERTS instead, and our HTTPS agents (store,
// hub client) trust Node's bundled roots plus that file, which is what Node itself would have done.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

export const DEFERRED_CA_ENV = 'ZOS_EXTRA_CA_CERTS'

/** `env` with NODE_EXTRA_CA_CERTS handed over as ZOS_EXTRA_CA_CERTS (for a child process to load lazily). */
export function deferExtraCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const file = env.NODE_EXTRA_CA_CERTS
  if (!file) return env
  const out: NodeJS.ProcessEnv = { ...env, [DEFERRED_CA_ENV]: file }
  delete out.NODE_EXTRA_CA_CERTS
  return out
}

let deferred: { file: string; ca: string[] } | undefined

/**
 * Options for an HTTPS agent: in a process started with deferExtraCaCerts, the CA list Node would have built
 * (its bundled roots and the extra file, read once). Elsewhere nothing: Node's defaults already hold the extras.
 */
export function tlsCaOptions(env: NodeJS.ProcessEnv = process.env): { ca?: string[] } {
  const file = env[DEFERRED_CA_ENV]
  if (!file) return {}
  if (deferred?.file !== file) {
    let extra: string
    try {
      extra = readFileSync(file, 'utf8')
    } catch (err) {
      // As Node does with a bad NODE_EXTRA_CA_CERTS: say so, and go on with the bundled roots.
      process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${(err as Error).message}`)
      extra = ''
    }
    // Required here, not imported: an ESM import of node:tls builds its rootCertificates list at once.
    const { rootCertificates } = createRequire(import.meta.url)('node:tls') as typeof import('node:tls')
    deferred = { file, ca: extra ? [...rootCertificates, extra] : [...rootCertificates] }
  }
  return { ca: deferred.ca }
}
