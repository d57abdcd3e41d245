import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { BatchInfo, RunState, SessionInfo, TaskInfo } from '../context/context.js'
import { currentState, runWith } from '../context/context.js'
import type { Settings } from '../config/load-config.js'
import { CommitLog } from '../datastore/commit-log.js'
import type { Datastore, DatastoreLock } from '../datastore/datastore.js'
import { anchovyHome, type CheckpointStore, type DataBuffer, type StoreContext, type TableStore, type TaskStore } from '../datastore/stores.js'
import { AnchoviesError, AnchovyExecutionTimeout, EXIT, isAnchoviesError } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { validateName } from '../names.js'
import type { Operator, OperatorRuntime } from '../operators/operator.js'
import { qualifiedName } from '../tables.js'
import type { Table, TaskPhase, TaskType } from '../types.js'
import { META, readMembers } from '../decorators/metadata.js'
import { openConnections, type OpenConnection } from '../connections/manager.js'
import { runChain, type TableTask } from './chain-runner.js'
import { globMatch } from './glob.js'
import { planBatch } from './plan.js'
import { withDeadline } from './deadline.js'
import { errData, TaskLog } from './task-log.js'
import { CommittedCheckpoints, StagingScope } from './scope.js'

/** The store classes a run uses (replaceable with `--*-cls`). */
export interface StoreClasses {
  checkpoint: new (ctx: StoreContext) => CheckpointStore
  task: new (ctx: StoreContext) => TaskStore
  table: new (ctx: StoreContext) => TableStore
  dataBuffer: new (ctx: StoreContext) => DataBuffer
}

/** What a run needs. */
export interface RunOptions {
  readonly settings: Settings
  readonly configTables: readonly Table[]
  readonly operatorClass: new () => Operator
  /** Connection classes of the operator's plugin, by connection id. */
  readonly connectionClasses: Readonly<Record<string, new (attrs: Record<string, unknown>) => unknown>>
  readonly datastore: Datastore
  readonly stores: StoreClasses
  readonly logger: Logger
  readonly env: NodeJS.ProcessEnv
  /** Listen to SIGTERM/SIGINT (the CLI does; tests driving a run in-process may not). */
  readonly handleSignals?: boolean
  /** Called as each timed phase begins (a supervising watchdog re-arms its deadline there). */
  readonly onPhase?: (phase: 'startup' | 'batch' | 'shutdown') => void
}

/** What a finished run reports. */
export interface RunResult {
  readonly exitCode: number
  readonly results: Record<string, unknown>
}

/** One session of one anchovy: lock, startup, batches (once, or in a loop as a service), shutdown. */
export class AnchovyRun {
  private readonly s: Settings
  private readonly log: Logger
  private readonly storeCtx: StoreContext
  private readonly checkpointStore: CheckpointStore
  private readonly taskStore: TaskStore
  private readonly tableStore: TableStore
  private readonly dataBuffer: DataBuffer
  private readonly commitLog: CommitLog
  private readonly session: SessionInfo
  private readonly home: string
  private committed!: CommittedCheckpoints
  private sessionScope!: StagingScope
  private operator!: Operator
  private connections: OpenConnection[] = []
  private lock: DatastoreLock | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private fileCounter = 0
  private readonly runTag = randomBytes(4).toString('hex')
  private currentBatch: { id: string; controller: AbortController } | undefined
  private stopRequested = false
  /** Aborted when the run must stop (timeout, signal, lost lock): bounds hooks that ignore it by abort_grace. */
  private readonly stopping = new AbortController()
  private wake: (() => void) | undefined
  private timedOut = false
  private configError = false
  private failed = false
  private lockLost: Error | undefined
  private readonly tableRecords = new Map<string, string>()
  private readonly taskLog: TaskLog

