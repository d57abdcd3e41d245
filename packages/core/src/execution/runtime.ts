import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { BatchInfo, RunState, SessionInfo } from '../context/context.js'
import type { Settings } from '../config/load-config.js'
import { AnchovyState } from '../datastore/anchovy-state.js'
import { CommitLog } from '../datastore/commit-log.js'
import type { Stage } from '../datastore/stage.js'
import {
  anchovyHome,
  type DataBuffer,
  type StoreContext,
  type TableStore,
  type TaskStore,
} from '../datastore/stores.js'
import { AnchoviesError, AnchovyExecutionTimeout, EXIT, isConfigError } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { validateName } from '../names.js'
import type { Operator, OperatorRuntime } from '../operators/operator.js'
import { qualifiedName } from '../tables.js'
import type { Table } from '../types.js'
import { openConnections, type OpenConnection } from '../connections/manager.js'
import { closeAll, Phases, type PhaseOutcome } from './phases.js'
import { ownedBy, selectTables, unmatchedSelection, workerShare } from './plan.js'
import { listenForStop } from './stop-signals.js'
import { runTables } from './table-pool.js'
import { TaskLog } from './task-log.js'
import { writeSummary, type SummaryRun } from '../school/summary.js'
import type { RunOptions, RunResult } from './run-options.js'

export type { Prepared, RunOptions, RunResult } from './run-options.js'

/** How often `--follow` looks for a new upstream commit between batches. */
const FOLLOW_POLL_MS = 250

/**
 * One session of one anchovy: lock and recovery (AnchovyState), startup, batches (once, or in a loop as a
 * service), shutdown, results. Orchestration only: the commit protocol lives in AnchovyState, the table tasks in
 * runTables, the phase tasks in Phases.
 */
export class AnchovyRun {
  private readonly s: Settings
  private log: Logger
  private readonly storeCtx: StoreContext
  private readonly taskStore: TaskStore
  private readonly tableStore: TableStore
  private readonly dataBuffer: DataBuffer
  private readonly state: AnchovyState
  private readonly session: SessionInfo
  private readonly taskLog: TaskLog
  private readonly phases: Phases
  private operator: Operator | undefined
  private connections: OpenConnection[] = []
  private currentBatch: AbortController | undefined
  /** Aborted when the run must stop (timeout, signal, lost lock, stall): bounds hooks that ignore it by abort_grace. */
  private readonly stopping = new AbortController()
  private wake: (() => void) | undefined
  private stopRequested = false
  private timedOut = false
  private configError = false
  private failed = false
  private lockLost = false
  private readonly upstreamEnds = new Map<string, number>()

  constructor(private readonly opts: RunOptions) {
    this.s = opts.settings
    validateName('anchovy id', this.s.id)
    validateName('user', this.s.user)
    this.storeCtx = { datastore: opts.datastore, user: this.s.user, anchovyId: this.s.id, settings: this.s }
    this.taskStore = new opts.stores.task(this.storeCtx)
    this.tableStore = new opts.stores.table(this.storeCtx)
    this.dataBuffer = new opts.stores.dataBuffer(this.storeCtx)
    const now = new Date()
    const sessionId = `${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}.${randomBytes(4).toString('hex')}`
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
    const worker = this.s.workers > 1 ? { num: this.s.worker_num, count: this.s.workers } : undefined
    if (worker) this.log = this.log.child({ worker: `${worker.num}/${worker.count}` })
    this.state = new AnchovyState(
      this.storeCtx,
      { checkpoint: new opts.stores.checkpoint(this.storeCtx), table: this.tableStore, dataBuffer: this.dataBuffer },
      this.log,
      worker,
    )
    this.taskLog = new TaskLog(this.taskStore, this.session, this.log)
    this.phases = new Phases({
      log: this.log,
      taskLog: this.taskLog,
      abortGraceMs: this.s.abort_grace * 1000,
      operator: () => this.operator,
      state: (batch, stage, signal, task) => this.contextState(batch, stage, signal, task),
    })
  }

