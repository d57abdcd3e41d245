import type { Logger } from 'pino'
import { runWith, type RunState, type TaskInfo } from '../context/context.js'
import type { Operator, StreamContext } from '../operators/operator.js'
import type { Row, Table } from '../types.js'
import { fanOut, type FanOutState } from './channel.js'
import { rowStream } from './row-stream.js'
import type { Chain, Plan } from './plan.js'
import type { Stage } from '../datastore/stage.js'
import { AnchoviesError } from '../errors.js'

/** Per-table bookkeeping of a running chain. */
export interface TableTask {
  readonly key: string
  readonly info: TaskInfo & { data: Record<string, unknown> }
  readonly startedAt: Date
}

/** Everything a chain needs from the batch. */
export interface ChainEnv {
  readonly operator: Operator
  readonly plan: Plan
  readonly base: Omit<RunState, 'task' | 'signal' | 'checkpoints' | 'logger'>
  readonly logger: Logger
  /** Where the chain's changes wait for the batch commit. */
  readonly stage: Stage
  readonly signal: AbortSignal
  readonly queueSize: number
  readonly progressMs: number
  readonly tasks: ReadonlyMap<string, TableTask>
  /** Epoch ms when the batch times out (-t), if it does. */
  readonly deadline: number | undefined
  /** When a commit point commits (0 = no limit of that kind). */
  readonly limits: CommitLimits
  /** Commits what the chain staged so far (an intermediate commit); undefined when the run cannot. */
  readonly commit: ((tables: readonly Table[]) => Promise<boolean>) | undefined
}

/** The limits that make a source's commit point commit: rows or bytes since the last commit, or seconds. */
export interface CommitLimits {
  readonly rows: number
  readonly bytes: number
  readonly intervalMs: number
}

/**
 * The chunks of what a source or transform method returned: every step runs in `state`'s context (an async
 * generator's body runs in the context of whoever calls `next()`), and a yielded row becomes a one-row chunk
 * while a yielded array of rows passes as one chunk.
 */
function sourceChunks(iterable: unknown, state: RunState, what: string): AsyncIterable<Row[]> {
  if (!iterable || typeof (iterable as AsyncIterable<Row>)[Symbol.asyncIterator] !== 'function') {
    throw new AnchoviesError(
      'ANCH_ERR_NO_SOURCE',
      `${what} must be an async generator (async *method) or return an AsyncIterable`,
    )
  }
  const it = (iterable as AsyncIterable<Row | Row[]>)[Symbol.asyncIterator]()
  const chunk = (r: IteratorResult<Row | Row[]>): IteratorResult<Row[]> =>
    r.done ? r : { value: Array.isArray(r.value) ? r.value : [r.value], done: false }
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => runWith(state, () => it.next()).then(chunk),
      return: (v?: unknown) =>
        runWith(state, () => it.return?.(v) ?? Promise.resolve({ value: undefined, done: true as const })).then(chunk),
    }),
  }
}

/** Counts rows into the table's task, checks each is an object, stops on abort and logs progress. */
function counted(
  chunks: AsyncIterable<Row[]>,
  task: TableTask,
  signal: AbortSignal,
  logger: Logger,
  progressMs: number,
): AsyncIterable<Row[]> {
  const data = task.info.data
  let n = 0
  let nextLog = progressMs > 0 ? Date.now() + progressMs : Infinity
  data.rows = 0
  const it = chunks[Symbol.asyncIterator]()
  const check = (r: IteratorResult<Row[]>): IteratorResult<Row[]> => {
    if (r.done) {
      data.rows = n
      return r
    }
    if (signal.aborted) throw signal.reason
    for (const row of r.value) {
      if (row === null || typeof row !== 'object' || Array.isArray(row)) {
        throw new AnchoviesError(
          'ANCH_ERR_DATA_FORMAT',
          `table ${task.key}: row ${n + 1} is not an object (got ${Array.isArray(row) ? 'array' : typeof row})`,
        )
      }
      n++
    }
    data.rows = n
    if (Date.now() >= nextLog) {
      const secs = (Date.now() - task.startedAt.getTime()) / 1000
      logger.info({ table: task.key, rows: n, rows_per_s: Math.round(n / secs) }, 'progress')
      nextLog = Date.now() + progressMs
    }
    return r
  }
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => it.next().then(check),
      return: (v?: unknown) => it.return?.(v) ?? Promise.resolve({ value: undefined, done: true as const }),
    }),
  }
}