  constructor(private readonly opts: RunOptions) {
    this.s = opts.settings
    validateName('anchovy id', this.s.id)
    validateName('user', this.s.user)
    this.storeCtx = { datastore: opts.datastore, user: this.s.user, anchovyId: this.s.id, settings: this.s }
    this.checkpointStore = new opts.stores.checkpoint(this.storeCtx)
    this.taskStore = new opts.stores.task(this.storeCtx)
    this.tableStore = new opts.stores.table(this.storeCtx)
    this.dataBuffer = new opts.stores.dataBuffer(this.storeCtx)
    this.home = anchovyHome(this.storeCtx)
    this.commitLog = new CommitLog(opts.datastore, this.home)
    const now = new Date()
    const sessionId = `${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}.${this.runTag}`
    this.session = {
      anchovyId: this.s.id,
      user: this.s.user,
      sessionId,
      operator: opts.operatorClass.name,
      startedAt: now,
      upstream: [...this.s.upstream],
      service: this.s.service,
    }
    this.log = opts.logger.child({ anchovy_id: this.s.id, anchovy_user: this.s.user, session_id: sessionId })
    this.taskLog = new TaskLog(this.taskStore, this.session, this.log)
  }

  /** Runs the whole session and returns the exit code; never throws for table or phase failures. */
  async run(): Promise<RunResult> {
    const ttl = this.s.lock_ttl * 1000
    this.lock = await this.opts.datastore.lock(`${this.home}/$lock`, ttl)
    this.heartbeat = setInterval(() => {
      this.lock?.renew().catch((err: unknown) => {
        this.lockLost = err as Error
        this.log.error({ err }, 'lost the run lock; aborting')
        this.requestStop(err as Error)
      })
    }, Math.max(1000, ttl / 3))
    this.heartbeat.unref()
    const onSignal = (sig: NodeJS.Signals): void => {
      if (this.stopRequested) {
        this.log.warn({ signal: sig }, 'second signal: exiting now')
        process.exit(EXIT.FAILED)
      }
      this.log.info({ signal: sig }, 'stopping: aborting the current batch, committing what completed')
      this.requestStop(new AnchoviesError('ANCH_ERR_ABORTED', `batch aborted by ${sig}`))
    }
    if (this.opts.handleSignals) {
      process.on('SIGTERM', onSignal)
      process.on('SIGINT', onSignal)
    }
    let exitCode: number = EXIT.OK
    let results: Record<string, unknown> = {}
    try {
      await this.recover()
      this.opts.onPhase?.('startup')
      const startedOk = await this.phaseTask('STARTUP', null, async () => {
        this.operator = new this.opts.operatorClass()
        this.operator.runtime = this.operatorRuntime()
        this.connections = await openConnections(this.operator, this.opts.connectionClasses, this.opts.env, this.log)
        await this.hooks('startup')
      }, undefined, this.stopping.signal)
      if (startedOk) {
        for (let n = 0; ; n++) {
          await this.runBatch(n)
          if (!this.s.service || this.stopRequested || this.timedOut || this.lockLost) break
          if (this.s.max_batches > 0 && n + 1 >= this.s.max_batches) break
          await this.pause(this.s.interval * 1000)
          if (this.stopRequested) break
        }
      }
      this.opts.onPhase?.('shutdown')
      await this.phaseTask('SHUTDOWN', null, async () => {
        try {
          await this.hooks('shutdown')
        } finally {
          await this.closeConnections()
        }
        if (!this.sessionScope.empty) await this.commit(this.sessionScope, null, [])
        // Data files of abandoned tables (timeout) may still be in flight: leave the marker for the next run then.
        if (!this.timedOut && !this.stopRequested) await this.opts.datastore.delete(this.inflightPath())
      }, undefined, this.stopping.signal)
    } finally {
      if (this.opts.handleSignals) {
        process.off('SIGTERM', onSignal)
        process.off('SIGINT', onSignal)
      }
      clearInterval(this.heartbeat)
      await this.taskLog.flush()
      results = this.taskLog.results(this.failed || this.timedOut || this.lockLost !== undefined)
      exitCode = this.configError ? EXIT.USAGE : this.timedOut ? EXIT.TIMEOUT : this.failed || this.lockLost ? EXIT.FAILED : EXIT.OK
      results.exit_code = exitCode
      try {
        await this.taskStore.writeResults(this.session.sessionId, redact(JSON.stringify(results, null, 2)))
      } catch (err) {
        this.log.error({ err }, 'could not write the run results')
      }
      await this.lock.release().catch((err: unknown) => this.log.warn({ err }, 'could not release the run lock'))
    }
    return { exitCode, results }
  }