  /** Who is running (the supervisor of `anchovy start -t` is told before the lock is taken). */
  get sessionInfo(): SessionInfo {
    return this.session
  }

  /** Runs the whole session and returns the exit code; never throws for table or phase failures. */
  async run(): Promise<RunResult> {
    if (this.s.id_defaulted) {
      this.taskLog.warn({
        code: 'ANCH_WARN_ID_DEFAULT',
        message: `no --id given: the anchovy id defaults to the host name "${this.s.id}", which changes when a pod or container is recreated and then starts from zero (no checkpoints, no progress); pass --id or set ACHVY_ID`,
      })
    }
    await this.checkUpstreams()
    await this.state.open(
      this.s.lock_ttl * 1000,
      (err) => {
        this.lockLost = true
        this.log.error({ err }, 'lost the run lock; aborting')
        this.requestStop(err)
      },
      undefined,
      { ...(this.opts.supervisorPid ? { supervisorPid: this.opts.supervisorPid } : {}) },
    )
    const listen = this.listen()
    await this.writeSummary()
    let exitCode: number = EXIT.OK
    let results: Record<string, unknown> = {}
    try {
      this.opts.onPhase?.('startup')
      const started = await this.timed(this.stopping, () =>
        this.phases.run(
          'STARTUP',
          null,
          async () => {
            this.operator = new this.opts.operatorClass()
            this.operator.runtime = this.operatorRuntime()
            try {
              this.connections = await openConnections(
                this.operator,
                this.opts.connectionClasses,
                this.opts.env,
                this.log,
              )
              await this.phases.hooks('startup')
            } catch (err) {
              // A missing connection, driver or plugin setting: fix the configuration (exit 2), nothing ran.
              this.configError = isConfigError(err)
              throw err
            }
          },
          this.state.session,
          this.stopping.signal,
        ),
      )
      this.count(started)
      if (started === 'ok') await this.batches()
      this.opts.onPhase?.('shutdown')
      const ended = await this.timed(this.stopping, () =>
        this.phases.run(
          'SHUTDOWN',
          null,
          async () => {
            try {
              await this.phases.hooks('shutdown')
            } finally {
              const open = this.connections
              this.connections = []
              await closeAll(open)
            }
            await this.state.commit(this.state.session, { sessionId: this.session.sessionId, batchId: null })
          },
          this.state.session,
          this.stopping.signal,
        ),
      )
      this.count(ended)
      // Data files of abandoned tables (timeout, signal) may still be in flight: leave the marker for the next run.
      await this.state.finish(!this.timedOut && !this.stopRequested)
      // A commit or the marker's removal may be what found the lock taken over (the heartbeat had not yet).
      if (this.state.lockLost) this.lockLost = true
      if (this.s.commit_retention_days > 0 && !this.timedOut && !this.stopRequested && !this.failed) {
        await this.state
          .pruneCommits(this.s.commit_retention_days)
          .catch((err: unknown) => this.log.warn({ err }, 'commit retention failed (the next run tries again)'))
      }
      if (this.s.log_retention_days > 0 && !this.timedOut && !this.stopRequested) {
        const cutoff = new Date(Date.now() - this.s.log_retention_days * 86_400_000)
        await this.taskStore.prune(cutoff, this.session.sessionId).then(
          (removed) =>
            removed &&
            this.log.info(
              { removed, days: this.s.log_retention_days },
              'log retention: removed old task logs and session results',
            ),
          (err: unknown) => this.log.warn({ err }, 'log retention failed (the next run tries again)'),
        )
      }
    } finally {
      listen()
      await this.taskLog.flush()
      results = this.taskLog.results(this.failed || this.timedOut || this.lockLost)
      exitCode = this.configError
        ? EXIT.USAGE
        : this.timedOut
          ? EXIT.TIMEOUT
          : this.failed || this.lockLost
            ? EXIT.FAILED
            : EXIT.OK
      results.exit_code = exitCode
      try {
        await this.taskStore.writeResults(this.session.sessionId, redact(JSON.stringify(results, null, 2)))
      } catch (err) {
        this.log.error({ err }, 'could not write the run results')
      }
      await this.writeSummary(results)
      await this.state.release().catch((err: unknown) => this.log.warn({ err }, 'could not release the run lock'))
    }
    return { exitCode, results }
  }

