import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { Azurite } from '../../packages/plugin-azblob/test/azurite.js'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const BIN = path.join(repo, 'packages/core/dist/cli/bin.js')
const PAGED = ['-op', `${path.join(repo, 'test/fixtures/dist/progress.js')}:PagedSource`]
const UPLOAD = ['-op', `${path.join(repo, 'test/fixtures/dist/basic.js')}:FileUploader`]
const TABLES = Array.from({ length: 9 }, (_, i) => `t${i}`)

interface Run {
  code: number | null
  stdout: string
  stderr: string
  child: ReturnType<typeof spawn>
  done: Promise<Run>
}

function anchovy(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const run = { code: null, stdout: '', stderr: '', child } as unknown as Run
  child.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()))
  run.done = new Promise((resolve) => child.on('close', (code) => resolve(Object.assign(run, { code }))))
  return run
}

/** Runs to the end; a run refused because a killed holder's lease has not expired yet (exit 75) is retried. */
async function untilNotLocked(args: string[], env: Record<string, string>): Promise<Run> {
  for (;;) {
    const r = await anchovy(args, env).done
    if (r.code !== 75) return r
    await new Promise((res) => setTimeout(res, 1000))
  }
}

/** Rows the test uploader wrote: `{table, id, worker}` per line. */
function uploaded(out: string): { table: string; id: number; worker: string }[] {
  if (!existsSync(out)) return []
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { table: string; id: number; worker: string })
}

/** Checks every table holds ids 0…total-1 exactly once; returns the worker that produced each table's rows from `since`. */
function check(out: string, total: number, since = 0): Map<string, Set<string>> {
  const rows = uploaded(out)
  const keys = rows.map((r) => `${r.table}:${r.id}`).sort()
  const want = TABLES.flatMap((t) => Array.from({ length: total }, (_, id) => `src.${t}:${id}`)).sort()
  expect(keys.length).toBe(want.length)
  expect(keys).toEqual(want)
  const byTable = new Map<string, Set<string>>()
  for (const r of rows) {
    if (r.id < since) continue
    const set = byTable.get(r.table) ?? new Set<string>()
    set.add(String(r.worker))
    byTable.set(r.table, set)
  }
  return byTable
}

async function scenario(datastore: string, lockTtl: string, batchRows: number): Promise<void> {
  const work = mkdtempSync(path.join(tmpdir(), 'anchovies-workers-'))
  try {
    const out = path.join(work, 'out.jsonl')
    const common = {
      ACHVY_DATASTORE: datastore,
      ACHVY_USER: 'dev',
      ACHVY_LOCK_TTL: lockTtl,
      TABLES: TABLES.join(','),
      PAGE: '20',
      PAGE_MS: '15',
      ACHVY_BATCH_MAX_ROWS: String(batchRows),
    }
    const dl = (n: number, i: number, total: number, extra: Record<string, string> = {}): Run =>
      anchovy(['start', '-i', 'src', ...PAGED], {
        ...common,
        TOTAL: String(total),
        ACHVY_WORKERS: String(n),
        ACHVY_WORKER_NUM: String(i),
        ...extra,
      })
    const upload = async (): Promise<void> => {
      const r = await untilNotLocked(['start', '-i', 'dst', '-U', 'src', ...UPLOAD], { ...common, OUT_FILE: out })
      expect(r.code, r.stderr).toBe(0)
    }

    // Three workers at once (the third numbered by a Kubernetes Indexed Job's JOB_COMPLETION_INDEX).
    const first = [
      dl(3, 0, 200),
      dl(3, 1, 200),
      anchovy(['start', '-i', 'src', ...PAGED], {
        ...common,
        TOTAL: '200',
        ACHVY_WORKERS: '3',
        JOB_COMPLETION_INDEX: '2',
      }),
    ]
    for (const r of await Promise.all(first.map((r) => r.done))) expect(r.code, r.stderr).toBe(0)
    await upload()
    const owners = check(out, 200)
    for (const [table, workers] of owners)
      expect(workers.size, `${table} was committed by workers ${[...workers].join(', ')}`).toBe(1)
    const perWorker = new Set([...owners.values()].map((w) => [...w][0]))
    expect(perWorker.size, 'every worker got a share').toBe(3)

    // Same N, more data: worker 1 is SIGKILLed after it committed something, then rerun; shares do not move.
    const second = [dl(3, 0, 400), dl(3, 1, 400), dl(3, 2, 400)]
    const victim = second[1]!
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (victim.stderr.includes('"intermediate":true') || victim.code !== null) {
          clearInterval(poll)
          resolve()
        }
      }, 20)
    })
    victim.child.kill('SIGKILL')
    for (const r of await Promise.all([second[0]!.done, second[2]!.done])) expect(r.code, r.stderr).toBe(0)
    const rerun = await untilNotLocked(['start', '-i', 'src', ...PAGED], {
      ...common,
      TOTAL: '400',
      ACHVY_WORKERS: '3',
      ACHVY_WORKER_NUM: '1',
    })
    expect(rerun.code, rerun.stderr).toBe(0)
    await upload()
    const again = check(out, 400, 200)
    for (const [table, workers] of again) expect([...workers], `${table} moved`).toEqual([...owners.get(table)!])

    // N changes from 3 to 2: nothing lost, nothing duplicated.
    const third = [dl(2, 0, 600), dl(2, 1, 600)]
    for (const r of await Promise.all(third.map((r) => r.done))) expect(r.code, r.stderr).toBe(0)
    await upload()
    const after = check(out, 600, 400)
    for (const [table, workers] of after) expect(workers.size, `${table} with 2 workers`).toBe(1)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

describe('workers of one anchovy (--workers, --worker-num)', () => {
  it('split tables disjointly and stably on the filesystem; a SIGKILLed worker reruns; N from 3 to 2 loses and duplicates nothing', async () => {
    const ds = mkdtempSync(path.join(tmpdir(), 'anchovies-workers-ds-'))
    try {
      await scenario(ds, '60', 20)
    } finally {
      rmSync(ds, { recursive: true, force: true })
    }
  }, 240_000)

  describe('on Azure Blob Storage (Azurite)', () => {
    let azurite: Azurite | undefined
    beforeAll(async () => {
      azurite = await Azurite.start()
    })
    afterAll(async () => {
      await azurite?.dispose()
    })
    it('split tables disjointly and stably; a SIGKILLed worker reruns; N from 3 to 2 loses and duplicates nothing', async () => {
      await scenario(azurite!.url('workers', `w-${randomBytes(3).toString('hex')}`), '15', 100)
    }, 600_000)
  })
})
