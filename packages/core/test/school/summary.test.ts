import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { FilesystemDatastore } from '../../src/datastore/filesystem-datastore.js'
import { parseSummary, summaryPath, writeSummary } from '../../src/school/summary.js'
import { FIXTURE_OPS, REPO, cleanupTempDirs, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)

const SPIN = ['-op', `${path.join(REPO, 'test/fixtures/dist/spin.js')}:Spinner`]

describe('the per-anchovy summary', () => {
  it('is ended by the -t supervisor when it kills a run that never yields: failed, exit 124, the reason in one line', async () => {
    const ds = tempDir('anchovies-school-summary-')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    const r = await runCli(['start', ...SPIN, '--id', 'cpu', '-t', '1', '--abort-grace', '1', '-U', 'src'], {
      env: { ...env, SPIN_PHASE: 'table' },
    })
    expect(r.code, r.stderr.slice(-1000)).toBe(124)
    const ls = await runCli(['school', 'ls', '--json'], { env })
    const [entry] = JSON.parse(ls.stdout) as {
      id: string
      state: string
      upstream: string[]
      lock: unknown
      last_run: { exit_code: number; error: string }
    }[]
    expect(entry).toMatchObject({ id: 'cpu', state: 'failed', upstream: ['src'], lock: null })
    expect(entry!.last_run.exit_code).toBe(124)
    expect(entry!.last_run.error).toMatch(/was still running .* \[ANCH_ERR_TIMEOUT_KILLED\]$/)
  })

  it('shows a run of one worker (--workers N) as running, with the worker lock holder', async () => {
    const ds = tempDir('anchovies-school-summary-')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    const worker = spawnCli(
      [
        'start',
        '-op',
        `${FIXTURE_OPS}:Ticker`,
        '--id',
        'w',
        '-S',
        '--interval',
        '0.2',
        '--workers',
        '2',
        '--worker-num',
        '1',
      ],
      { env },
    )
    try {
      await waitFor(() => existsSync(path.join(ds, '$school/dev/w.json')), 30_000, 'the worker to start')
      const ls = await runCli(['school', 'ls', '--json'], { env })
      const [entry] = JSON.parse(ls.stdout) as { state: string; lock: { pid: number } | null }[]
      expect(entry).toMatchObject({ state: 'running', lock: { pid: worker.pid } })
    } finally {
      worker.kill('SIGTERM')
      await worker.result
    }
  })

  it('is read back field by field: wrong types, hostile names and prototype keys never get through', () => {
    const hostile = JSON.stringify({
      format: 1,
      anchovy_id: 'a',
      anchovy_user: 'u',
      operator: { toString: 'x' },
      upstream: ['ok', '../up', '/abs', 'a/b', '..', 7, '__proto__'],
      tables: [
        { name: '../../etc', rows: 1 },
        { name: 'good', rows: 'many' },
        { name: 't', rows: 5, status: 'ERR' },
      ],
      running: { session_id: '../x', started_at: '2025-01-01T00:00:00Z' },
      last_run: { session_id: 's1', started_at: 'yesterday', status: 'OK' },
      history: 'not a list',
      last_ok_at: '2025-01-01T00:00:00Z; rm -rf /',
      constructor: { prototype: { polluted: true } },
    })
    const s = parseSummary(Buffer.from(hostile))!
    expect(s.operator).toBe('')
    expect(s.upstream).toEqual(['ok', '__proto__'])
    expect(s.tables).toEqual([
      { name: 'good', rows: 0, status: 'OK' },
      { name: 't', rows: 5, status: 'ERR' },
    ])
    expect(s.running).toBeNull()
    expect(s.last_run).toBeNull()
    expect(s.history).toEqual([])
    expect(s.last_ok_at).toBeNull()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(parseSummary(Buffer.from('{"format":1,"anchovy_id":"..","anchovy_user":"u"}'))).toBeUndefined()
    expect(parseSummary(Buffer.from('{"format":2,"anchovy_id":"a","anchovy_user":"u"}'))).toBeUndefined()
    expect(parseSummary(Buffer.from('\u0000garbage'))).toBeUndefined()
  })

  it('is a plain file on the filesystem: the inline hint changes nothing, listings carry no copy', async () => {
    const root = tempDir('anchovies-school-summary-')
    const ds = new FilesystemDatastore(root)
    const run = {
      user: 'dev',
      anchovyId: 'fs',
      operator: 'Downloader',
      upstream: [],
      service: false,
      taskStore: 'default',
      lockTtlS: 60,
      sessionId: '20260101000000.0000abcd',
      startedAt: new Date(),
    }
    await writeSummary(ds, run, { status: 'OK', exit_code: 0, batches: [] })
    const file = readFileSync(path.join(root, summaryPath('dev', 'fs')))
    expect(parseSummary(file)).toMatchObject({ anchovy_id: 'fs', last_run: { status: 'OK' } })
    const entries = await ds.list('$school')
    expect(entries.map((e) => e.path)).toEqual(['$school/dev/fs.json'])
    expect('inline' in entries[0]!).toBe(false)
    await ds.close()
  })
})