  /** Warns about (with --strict: refuses) an upstream anchovy that has never committed: most likely a misspelt -U. */
  private async checkUpstreams(): Promise<void> {
    const problems: string[] = []
    for (const id of this.s.upstream) {
      if ((await this.commitLogOf(id).end()) > 0 || (await this.tableStore.load(id)).length > 0) continue
      const message = `upstream anchovy ${this.s.user}/${id} (-U ${id}) has never committed: nothing to read (a misspelt id, another user, or it has not run yet)`
      this.taskLog.warn({ code: 'ANCH_WARN_UPSTREAM_EMPTY', message })
      problems.push(message)
    }
    if (this.s.strict && problems.length) throw strictError(problems)
  }

  /** Warns about (with --strict: refuses) `-e`/`-d` names and globs that match none of the known tables. */
  private checkSelection(known: readonly Table[]): void {
    const problems: string[] = []
    for (const { flag, pattern } of unmatchedSelection(known, this.s.enabled, this.s.disabled)) {
      const names = known.map(qualifiedName).sort()
      const message = `${flag} ${pattern} matches no table (known: ${names.slice(0, 20).join(', ') || 'none'}${names.length > 20 ? ', …' : ''})`
      this.taskLog.warn({ code: 'ANCH_WARN_NO_MATCH', message })
      problems.push(message)
    }
    if (this.s.strict && problems.length) {
      this.configError = true
      throw strictError(problems)
    }
  }

  /** The school's summary of this anchovy (`$school/<user>/<id>.json`): best effort, a failure only logs. */
  private async writeSummary(results?: Record<string, unknown>): Promise<void> {
    const run: SummaryRun = {
      user: this.s.user,
      anchovyId: this.s.id,
      operator: this.session.operator,
      upstream: this.session.upstream,
      service: this.s.service,
      taskStore: typeof this.s.task_store_cls === 'string' ? this.s.task_store_cls : 'default',
      lockTtlS: this.s.lock_ttl,
      sessionId: this.session.sessionId,
      startedAt: this.session.startedAt,
    }
    await writeSummary(this.opts.datastore, run, results).catch((err: unknown) =>
      this.log.warn({ err }, 'could not write the school summary'),
    )
  }

  private async batches(): Promise<void> {
    for (let n = 0; ; n++) {
      await this.runBatch(n)
      if (!this.s.service || this.stopRequested || this.timedOut || this.lockLost) return
      if (this.s.max_batches > 0 && n + 1 >= this.s.max_batches) return
      await this.pause(this.s.interval * 1000)
      if (this.stopRequested) return
    }
  }

  /** Signals and stalls (CLI only): a second signal exits at once; a stall stops the run with a clear error. */
  private listen(): () => void {
    if (!this.opts.handleSignals) return () => undefined
    return listenForStop({
      signal: (sig) => {
        if (this.stopRequested) {
          this.log.warn({ signal: sig }, 'second signal: exiting now')
          process.exit(EXIT.FAILED)
        }
        this.log.info({ signal: sig }, 'stopping: aborting the current batch, committing what completed')
        this.requestStop(new AnchoviesError('ANCH_ERR_ABORTED', `batch aborted by ${sig}`))
      },
      stalled: () => {
        this.failed = true
        const err = new AnchoviesError(
          'ANCH_ERR_STALLED',
          'the run stalled: a hook, source or sink awaits a promise that can never settle (nothing left to wait for); stopping',
        )
        this.log.error({ err }, err.message)
        this.requestStop(err)
      },
    })
  }

