import { isAnchoviesError } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { getCliArgv } from './argv.js'

/** Whether the CLI talks to a person: stdout is a terminal and `--json` was not asked for. */
export function isHumanOutput(argv: readonly string[], stdoutIsTTY = process.stdout.isTTY === true): boolean {
  return stdoutIsTTY && !argv.includes('--json')
}

/** The log level the command line and environment ask for (the CLI needs it before settings are resolved). */
export function requestedLogLevel(argv: readonly string[], env: NodeJS.ProcessEnv): string {
  for (let i = argv.length - 1; i >= 0; i--) {
    const a = argv[i]!
    if (a === '--log-level' && argv[i + 1] !== undefined) return argv[i + 1]!
    if (a.startsWith('--log-level=')) return a.slice('--log-level='.length)
  }
  return env.ACHVY_LOG_LEVEL ?? 'info'
}

/** The longest cause chain printed (a cycle of causes must not loop). */
const MAX_CAUSES = 10

/**
 * An error for a person: `code: message`, then each cause on its own line, indented; the stack (of the error and
 * each cause) only when `stacks` is set (debug log level).
 */
export function formatError(err: unknown, stacks = false): string {
  const lines: string[] = []
  const seen = new Set<unknown>()
  let current: unknown = err
  for (let depth = 0; current !== undefined && current !== null && depth <= MAX_CAUSES && !seen.has(current); depth++) {
    seen.add(current)
    const e = current as { message?: unknown; code?: unknown; name?: unknown; stack?: unknown; cause?: unknown }
    const code = isAnchoviesError(current)
      ? current.code
      : typeof e.code === 'string'
        ? e.code
        : typeof e.name === 'string'
          ? e.name
          : 'Error'
    const message = typeof e.message === 'string' ? e.message : String(current)
    const indent = '  '.repeat(depth)
    lines.push(`${indent}${depth ? 'caused by ' : ''}${code}: ${message}`)
    if (stacks && typeof e.stack === 'string') {
      for (const frame of e.stack.split('\n').filter((l) => /^\s+at /.test(l))) lines.push(`${indent}  ${frame.trim()}`)
    }
    current = typeof current === 'object' ? e.cause : undefined
  }
  return lines.join('\n')
}

/** What the summary reads from the results (the shape `anchovy start` prints as JSON). */
interface SummaryResults {
  anchovy_id?: string
  anchovy_user?: string
  status?: string
  exit_code?: number
  startup_at?: string
  shutdown_at?: string
  startup_task?: SummaryTask | null
  shutdown_task?: SummaryTask | null
  batches?: { batch_id: string; status: string; done_tasks?: SummaryTask[] }[]
  failures?: { table: string; code: string | null; message: string; allowed: boolean }[]
  unfinished?: { tbls: string[] }[]
  warnings?: { code: string; message: string }[]
}

interface SummaryTask {
  task_type?: string
  tbl?: string | null
  status?: string
  data?: Record<string, unknown>
}

/** A run's results as a few lines for a person: status, duration, each table's rows and status, warnings. */
export function formatSummary(results: Record<string, unknown>): string {
  const r = results as SummaryResults
  const ms = Date.parse(r.shutdown_at ?? '') - Date.parse(r.startup_at ?? '')
  const duration = Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)}s` : '?'
  const batches = r.batches ?? []
  const lines = [
    `${r.anchovy_user ?? '?'}/${r.anchovy_id ?? '?'}: ${r.status ?? '?'} in ${duration}${batches.length > 1 ? `, ${batches.length} batches` : ''} (exit ${r.exit_code ?? '?'})`,
  ]
  const tables = new Map<string, { rows: number; status: string; error?: string }>()
  for (const b of batches) {
    for (const t of b.done_tasks ?? []) {
      if (t.task_type !== 'TABLE' || !t.tbl) continue
      const prev = tables.get(t.tbl) ?? { rows: 0, status: 'OK' }
      const data = t.data ?? {}
      const rows = typeof data.rows === 'number' ? data.rows : 0
      const error =
        typeof data.err_msg === 'string'
          ? `${typeof data.err_code === 'string' ? `${data.err_code}: ` : ''}${data.err_msg}${data.allowed_failure ? ' (allowed)' : ''}`
          : undefined
      tables.set(t.tbl, {
        rows: prev.rows + (t.status === 'OK' ? rows : 0),
        status: t.status ?? '?',
        ...(error ? { error } : {}),
      })
    }
  }
  for (const u of r.unfinished ?? [])
    for (const t of u.tbls) if (!tables.has(t)) tables.set(t, { rows: 0, status: 'STOPPED' })
  const width = Math.min(40, Math.max(0, ...[...tables.keys()].map((k) => k.length)))
  for (const [name, t] of tables) {
    const rows = `${t.rows} row${t.rows === 1 ? '' : 's'}`
    lines.push(`  ${name.padEnd(width)}  ${t.status.padEnd(7)} ${rows}${t.error ? `  ${t.error}` : ''}`)
  }
  for (const task of [r.startup_task, r.shutdown_task]) {
    if (task?.status === 'ERR')
      lines.push(
        `  ${task.task_type ?? 'phase'} failed: ${String(task.data?.err_code ?? '')}${task.data?.err_code ? ': ' : ''}${String(task.data?.err_msg ?? '')}`,
      )
  }
  for (const b of batches) {
    for (const t of b.done_tasks ?? []) {
      if (t.task_type !== 'TABLE' && t.status === 'ERR')
        lines.push(
          `  batch ${b.batch_id} ${t.task_type ?? 'phase'} failed: ${String(t.data?.err_code ?? '')}${t.data?.err_code ? ': ' : ''}${String(t.data?.err_msg ?? '')}`,
        )
    }
  }
  const warnings = r.warnings ?? []
  if (warnings.length) {
    lines.push('warnings:')
    for (const w of warnings) lines.push(`  ${w.code}: ${w.message}`)
  }
  return lines.join('\n') + '\n'
}

/** Prints a run's results on stdout: the JSON (piped, `--json`, or inside another program), else the summary. */
export function printResults(results: Record<string, unknown>): void {
  const argv = getCliArgv()
  process.stdout.write(
    redact(argv && isHumanOutput(argv) ? formatSummary(results) : JSON.stringify(results, null, 2) + '\n'),
  )
}
