import type { Logger } from 'pino'
import type { SessionInfo, TaskInfo } from '../context/context.js'
import type { TaskRecord, TaskStore } from '../datastore/stores.js'
import { redact } from '../logging/secrets.js'
import { qualifiedName } from '../tables.js'

/** A task as it appears in the run results. */
export type ResultTask = Omit<
  TaskRecord,
  'anchovy_id' | 'anchovy_user' | 'session_id' | 'batch_id' | 'task_key' | 'started_at' | 'completed_at'
>

/** A batch as it appears in the run results. */
export interface BatchResult {
  readonly batch_id: string
  /** DEGRADED: no table failed that was not allowed to, but some failed (allowed) or were stopped unfinished. */
  readonly status: 'OK' | 'ERR' | 'DEGRADED'
  readonly opened_at: string
  readonly closed_at: string
  readonly tbls: string
  readonly done_tasks: readonly ResultTask[]
}

/** Results keep the newest batches only, so a long-running service does not grow without bound. */
const MAX_RESULT_BATCHES = 100

/** Results keep the newest failures and warnings only (a service with a failing table adds one every batch). */
const MAX_RESULT_ENTRIES = 1000

/** A failed table in the run results. */
export interface FailureResult {
  readonly batch_id: string
  readonly table: string
  readonly code: string | null
  readonly message: string
  readonly allowed: boolean
}

/** A warning in the run results (a selection that matches nothing, an upstream that never committed, …). */
export interface RunWarning {
  readonly code: string
  readonly message: string
}

/** `err_type`/`err_msg`/`err_code` for task data (messages are redacted when written). */
export function errData(error: unknown): Record<string, unknown> {
  if (error === undefined) return {}
  const e = error as { name?: string; message?: string; code?: unknown }
  return {
    err_type: e?.name ?? typeof error,
    err_msg: String(e?.message ?? error),
    ...(typeof e?.code === 'string' ? { err_code: e.code } : {}),
  }
}

/** Writes one task log record per task (never overwriting) and gathers the run results. */
export class TaskLog {
  private counter = 0
  private readonly pending = new Set<Promise<unknown>>()
  private current: ResultTask[] = []
  private readonly batches: BatchResult[] = []
  private startup: ResultTask | undefined
  private shutdown: ResultTask | undefined
  private readonly failures: FailureResult[] = []
  private readonly warnings: RunWarning[] = []
  private readonly unfinished: { batch_id: string; tbls: string[] }[] = []

  constructor(
    private readonly store: TaskStore,
    private readonly session: SessionInfo,
    private readonly log: Logger,
  ) {}

  /** Records a finished task: its task log file is written in the background (see `flush`). */
  record(task: TaskInfo, batchId: string | null, started: Date, error: unknown): void {
    const done = new Date()
    if (error !== undefined) Object.assign(task.data, errData(error))
    const tbl = task.table ? qualifiedName(task.table) : null
    const record: TaskRecord = {
      anchovy_id: this.session.anchovyId,
      anchovy_user: this.session.user,
      batch_id: batchId,
      completed_at: done.toISOString(),
      data: { ...task.data },
      duration: done.getTime() - started.getTime(),
      operator: this.session.operator,
      session_id: this.session.sessionId,
      started_at: started.toISOString(),
      status: error === undefined ? 'OK' : 'ERR',
      task_key: tbl ? `TABLE-${tbl}` : task.type,
      task_type: task.type,
      tbl,
      thread_id: 'main',
      timestamp: done.toISOString(),
    }
    this.track(this.store.write(record, this.counter++, redact(JSON.stringify(record))), 'could not write a task log')
    const { thread_id, operator, status, duration, timestamp, task_type, data } = record
    const short: ResultTask = { thread_id, operator, status, duration, timestamp, task_type, tbl, data }
    if (task.type === 'STARTUP') this.startup = short
    else if (task.type === 'SHUTDOWN') this.shutdown = short
    else this.current.push(short)
  }

  /** Closes the current batch's entry in the results. */
  closeBatch(batch: Omit<BatchResult, 'done_tasks' | 'closed_at'>): void {
    this.batches.push({ ...batch, closed_at: new Date().toISOString(), done_tasks: this.current })
    this.current = []
    if (this.batches.length > MAX_RESULT_BATCHES) this.batches.shift()
  }

  /** Records the failed tables of a batch (allowed or not). */
  fail(batchId: string, failures: readonly Omit<FailureResult, 'batch_id'>[]): void {
    for (const f of failures) this.failures.push({ batch_id: batchId, ...f })
    this.failures.splice(0, Math.max(0, this.failures.length - MAX_RESULT_ENTRIES))
  }

  /** Records selected tables a stop (SIGTERM/SIGINT) left unfinished: the run is DEGRADED, not OK. */
  stopped(batchId: string, tables: readonly string[]): void {
    if (tables.length) this.unfinished.push({ batch_id: batchId, tbls: [...tables] })
    this.unfinished.splice(0, Math.max(0, this.unfinished.length - MAX_RESULT_BATCHES))
  }

  /** Logs a warning and records it for the results (the same warning once per run). */
  warn(warning: RunWarning): void {
    if (this.warnings.some((w) => w.code === warning.code && w.message === warning.message)) return
    this.log.warn({ warning_code: warning.code }, warning.message)
    this.warnings.push(warning)
    this.warnings.splice(0, Math.max(0, this.warnings.length - MAX_RESULT_ENTRIES))
  }

  /** The warnings recorded so far. */
  get warningList(): readonly RunWarning[] {
    return this.warnings
  }

  /** Runs a background write, logging (not throwing) its failure. */
  track(write: Promise<unknown>, failure: string): void {
    const p = write.catch((err: unknown) => this.log.error({ err }, failure)).finally(() => this.pending.delete(p))
    this.pending.add(p)
  }

  /** Waits for every background write. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending])
  }

  /** The run results (`$results/anchovy_run_results.json`). */
  results(failed: boolean): Record<string, unknown> {
    const err =
      failed ||
      this.startup?.status === 'ERR' ||
      this.shutdown?.status === 'ERR' ||
      this.batches.some((b) => b.status === 'ERR')
    const degraded =
      this.failures.length > 0 || this.unfinished.length > 0 || this.batches.some((b) => b.status === 'DEGRADED')
    const status = err ? 'ERR' : degraded ? 'DEGRADED' : 'OK'
    return {
      anchovy_id: this.session.anchovyId,
      anchovy_user: this.session.user,
      session_id: this.session.sessionId,
      operator: this.session.operator,
      startup_at: this.session.startedAt.toISOString(),
      startup_task: this.startup ?? null,
      shutdown_at: new Date().toISOString(),
      shutdown_task: this.shutdown ?? null,
      batches: this.batches,
      failures: this.failures,
      unfinished: this.unfinished,
      warnings: this.warnings,
      status,
    }
  }
}