  private requestStop(reason?: Error): void {
    this.stopRequested = true
    if (reason) this.currentBatch?.abort(reason)
    if (!this.stopping.signal.aborted)
      this.stopping.abort(reason ?? new AnchoviesError('ANCH_ERR_ABORTED', 'the run is stopping'))
    this.wake?.()
  }

  private async pause(ms: number): Promise<void> {
    let poll: NodeJS.Timeout | undefined
    let paused = true
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      this.wake = () => {
        clearTimeout(t)
        resolve()
      }
      if (this.s.follow && this.upstreamEnds.size) {
        // --follow: an upstream commit ends the pause (the pipelined mode: each batch as soon as it is committed).
        const check = async (): Promise<void> => {
          for (const [id, seen] of this.upstreamEnds) {
            if (
              (await this.commitLogOf(id)
                .end()
                .catch(() => seen)) > seen
            )
              return paused ? this.wake?.() : undefined
          }
          if (paused) poll = setTimeout(() => void check(), FOLLOW_POLL_MS)
        }
        poll = setTimeout(() => void check(), FOLLOW_POLL_MS)
      }
    })
    paused = false
    clearTimeout(poll)
    this.wake = undefined
  }

  /** The commit log of this anchovy or an upstream one. */
  private commitLogOf(id: string): CommitLog {
    return id === this.s.id ? this.state.log : new CommitLog(this.opts.datastore, anchovyHome(this.storeCtx, id))
  }

  /** With --follow: the newest commit of every upstream when a batch starts (what the next pause waits past). */
  private async noteUpstreamEnds(): Promise<void> {
    if (!this.s.follow) return
    for (const id of this.s.upstream)
      this.upstreamEnds.set(
        id,
        await this.commitLogOf(id)
          .end()
          .catch(() => 0),
      )
  }

  /** Runs `work` under `-t`: when it overruns, the run times out and `controller` aborts (the work gets abort_grace). */
  private async timed<T>(controller: AbortController, work: () => Promise<T>): Promise<T> {
    const seconds = this.s.execution_timeout
    const timer = seconds
      ? setTimeout(() => {
          this.timedOut = true
          this.log.error({ seconds }, 'execution timeout: aborting')
          const err = new AnchovyExecutionTimeout(seconds)
          controller.abort(err)
          if (!this.stopping.signal.aborted) this.stopping.abort(err)
        }, seconds * 1000)
      : undefined
    try {
      return await work()
    } finally {
      clearTimeout(timer)
    }
  }

  private count(outcome: PhaseOutcome): PhaseOutcome {
    if (outcome === 'failed') this.failed = true
    return outcome
  }

  private operatorRuntime(): OperatorRuntime {
    return {
      settings: this.s,
      datastore: this.opts.datastore,
      user: this.s.user,
      anchovyId: this.s.id,
      configTables: this.opts.tables,
      tableStore: this.tableStore,
      checkpointStore: this.state.checkpointStore,
      dataBuffer: this.dataBuffer,
      logger: this.log,
      commitLog: (id: string) => this.commitLogOf(id),
      uniqueFileTag: () => this.state.fileTag(),
    }
  }

  private contextState(
    batch: BatchInfo | undefined,
    stage: Stage | undefined,
    signal: AbortSignal | undefined,
    task: RunState['task'],
  ): RunState {
    return {
      session: this.session,
      ...(batch ? { batch } : {}),
      ...(task ? { task } : {}),
      logger: this.log,
      signal: signal ?? new AbortController().signal,
      checkpoints: stage ?? this.state.session,
      validateKey: (k) => validateName('checkpoint key', k),
    }
  }

  private async runBatch(n: number): Promise<void> {
    const batchId = String(n).padStart(3, '0')
    this.opts.onPhase?.('batch')
    const controller = new AbortController()
    this.currentBatch = controller
    if (this.stopRequested) controller.abort(new AnchoviesError('ANCH_ERR_ABORTED', 'batch aborted before it started'))
    const selected: Table[] = []
    const batch: BatchInfo = { batchId, tables: selected, signal: controller.signal }
    const openedAt = new Date()
    let failed = false
    const deadline = this.s.execution_timeout ? Date.now() + this.s.execution_timeout * 1000 : undefined
    const succeededKeys: string[] = []
    const failedKeys: string[] = []
    await this.noteUpstreamEnds()
    await this.timed(controller, async () => {
      const stage = await this.state.beginBatch(batchId)
      let known: Table[] = []
      const opened = await this.phases.run(
        'XOPEN',
        batch,
        async (task) => {
          await this.phases.hooks('xopen')
          known = await this.operator!.discoverTbls()
          this.checkSelection(known)
          const chosen = selectTables(known, this.s.enabled, this.s.disabled)
          const { workers, worker_num: num } = this.s
          selected.push(
            ...(workers > 1
              ? workerShare(this.operator!.streamMethods(), chosen, known, (key) => ownedBy(key, num, workers))
              : chosen),
          )
          task.data.tbls = selected.map(qualifiedName)
        },
        stage,
        controller.signal,
      )
      failed = opened === 'failed'
      let succeeded: Table[] = []
      if (selected.length && !controller.signal.aborted) {
        const tables = await runTables({
          operator: this.operator!,
          session: this.session,
          batch,
          known,
          stage,
          controller,
          logger: this.log.child({ batch_id: batchId }),
          taskLog: this.taskLog,
          phases: this.phases,
          concurrency: this.s.concurrency,
          queueSize: this.s.stream_queue_size,
          progressMs: this.s.progress_interval * 1000,
          abortGraceMs: this.s.abort_grace * 1000,
          failFast: this.s.fail_fast,
          allowFailures: this.s.allow_failures,
          deadline,
          limits: {
            rows: this.s.batch_max_rows,
            bytes: this.s.batch_max_bytes,
            intervalMs: this.s.commit_interval * 1000,
          },
          commit: async (chainStage, tables) =>
            (await this.state.commit(chainStage, { sessionId: this.session.sessionId, batchId }, tables, true)) !==
            undefined,
        })
        succeeded = tables.succeeded
        failed ||= tables.failed
        succeededKeys.push(...succeeded.map(qualifiedName))
        failedKeys.push(...tables.failures.map((f) => f.table))
        this.taskLog.fail(batchId, tables.failures)
      }
      const closed = await this.phases.run(
        'XCLOSE',
        batch,
        async (task) => {
          try {
            await this.phases.hooks('xclose')
          } finally {
            const rec = await this.state.commit(stage, { sessionId: this.session.sessionId, batchId }, succeeded)
            if (rec) task.data.commit = rec
          }
        },
        stage,
        this.stopping.signal,
      )
      failed ||= closed === 'failed'
    })
    this.failed ||= failed
    // Stopped by a signal before every selected table finished: not OK, even though nothing failed.
    const done = new Set([...succeededKeys, ...failedKeys])
    const unfinished = this.stopRequested ? selected.map(qualifiedName).filter((k) => !done.has(k)) : []
    this.taskLog.stopped(batchId, unfinished)
    const status = failed || this.timedOut ? 'ERR' : unfinished.length || failedKeys.length ? 'DEGRADED' : 'OK'
    this.taskLog.closeBatch({
      batch_id: batchId,
      status,
      opened_at: openedAt.toISOString(),
      tbls: selected.map(qualifiedName).join(', '),
    })
    if (this.s.service) {
      const hb = {
        anchovy_id: this.s.id,
        anchovy_user: this.s.user,
        session_id: this.session.sessionId,
        batch_id: batchId,
        status,
        at: new Date().toISOString(),
        pid: process.pid,
      }
      this.taskLog.track(this.taskStore.writeHeartbeat(JSON.stringify(hb)), 'could not write the heartbeat')
    }
    this.currentBatch = undefined
  }
}

/** The configuration error `--strict` makes of warnings. */
function strictError(problems: readonly string[]): AnchoviesError {
  return new AnchoviesError('ANCH_ERR_CONFIG', `--strict: ${problems.join('; ')}`)
}
