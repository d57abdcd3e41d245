import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Datastore } from '../datastore/datastore.js'
import { isSecretAttribute, redact, registerSecret, registerUrlSecrets } from '../logging/secrets.js'
import type { Plan, PlanStep } from './plan.js'
import { digestResults, oneLine, type TableSummary } from './summary.js'

/** Where plan results go: `$plans/<plan>/<run>/<step>.json`, the run's `plan_results.json`, and `latest.json`. */
export const PLANS_DIR = '$plans'

/** The most of a step's stdout (its results JSON) kept in memory. */
const MAX_STDOUT_BYTES = 16 * 1024 * 1024
/** The end of a step's log kept in its result. */
const LOG_TAIL_BYTES = 4096

/** What happened to a step. */
export type StepStatus = 'OK' | 'ERR' | 'SKIPPED' | 'INTERRUPTED'

/** One step's result, as written to the datastore (`$results`-style). */
export interface StepResult {
  readonly step: string
  readonly anchovy_id: string | null
  /** The command's words, redacted (step `env:` values are never written). */
  readonly command: string
  readonly after: readonly string[]
  readonly status: StepStatus
  readonly exit_code: number | null
  readonly signal: string | null
  readonly started_at: string | null
  readonly ended_at: string | null
  readonly duration_ms: number | null
  readonly tables: readonly TableSummary[]
  readonly rows: number
  readonly error: string | null
  readonly log_tail: string | null
}

/** The results of a whole plan run. */
export interface PlanResult {
  readonly plan: string
  readonly run_id: string
  readonly host: string
  readonly started_at: string
  readonly ended_at: string
  readonly status: 'OK' | 'ERR' | 'INTERRUPTED'
  readonly steps: readonly StepResult[]
}

/** How to run a plan. */
export interface PlanRunOptions {
  /** Steps running at once (at least 1). */
  readonly concurrency: number
  /** Keep starting steps that do not depend on a failed one (default: start nothing new after a failure). */
  readonly continueOnError: boolean
  /** The datastore the results are written to (and the steps run against, through `ACHVY_DATASTORE`). */
  readonly datastore: Datastore
  readonly datastoreLocation: string
  /** The environment of every step (a step's `env:` is added to it). */
  readonly env: Readonly<Record<string, string | undefined>>
  /** The `anchovy` CLI entry point (a `.js` file run with this Node). */
  readonly bin: string
  /** Aborting stops the plan: running steps get SIGTERM (they stop cleanly), the rest are not started. */
  readonly signal?: AbortSignal
  /** Told when a step starts and ends. */
  readonly onEvent?: (event: 'start' | 'end', step: PlanStep, result?: StepResult) => void
}

