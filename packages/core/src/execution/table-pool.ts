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
  /** Epoch ms when the batch times out (-t), if it does. */
  readonly deadline: number | undefined
  readonly limits: CommitLimits
  /** Commits a chain's stage so far (intermediate commit of the tables given). */
  readonly commit: (stage: Stage, tables: readonly Table[]) => Promise<boolean>
}

/**
 * Runs the batch's table chains on `concurrency` workers. Returns the selected tables that succeeded and whether
 * any table failed (a table stopped by a signal or --fail-fast has not failed on its own).
 */
export async function runTables(env: TablePoolEnv): Promise<{ succeeded: Table[]; failed: boolean }> {
  const { batch, controller, logger } = env
  const plan = planBatch(env.operator.streamMethods(), batch.tables, [...env.known])
  const succeeded: Table[] = []
  let failed = false
  for (const [key, err] of plan.failures) {
    const table = batch.tables.find((t) => qualifiedName(t) === key)!
    env.taskLog.record({ type: 'TABLE', table, data: {} }, batch.batchId, new Date(), err)
    failed = true
    await env.phases.error(err, batch, 'TABLE', key)
  }
  const queue = [...plan.chains]
  const worker = async (): Promise<void> => {
    for (let chain = queue.shift(); chain; chain = queue.shift()) {
      if (controller.signal.aborted) return
      const stage = env.stage.child()
      const tasks = new Map<string, TableTask>()
      const startedAt = new Date()
      for (const key of chain.tables) tasks.set(key, { key, startedAt, info: { type: 'TABLE', table: plan.tables.get(key)!.table, data: {} } as TaskInfo & { data: Record<string, unknown> } })
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
      const isAbort = isAnchoviesError(error, 'ANCH_ERR_ABORTED') || (controller.signal.aborted && isAnchoviesError(controller.signal.reason, 'ANCH_ERR_ABORTED'))
      for (const key of chain.tables) {
        if (!plan.tables.get(key)!.selected) continue
        const task = tasks.get(key)!
        env.taskLog.record(task.info, batch.batchId, startedAt, error)
        if (error === undefined) logger.info({ table: key, rows: task.info.data.rows, ms: Date.now() - startedAt.getTime() }, 'table done')
      }
      if (error !== undefined && !isAbort) {
        failed = true
        logger.error({ err: error, table: chain.root }, 'table failed')
        await env.phases.error(error, batch, 'TABLE', chain.root)
        if (env.failFast) controller.abort(new AnchoviesError('ANCH_ERR_ABORTED', `--fail-fast: table ${chain.root} failed`))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(env.concurrency, Math.max(1, plan.chains.length)) }, worker))
  return { succeeded, failed }
}
