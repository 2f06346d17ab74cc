// What a local grid keeps under its directory:
//   DIR/grid.json      the grid's shape (network, ports, identities, nodes); written once at the first `up` and
//                      extended as nodes register, so a restart brings the same grid back
//   DIR/run.json       the processes the current `up` started (pid + start time), removed by `down`
//   DIR/ledger/        the embedded ledger (anvil state, address book, dev keys; its own pid record)
//   DIR/hub/           the hub's data;  DIR/nodes/nI/  node I's state dir;  DIR/logs/  every daemon's log
//   DIR/keys/          the farmer's and the user's keys
// And $ZOS_HOME/grid-context.json names the grid the CLI uses by default (see context.ts).
import { createHash } from 'node:crypto'
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { zerr } from '../core/errors.js'

const procSchema = z.object({ pid: z.number().int().positive(), startTime: z.number().int().nonnegative(), log: z.string() })

const nodeSchema = z.object({
  index: z.number().int().positive(),
  netns: z.string(),
  hostVeth: z.string(),
  ip: z.string(),
  state: z.string(),
  nodeId: z.number().int().positive().optional(),
  twinId: z.number().int().positive().optional(),
})

export const gridSpecSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{6}$/),
  dir: z.string(),
  createdAt: z.string(),
  net: z.object({ bridge: z.string(), subnet: z.string() }),
  hostIp: z.string(),
  ports: z.object({ ledger: z.number().int().positive(), relay: z.number().int().positive(), hub: z.number().int().positive() }),
  farmId: z.number().int().positive(),
  farmerKey: z.string(),
  userKey: z.string(),
  userTwin: z.number().int().positive(),
  nodes: z.array(nodeSchema),
  /** Per-node capacity offered (bytes for memory and disk). */
  capacity: z.object({ cru: z.number().int().positive(), mru: z.number().int().positive(), sru: z.number().int().positive() }),
  demo: z.object({ ref: z.string(), digest: z.string() }).optional(),
})

export type GridSpec = z.infer<typeof gridSpecSchema>
export type GridNodeSpec = z.infer<typeof nodeSchema>

export const runSchema = z.object({
  relay: procSchema.optional(),
  hub: procSchema.optional(),
  nodes: z.record(z.string(), procSchema),
})
export type GridRun = z.infer<typeof runSchema>

/** Six hex digits naming the grid's links and namespaces: a hash of its absolute directory. */
export function gridIdOf(dir: string): string {
  return createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 6)
}

export const gridFile = (dir: string): string => join(dir, 'grid.json')
export const runFile = (dir: string): string => join(dir, 'run.json')

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const parsed = schema.safeParse(JSON.parse(text))
  if (!parsed.success) throw zerr('INVALID_STATE', `${file} is damaged (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); fix it or start over with \`zos grid down --purge\``)
  return parsed.data
}

let tmpSeq = 0
/** The last write queued per file. */
const writing = new Map<string, Promise<void>>()

/**
 * Write to a sibling temp file and rename: a crash leaves the old or the new file, never half of one. Writes of
 * one file land in the order they were asked for: `grid up` records each node agent it starts, the agents start
 * in parallel, and two overlapping writes renamed out of order lost a record (and `grid down` then left that
 * agent running).
 */
function writeJsonAtomic(file: string, data: unknown): Promise<void> {
  const text = JSON.stringify(data, null, 2) + '\n' // the data as of this call
  const write = async (): Promise<void> => {
    const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`
    await writeFile(tmp, text)
    await rename(tmp, file)
  }
  const done = (writing.get(file) ?? Promise.resolve()).then(write, write)
  writing.set(file, done)
  const forget = (): void => {
    if (writing.get(file) === done) writing.delete(file)
  }
  done.then(forget, forget)
  return done
}

export const readSpec = (dir: string): Promise<GridSpec | undefined> => readJson(gridFile(dir), gridSpecSchema)
export const writeSpec = (spec: GridSpec): Promise<void> => writeJsonAtomic(gridFile(spec.dir), spec)
export const readRun = async (dir: string): Promise<GridRun> => (await readJson(runFile(dir), runSchema)) ?? { nodes: {} }
export const writeRun = (dir: string, run: GridRun): Promise<void> => writeJsonAtomic(runFile(dir), run)
export const removeRun = (dir: string): Promise<void> => rm(runFile(dir), { force: true })
export { writeJsonAtomic }
