import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import type { ChildProcess } from 'node:child_process'
import {
  FIXTURE_OPS,
  REPO,
  cleanupTempDirs,
  commitRecords,
  runCli,
  spawnCli,
  tempDir,
  waitFor,
  type CliResult,
} from '../helpers.js'

afterAll(cleanupTempDirs)

// A run that is never stopped (the defect) must not outlive its test and keep a core busy.
const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
})

const SPIN = ['-op', `${path.join(REPO, 'test/fixtures/dist/spin.js')}:Spinner`]

/** The supervisor's budget for one phase with `-t T --abort-grace G`: T + 2G + 2 s (see phaseBudgetMs). */
const budgetMs = (t: number, g: number): number => (t + 2 * g) * 1000 + 2000
/** Start-up of node and the CLI before the first phase, and writing the results after the kill. */
const SLACK_MS = 6000

interface Results {
  session_id: string | null
  status: string
  exit_code: number
  error?: { err_code: string; err_msg: string }
  startup_task: { status: string; task_type: string; duration: number; data: { err_code?: string } } | null
  shutdown_task: { status: string; task_type: string; data: { err_code?: string } } | null
  batches: {
    batch_id: string
    status: string
    done_tasks: { task_type: string; status: string; data: { err_code?: string } }[]
  }[]
}

/** Data files under `<ds>/dev/<id>/data` (relative to the datastore). */
function dataFiles(ds: string, id: string): string[] {
  const root = path.join(ds, 'dev', id, 'data')
  const out: string[] = []
  const walk = (d: string): void => {
    if (!existsSync(d)) return
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name))
      else out.push(path.relative(ds, path.join(d, e.name)))
    }
  }
  walk(root)
  return out.sort()
}

/** Data files named by the commit records of `dev/<id>`. */
function committedFiles(ds: string, id: string): string[] {
  const dir = path.join(ds, 'dev', id, '$commits')
  return commitRecords(dir)
    .flatMap((f) =>
      (JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { files: { path: string }[] }).files.map((x) => x.path),
    )
    .sort()
}

/** Runs the CLI and measures how long it took. */
async function timed(args: string[], env: Record<string, string>): Promise<CliResult & { ms: number }> {
  const started = Date.now()
  const child = spawnCli(args, { env })
  running.add(child)
  const r = await child.result
  return { ...r, ms: Date.now() - started }
}

/** Checks what a killed run must leave: exit 124, results printed and stored, the lock free, the marker kept. */
function expectKilled(
  r: CliResult & { ms: number },
  ds: string,
  id: string,
  t: number,
  g: number,
  what: string,
): Results {
  expect(r.code, `${what}: ${r.stderr.slice(-2000)}`).toBe(124)
  expect(r.ms, what).toBeLessThan(budgetMs(t, g) + SLACK_MS)
  const results = JSON.parse(r.stdout) as Results
  expect(results.status).toBe('ERR')
  expect(results.exit_code).toBe(124)
  expect(results.error?.err_code).toBe('ANCH_ERR_TIMEOUT_KILLED')
  expect(r.stderr).toContain('[ANCH_ERR_TIMEOUT_KILLED]')
  const home = path.join(ds, 'dev', id)
  const latest = JSON.parse(readFileSync(path.join(home, '$results/anchovy_run_results.json'), 'utf8')) as Results
  expect(latest).toEqual(results)
  expect(JSON.parse(readFileSync(path.join(home, `$results/sessions/${results.session_id}.json`), 'utf8'))).toEqual(
    results,
  )
  expect(existsSync(path.join(home, '$lock')), `${what}: lock left behind`).toBe(false)
  return results
}