/** Runs one chain: the root source, fanned out to its sinks and transforms, recursively. Throws the first error. */
export async function runChain(chain: Chain, env: ChainEnv): Promise<void> {
  const controller = new AbortController()
  const onOuterAbort = (): void => controller.abort(env.signal.reason)
  if (env.signal.aborted) onOuterAbort()
  else env.signal.addEventListener('abort', onOuterAbort, { once: true })
  const signal = controller.signal

  const stateFor = (key: string): RunState => {
    const task = env.tasks.get(key)!
    return { ...env.base, task: task.info, signal, checkpoints: env.stage, logger: env.logger.child({ table: key }) }
  }
  const notRoot = async (): Promise<boolean> => {
    throw new AnchoviesError(
      'ANCH_ERR_CONTEXT',
      `commitPoint() and commit() are for the source of a chain's first table (${chain.root}), between its yields`,
    )
  }
  const ctxFor = (key: string, output?: string, root = false): StreamContext => {
    const p = env.plan.tables.get(key)!
    const taskKey = output ?? key
    return {
      table: p.table,
      ...(output ? { output: env.plan.tables.get(output)!.table } : {}),
      task: env.tasks.get(taskKey)!.info,
      signal,
      logger: env.logger.child({ table: taskKey }),
      stage: env.stage,
      deadline: env.deadline,
      timeLeft: () => (env.deadline === undefined ? Infinity : Math.max(0, env.deadline - Date.now())),
      commitPoint: root ? () => commitPoint(false) : notRoot,
      commit: root ? () => commitPoint(true) : notRoot,
    }
  }

  // Intermediate commits: what the root source yielded before a commit point, through every transform and sink.
  const fanOuts: FanOutState[] = []
  let lastCommitAt = Date.now()
  let rowsAtCommit = 0
  const commitPoint = async (force: boolean): Promise<boolean> => {
    const data = env.tasks.get(chain.root)!.info.data
    const rows = Number(data.rows ?? 0)
    const { limits } = env
    if (!env.commit) return false
    if (!force) {
      const due =
        (limits.rows > 0 && rows - rowsAtCommit >= limits.rows) ||
        (limits.bytes > 0 && env.stage.bytes >= limits.bytes) ||
        (limits.intervalMs > 0 && Date.now() - lastCommitAt >= limits.intervalMs)
      if (!due) return false
    }
    if (signal.aborted) throw signal.reason
    // The source is paused in this call: once every consumer asks for more, every earlier row is in a writer.
    for (const f of fanOuts) await f.idle()
    await env.stage.cut()
    const tables = chain.tables
      .map((k) => env.plan.tables.get(k)!)
      .filter((p) => p.selected)
      .map((p) => p.table)
    const committed = await env.commit(tables)
    rowsAtCommit = rows
    lastCommitAt = Date.now()
    if (committed) data.commits = Number(data.commits ?? 0) + 1
    return committed
  }

  const feed = async (key: string, rows: AsyncIterable<Row[]>): Promise<void> => {
    const consumers = env.plan.consumers(key)
    if (consumers.length === 0) {
      throw new AnchoviesError('ANCH_ERR_NO_SOURCE', `table ${key} has no @sink to receive its rows`)
    }
    const task = env.tasks.get(key)!
    const source = counted(rows, task, signal, env.logger, env.progressMs)
    const observed: { fanOut?: FanOutState } = {}
    const channels = fanOut(source, consumers.length, env.queueSize, signal, observed)
    if (observed.fanOut) fanOuts.push(observed.fanOut)
    const runs = consumers.map(async (c, i) => {
      const chan = channels[i]!
      try {
        if (c.kind === 'sink') {
          const state = stateFor(key)
          await runWith(state, () => c.method.fn.call(env.operator, rowStream(chan), ctxFor(key)))
        } else {
          const state = stateFor(c.output)
          const out = runWith(state, () => c.method.fn.call(env.operator, rowStream(chan), ctxFor(key, c.output)))
          await feed(c.output, sourceChunks(out, state, `transform ${c.method.name}`))
        }
      } catch (err) {
        controller.abort(err)
        throw err
      } finally {
        chan.close()
      }
    })
    const settled = await Promise.allSettled(runs)
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed) throw failed.reason
    if (signal.aborted) throw signal.reason
  }

  try {
    const root = env.plan.tables.get(chain.root)!
    const state = stateFor(chain.root)
    const rows = runWith(state, () => root.source.fn.call(env.operator, ctxFor(chain.root, undefined, true)))
    await feed(chain.root, sourceChunks(rows, state, `source ${root.source.name}`))
  } finally {
    env.signal.removeEventListener('abort', onOuterAbort)
  }
}
