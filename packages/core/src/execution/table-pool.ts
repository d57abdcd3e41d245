import type { Logger } from 'pino'
import type { BatchInfo, SessionInfo, TaskInfo } from '../context/context.js'
import type { Stage } from '../datastore/stage.js'
import { AnchoviesError, isAnchoviesError } from '../errors.js'
import { validateName } from '../names.js'
import type { Operator } from '../operators/operator.js'
import { qualifiedName } from '../tables.js'
import type { Table } from '../types.js'
import { runChain, type CommitLimits, type TableTask } from './chain-runner.js'
import { withDeadline } from './deadline.js'
import type { Phases } from './phases.js'
import { planBatch } from './plan.js'
import type { TaskLog } from './task-log.js'

/** What the table tasks of one batch need. */
export interface TablePoolEnv {
  readonly operator: Operator
  readonly session: SessionInfo
  readonly batch: BatchInfo
  /** Every table the operator knows (upstream tables of transforms included). */
  readonly known: readonly Table[]
  /** The batch's stage: each chain stages in a child, merged on success, discarded (files deleted) on failure. */
  readonly stage: Stage
  readonly controller: AbortController
  readonly logger: Logger
  readonly taskLog: TaskLog
  readonly phases: Phases
  readonly concurrency: number
  readonly queueSize: number
  readonly progressMs: number
  readonly abortGraceMs: number
  readonly failFast: boolean
  /** `--allow-failures`: every table's failure is allowed (else only tables with `allow_failure: true`). */
  readonly allowFailures: boolean
  /** Epoch ms when the batch times out (-t), if it does. */
  readonly deadline: number | undefined
  readonly limits: CommitLimits
  /** Commits a chain's stage so far (intermediate commit of the tables given). */
  readonly commit: (stage: Stage, tables: readonly Table[]) => Promise<boolean>
}

/** A table that failed in a batch, as the run results list it. */
export interface TableFailure {
  readonly table: string
  readonly code: string | null
  readonly message: string
  /** Allowed (`--allow-failures` or the table's `allow_failure: true`): the run exits 0 with status DEGRADED. */
  readonly allowed: boolean
}

/** Whether a table's config says its failure is allowed (`allow_failure: true` under `tbls:`). */
export function allowsFailure(table: Table): boolean {
  const v = Object.hasOwn(table.properties, 'allow_failure') ? table.properties.allow_failure : undefined
  return v === true || v === 'true'
}

/** What the table tasks of one batch came to. */
export interface TablesOutcome {
  readonly succeeded: Table[]
  /** A table failed whose failure is not allowed. */
  readonly failed: boolean
  /** Every failed table, allowed or not. */
  readonly failures: TableFailure[]
}

/**
 * Runs the batch's table chains on `concurrency` workers. Returns the selected tables that succeeded, whether any
 * table failed without being allowed to, and every failure (a table stopped by a signal or --fail-fast has not
 * failed on its own).
 */
export async function runTables(env: TablePoolEnv): Promise<TablesOutcome> {
  const { batch, controller, logger } = env
  const plan = planBatch(env.operator.streamMethods(), batch.tables, [...env.known])
  const succeeded: Table[] = []
  const failures: TableFailure[] = []
  let failed = false
  const note = (keys: readonly string[], tables: readonly Table[], err: unknown): boolean => {
    const allowed = env.allowFailures || (tables.length > 0 && tables.every(allowsFailure))
    const e = err as { code?: unknown; message?: unknown }
    for (const table of keys)
      failures.push({
        table,
        code: typeof e?.code === 'string' ? e.code : null,
        message: String(e?.message ?? err),
        allowed,
      })
    if (!allowed) failed = true
    return allowed
  }
  for (const [key, err] of plan.failures) {
    const table = batch.tables.find((t) => qualifiedName(t) === key)!
    const allowed = note([key], [table], err)
    env.taskLog.record(
      { type: 'TABLE', table, data: allowed ? { allowed_failure: true } : {} },
      batch.batchId,
      new Date(),
      err,
    )
    await env.phases.error(err, batch, 'TABLE', key)
  }
  const queue = [...plan.chains]
  const worker = async (): Promise<void> => {
    for (let chain = queue.shift(); chain; chain = queue.shift()) {
      if (controller.signal.aborted) return
      const stage = env.stage.child()
      const tasks = new Map<string, TableTask>()
      const startedAt = new Date()
      for (const key of chain.tables)
        tasks.set(key, {
          key,
          startedAt,
          info: { type: 'TABLE', table: plan.tables.get(key)!.table, data: {} } as TaskInfo & {
            data: Record<string, unknown>
          },
        })
      let error: unknown
      const run = runChain(chain, {
        operator: env.operator,
        plan,
        base: { session: env.session, batch, validateKey: (k) => validateName('checkpoint key', k) },
        logger,
        stage,
        signal: controller.signal,
        queueSize: env.queueSize,
        progressMs: env.progressMs,
        tasks,
        deadline: env.deadline,
        limits: env.limits,
        commit: (tables) => env.commit(stage, tables),
      })
      run.catch(() => undefined)
      try {
        await withDeadline(run, controller.signal, env.abortGraceMs)
      } catch (err) {
        error = err
      }
      if (error === undefined && controller.signal.aborted) error = controller.signal.reason
      if (error === undefined) {
        stage.mergeInto(env.stage)
        for (const key of chain.tables) if (plan.tables.get(key)!.selected) succeeded.push(plan.tables.get(key)!.table)
      } else {
        await stage.discard()
      }
      // Stopped by a signal or --fail-fast: whatever the table threw on its way out is not its own failure.
      const isAbort =
        isAnchoviesError(error, 'ANCH_ERR_ABORTED') ||
        (controller.signal.aborted && isAnchoviesError(controller.signal.reason, 'ANCH_ERR_ABORTED'))
      const selectedKeys = chain.tables.filter((key) => plan.tables.get(key)!.selected)
      const allowed =
        error !== undefined &&
        !isAbort &&
        note(
          selectedKeys,
          selectedKeys.map((key) => plan.tables.get(key)!.table),
          error,
        )
      for (const key of selectedKeys) {
        const task = tasks.get(key)!
        if (allowed) task.info.data.allowed_failure = true
        env.taskLog.record(task.info, batch.batchId, startedAt, error)
        if (error === undefined)
          logger.info({ table: key, rows: task.info.data.rows, ms: Date.now() - startedAt.getTime() }, 'table done')
      }
      if (error !== undefined && !isAbort) {
        if (allowed)
          logger.warn({ err: error, table: chain.root }, 'table failed (allowed: the run goes on and ends DEGRADED)')
        else logger.error({ err: error, table: chain.root }, 'table failed')
        await env.phases.error(error, batch, 'TABLE', chain.root)
        if (env.failFast && !allowed)
          controller.abort(new AnchoviesError('ANCH_ERR_ABORTED', `--fail-fast: table ${chain.root} failed`))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(env.concurrency, Math.max(1, plan.chains.length)) }, worker))
  return { succeeded, failed, failures }
}