  private requestStop(reason?: Error): void {
    this.stopRequested = true
    if (reason) this.currentBatch?.controller.abort(reason)
    if (!this.stopping.signal.aborted) this.stopping.abort(reason ?? new AnchoviesError('ANCH_ERR_ABORTED', 'the run is stopping'))
    this.wake?.()
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      this.wake = () => {
        clearTimeout(t)
        resolve()
      }
    })
    this.wake = undefined
  }

  /** Re-applies the newest commit (a crash may have stopped after the record and before the files), then loads checkpoints. */
  private async recover(): Promise<void> {
    const latest = await this.commitLog.latest()
    if (latest) {
      await this.checkpointStore.apply(latest.checkpoints, latest.deleted_checkpoints)
      await this.tableStore.apply(latest.tables)
      await this.commitLog.repairHead()
    }
    await this.removeOrphans(latest?.files ?? [])
    this.committed = new CommittedCheckpoints(await this.checkpointStore.load())
    this.sessionScope = new StagingScope(this.committed)
    for (const t of await this.tableStore.load()) this.tableRecords.set(t.name, JSON.stringify(this.tableStore.record(t)))
  }

  /** `$inflight.json` names the batch that may be writing data files (written at XOPEN, removed at shutdown). */
  private inflightPath(): string {
    return `${this.home}/$inflight.json`
  }

  /**
   * Deletes the data files of a batch that a crash stopped before it committed (they were never visible to
   * anyone). Only the batch named in `$inflight.json` can have left any, and only the newest commit can hold its
   * files, so this costs nothing after a clean run.
   */
  private async removeOrphans(latestFiles: readonly { path: string }[]): Promise<void> {
    const raw = await this.opts.datastore.read(this.inflightPath())
    if (!raw) return
    const tag = (JSON.parse(raw.toString('utf8')) as { tag?: unknown }).tag
    if (typeof tag === 'string' && /^[0-9a-f]+-[0-9]+$/.test(tag)) {
      const committed = new Set(latestFiles.map((f) => f.path))
      const orphans = (await this.opts.datastore.list(`${this.home}/data`)).filter((e) => e.path.includes(`.${tag}-`) && !committed.has(e.path))
      for (const e of orphans) await this.opts.datastore.delete(e.path)
      const partial = (await this.opts.datastore.sweep?.(`${this.home}/data`)) ?? 0
      if (orphans.length + partial) this.log.info({ files: orphans.length, partial_files: partial, batch: tag }, 'removed data files of a batch that never committed')
    }
    await this.opts.datastore.delete(this.inflightPath())
  }

  private operatorRuntime(): OperatorRuntime {
    return {
      settings: this.s,
      datastore: this.opts.datastore,
      user: this.s.user,
      anchovyId: this.s.id,
      configTables: this.opts.configTables,
      tableStore: this.tableStore,
      checkpointStore: this.checkpointStore,
      dataBuffer: this.dataBuffer,
      logger: this.log,
      commitLog: (id: string) => (id === this.s.id ? this.commitLog : new CommitLog(this.opts.datastore, anchovyHome(this.storeCtx, id))),
      stageFiles: (table, files) => {
        const scope = currentState()?.checkpoints
        ;(scope instanceof StagingScope ? scope : this.sessionScope).stage(table, files)
      },
      uniqueFileTag: () => `${this.runTag}-${this.currentBatch?.id ?? 'session'}-${String(this.fileCounter++).padStart(4, '0')}`,
    }
  }

  private baseState(batch?: BatchInfo, scope: StagingScope = this.sessionScope, signal: AbortSignal = new AbortController().signal): RunState {
    return {
      session: this.session,
      ...(batch ? { batch } : {}),
      logger: this.log,
      signal,
      checkpoints: scope,
      validateKey: (k) => validateName('checkpoint key', k),
    }
  }

  private async hooks(phase: TaskPhase, ...args: unknown[]): Promise<void> {
    const hooks = readMembers<TaskPhase[]>(META.hooks, this.operator, true)
    for (const [name, phases] of hooks) {
      if (phases.includes(phase)) await (this.operator as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args)
    }
  }

  /** Runs a phase (STARTUP, XOPEN, XCLOSE, SHUTDOWN) as a logged task; a failure runs the error phase. */
  private async phaseTask(type: TaskType, batch: BatchInfo | null, fn: (task: TaskInfo) => Promise<void>, scope?: StagingScope, signal?: AbortSignal): Promise<boolean> {
    const task: TaskInfo & { data: Record<string, unknown> } = { type, table: null, data: {} }
    const started = new Date()
    const state = { ...this.baseState(batch ?? undefined, scope, signal), task }
    let error: unknown
    try {
      const work = runWith(state, () => fn(task))
      work.catch(() => undefined)
      await withDeadline(work, signal, this.s.abort_grace * 1000)
    } catch (err) {
      error = err
    }
    this.taskLog.record(task, batch?.batchId ?? null, started, error)
    if (error !== undefined && isAnchoviesError(error, 'ANCH_ERR_ABORTED')) {
      this.log.warn({ phase: type }, `${type} interrupted: the run is stopping`)
      return false
    }
    if (error !== undefined) {
      this.failed = true
      if (type === 'STARTUP' && error instanceof AnchoviesError && error.code === 'ANCH_ERR_CONNECTION_MISSING') this.configError = true
      this.log.error({ err: error, phase: type }, `${type} failed`)
      await this.errorPhase(error, batch, type)
      return false
    }
    return true
  }

  private async errorPhase(error: unknown, batch: BatchInfo | null, failedTask: TaskType, table?: string): Promise<void> {
    const task: TaskInfo & { data: Record<string, unknown> } = { type: 'ERROR', table: null, data: { failed_task: failedTask, ...(table ? { tbl: table } : {}), ...errData(error) } }
    const started = new Date()
    let hookError: unknown
    if (this.operator) {
      try {
        await runWith({ ...this.baseState(batch ?? undefined), task }, () => this.hooks('error', error, { phase: failedTask, table: table ?? null }))
      } catch (err) {
        hookError = err
        this.log.error({ err }, 'an error hook failed')
      }
    }
    this.taskLog.record(task, batch?.batchId ?? null, started, hookError ?? error)
  }

  private select(tables: Table[]): Table[] {
    const matches = (patterns: readonly string[], t: Table): boolean =>
      patterns.some((p) => globMatch(p, t.name) || globMatch(p, qualifiedName(t)))
    return tables.filter((t) => (this.s.enabled.length === 0 || matches(this.s.enabled, t)) && !matches(this.s.disabled, t))
  }

  private async runBatch(n: number): Promise<void> {
    const batchId = String(n).padStart(3, '0')
    this.opts.onPhase?.('batch')
    const controller = new AbortController()
    this.currentBatch = { id: batchId, controller }
    if (this.stopRequested) controller.abort(new AnchoviesError('ANCH_ERR_ABORTED', 'batch aborted before it started'))
    const timeout = this.s.execution_timeout
    const timer = timeout ? setTimeout(() => {
      this.timedOut = true
      this.log.error({ seconds: timeout }, 'execution timeout: aborting the batch')
      const err = new AnchovyExecutionTimeout(timeout)
      controller.abort(err)
      if (!this.stopping.signal.aborted) this.stopping.abort(err)
    }, timeout * 1000) : undefined
    const selected: Table[] = []
    const batch: BatchInfo = { batchId, tables: selected, signal: controller.signal }
    const scope = new StagingScope(this.sessionScope)
    const openedAt = new Date()
    const batchLog = this.log.child({ batch_id: batchId })
    let known: Table[] = []
    const failedBefore = this.failed
    this.failed = false

    await this.phaseTask('XOPEN', batch, async (task) => {
      await this.opts.datastore.write(this.inflightPath(), JSON.stringify({ tag: `${this.runTag}-${batchId}`, since: openedAt.toISOString() }))
      await this.hooks('xopen')
      known = await this.operator.discoverTbls()
      selected.push(...this.select(known))
      task.data.tbls = selected.map(qualifiedName)
    }, scope, controller.signal)

    const succeeded: Table[] = []
    if (selected.length && !controller.signal.aborted) {
      await this.runTables(batch, known, scope, controller, batchLog, succeeded)
    }

    await this.phaseTask('XCLOSE', batch, async (task) => {
      try {
        await this.hooks('xclose')
      } finally {
        const rec = await this.commit(scope, batchId, succeeded)
        if (rec) task.data.commit = rec
      }
    }, scope, this.stopping.signal)
    clearTimeout(timer)
    const status = this.failed || this.timedOut ? 'ERR' : 'OK'
    this.failed ||= failedBefore
    this.taskLog.closeBatch({ batch_id: batchId, status, opened_at: openedAt.toISOString(), tbls: selected.map(qualifiedName).join(', ') })
    if (this.s.service) {
      const hb = { anchovy_id: this.s.id, anchovy_user: this.s.user, session_id: this.session.sessionId, batch_id: batchId, status, at: new Date().toISOString(), pid: process.pid }
      this.taskLog.track(this.taskStore.writeHeartbeat(JSON.stringify(hb)), 'could not write the heartbeat')
    }
    this.currentBatch = undefined
  }

  private async runTables(batch: BatchInfo, known: Table[], scope: StagingScope, controller: AbortController, logger: Logger, succeeded: Table[]): Promise<void> {
    const plan = planBatch(this.operator.streamMethods(), batch.tables, known)
    for (const [key, err] of plan.failures) {
      const table = batch.tables.find((t) => qualifiedName(t) === key)!
      const task: TaskInfo & { data: Record<string, unknown> } = { type: 'TABLE', table, data: {} }
      this.taskLog.record(task, batch.batchId, new Date(), err)
      this.failed = true
      await this.errorPhase(err, batch, 'TABLE', key)
    }
    const queue = [...plan.chains]
    const worker = async (): Promise<void> => {
      for (let chain = queue.shift(); chain; chain = queue.shift()) {
        if (controller.signal.aborted) return
        const chainScope = new StagingScope(scope)
        const tasks = new Map<string, TableTask>()
        const startedAt = new Date()
        for (const key of chain.tables) tasks.set(key, { key, startedAt, info: { type: 'TABLE', table: plan.tables.get(key)!.table, data: {} } })
        let error: unknown
        const run = runChain(chain, {
          operator: this.operator,
          plan,
          base: { session: this.session, batch, validateKey: (k) => validateName('checkpoint key', k) },
          logger,
          scope: chainScope,
          signal: controller.signal,
          queueSize: this.s.stream_queue_size,
          progressMs: this.s.progress_interval * 1000,
          tasks,
        })
        run.catch(() => undefined)
        try {
          await withDeadline(run, controller.signal, this.s.abort_grace * 1000)
        } catch (err) {
          error = err
        }
        if (error === undefined && controller.signal.aborted) error = controller.signal.reason
        if (error === undefined) {
          chainScope.mergeInto(scope)
          for (const key of chain.tables) if (plan.tables.get(key)!.selected) succeeded.push(plan.tables.get(key)!.table)
        } else {
          chainScope.discard()
        }
        // Stopped by a signal or --fail-fast: whatever the table threw on its way out is not its own failure.
        const isAbort = isAnchoviesError(error, 'ANCH_ERR_ABORTED') || (controller.signal.aborted && isAnchoviesError(controller.signal.reason, 'ANCH_ERR_ABORTED'))
        for (const key of chain.tables) {
          if (!plan.tables.get(key)!.selected) continue
          const task = tasks.get(key)!
          this.taskLog.record(task.info, batch.batchId, startedAt, error)
          if (error === undefined) logger.info({ table: key, rows: task.info.data.rows, ms: Date.now() - startedAt.getTime() }, 'table done')
        }
        if (error !== undefined) {
          if (!isAbort) {
            this.failed = true
            logger.error({ err: error, table: chain.root }, 'table failed')
            await this.errorPhase(error, batch, 'TABLE', chain.root)
            if (this.s.fail_fast) controller.abort(new AnchoviesError('ANCH_ERR_ABORTED', `--fail-fast: table ${chain.root} failed`))
          }
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.s.concurrency, Math.max(1, plan.chains.length)) }, worker))
  }

  /** Makes a batch's staged files, checkpoints and table metadata visible in one commit record. */
  private async commit(scope: StagingScope, batchId: string | null, tables: Table[]): Promise<Record<string, unknown> | undefined> {
    if (this.sessionScope !== scope && !this.sessionScope.empty) {
      this.sessionScope.mergeInto(scope)
      this.sessionScope = new StagingScope(this.committed)
    }
    const { set, deleted } = scope.changes()
    const tableRecords: Record<string, unknown>[] = []
    for (const t of tables) {
      if (t.namespace) continue
      const rec = this.tableStore.record(t)
      const text = JSON.stringify(rec)
      if (this.tableRecords.get(t.name) !== text) tableRecords.push(rec)
    }
    const callbacks = [...scope.afterCommit]
    if (scope.files.length === 0 && Object.keys(set).length === 0 && deleted.length === 0 && tableRecords.length === 0) {
      if (this.sessionScope === scope) this.sessionScope = new StagingScope(this.committed)
      scope.discard()
      await this.runAfterCommit(callbacks)
      return undefined
    }
    const rec = await this.commitLog.append({
      anchovy_id: this.s.id,
      anchovy_user: this.s.user,
      session_id: this.session.sessionId,
      batch_id: batchId,
      committed_at: new Date().toISOString(),
      files: [...scope.files],
      checkpoints: set,
      deleted_checkpoints: deleted,
      tables: tableRecords,
    })
    this.committed.apply(set, deleted)
    for (const r of tableRecords) this.tableRecords.set(String(r.name), JSON.stringify(r))
    if (this.sessionScope === scope) this.sessionScope = new StagingScope(this.committed)
    scope.discard()
    await this.checkpointStore.apply(set, deleted)
    await this.tableStore.apply(tableRecords)
    await this.runAfterCommit(callbacks)
    this.log.info({ batch_id: batchId, seq: rec.seq, files: rec.files.length, checkpoints: Object.keys(set).length + deleted.length }, 'committed')
    return { seq: rec.seq, files: rec.files.length, rows: rec.files.reduce((n, f) => n + f.rows, 0) }
  }

  private async runAfterCommit(callbacks: (() => Promise<void> | void)[]): Promise<void> {
    for (const fn of callbacks) {
      try {
        await fn()
      } catch (err) {
        this.log.warn({ err }, 'an afterCommit callback failed (the batch is committed)')
      }
    }
  }

  private async closeConnections(): Promise<void> {
    const errors: unknown[] = []
    for (const c of [...this.connections].reverse()) {
      try {
        await c.close()
      } catch (err) {
        errors.push(err)
      }
    }
    this.connections = []
    if (errors.length) throw new AnchoviesError('ANCH_ERR_CONNECTION', `closing ${errors.length} connection(s) failed`, { cause: errors[0] })
  }
}
