import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, commitRecords, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)
const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
})

const PAGED = ['-op', `${path.join(REPO, 'test/fixtures/dist/progress.js')}:PagedSource`]
const UPLOAD = ['-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:FileUploader`]

interface Rec {
  seq: number
  worker?: string
  files: { table: string; rows: number }[]
  checkpoints: Record<string, unknown>
}

/** The commit records of `dev/<id>`. */
export function commits(ds: string, id: string): Rec[] {
  const dir = path.join(ds, 'dev', id, '$commits')
  return commitRecords(dir).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Rec)
}

const committedRows = (ds: string, id: string): number =>
  commits(ds, id).reduce((n, r) => n + r.files.reduce((m, f) => m + f.rows, 0), 0)

/** The rows the test uploader wrote, as `table:id` keys (duplicates kept). */
function uploaded(out: string): string[] {
  if (!existsSync(out)) return []
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const r = JSON.parse(l) as { table: string; id: number }
      return `${r.table}:${r.id}`
    })
}

/** Every `table:id` for ids 0…total-1 of `tables` read from upstream `up`. */
function expected(up: string, tables: string[], total: number): string[] {
  return tables.flatMap((t) => Array.from({ length: total }, (_, id) => `${up}.${t}:${id}`)).sort()
}

const base = (ds: string, id: string): string[] => ['start', '--datastore', ds, '-u', 'dev', '-i', id]

describe('intermediate commits', () => {
  it('a backlog longer than -t makes progress run after run, and the uploader gets every row exactly once', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    // 1200 rows at 20 per 60 ms take 3.6 s of paging: at least three runs of -t 1.5 even on an idle machine
    const env = { TOTAL: '1200', PAGE: '20', PAGE_MS: '60', ACHVY_BATCH_MAX_ROWS: '20' }
    const progress: number[] = []
    for (let run = 0; run < 20; run++) {
      const r = await runCli([...base(ds, 'src'), ...PAGED, '-t', '1.5'], { env })
      progress.push(committedRows(ds, 'src'))
      // The uploader runs between the downloader's runs: it takes each intermediate commit once.
      const up = await runCli([...base(ds, 'dst'), ...UPLOAD, '-U', 'src'], { env: { OUT_FILE: out } })
      expect(up.code, up.stderr).toBe(0)
      if (r.code === 0) break
      expect(r.code, r.stderr).toBe(124)
      expect(progress.at(-1)!, `run ${run} committed nothing new: ${progress.join(', ')}`).toBeGreaterThan(
        progress.at(-2) ?? 0,
      )
    }
    expect(progress.length, `runs: ${progress.join(', ')}`).toBeGreaterThan(2)
    expect(committedRows(ds, 'src')).toBe(1200)
    expect(uploaded(out).sort()).toEqual(expected('src', ['events'], 1200))
  }, 240_000)

  it('SIGTERM in the middle of a table keeps what its commit points committed; the rerun goes on from there', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { TOTAL: '2000', PAGE: '50', PAGE_MS: '30', ACHVY_BATCH_MAX_ROWS: '100' }
    const child = spawnCli([...base(ds, 'src'), ...PAGED], { env })
    running.add(child)
    await waitFor(() => commits(ds, 'src').length >= 3, 60_000, 'three intermediate commits')
    child.kill('SIGTERM')
    await child.result
    const kept = committedRows(ds, 'src')
    expect(kept).toBeGreaterThanOrEqual(300)
    expect(kept).toBeLessThan(2000)
    const again = await runCli([...base(ds, 'src'), ...PAGED], { env })
    expect(again.code, again.stderr).toBe(0)
    const results = JSON.parse(again.stdout) as {
      batches: { done_tasks: { task_type: string; data: { started_at_id?: number } }[] }[]
    }
    const table = results.batches[0]!.done_tasks.find((t) => t.task_type === 'TABLE')!
    expect(table.data.started_at_id).toBe(kept)
    const up = await runCli([...base(ds, 'dst'), ...UPLOAD, '-U', 'src'], { env: { OUT_FILE: out } })
    expect(up.code, up.stderr).toBe(0)
    expect(uploaded(out).sort()).toEqual(expected('src', ['events'], 2000))
  }, 120_000)

  it('a commit point in a sink is refused with a clear error', async () => {
    const ds = tempDir()
    const r = await runCli([
      ...base(ds, 'src'),
      '-op',
      `${path.join(REPO, 'test/fixtures/dist/progress.js')}:CommitInSink`,
    ])
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toContain("commitPoint() and commit() are for the source of a chain's first table")
  })
})

describe('--follow (pipelined stages)', () => {
  it('an uploader in service mode takes each intermediate commit while the downloader still runs, every row once', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    // The downloader must exist before the uploader reads its tables.
    expect((await runCli([...base(ds, 'src'), ...PAGED], { env: { TOTAL: '20', PAGE: '20' } })).code).toBe(0)
    const follower = spawnCli([...base(ds, 'dst'), ...UPLOAD, '-U', 'src', '-S', '--interval', '60', '--follow'], {
      env: { OUT_FILE: out },
    })
    running.add(follower)
    const producer = spawnCli([...base(ds, 'src'), ...PAGED], {
      env: { TOTAL: '1000', PAGE: '20', PAGE_MS: '100', ACHVY_BATCH_MAX_ROWS: '20' },
    })
    running.add(producer)
    // Rows arrive downstream long before the downloader ends (about 5 s) and far sooner than --interval 60.
    await waitFor(() => uploaded(out).length > 100, 30_000, 'rows uploaded while the downloader runs')
    expect(producer.exitCode).toBeNull()
    expect((await producer.result).code).toBe(0)
    await waitFor(() => uploaded(out).length >= 1000, 30_000, 'every row uploaded')
    follower.kill('SIGTERM')
    await follower.result
    expect(uploaded(out).sort()).toEqual(expected('src', ['events'], 1000))
  }, 120_000)
})

describe('workers and the rest of the CLI', () => {
  it('a run without workers, and anchovy checkpoint set, are refused while a worker of the same anchovy runs', async () => {
    const ds = tempDir()
    const env = {
      TOTAL: '100000',
      PAGE: '10',
      PAGE_MS: '50',
      ACHVY_WORKERS: '2',
      ACHVY_WORKER_NUM: '1',
      TABLES: 'a,b,c,d',
    }
    const worker = spawnCli([...base(ds, 'src'), ...PAGED], { env })
    running.add(worker)
    await waitFor(() => existsSync(path.join(ds, 'dev/src/$workers/1/$lock')), 30_000, 'the worker lock')
    const plain = await runCli([...base(ds, 'src'), ...PAGED], { env: { TOTAL: '10' } })
    expect(plain.code).toBe(75)
    expect(plain.stdout + plain.stderr).toContain('dev/src/$workers/1 is already running')
    const set = await runCli(['checkpoint', 'set', 'a.next', '5', '--datastore', ds, '-u', 'dev', '-i', 'src'])
    expect(set.code).toBe(75)
    // Another worker of the same anchovy is not blocked.
    const other = await runCli([...base(ds, 'src'), ...PAGED], { env: { ...env, TOTAL: '20', ACHVY_WORKER_NUM: '0' } })
    expect(other.code, other.stderr).toBe(0)
    worker.kill('SIGKILL')
  }, 120_000)
})
