import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  FIXTURE_OPS,
  cleanupTempDirs,
  commitRecords,
  readTree,
  runCli,
  spawnCli,
  tempDir,
  waitFor,
} from '../helpers.js'

afterAll(cleanupTempDirs)

const op = (name: string): string[] => ['-op', `${FIXTURE_OPS}:${name}`]

function lines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('anchovy start', () => {
  it('moves two tables from a downloader to an uploader once, and nothing twice on a second run', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: out, ROWS: '4' }
    const dl = await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })
    expect(dl.code).toBe(0)
    const results = JSON.parse(dl.stdout) as { status: string; batches: { done_tasks: { task_type: string }[] }[] }
    expect(results.status).toBe('OK')
    expect(results.batches[0]!.done_tasks.map((t) => t.task_type)).toEqual(['XOPEN', 'TABLE', 'TABLE', 'XCLOSE'])
    expect((await runCli(['start', ...op('FileUploader'), '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    let rows = lines(out)
    expect(rows.filter((r) => r.table === 'dl.sales').map((r) => r.id)).toEqual([0, 1, 2, 3])
    expect(rows.filter((r) => r.table === 'dl.contacts').map((r) => r.contact_id)).toEqual(['C0', 'C1', 'C2', 'C3'])
    expect(rows.find((r) => r.id === 1)!.at).toBe('2025-01-01T00:00:01+00:00')
    // second run of both: the downloader continues from its checkpoints, the uploader gets only the new rows
    expect((await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })).code).toBe(0)
    expect((await runCli(['start', ...op('FileUploader'), '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    expect((await runCli(['start', ...op('FileUploader'), '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    rows = lines(out)
    expect(rows.filter((r) => r.table === 'dl.sales').map((r) => r.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    expect(rows).toHaveLength(16)
  })

  it('keeps the position when the upload fails, exits 1, and delivers on the next run', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: out }
    await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })
    const failed = await runCli(['start', ...op('FileUploader'), '--id', 'up', '-U', 'dl'], {
      env: { ...env, FAIL_UPLOAD: 'sales' },
    })
    expect(failed.code).toBe(1)
    expect(lines(out).map((r) => r.table)).toEqual(['dl.contacts', 'dl.contacts', 'dl.contacts'])
    expect((await runCli(['start', ...op('FileUploader'), '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    expect(lines(out).filter((r) => r.table === 'dl.sales')).toHaveLength(3)
    expect(lines(out)).toHaveLength(6)
  })

  it('exits 124 on the execution timeout even when the source ignores the abort, after running xclose and shutdown', async () => {
    for (const hang of ['', '1']) {
      const ds = tempDir()
      const started = Date.now()
      const r = await runCli(['start', ...op('Stubborn'), '--id', 'slow', '-t', '1', '--abort-grace', '1'], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ...(hang ? { STUBBORN_HANG: '1' } : {}) },
      })
      expect(r.code).toBe(124)
      expect(Date.now() - started).toBeLessThan(15_000)
      const logs = [...readTree(path.join(ds, 'dev/slow/$task_logs')).values()].map(
        (b) => JSON.parse(b.toString()) as Record<string, unknown>,
      )
      const types = logs.map((l) => l.task_type)
      expect(types).toEqual(expect.arrayContaining(['STARTUP', 'XOPEN', 'TABLE', 'XCLOSE', 'SHUTDOWN']))
      const table = logs.find((l) => l.task_type === 'TABLE')!
      expect(table.status).toBe('ERR')
      expect(table.data).toMatchObject({ err_type: 'AnchovyExecutionTimeout' })
      expect([...readTree(ds).keys()].filter((f) => f.includes('.json.gz'))).toEqual([])
      expect(existsSync(path.join(ds, 'dev/slow/$commits'))).toBe(false)
    }
  })

  it('exits 124 within the grace period when a phase hook ignores the abort after the timeout', async () => {
    for (const phase of ['xopen', 'xclose', 'shutdown']) {
      const ds = tempDir()
      const started = Date.now()
      const r = await runCli(['start', ...op('Stubborn'), '--id', 'hang', '-t', '1', '--abort-grace', '1'], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', STUBBORN_PHASE_HANG: phase },
      })
      expect(r.code, `${phase}: ${r.stderr}`).toBe(124)
      expect(Date.now() - started).toBeLessThan(12_000)
      const results = JSON.parse(r.stdout) as { status: string }
      expect(results.status).toBe('ERR')
      expect(existsSync(path.join(ds, 'dev/hang/$lock'))).toBe(false)
    }
  })

  it('in service mode runs batches until SIGTERM, then commits, runs shutdown and exits 0', async () => {
    const ds = tempDir()
    const child = spawnCli(['start', ...op('Ticker'), '--id', 'svc', '-S', '--interval', '0.2'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    const commits = path.join(ds, 'dev/svc/$commits')
    await waitFor(() => commitRecords(commits).length >= 3, 20_000, 'three batches')
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code).toBe(0)
    const n = Number(readFileSync(path.join(ds, 'dev/svc/$checkpoints/ticks.n'), 'utf8'))
    expect(n).toBe(commitRecords(commits).length)
    const results = JSON.parse(r.stdout) as { status: string; shutdown_task: { status: string } }
    expect(results.shutdown_task.status).toBe('OK')
    expect(existsSync(path.join(ds, 'dev/svc/$results/heartbeat.json'))).toBe(true)
    expect(existsSync(path.join(ds, 'dev/svc/$lock'))).toBe(false)
    expect(
      (
        await runCli(['healthcheck', '--id', 'svc', '--max-age', '60'], {
          env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
        })
      ).code,
    ).toBe(0)
  })

  it('lets --no-service override ACHVY_IS_TASK_EXECUTOR=false, and -S override it the other way', async () => {
    const ds = tempDir()
    const env = {
      ACHVY_DATASTORE: ds,
      ACHVY_USER: 'dev',
      ACHVY_IS_TASK_EXECUTOR: 'false',
      ACHVY_INTERVAL: '0.05',
      ACHVY_MAX_BATCHES: '3',
    }
    const service = JSON.parse((await runCli(['start', ...op('Ticker'), '--id', 'a'], { env })).stdout) as {
      batches: unknown[]
    }
    expect(service.batches).toHaveLength(3)
    const task = JSON.parse(
      (await runCli(['start', ...op('Ticker'), '--id', 'b', '--no-service'], { env })).stdout,
    ) as { batches: unknown[] }
    expect(task.batches).toHaveLength(1)
  })

  it('lets exactly one of two concurrent runs of one anchovy work; the other exits 75 naming the holder', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', STUBBORN_HANG: '1' }
    const first = spawnCli(['start', ...op('Stubborn'), '--id', 'one', '-t', '3', '--abort-grace', '0'], { env })
    await waitFor(() => existsSync(path.join(ds, 'dev/one/$lock')), 10_000, 'the lock')
    const second = await runCli(['start', ...op('Stubborn'), '--id', 'one'], { env })
    expect(second.code).toBe(75)
    expect(second.stderr).toMatch(new RegExp(`already running on host \\S+ \\(pid ${first.pid}, since \\d{4}-`))
    expect((await first.result).code).toBe(124)
  })

  it('takes over the lock of a holder that died', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
    const lockFile = path.join(ds, 'dev/dl/$lock')
    const { mkdirSync } = await import('node:fs')
    mkdirSync(path.dirname(lockFile), { recursive: true })
    const old = new Date(Date.now() - 3600_000).toISOString()
    writeFileSync(lockFile, JSON.stringify({ host: 'elsewhere', pid: 1, since: old, heartbeat: old, token: 'dead' }))
    const r = await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })
    expect(r.code).toBe(0)
    expect(r.stderr).not.toMatch(/already running/)
    // a taker killed mid-takeover leaves a marker: it names a dead pid, so the next run goes ahead at once
    const { hostname } = await import('node:os')
    const dead = {
      host: hostname(),
      pid: 2 ** 22 + 12345,
      since: old,
      heartbeat: new Date().toISOString(),
      token: 'dead',
    }
    writeFileSync(lockFile, JSON.stringify(dead))
    writeFileSync(`${lockFile}.takeover`, JSON.stringify({ ...dead, token: 'taker' }))
    expect((await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })).code).toBe(0)
    expect(existsSync(`${lockFile}.takeover`)).toBe(false)
    // a live process on this host with a fresh heartbeat holds it
    writeFileSync(lockFile, JSON.stringify({ ...dead, pid: process.pid, token: 'live' }))
    const live = await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })
    expect(live.code).toBe(75)
    expect(live.stderr).toContain(`pid ${process.pid}`)
    // a fresh heartbeat from another host is respected
    const now = new Date().toISOString()
    writeFileSync(lockFile, JSON.stringify({ host: 'elsewhere', pid: 1, since: now, heartbeat: now, token: 'alive' }))
    expect((await runCli(['start', ...op('TwoTables'), '--id', 'dl'], { env })).code).toBe(75)
  })
})

describe('signals and progress in task mode', () => {
  it('SIGTERM aborts the running batch cleanly: completed tables commit, shutdown runs, exit 0', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_PROGRESS_INTERVAL: '0.2' }
    const child = spawnCli(['start', ...op('Stubborn'), '--id', 'term', '--abort-grace', '1'], { env })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    await waitFor(() => /"msg":"progress"/.test(stderr), 15_000, 'a progress line')
    expect(stderr).toMatch(/"table":"forever","rows":\d+,"rows_per_s":\d+/)
    child.kill('SIGTERM')
    const r = await child.result
    expect(r.code).toBe(0)
    const results = JSON.parse(r.stdout) as {
      shutdown_task: { status: string }
      batches: { done_tasks: { task_type: string; status: string; data: { err_code?: string } }[] }[]
    }
    expect(results.shutdown_task.status).toBe('OK')
    const table = results.batches[0]!.done_tasks.find((t) => t.task_type === 'TABLE')!
    expect(table.status).toBe('ERR')
    expect(table.data.err_code).toBe('ANCH_ERR_ABORTED')
    expect(existsSync(path.join(ds, 'dev/term/$lock'))).toBe(false)
  })
})