describe('the execution timeout holds when user code never yields the event loop', () => {
  it('kills a run whose table is CPU-bound (while (true) {}) with 124, writes its results, frees the lock, and the next run removes the orphaned data files', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_DATA_FILE_MAX_BYTES: '1024', ROWS: '400' }
    const r = await timed(['start', ...SPIN, '--id', 'cpu', '-t', '1', '--abort-grace', '1'], {
      ...env,
      SPIN_PHASE: 'table',
    })
    const results = expectKilled(r, ds, 'cpu', 1, 1, 'table')
    expect(results.batches.map((b) => [b.batch_id, b.status])).toEqual([['000', 'ERR']])
    expect(results.error!.err_msg).toMatch(
      /^batch 000 was still running 5s after it began \(execution timeout 1s .*killed$/,
    )
    // the batch never committed: its files are orphans, and the marker that names them is kept for recovery
    const orphans = dataFiles(ds, 'cpu')
    expect(orphans.length).toBeGreaterThan(1)
    expect(existsSync(path.join(ds, 'dev/cpu/$inflight.json'))).toBe(true)
    expect(commitRecords(path.join(ds, 'dev/cpu/$commits'))).toEqual([])
    // the next run starts at once (no stale lock to wait for), removes the orphans and commits from the start
    const next = await timed(['start', ...SPIN, '--id', 'cpu', '-t', '30'], { ...env, ROWS: '5' })
    expect(next.code, next.stderr).toBe(0)
    expect(next.ms).toBeLessThan(SLACK_MS + 4000)
    const files = dataFiles(ds, 'cpu')
    for (const f of orphans) expect(files).not.toContain(f)
    expect(files).toEqual(committedFiles(ds, 'cpu'))
    expect(readFileSync(path.join(ds, 'dev/cpu/$checkpoints/rows.next'), 'utf8')).toBe('5')
    expect(existsSync(path.join(ds, 'dev/cpu/$inflight.json'))).toBe(false)
  })

  it('kills a CPU-bound startup, xopen, xclose or shutdown hook with 124 and names the phase; the lock is free for the next run', async () => {
    const cases: [phase: string, check: (r: Results) => void][] = [
      [
        'startup',
        (r) => {
          expect(r.startup_task).toMatchObject({
            task_type: 'STARTUP',
            status: 'ERR',
            data: { err_code: 'ANCH_ERR_TIMEOUT_KILLED' },
          })
          expect(r.startup_task!.duration).toBeGreaterThanOrEqual(budgetMs(1, 0) - 100)
          expect(r.batches).toEqual([])
        },
      ],
      ['xopen', (r) => expect(r.batches.map((b) => b.status)).toEqual(['ERR'])],
      ['xclose', (r) => expect(r.batches.map((b) => b.status)).toEqual(['ERR'])],
      [
        'shutdown',
        (r) => {
          expect(r.shutdown_task).toMatchObject({
            task_type: 'SHUTDOWN',
            status: 'ERR',
            data: { err_code: 'ANCH_ERR_TIMEOUT_KILLED' },
          })
          expect(r.error!.err_msg).toMatch(/^SHUTDOWN /)
        },
      ],
    ]
    for (const [phase, check] of cases) {
      const ds = tempDir()
      const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '3' }
      const r = await timed(['start', ...SPIN, '--id', phase, '-t', '1', '--abort-grace', '0'], {
        ...env,
        SPIN_PHASE: phase,
      })
      check(expectKilled(r, ds, phase, 1, 0, phase))
      const next = await timed(['start', ...SPIN, '--id', phase, '-t', '30'], env)
      expect(next.code, `${phase}, next run: ${next.stderr}`).toBe(0)
      expect(next.ms).toBeLessThan(SLACK_MS + 4000)
      expect(dataFiles(ds, phase)).toEqual(committedFiles(ds, phase))
    }
  })

  it('kills a run blocked in native code (a synchronous child process, Atomics.wait) or allocating in a loop, and the processes the blocked code started', async () => {
    for (const [how, phase] of [
      ['native', 'xopen'],
      ['atomics', 'table'],
      ['json', 'shutdown'],
      ['native', 'table'],
    ] as const) {
      const ds = tempDir()
      const id = `${how}_${phase}`
      const tag = `3599.${Math.floor(Math.random() * 1e9)}`
      const r = await timed(['start', ...SPIN, '--id', id, '-t', '1', '--abort-grace', '0'], {
        ACHVY_DATASTORE: ds,
        ACHVY_USER: 'dev',
        ROWS: '3',
        SPIN_PHASE: phase,
        SPIN_HOW: how,
        SPIN_SLEEP: tag,
      })
      expectKilled(r, ds, id, 1, 0, `${how} in ${phase}`)
      if (how === 'native') expect(processesWith(tag), 'the sleep started by the hook outlived the run').toEqual([])
    }
  })

  it('ends with 124 and results when a hook awaits a promise that never settles while a timer keeps the event loop alive', async () => {
    for (const phase of ['startup', 'table', 'shutdown']) {
      const ds = tempDir()
      const r = await timed(['start', ...SPIN, '--id', phase, '-t', '1', '--abort-grace', '0'], {
        ACHVY_DATASTORE: ds,
        ACHVY_USER: 'dev',
        ROWS: '3',
        SPIN_PHASE: phase,
        SPIN_HOW: 'idle',
      })
      // the runtime may stop this one itself (its timers still run) or the supervisor kills it: either way 124
      expect(r.code, `${phase}: ${r.stderr.slice(-2000)}`).toBe(124)
      expect(r.ms).toBeLessThan(budgetMs(1, 0) + SLACK_MS)
      const results = JSON.parse(r.stdout) as Results
      expect(results).toMatchObject({ status: 'ERR', exit_code: 124 })
      expect(
        JSON.parse(readFileSync(path.join(ds, 'dev', phase, '$results/anchovy_run_results.json'), 'utf8')),
      ).toEqual(results)
      expect(existsSync(path.join(ds, 'dev', phase, '$lock'))).toBe(false)
    }
  })
})

