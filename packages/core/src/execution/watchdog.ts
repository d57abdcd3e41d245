import { fork, type ChildProcess } from 'node:child_process'
import { getCliArgv } from '../cli/argv.js'
import { printResults } from '../cli/human-output.js'
import { hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { loadDocument, resolveSettings, type ConfigSources } from '../config/load-config.js'
import { CORE_SETTINGS } from '../config/settings.js'
import { registerConnectionSecrets } from '../connections/connection.js'
import type { Datastore } from '../datastore/datastore.js'
import { openDatastore } from '../datastore/open.js'
import { runDir, TaskStore } from '../datastore/stores.js'
import { AnchoviesError, EXIT, type ErrorCode } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { finishSummary } from '../school/summary.js'

/*
 * The execution timeout (`-t`) is enforced by timers on the event loop; code that never yields the loop (a busy
 * loop, a synchronous native call) stops those timers, and a process cannot kill its own busy main thread. So
 * with `-t`, `anchovy start` runs the anchovy in a child process and stays as a small supervisor that kills it
 * when a phase overruns, then writes the results the child could not.
 */

/** Set (to "1") in the environment of the child process a supervisor runs the anchovy in. */
export const WATCHDOG_ENV = 'ANCHOVY_WATCHDOG_CHILD'

/** Extra time a phase gets past its timeout and grace periods before the supervisor kills it. */
export const KILL_MARGIN_MS = 2000

/** Extra time before the first phase: loading the operator, taking the lock and recovery are not under `-t`. */
export const LOAD_MARGIN_MS = 10_000

/** The longest the supervisor spends writing the results of a killed run before it exits anyway. */
const POST_MORTEM_MS = 15_000

/** The phases the supervisor times: before startup, startup, each batch, shutdown. */
export type WatchedPhase = 'loading' | 'startup' | 'batch' | 'shutdown'

/** The settings that decide the supervisor's deadlines. */
export interface WatchdogTiming {
  /** `execution_timeout` in seconds (no supervision without it). */
  readonly timeout: number
  /** `abort_grace` in seconds. */
  readonly grace: number
  /** Service mode: the pause between batches (`interval`) runs before the next batch reports. */
  readonly service: boolean
  readonly interval: number
}

/** What the child tells the supervisor once its session exists (before it takes the lock). */
export interface WatchdogSession {
  readonly sessionId: string
  readonly anchovyId: string
  readonly user: string
  readonly operator: string
  readonly startedAt: string
  readonly datastore: string
  readonly lockTtl: number
  /** `workers` and `worker_num` of a worker run (where its lock and results live). */
  readonly settings?: { readonly workers: number; readonly worker_num: number }
  readonly timing: WatchdogTiming
}

/** The child's side of the channel: the runtime reports through it. */
export interface WatchdogReporter {
  session(info: WatchdogSession): void
  phase(phase: Exclude<WatchedPhase, 'loading'>): void
  /** The run ended the ordinary way (results printed, or an error reported by the CLI). */
  done(exitCode?: number): void
}

/**
 * How long `phase` may run before the supervisor kills the process: the timeout, then two grace periods (a
 * batch's tables and then XCLOSE may each take `abort_grace` to stop after the timeout), then a margin for
 * commits and results. In service mode the pause after a batch runs before the next one reports.
 */
export function phaseBudgetMs(phase: WatchedPhase, t: WatchdogTiming): number {
  const base = (t.timeout + 2 * t.grace) * 1000
  if (phase === 'loading') return base + LOAD_MARGIN_MS
  return base + KILL_MARGIN_MS + (phase === 'batch' && t.service ? t.interval * 1000 : 0)
}

/**
 * In a child started by a supervisor: the reporter to the supervisor (the marker is removed from the
 * environment, so anchovies that user code starts are not mistaken for children). Undefined otherwise.
 */
export function watchdogChild(): WatchdogReporter | undefined {
  if (process.env[WATCHDOG_ENV] !== '1' || typeof process.send !== 'function' || !process.channel) return undefined
  delete process.env[WATCHDOG_ENV]
  const send = (msg: Record<string, unknown>): void => {
    try {
      if (process.connected) process.send!(msg)
    } catch {
      // the supervisor is gone: 'disconnect' below stops the run
    }
  }
  // The supervisor died: stop the way SIGTERM stops a run (nobody would kill this one on a timeout any more).
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  // The channel must not keep the event loop alive: a run waiting on a promise that never settles must still be
  // seen as stalled.
  process.channel.unref()
  return {
    session: (info) => send({ t: 'session', info }),
    phase: (phase) => send({ t: 'phase', phase }),
    done: (exitCode) => send({ t: 'done', ...(exitCode === undefined ? {} : { exitCode }) }),
  }
}

/** What the supervisor knows before the child reports: from the same config sources the child reads. */
export interface SupervisionPlan {
  readonly timing: WatchdogTiming
  readonly anchovyId: string
  readonly user: string
  readonly argv: readonly string[]
}

/**
 * Whether `anchovy start` with these sources runs supervised: only from the CLI and only with an execution
 * timeout. Config problems are left for the child to report (it reads the same sources).
 */
export function supervisionPlan(src: ConfigSources): SupervisionPlan | undefined {
  const cliArgv = getCliArgv()
  if (!cliArgv) return undefined
  try {
    const problems: string[] = []
    const doc = loadDocument(src, problems)
    const s = resolveSettings(src, doc, problems, CORE_SETTINGS)
    const timeout = s.execution_timeout
    if (typeof timeout !== 'number' || !(timeout > 0)) return undefined
    return {
      timing: {
        timeout,
        grace: Number(s.abort_grace) || 0,
        service: s.service === true,
        interval: Number(s.interval) || 0,
      },
      anchovyId: String(s.id),
      user: String(s.user),
      argv: cliArgv,
    }
  } catch {
    return undefined
  }
}

/** The CLI entry the child runs. */
const BIN = fileURLToPath(new URL('../cli/bin.js', import.meta.url))

/**
 * Runs `anchovy start` in a child process and supervises it: forwards SIGTERM/SIGINT, kills it (with its
 * process group) when a phase overruns `phaseBudgetMs`, and then writes and prints the results it could not.
 * Resolves to the exit code.
 */
export async function superviseStart(plan: SupervisionPlan, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  registerConnectionSecrets(env)
  const spawnedAt = Date.now()
  const child = fork(BIN, [...plan.argv], {
    env: { ...env, [WATCHDOG_ENV]: '1' },
    execArgv: process.execArgv.filter((a) => !a.startsWith('--inspect')),
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    // Its own process group: a terminal's Ctrl-C reaches only the supervisor, which forwards it once, and a
    // timeout kill takes the processes user code started along.
    detached: true,
  })
  const watch = new Watch(child, plan, spawnedAt)
  const ended = await watch.ended
  if (ended.done && !ended.killed) return ended.code ?? EXIT.FAILED
  if (ended.done) return ended.doneCode ?? EXIT.FAILED
  return postMortem(watch, ended)
}

/** How the child ended. */
interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** It reported the end of the run before exiting. */
  readonly done: boolean
  readonly doneCode: number | undefined
  /** The supervisor killed it (a phase overran). */
  readonly killed: boolean
}

