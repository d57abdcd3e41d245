import type { Logger } from 'pino'
import { runWith, type BatchInfo, type RunState, type TaskInfo } from '../context/context.js'
import { META, readMembers } from '../decorators/metadata.js'
import { AnchoviesError, isAnchoviesError } from '../errors.js'
import type { Operator } from '../operators/operator.js'
import type { TaskPhase, TaskType } from '../types.js'
import type { Stage } from '../datastore/stage.js'
import { withDeadline } from './deadline.js'
import { errData, type TaskLog } from './task-log.js'

/** How a phase task ended. */
export type PhaseOutcome = 'ok' | 'aborted' | 'failed'

/** What phase tasks need from the run. */
export interface PhaseEnv {
  readonly log: Logger
  readonly taskLog: TaskLog
  /** Seconds user code may take to stop after its signal aborted, before it is abandoned. */
  readonly abortGraceMs: number
  /** The operator (undefined until startup built it). */
  operator(): Operator | undefined
  /** The context state for a task of `batch` staged in `stage`. */
  state(
    batch: BatchInfo | undefined,
    stage: Stage | undefined,
    signal: AbortSignal | undefined,
    task: TaskInfo,
  ): RunState
}

/** Runs the operator's lifecycle hooks as logged tasks (STARTUP, XOPEN, XCLOSE, SHUTDOWN, and ERROR on failure). */
export class Phases {
  constructor(private readonly env: PhaseEnv) {}

  /** Calls every hook the operator registered for `phase`, in declaration order. */
  async hooks(phase: TaskPhase, ...args: unknown[]): Promise<void> {
    const operator = this.env.operator()
    if (!operator) return
    for (const [name, phases] of readMembers<TaskPhase[]>(META.hooks, operator, true)) {
      if (phases.includes(phase))
        await (operator as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args)
    }
  }

  /**
   * Runs `fn` as the task `type`; it is abandoned `abortGraceMs` after `signal` aborts. A failure is logged and
   * runs the error phase; an abort (the run is stopping) is not a failure of its own.
   */
  async run(
    type: TaskType,
    batch: BatchInfo | null,
    fn: (task: TaskInfo) => Promise<void>,
    stage?: Stage,
    signal?: AbortSignal,
  ): Promise<PhaseOutcome> {
    const task: TaskInfo & { data: Record<string, unknown> } = { type, table: null, data: {} }
    const started = new Date()
    let error: unknown
    try {
      const work = runWith(this.env.state(batch ?? undefined, stage, signal, task), () => fn(task))
      work.catch(() => undefined)
      await withDeadline(work, signal, this.env.abortGraceMs)
    } catch (err) {
      error = err
    }
    this.env.taskLog.record(task, batch?.batchId ?? null, started, error)
    if (error === undefined) return 'ok'
    if (isAnchoviesError(error, 'ANCH_ERR_ABORTED')) {
      this.env.log.warn({ phase: type }, `${type} interrupted: the run is stopping`)
      return 'aborted'
    }
    this.env.log.error({ err: error, phase: type }, `${type} failed`)
    await this.error(error, batch, type)
    return 'failed'
  }

  /** The error phase: the operator's `error` hooks, logged as an ERROR task carrying the failure. */
  async error(error: unknown, batch: BatchInfo | null, failedTask: TaskType, table?: string): Promise<void> {
    const task: TaskInfo & { data: Record<string, unknown> } = {
      type: 'ERROR',
      table: null,
      data: { failed_task: failedTask, ...(table ? { tbl: table } : {}), ...errData(error) },
    }
    const started = new Date()
    let hookError: unknown
    try {
      await runWith(this.env.state(batch ?? undefined, undefined, undefined, task), () =>
        this.hooks('error', error, { phase: failedTask, table: table ?? null }),
      )
    } catch (err) {
      hookError = err
      this.env.log.error({ err }, 'an error hook failed')
    }
    this.env.taskLog.record(task, batch?.batchId ?? null, started, hookError ?? error)
  }
}

/** Closes connections in reverse order of opening; every one is tried, the first failure is reported. */
export async function closeAll(connections: readonly { close(): Promise<void> }[]): Promise<void> {
  const errors: unknown[] = []
  for (const c of [...connections].reverse()) {
    try {
      await c.close()
    } catch (err) {
      errors.push(err)
    }
  }
  if (errors.length)
    throw new AnchoviesError('ANCH_ERR_CONNECTION', `closing ${errors.length} connection(s) failed`, {
      cause: errors[0],
    })
}