describe('the supervisor that enforces -t', () => {
  it('changes nothing for a run that finishes in time: exit 0 and the same results as without -t', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '7' }
    const plain = await runCli(['start', ...SPIN, '--id', 'plain'], { env })
    const watched = await runCli(['start', ...SPIN, '--id', 'watched', '-t', '30'], { env })
    expect(plain.code, plain.stderr).toBe(0)
    expect(watched.code, watched.stderr).toBe(0)
    const shape = (stdout: string): unknown => {
      const r = JSON.parse(stdout) as Record<string, unknown> & Results
      return {
        keys: Object.keys(r),
        status: r.status,
        exit_code: r.exit_code,
        startup: r.startup_task?.status,
        shutdown: r.shutdown_task?.status,
        batches: r.batches.map((b) => b.done_tasks.map((t) => `${t.task_type}:${t.status}`)),
      }
    }
    expect(shape(watched.stdout)).toEqual(shape(plain.stdout))
    expect(watched.stderr).not.toContain('ANCH_ERR_')
    expect(readFileSync(path.join(ds, 'dev/watched/$checkpoints/rows.next'), 'utf8')).toBe('7')
    expect(existsSync(path.join(ds, 'dev/watched/$lock'))).toBe(false)
  })

  it('passes SIGTERM and SIGINT on to the run: completed work commits, shutdown runs, results as without -t', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const ds = tempDir()
      const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_PROGRESS_INTERVAL: '0.2' }
      const child = spawnCli(
        ['start', '-op', `${FIXTURE_OPS}:Stubborn`, '--id', 'term', '-t', '60', '--abort-grace', '1'],
        { env },
      )
      running.add(child)
      let stderr = ''
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
      await waitFor(() => /"msg":"progress"/.test(stderr), 15_000, 'a progress line')
      child.kill(signal)
      const r = await child.result
      expect(r.code, `${signal}: ${r.stderr.slice(-2000)}`).toBe(0)
      const results = JSON.parse(r.stdout) as Results
      expect(results.shutdown_task!.status).toBe('OK')
      const table = results.batches[0]!.done_tasks.find((t) => t.task_type === 'TABLE')!
      expect(table).toMatchObject({ status: 'ERR', data: { err_code: 'ANCH_ERR_ABORTED' } })
      expect(existsSync(path.join(ds, 'dev/term/$lock'))).toBe(false)
    }
  })

  it('ends with exit 1, results and a free lock when the run process dies without finishing (killed from outside)', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_DATA_FILE_MAX_BYTES: '1024', ROWS: '400' }
    const child = spawnCli(['start', ...SPIN, '--id', 'oom', '-t', '600'], {
      env: { ...env, SPIN_PHASE: 'table', SPIN_HOW: 'idle' },
    })
    running.add(child)
    const lock = path.join(ds, 'dev/oom/$lock')
    await waitFor(() => dataFiles(ds, 'oom').length > 1 && existsSync(lock), 20_000, 'data files')
    const worker = (JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid
    expect(worker).not.toBe(child.pid)
    process.kill(worker, 'SIGKILL')
    const r = await child.result
    expect(r.code, r.stderr.slice(-2000)).toBe(1)
    const results = JSON.parse(r.stdout) as Results
    expect(results).toMatchObject({ status: 'ERR', exit_code: 1, error: { err_code: 'ANCH_ERR_RUN_DIED' } })
    expect(results.error!.err_msg).toContain('killed by SIGKILL during batch 000')
    expect(JSON.parse(readFileSync(path.join(ds, 'dev/oom/$results/anchovy_run_results.json'), 'utf8'))).toEqual(
      results,
    )
    expect(existsSync(lock)).toBe(false)
    expect(existsSync(path.join(ds, 'dev/oom/$inflight.json'))).toBe(true)
    const next = await runCli(['start', ...SPIN, '--id', 'oom'], { env: { ...env, ROWS: '2' } })
    expect(next.code, next.stderr).toBe(0)
    expect(dataFiles(ds, 'oom')).toEqual(committedFiles(ds, 'oom'))
  })

  it('never prints a connection secret in the results or the error of a killed run', async () => {
    const secret = 'Zq7SecretPassw0rd'
    const ds = tempDir()
    // the secret also names the anchovy, so it is in every field the supervisor prints and stores
    const r = await timed(['start', ...SPIN, '--id', secret, '-t', '1', '--abort-grace', '0'], {
      ACHVY_DATASTORE: ds,
      ACHVY_USER: 'dev',
      SPIN_PHASE: 'startup',
      ACHVY_CNXN__WEB__PASSWORD: secret,
      ACHVY_CNXN__WEB__URL: `https://u:${secret}@example.com`,
    })
    expect(r.code, r.stderr.slice(-2000)).toBe(124)
    expect(r.stdout).not.toContain(secret)
    expect(r.stderr).not.toContain(secret)
    expect(JSON.parse(r.stdout)).toMatchObject({ anchovy_id: '***', exit_code: 124 })
    const stored = readFileSync(path.join(ds, 'dev', secret, '$results/anchovy_run_results.json'), 'utf8')
    expect(stored).not.toContain(secret)
  })
})

/** Processes whose command line contains `text` (none once a killed run's subprocesses are gone). */
function processesWith(text: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', '--', text], { encoding: 'utf8' }).split('\n').filter(Boolean)
  } catch {
    return []
  }
}