/** The supervisor's view of one child: its reports, the deadline, forwarded signals. */
class Watch {
  session: WatchdogSession | undefined
  timing: WatchdogTiming
  phase: WatchedPhase = 'loading'
  phaseSince: number
  batches = 0
  private timer: NodeJS.Timeout | undefined
  private done = false
  private doneCode: number | undefined
  private killed = false
  readonly ended: Promise<Ended>

  constructor(
    readonly child: ChildProcess,
    readonly plan: SupervisionPlan,
    spawnedAt: number,
  ) {
    this.timing = plan.timing
    this.phaseSince = spawnedAt
    this.arm()
    child.on('message', (msg: unknown) => this.onMessage(msg))
    const forward = (sig: NodeJS.Signals): void => {
      try {
        child.kill(sig)
      } catch {
        // already gone
      }
    }
    process.on('SIGTERM', forward)
    process.on('SIGINT', forward)
    this.ended = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(this.timer)
        process.off('SIGTERM', forward)
        process.off('SIGINT', forward)
        resolve({ code, signal, done: this.done, doneCode: this.doneCode, killed: this.killed })
      }
      child.once('exit', finish)
      child.once('error', () => {
        if (child.exitCode === null && child.signalCode === null && child.pid === undefined) finish(null, null)
      })
    })
  }

  /** The deadline of the current phase, from its start. */
  private arm(): void {
    clearTimeout(this.timer)
    if (!(this.timing.timeout > 0)) return
    const left = this.phaseSince + phaseBudgetMs(this.phase, this.timing) - Date.now()
    this.timer = setTimeout(() => this.kill(), Math.max(0, left))
  }

  private kill(): void {
    this.killed = true
    const pid = this.child.pid
    try {
      // the whole group: subprocesses of user code (a hung `execFileSync`) go too
      if (pid !== undefined) process.kill(-pid, 'SIGKILL')
    } catch {
      this.child.kill('SIGKILL')
    }
  }

  /** Reports come from our own child, but are still checked before use. */
  private onMessage(msg: unknown): void {
    if (typeof msg !== 'object' || msg === null) return
    const m = msg as Record<string, unknown>
    if (m.t === 'phase' && (m.phase === 'startup' || m.phase === 'batch' || m.phase === 'shutdown')) {
      this.phase = m.phase
      this.phaseSince = Date.now()
      if (m.phase === 'batch') this.batches++
      this.arm()
    } else if (m.t === 'session' && isSession(m.info)) {
      this.session = m.info
      this.timing = m.info.timing
      this.arm()
    } else if (m.t === 'done') {
      this.done = true
      if (typeof m.exitCode === 'number' && Number.isInteger(m.exitCode)) this.doneCode = m.exitCode
    }
  }
}

