import { afterAll, describe, expect, it } from 'vitest'
import { readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const TWO = ['-op', `${FIXTURE_OPS}:TwoTables`]
const start = (ds: string, ...more: string[]): string[] => [
  'start',
  '--datastore',
  ds,
  '-u',
  'dev',
  '-i',
  'r',
  ...TWO,
  ...more,
]

const home = (ds: string): string => path.join(ds, 'dev', 'r')
const taskLogs = (ds: string): string[] => readdirSync(path.join(home(ds), '$task_logs')).sort()
const sessions = (ds: string): string[] => readdirSync(path.join(home(ds), '$results', 'sessions')).sort()
const sessionOf = (out: string): string => (JSON.parse(out) as { session_id: string }).session_id

/** Sets every task log and session results file of `session` to `days` days ago. */
function backdate(ds: string, session: string, days: number): void {
  const when = new Date(Date.now() - days * 86_400_000)
  for (const f of taskLogs(ds).filter((n) => n.startsWith(`${session}-`)))
    utimesSync(path.join(home(ds), '$task_logs', f), when, when)
  utimesSync(path.join(home(ds), '$results', 'sessions', `${session}.json`), when, when)
}

describe('log retention (ACHVY_LOG_RETENTION_DAYS)', () => {
  it('deletes old task logs and session results, never the latest run of any worker or a session still writing', async () => {
    const ds = tempDir()
    const w = (n: number): string[] => ['--workers', '2', '--worker-num', String(n)]
    const a = sessionOf((await runCli(start(ds, ...w(1)))).stdout) // worker 1's latest run
    const b = sessionOf((await runCli(start(ds, ...w(0)))).stdout) // worker 0's previous run
    for (const s of [a, b]) backdate(ds, s, 10)
    // A long session (a service) that still writes: its name is old, its newest file is fresh.
    const live = '20200101000000.deadbeef'
    writeFileSync(path.join(home(ds), '$task_logs', `${live}-007.0001.json`), '{}')

    // Without the setting nothing goes (default: keep forever).
    expect((await runCli(start(ds, ...w(0)))).code).toBe(0)
    expect(taskLogs(ds).some((f) => f.startsWith(`${b}-`))).toBe(true)

    const r = await runCli(start(ds, ...w(0)), { env: { ACHVY_LOG_RETENTION_DAYS: '5' } })
    expect(r.code, r.stderr).toBe(0)
    const c = sessionOf(r.stdout)
    expect(r.stderr).toContain('log retention: removed old task logs and session results')
    const logs = taskLogs(ds)
    expect(
      logs.some((f) => f.startsWith(`${b}-`)),
      'the old run of worker 0 is gone',
    ).toBe(false)
    expect(sessions(ds)).not.toContain(`${b}.json`)
    expect(
      logs.some((f) => f.startsWith(`${a}-`)),
      "worker 1's latest run is kept, however old",
    ).toBe(true)
    expect(sessions(ds)).toContain(`${a}.json`)
    expect(logs.some((f) => f.startsWith(`${c}-`))).toBe(true)
    expect(sessions(ds)).toContain(`${c}.json`)
    expect(logs).toContain(`${live}-007.0001.json`)
    // The latest results and the healthcheck are untouched.
    expect(sessionOf(readFileSync(path.join(home(ds), '$results', 'anchovy_run_results.w0.json'), 'utf8'))).toBe(c)
    expect((await runCli(['healthcheck', '--datastore', ds, '-u', 'dev', '-i', 'r', '--workers', '2'])).code).toBe(0)
  }, 90_000)

  it('keeps files younger than the retention', async () => {
    const ds = tempDir()
    const a = sessionOf((await runCli(start(ds))).stdout)
    backdate(ds, a, 2)
    const before = taskLogs(ds).filter((f) => f.startsWith(`${a}-`))
    expect((await runCli(start(ds), { env: { ACHVY_LOG_RETENTION_DAYS: '5' } })).code).toBe(0)
    expect(taskLogs(ds).filter((f) => f.startsWith(`${a}-`))).toEqual(before)
    expect(sessions(ds)).toContain(`${a}.json`)
  }, 60_000)
})
