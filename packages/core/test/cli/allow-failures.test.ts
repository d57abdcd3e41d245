import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)
const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
})

const FLAKY = ['-op', `${path.join(REPO, 'test/fixtures/dist/edges.js')}:Flaky`]
const start = (ds: string, id: string): string[] => ['start', '--datastore', ds, '-u', 'dev', '-i', id, ...FLAKY]
const health = (ds: string, id: string): string[] => ['healthcheck', '--datastore', ds, '-u', 'dev', '-i', id]

interface Results {
  status: string
  exit_code: number
  failures: { batch_id: string; table: string; code: string | null; message: string; allowed: boolean }[]
  unfinished: { batch_id: string; tbls: string[] }[]
  batches: { status: string; done_tasks: { tbl: string | null; status: string; data: Record<string, unknown> }[] }[]
}

const results = (ds: string, id: string): Results =>
  JSON.parse(readFileSync(path.join(ds, 'dev', id, '$results', 'anchovy_run_results.json'), 'utf8')) as Results

/** Every task log record of `dev/<id>`. */
function taskLogs(ds: string, id: string): { tbl: string | null; status: string; data: Record<string, unknown> }[] {
  const dir = path.join(ds, 'dev', id, '$task_logs')
  return existsSync(dir) ? readdirSync(dir).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8'))) : []
}

describe('allowed failures', () => {
  it('--allow-failures: a failed table exits 0, is recorded in the task log and results, and the run is DEGRADED', async () => {
    const ds = tempDir()
    const r = await runCli([...start(ds, 'a'), '--allow-failures'], { env: { FAIL_TABLES: 'bad' } })
    expect(r.code, r.stderr).toBe(0)
    const res = results(ds, 'a')
    expect(res.status).toBe('DEGRADED')
    expect(res.exit_code).toBe(0)
    expect(res.failures).toEqual([
      {
        batch_id: '000',
        table: 'bad',
        code: 'ANCH_ERR_FIXTURE_BROKEN',
        message: 'table bad is broken on purpose',
        allowed: true,
      },
    ])
    expect(res.batches[0]!.status).toBe('DEGRADED')
    const bad = taskLogs(ds, 'a').find((t) => t.tbl === 'bad')!
    expect(bad.status).toBe('ERR')
    expect(bad.data).toMatchObject({
      err_code: 'ANCH_ERR_FIXTURE_BROKEN',
      err_msg: 'table bad is broken on purpose',
      allowed_failure: true,
    })
    expect(taskLogs(ds, 'a').find((t) => t.tbl === 'good')!.status).toBe('OK')
    const h = await runCli(health(ds, 'a'))
    expect(h.code, h.stdout).toBe(3)
    expect(h.stdout).toMatch(/^degraded: last run .* ended DEGRADED/)
  }, 60_000)

  it('ACHVY_ALLOW_FAILURES=true does the same as the flag', async () => {
    const ds = tempDir()
    const r = await runCli(start(ds, 'a'), { env: { FAIL_TABLES: 'bad', ACHVY_ALLOW_FAILURES: 'true' } })
    expect(r.code, r.stderr).toBe(0)
    expect(results(ds, 'a').status).toBe('DEGRADED')
  }, 60_000)

  it('allow_failure: true in tbls allows that table only; another failing table still fails the run', async () => {
    const ds = tempDir()
    const config = JSON.stringify({ tbls: { bad: { allow_failure: true } } })
    const ok = await runCli([...start(ds, 'a'), '-c', config], { env: { TABLES: 'good', FAIL_TABLES: 'bad' } })
    expect(ok.code, ok.stderr).toBe(0)
    expect(results(ds, 'a').status).toBe('DEGRADED')
    expect(results(ds, 'a').failures.map((f) => [f.table, f.allowed])).toEqual([['bad', true]])

    const worse = await runCli([...start(ds, 'b'), '-c', config], {
      env: { TABLES: 'good,other', FAIL_TABLES: 'bad,other' },
    })
    expect(worse.code, worse.stderr).toBe(1)
    const res = results(ds, 'b')
    expect(res.status).toBe('ERR')
    expect(res.failures.map((f) => [f.table, f.allowed]).sort()).toEqual([
      ['bad', true],
      ['other', false],
    ])
    const h = await runCli(health(ds, 'b'))
    expect(h.code, h.stdout).toBe(1)
  }, 60_000)

  it('without --allow-failures a failed table exits 1 and the healthcheck is unhealthy', async () => {
    const ds = tempDir()
    const r = await runCli(start(ds, 'a'), { env: { FAIL_TABLES: 'bad' } })
    expect(r.code).toBe(1)
    expect(results(ds, 'a').status).toBe('ERR')
    expect(results(ds, 'a').failures[0]).toMatchObject({ table: 'bad', allowed: false })
    expect((await runCli(health(ds, 'a'))).code).toBe(1)
  }, 60_000)

  it('a task stopped by SIGTERM before all its tables finished is DEGRADED, never healthy', async () => {
    const ds = tempDir()
    const ready = path.join(ds, 'ready')
    // One table at a time: good has finished when slow starts, so only slow is unfinished at the SIGTERM.
    const child = spawnCli([...start(ds, 'a'), '--concurrency', '1'], {
      env: { TABLES: 'good,slow', HANG_TABLES: 'slow', READY_FILE: ready },
    })
    running.add(child)
    await waitFor(() => existsSync(ready), 30_000, 'the slow table to start')
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code, r.stderr).toBe(0)
    const res = results(ds, 'a')
    expect(res.status).toBe('DEGRADED')
    expect(res.unfinished).toEqual([{ batch_id: '000', tbls: ['slow'] }])
    expect(res.failures).toEqual([])
    const h = await runCli(health(ds, 'a'))
    expect(h.code, h.stdout).toBe(3)
    expect(h.stdout).toMatch(/^degraded:/)
  }, 60_000)

  it('a clean run after a degraded one is healthy again', async () => {
    const ds = tempDir()
    expect((await runCli([...start(ds, 'a'), '--allow-failures'], { env: { FAIL_TABLES: 'bad' } })).code).toBe(0)
    expect((await runCli(health(ds, 'a'))).code).toBe(3)
    expect((await runCli(start(ds, 'a'))).code).toBe(0)
    const h = await runCli(health(ds, 'a'))
    expect(h.code, h.stdout).toBe(0)
  }, 60_000)
})