function isSession(v: unknown): v is WatchdogSession {
  if (typeof v !== 'object' || v === null) return false
  const s = v as Record<string, unknown>
  const t = s.timing as Record<string, unknown> | null | undefined
  return (
    typeof s.sessionId === 'string' &&
    typeof s.anchovyId === 'string' &&
    typeof s.user === 'string' &&
    typeof s.operator === 'string' &&
    typeof s.startedAt === 'string' &&
    typeof s.datastore === 'string' &&
    typeof s.lockTtl === 'number' &&
    typeof t === 'object' &&
    t !== null &&
    typeof t.timeout === 'number' &&
    typeof t.grace === 'number' &&
    typeof t.service === 'boolean' &&
    typeof t.interval === 'number'
  )
}

/** The phase as the results and messages name it. */
function phaseName(w: Watch): string {
  if (w.phase === 'loading') return 'loading (operator, run lock, recovery)'
  if (w.phase === 'batch') return `batch ${String(Math.max(0, w.batches - 1)).padStart(3, '0')}`
  return w.phase.toUpperCase()
}

/**
 * After the child was killed or died without finishing: the results as the run would have written them (status
 * ERR, the phase that overran), written to `$results` when the run lock still names the dead child (taken over
 * first, released after; `$inflight.json` stays for the next run's recovery), printed on stdout.
 */
async function postMortem(w: Watch, ended: Ended): Promise<number> {
  const exitCode = ended.killed ? EXIT.TIMEOUT : EXIT.FAILED
  const where = phaseName(w)
  const t = w.timing
  let code: ErrorCode
  let message: string
  if (ended.killed) {
    code = 'ANCH_ERR_TIMEOUT_KILLED'
    const budget = Math.round(phaseBudgetMs(w.phase, t) / 100) / 10
    message =
      `${where} was still running ${budget}s after it began (execution timeout ${t.timeout}s + 2 × abort_grace ${t.grace}s + margin): ` +
      `its code kept the process busy (CPU-bound or blocking code that ignores the AbortSignal), so the process was killed`
  } else {
    code = 'ANCH_ERR_RUN_DIED'
    const how = ended.signal ? `was killed by ${ended.signal}` : `exited with code ${ended.code ?? '?'}`
    message = `the anchovy process ${how} during ${where} before it finished the run (a second SIGTERM/SIGINT, a crash or an out-of-memory kill; see the log above)`
  }
  const error = new AnchoviesError(code, message)
  const results = resultsOf(w, error, exitCode)
  let note: string | undefined
  if (w.session) {
    note = await bounded(
      writeResults(w, w.session, results),
      POST_MORTEM_MS,
      `writing the results took longer than ${POST_MORTEM_MS / 1000}s`,
    )
  } else {
    note = 'results not written: the process ended before its run lock was taken'
  }
  printResults(results)
  process.stderr.write(`anchovy: ${redact(error.message)} [${code}]\n`)
  if (note) process.stderr.write(`anchovy: ${redact(note)}\n`)
  return exitCode
}

