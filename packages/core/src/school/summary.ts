import { hostname } from 'node:os'
import type { Datastore } from '../datastore/datastore.js'
import { redact } from '../logging/secrets.js'
import { validateName } from '../names.js'

/** Root folder of the school's own files (`$school/<user>/<id>.json`); user names never start with `$`. */
export const SCHOOL_DIR = '$school'

/** How many past runs a summary keeps (the timeline and the metrics read them; older ones are in `$results`). */
export const SUMMARY_HISTORY = 20

/** The most of a summary file the school reads (the runtime keeps it far smaller). */
export const MAX_SUMMARY_BYTES = 1024 * 1024

/** The longest error line a summary keeps. */
const MAX_ERROR_CHARS = 300

/** One run as a summary remembers it. */
export interface RunSummary {
  readonly session_id: string
  readonly started_at: string
  readonly ended_at: string | null
  readonly status: 'OK' | 'ERR' | 'RUNNING'
  readonly exit_code: number | null
  readonly host: string
  readonly pid: number
  readonly duration_ms: number | null
  readonly rows: number
  readonly error: string | null
}

/** One table of the last run. */
export interface TableSummary {
  readonly name: string
  readonly rows: number
  readonly status: 'OK' | 'ERR'
}

/** What the school knows about one anchovy without reading its task logs (`$school/<user>/<id>.json`). */
export interface AnchovySummary {
  readonly format: 1
  readonly anchovy_id: string
  readonly anchovy_user: string
  readonly operator: string
  readonly upstream: readonly string[]
  readonly service: boolean
  readonly task_store: string
  readonly lock_ttl_s: number
  readonly tables: readonly TableSummary[]
  /** The run going on now (set at start, cleared at the end); the run lock says whether it is still alive. */
  readonly running: RunSummary | null
  readonly last_run: RunSummary | null
  /** When the last successful run ended: what freshness is measured from. */
  readonly last_ok_at: string | null
  /** Newest first. */
  readonly history: readonly RunSummary[]
  readonly updated_at: string
}

/** The summary path of an anchovy. */
export function summaryPath(user: string, id: string): string {
  return `${SCHOOL_DIR}/${validateName('user', user)}/${validateName('anchovy id', id)}.json`
}

