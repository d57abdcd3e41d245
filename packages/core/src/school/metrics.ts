import type { AnchovyEntry } from './catalog.js'

/** A Prometheus label value: backslash, quote and newline escaped. */
function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** One gauge: HELP, TYPE and a sample per anchovy that has a value. */
function gauge(
  name: string,
  help: string,
  entries: readonly AnchovyEntry[],
  value: (e: AnchovyEntry) => number | null,
): string[] {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`]
  for (const e of entries) {
    const v = value(e)
    if (v !== null && Number.isFinite(v))
      lines.push(`${name}{user="${label(e.user)}",id="${label(e.id)}",operator="${label(e.operator)}"} ${v}`)
  }
  return lines
}

/** `/metrics`: per anchovy the last run's status, age, duration, rows, and whether it runs now or is stale. */
export function renderMetrics(entries: readonly AnchovyEntry[], now = Date.now()): string {
  const age = (iso: string | null | undefined): number | null =>
    iso ? Math.max(0, (now - Date.parse(iso)) / 1000) : null
  const lines = [
    '# HELP anchovy_school_anchovies Anchovies with a summary in the datastore.',
    '# TYPE anchovy_school_anchovies gauge',
    `anchovy_school_anchovies ${entries.length}`,
    ...gauge('anchovy_last_run_ok', '1 when the last finished run succeeded, 0 when it failed.', entries, (e) =>
      e.last_run ? (e.last_run.status === 'OK' ? 1 : 0) : null,
    ),
    ...gauge(
      'anchovy_last_run_exit_code',
      'Exit code of the last finished run.',
      entries,
      (e) => e.last_run?.exit_code ?? null,
    ),
    ...gauge('anchovy_last_run_age_seconds', 'Seconds since the last finished run ended.', entries, (e) =>
      age(e.last_run?.ended_at),
    ),
    ...gauge('anchovy_last_run_duration_seconds', 'Duration of the last finished run.', entries, (e) =>
      e.last_run?.duration_ms == null ? null : e.last_run.duration_ms / 1000,
    ),
    ...gauge(
      'anchovy_last_run_rows',
      'Rows moved by the last finished run (all tables).',
      entries,
      (e) => e.last_run?.rows ?? null,
    ),
    ...gauge(
      'anchovy_last_success_age_seconds',
      'Seconds since the last successful run ended (alert on this for staleness).',
      entries,
      (e) => age(e.last_ok_at),
    ),
    ...gauge('anchovy_running', "1 while a live run holds the anchovy's lock.", entries, (e) => (e.lock ? 1 : 0)),
    ...gauge(
      'anchovy_stale',
      '1 when the last success is older than the stale limit (or there never was one).',
      entries,
      (e) => (e.stale ? 1 : 0),
    ),
  ]
  lines.push('# HELP anchovy_table_rows Rows of a table in the last finished run.', '# TYPE anchovy_table_rows gauge')
  for (const e of entries)
    for (const t of e.tables)
      lines.push(`anchovy_table_rows{user="${label(e.user)}",id="${label(e.id)}",table="${label(t.name)}"} ${t.rows}`)
  return `${lines.join('\n')}\n`
}