/** The results JSON of a run that could not write its own (the shape of TaskLog.results). */
function resultsOf(w: Watch, error: AnchoviesError, exitCode: number): Record<string, unknown> {
  const now = new Date()
  const data = { err_type: error.name, err_msg: error.message, err_code: error.code }
  const operator = w.session?.operator ?? null
  const task = (type: string): Record<string, unknown> => ({
    thread_id: 'main',
    operator,
    status: 'ERR',
    duration: now.getTime() - w.phaseSince,
    timestamp: now.toISOString(),
    task_type: type,
    tbl: null,
    data,
  })
  const batches =
    w.phase === 'batch'
      ? [
          {
            batch_id: String(w.batches - 1).padStart(3, '0'),
            status: 'ERR',
            opened_at: new Date(w.phaseSince).toISOString(),
            closed_at: now.toISOString(),
            tbls: '',
            done_tasks: [],
          },
        ]
      : []
  return {
    anchovy_id: w.session?.anchovyId ?? w.plan.anchovyId,
    anchovy_user: w.session?.user ?? w.plan.user,
    session_id: w.session?.sessionId ?? null,
    operator,
    startup_at: w.session?.startedAt ?? new Date(w.phaseSince).toISOString(),
    startup_task: w.phase === 'startup' ? task('STARTUP') : null,
    shutdown_at: now.toISOString(),
    shutdown_task: w.phase === 'shutdown' ? task('SHUTDOWN') : null,
    batches,
    status: 'ERR',
    error: data,
    exit_code: exitCode,
  }
}

/**
 * Writes the results where the run writes them, under the run lock: only when the lock still names the dead
 * child (this host, its pid); the lock is taken over (its holder is provably dead) and released after. Returns a
 * note for stderr when the results could not be written.
 */
async function writeResults(
  w: Watch,
  s: WatchdogSession,
  results: Record<string, unknown>,
): Promise<string | undefined> {
  let ds: Datastore | undefined
  try {
    ds = await openDatastore(s.datastore)
    const ctx = { datastore: ds, user: s.user, anchovyId: s.anchovyId, settings: { ...s.settings } }
    const lockPath = `${runDir(ctx)}/$lock`
    const holder = await ds.readLock(lockPath)
    if (!holder || holder.host !== hostname() || holder.pid !== w.child.pid) {
      return `results not written to the datastore: the run lock ${lockPath} is not held by the killed process (pid ${w.child.pid})`
    }
    const lock = await ds.lock(lockPath, s.lockTtl * 1000)
    try {
      await new TaskStore(ctx).writeResults(s.sessionId, redact(JSON.stringify(results, null, 2)))
      await finishSummary(
        ds,
        {
          user: s.user,
          anchovyId: s.anchovyId,
          operator: s.operator,
          sessionId: s.sessionId,
          startedAt: new Date(s.startedAt),
        },
        results,
      ).catch(() => undefined)
    } finally {
      await lock.release()
    }
    return undefined
  } catch (err) {
    return `could not write the results: ${(err as Error).message}`
  } finally {
    await ds?.close().catch(() => undefined)
  }
}

/** `work`'s result, or `late` when it takes longer than `ms`. */
async function bounded<T>(work: Promise<T>, ms: number, late: string): Promise<T | string> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(late), ms)
  })
  try {
    return await Promise.race([work, timeout])
  } finally {
    clearTimeout(timer)
  }
}