/** Runs a plan's steps in dependency order, independent ones in parallel, and writes one result per step. */
export async function runPlan(plan: Plan, opts: PlanRunOptions): Promise<PlanResult> {
  for (const s of plan.steps) for (const w of s.args) registerUrlSecrets(w)
  for (const s of plan.steps) {
    for (const [k, v] of s.env) {
      registerUrlSecrets(v)
      if (isSecretAttribute(k)) registerSecret(v)
    }
  }
  const started = new Date()
  const runId = `${started.toISOString().replace(/[-:T]/g, '').slice(0, 14)}.${randomBytes(4).toString('hex')}`
  const results = new Map<string, StepResult>()
  const running = new Map<string, Promise<void>>()
  const children = new Set<ReturnType<typeof spawn>>()
  let failed = false
  const interrupted = (): boolean => opts.signal?.aborted === true
  const onAbort = (): void => {
    for (const c of children) c.kill('SIGTERM')
  }
  opts.signal?.addEventListener('abort', onAbort)
  const base = (s: PlanStep): Pick<StepResult, 'step' | 'anchovy_id' | 'command' | 'after'> => ({
    step: s.name,
    anchovy_id: s.anchovyId ?? null,
    command: redact(s.args.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(' ')),
    after: s.after,
  })
  const notRun = (s: PlanStep, status: StepStatus, error: string): StepResult => ({
    ...base(s),
    status,
    exit_code: null,
    signal: null,
    started_at: null,
    ended_at: null,
    duration_ms: null,
    tables: [],
    rows: 0,
    error,
    log_tail: null,
  })

  const runStep = async (s: PlanStep): Promise<void> => {
    opts.onEvent?.('start', s)
    const t0 = new Date()
    const env: Record<string, string> = Object.create(null) as Record<string, string>
    for (const [k, v] of Object.entries(opts.env)) if (v !== undefined) env[k] = v
    env.ACHVY_DATASTORE = opts.datastoreLocation
    for (const [k, v] of s.env) env[k] = v
    const child = spawn(process.execPath, [opts.bin, ...s.args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    const out: Buffer[] = []
    let outBytes = 0
    let tail = ''
    child.stdout.on('data', (d: Buffer) => {
      if (outBytes < MAX_STDOUT_BYTES) out.push(d)
      outBytes += d.length
    })
    child.stderr.on('data', (d: Buffer) => (tail = (tail + d.toString('utf8')).slice(-LOG_TAIL_BYTES)))
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('error', (err) => {
        tail += `\n${err.message}`
        resolve({ code: null, signal: null })
      })
      child.on('close', (code, signal) => resolve({ code, signal }))
    })
    children.delete(child)
    const t1 = new Date()
    let doc: unknown
    try {
      doc = outBytes <= MAX_STDOUT_BYTES ? JSON.parse(Buffer.concat(out).toString('utf8')) : undefined
    } catch {
      doc = undefined
    }
    const digest =
      typeof doc === 'object' && doc !== null && !Array.isArray(doc)
        ? digestResults(doc as Record<string, unknown>)
        : { tables: [], rows: 0, error: null }
    const ok = code === 0 && !interrupted()
    const lastLogLine = tail.trim().split('\n').at(-1) ?? ''
    const error = ok
      ? null
      : interrupted()
        ? 'interrupted (SIGTERM)'
        : (digest.error ?? oneLine(lastLogLine.replace(/^\{.*"msg":"([^"]*)".*$/, '$1')) ?? `exit code ${code}`)
    const result: StepResult = {
      ...base(s),
      status: ok ? 'OK' : interrupted() ? 'INTERRUPTED' : 'ERR',
      exit_code: code,
      signal,
      started_at: t0.toISOString(),
      ended_at: t1.toISOString(),
      duration_ms: t1.getTime() - t0.getTime(),
      tables: digest.tables,
      rows: digest.rows,
      error: error || `exit code ${code}`,
      log_tail: ok ? null : redact(tail),
    }
    if (result.status === 'ERR') failed = true
    results.set(s.name, result)
    opts.onEvent?.('end', s, result)
  }

  const pending = [...plan.steps]
  while (pending.length || running.size) {
    for (let i = 0; i < pending.length; ) {
      const s = pending[i]!
      const blocked = s.after.map((d) => results.get(d)).find((r) => r !== undefined && r.status !== 'OK')
      const waiting = s.after.some((d) => !results.has(d))
      let skip: StepResult | undefined
      if (interrupted()) skip = notRun(s, 'INTERRUPTED', 'not started: the plan was interrupted')
      else if (blocked)
        skip = notRun(
          s,
          'SKIPPED',
          `not started: step ${blocked.step} ${blocked.status === 'ERR' ? 'failed' : 'did not run'}`,
        )
      else if (failed && !opts.continueOnError)
        skip = notRun(s, 'SKIPPED', 'not started: a step failed (use --continue-on-error to run the independent steps)')
      if (skip) {
        results.set(s.name, skip)
        pending.splice(i, 1)
        i = 0
        continue
      }
      if (!waiting && running.size < Math.max(1, opts.concurrency)) {
        pending.splice(i, 1)
        const p = runStep(s).finally(() => running.delete(s.name))
        running.set(s.name, p)
        continue
      }
      i++
    }
    if (running.size) await Promise.race(running.values())
    else if (pending.length) {
      // Only steps waiting for steps that will never end here: cannot happen with a checked plan, but never spin.
      for (const s of pending.splice(0))
        results.set(s.name, notRun(s, 'SKIPPED', 'not started: its dependencies never ran'))
    }
  }
  opts.signal?.removeEventListener('abort', onAbort)
  const steps = plan.steps.map((s) => results.get(s.name)!)
  const ended = new Date()
  const result: PlanResult = {
    plan: plan.name,
    run_id: runId,
    host: hostname(),
    started_at: started.toISOString(),
    ended_at: ended.toISOString(),
    status: interrupted() ? 'INTERRUPTED' : steps.every((s) => s.status === 'OK') ? 'OK' : 'ERR',
    steps,
  }
  await writePlanResult(opts.datastore, result)
  return result
}

/** Writes one result per step, the whole run's results, and `latest.json` of the plan. */
async function writePlanResult(ds: Datastore, result: PlanResult): Promise<void> {
  const dir = `${PLANS_DIR}/${result.plan}/${result.run_id}`
  const text = (v: unknown): string => redact(JSON.stringify(v, null, 2))
  await Promise.all(
    result.steps.map((s) =>
      ds.write(`${dir}/${s.step}.json`, text({ plan: result.plan, run_id: result.run_id, ...s })),
    ),
  )
  await ds.write(`${dir}/plan_results.json`, text(result))
  await ds.write(`${PLANS_DIR}/${result.plan}/latest.json`, text(result))
}