/** One line of an error message, redacted and cut to a readable length. */
export function oneLine(message: string): string {
  const line = redact(message).replace(/\s+/g, ' ').trim()
  return line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 1)}…` : line
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)

/** The tasks of a run results document, whatever it holds (untrusted). */
function resultTasks(results: Record<string, unknown>): Record<string, unknown>[] {
  const tasks: Record<string, unknown>[] = []
  if (isObject(results.startup_task)) tasks.push(results.startup_task)
  if (Array.isArray(results.batches)) {
    for (const b of results.batches)
      if (isObject(b) && Array.isArray(b.done_tasks)) for (const t of b.done_tasks) if (isObject(t)) tasks.push(t)
  }
  if (isObject(results.shutdown_task)) tasks.push(results.shutdown_task)
  return tasks
}

/** Rows per table (summed over batches), and the first error, of a run results document. */
export function digestResults(results: Record<string, unknown>): {
  tables: TableSummary[]
  rows: number
  error: string | null
} {
  const tables = new Map<string, { rows: number; status: 'OK' | 'ERR' }>()
  let error: string | null = null
  let rows = 0
  for (const t of resultTasks(results)) {
    const data = isObject(t.data) ? t.data : {}
    const failed = t.status === 'ERR'
    if (failed && error === null) {
      const where = typeof t.tbl === 'string' ? `table ${t.tbl}` : String(t.task_type ?? 'task').toLowerCase()
      error = oneLine(
        `${where}: ${str(data.err_msg) ?? 'failed'}${typeof data.err_code === 'string' ? ` [${data.err_code}]` : ''}`,
      )
    }
    if (t.task_type !== 'TABLE' || typeof t.tbl !== 'string') continue
    const n = num(data.rows) ?? 0
    rows += n
    const prev = tables.get(t.tbl)
    tables.set(t.tbl, { rows: (prev?.rows ?? 0) + n, status: failed || prev?.status === 'ERR' ? 'ERR' : 'OK' })
  }
  // Results a supervisor wrote for a run it killed carry the reason at the top level.
  if (error === null && isObject(results.error) && typeof results.error.err_msg === 'string') {
    error = oneLine(
      `${results.error.err_msg}${typeof results.error.err_code === 'string' ? ` [${results.error.err_code}]` : ''}`,
    )
  }
  return {
    tables: [...tables].map(([name, v]) => ({ name, ...v })).sort((a, b) => a.name.localeCompare(b.name)),
    rows,
    error,
  }
}

/** Who and what a run is, as the runtime knows it when it writes the summary. */
export interface SummaryRun {
  readonly user: string
  readonly anchovyId: string
  readonly operator: string
  readonly upstream: readonly string[]
  readonly service: boolean
  readonly taskStore: string
  readonly lockTtlS: number
  readonly sessionId: string
  readonly startedAt: Date
}

/**
 * Writes the summary of an anchovy: at the start of a run (`results` undefined: marks it running) and at its end
 * (the run results digested into the last run, the table rows and the history). Read-modify-write under the run
 * lock, so only this run writes it.
 */
export async function writeSummary(
  datastore: Datastore,
  run: SummaryRun,
  results?: Record<string, unknown>,
): Promise<void> {
  const path = summaryPath(run.user, run.anchovyId)
  const previous = parseSummary(await datastore.read(path).catch(() => undefined))
  const now = new Date()
  const base = {
    session_id: run.sessionId,
    started_at: run.startedAt.toISOString(),
    host: hostname(),
    pid: process.pid,
  }
  let summary: AnchovySummary
  if (!results) {
    summary = {
      ...fields(run, previous),
      tables: previous?.tables ?? [],
      running: { ...base, ended_at: null, status: 'RUNNING', exit_code: null, duration_ms: null, rows: 0, error: null },
      last_run: previous?.last_run ?? null,
      last_ok_at: previous?.last_ok_at ?? null,
      history: previous?.history ?? [],
      updated_at: now.toISOString(),
    }
  } else {
    const digest = digestResults(results)
    const status = results.status === 'OK' ? 'OK' : 'ERR'
    const exitCode = num(results.exit_code)
    const last: RunSummary = {
      ...base,
      ended_at: now.toISOString(),
      status,
      exit_code: exitCode,
      duration_ms: now.getTime() - run.startedAt.getTime(),
      rows: digest.rows,
      error:
        status === 'ERR'
          ? (digest.error ?? `the run failed${exitCode === null ? '' : ` (exit code ${exitCode})`}`)
          : null,
    }
    summary = {
      ...fields(run, previous),
      tables: digest.tables,
      running: null,
      last_run: last,
      last_ok_at: status === 'OK' ? last.ended_at : (previous?.last_ok_at ?? null),
      history: [last, ...(previous?.history ?? []).filter((h) => h.session_id !== run.sessionId)].slice(
        0,
        SUMMARY_HISTORY,
      ),
      updated_at: now.toISOString(),
    }
  }
  // `inline`: a blob datastore keeps a copy in the listing, so `school ls` is one listing, not one read per anchovy.
  await datastore.write(path, redact(JSON.stringify(summary)), { inline: true })
}

/**
 * Ends the summary of a run that could not end it itself (the `-t` supervisor killed it or saw it die): how the
 * anchovy was started comes from the summary the run wrote at its start.
 */
export async function finishSummary(
  datastore: Datastore,
  who: Pick<SummaryRun, 'user' | 'anchovyId' | 'operator' | 'sessionId' | 'startedAt'>,
  results: Record<string, unknown>,
): Promise<void> {
  const previous = parseSummary(await datastore.read(summaryPath(who.user, who.anchovyId)).catch(() => undefined))
  const run: SummaryRun = {
    ...who,
    upstream: previous?.upstream ?? [],
    service: previous?.service ?? false,
    taskStore: previous?.task_store ?? 'default',
    lockTtlS: previous?.lock_ttl_s ?? 60,
  }
  await writeSummary(datastore, run, results)
}

function fields(
  run: SummaryRun,
  _previous: AnchovySummary | undefined,
): Pick<
  AnchovySummary,
  'format' | 'anchovy_id' | 'anchovy_user' | 'operator' | 'upstream' | 'service' | 'task_store' | 'lock_ttl_s'
> {
  return {
    format: 1,
    anchovy_id: run.anchovyId,
    anchovy_user: run.user,
    operator: run.operator,
    upstream: [...run.upstream],
    service: run.service,
    task_store: run.taskStore,
    lock_ttl_s: run.lockTtlS,
  }
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,127}$/
const TABLE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,255}$/

const isoOrNull = (v: unknown): string | null => (typeof v === 'string' && ISO.test(v) ? v : null)
const safeName = (v: unknown): string | null =>
  typeof v === 'string' && SAFE_NAME.test(v) && !v.includes('..') ? v : null
const text = (v: unknown, max: number): string => (typeof v === 'string' ? v.slice(0, max) : '')

function parseRun(v: unknown): RunSummary | null {
  if (!isObject(v)) return null
  const started = isoOrNull(v.started_at)
  const session = typeof v.session_id === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(v.session_id) ? v.session_id : null
  if (!started || !session) return null
  const status = v.status === 'OK' || v.status === 'ERR' || v.status === 'RUNNING' ? v.status : 'ERR'
  return {
    session_id: session,
    started_at: started,
    ended_at: isoOrNull(v.ended_at),
    status,
    exit_code: num(v.exit_code),
    host: text(v.host, 255),
    pid: num(v.pid) ?? 0,
    duration_ms: num(v.duration_ms),
    rows: num(v.rows) ?? 0,
    error: typeof v.error === 'string' ? oneLine(v.error) : null,
  }
}

/**
 * A summary read back from the datastore, shape-checked field by field (everything in the datastore is input):
 * undefined when the bytes are not a summary at all; wrong fields become null or empty.
 */
export function parseSummary(raw: Buffer | undefined): AnchovySummary | undefined {
  if (!raw || raw.length > MAX_SUMMARY_BYTES) return undefined
  let v: unknown
  try {
    v = JSON.parse(raw.toString('utf8'))
  } catch {
    return undefined
  }
  if (!isObject(v) || v.format !== 1) return undefined
  const id = safeName(v.anchovy_id)
  const user = safeName(v.anchovy_user)
  if (!id || !user) return undefined
  const tables: TableSummary[] = []
  if (Array.isArray(v.tables)) {
    for (const t of v.tables.slice(0, 10_000)) {
      if (isObject(t) && typeof t.name === 'string' && TABLE_NAME.test(t.name))
        tables.push({ name: t.name, rows: num(t.rows) ?? 0, status: t.status === 'ERR' ? 'ERR' : 'OK' })
    }
  }
  const history = Array.isArray(v.history)
    ? v.history
        .slice(0, SUMMARY_HISTORY)
        .map(parseRun)
        .filter((r): r is RunSummary => r !== null)
    : []
  return {
    format: 1,
    anchovy_id: id,
    anchovy_user: user,
    operator: text(v.operator, 200),
    upstream: Array.isArray(v.upstream)
      ? v.upstream
          .map(safeName)
          .filter((u): u is string => u !== null)
          .slice(0, 1000)
      : [],
    service: v.service === true,
    task_store: text(v.task_store, 200) || 'default',
    lock_ttl_s: num(v.lock_ttl_s) ?? 60,
    tables,
    running: parseRun(v.running),
    last_run: parseRun(v.last_run),
    last_ok_at: isoOrNull(v.last_ok_at),
    history,
    updated_at: isoOrNull(v.updated_at) ?? new Date(0).toISOString(),
  }
}
