import { AsyncLocalStorage } from 'node:async_hooks'
import type { Logger } from 'pino'
import { AnchoviesError } from '../errors.js'
import type { JsonValue, Table, TaskType } from '../types.js'

/** Who is running: available everywhere inside a run through `session()`. */
export interface SessionInfo {
  readonly anchovyId: string
  readonly user: string
  readonly sessionId: string
  /** Operator class name. */
  readonly operator: string
  readonly startedAt: Date
  readonly upstream: readonly string[]
  /** True when running with `-S/--service`. */
  readonly service: boolean
}

/** The current batch: available inside `xopen`, table tasks and `xclose` through `batch()`. */
export interface BatchInfo {
  readonly batchId: string
  /** The active (selected) tables of this batch. */
  readonly tables: readonly Table[]
  /** Aborted on execution timeout or SIGTERM/SIGINT. */
  readonly signal: AbortSignal
}

/** The task being run (a phase or one table). */
export interface TaskInfo {
  readonly type: TaskType
  readonly table: Table | null
  /** Free-form data recorded in the task log's `data` (rows, bytes, …); plugins may add keys. */
  readonly data: Record<string, unknown>
}

/** A checkpoint handle from `context().checkpoint(key)`. */
export interface Checkpoint<T extends JsonValue = JsonValue> {
  /** The value as of this task: what this task set, else what was last committed; undefined when none. */
  get(): T | undefined
  /** Records a new value; it is committed with the batch's data when this task succeeds. */
  set(value: T): void
  /** Removes the checkpoint (committed with the batch). */
  delete(): void
}

/** Reads and stages checkpoint values for one scope (session, batch or table task). */
export interface CheckpointScope {
  get(key: string): JsonValue | undefined
  set(key: string, value: JsonValue | undefined): void
  /** Registers a callback that runs after the batch holding this scope's changes commits (never if it fails). */
  onCommit?(fn: () => Promise<void> | void): void
}

/** Everything `context()` exposes. */
export interface Context {
  readonly session: SessionInfo
  readonly batch: BatchInfo | undefined
  readonly task: TaskInfo | undefined
  readonly table: Table | undefined
  readonly logger: Logger
  readonly signal: AbortSignal
  /** The checkpoint `key` (JSON value) of the running anchovy. */
  checkpoint<T extends JsonValue = JsonValue>(key: string): Checkpoint<T>
  /**
   * Runs `fn` after the commit that makes this task's data and checkpoints visible (e.g. delete or move the
   * source files). Dropped when the task fails. Errors are logged, not raised: the data is committed already.
   */
  afterCommit(fn: () => Promise<void> | void): void
}

/** The state carried through AsyncLocalStorage; built by the executor. */
export interface RunState {
  readonly session: SessionInfo
  readonly batch?: BatchInfo
  readonly task?: TaskInfo
  readonly logger: Logger
  readonly signal: AbortSignal
  readonly checkpoints: CheckpointScope
  readonly validateKey: (key: string) => string
}

const storage = new AsyncLocalStorage<RunState>()

/** Runs `fn` with `state` as the current context. */
export function runWith<T>(state: RunState, fn: () => T): T {
  return storage.run(state, fn)
}

/** The current run state, or undefined outside a run. */
export function currentState(): RunState | undefined {
  return storage.getStore()
}

function required(what: string): RunState {
  const s = storage.getStore()
  if (!s) throw new AnchoviesError('ANCH_ERR_CONTEXT', `${what}() was called outside an anchovies run`)
  return s
}

/** The current run context (session, batch, task, logger, checkpoints). */
export function context(): Context {
  const s = required('context')
  return {
    session: s.session,
    batch: s.batch,
    task: s.task,
    table: s.task?.table ?? undefined,
    logger: s.logger,
    signal: s.signal,
    checkpoint<T extends JsonValue = JsonValue>(key: string): Checkpoint<T> {
      const k = s.validateKey(key)
      return {
        get: () => s.checkpoints.get(k) as T | undefined,
        set: (value: T) => s.checkpoints.set(k, value),
        delete: () => s.checkpoints.set(k, undefined),
      }
    },
    afterCommit(fn) {
      if (!s.checkpoints.onCommit) throw new AnchoviesError('ANCH_ERR_CONTEXT', 'afterCommit() needs a running batch')
      s.checkpoints.onCommit(fn)
    },
  }
}

/** The current session (anchovy id, user, session id). */
export function session(): SessionInfo {
  return required('session').session
}

/** The current batch (batch id, active tables); throws outside a batch. */
export function batch(): BatchInfo {
  const b = required('batch').batch
  if (!b) throw new AnchoviesError('ANCH_ERR_CONTEXT', 'batch() was called outside a batch (startup or shutdown)')
  return b
}
