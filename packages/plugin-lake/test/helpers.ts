import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, startAnchovy } from '@anchovies/core'
import { DuckDBInstance } from '@duckdb/node-api'

export const FIXTURES = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), 'fixtures')
export const FEED = `${FIXTURES}/operators.js:Feed`
export const GENERATE = `${FIXTURES}/operators.js:Generate`
export const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../../..')
export const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')

declare global {
  // eslint-disable-next-line no-var
  var __anchLakeFeed: Record<string, unknown[]> | undefined
}

/** Queues rows for the Feed downloader's next batch. */
export function feed(table: string, rows: unknown[]): void {
  globalThis.__anchLakeFeed ??= {}
  globalThis.__anchLakeFeed[table] = rows
}

/** A temporary folder removed by the returned function. */
export function tempDir(prefix = 'anch-lake-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(nodePath.join(tmpdir(), prefix))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Runs an anchovy in-process the way `anchovy start` does. */
export async function run(opts: {
  operator: string
  id: string
  datastore: string
  env?: Record<string, string>
  upstream?: string[]
  config?: string
  user?: string
}): Promise<{ exitCode: number; results: Record<string, unknown> }> {
  return startAnchovy(
    {
      flags: {
        operator_cls: opts.operator,
        id: opts.id,
        user: opts.user ?? 'test',
        datastore: opts.datastore,
        ...(opts.upstream ? { upstream: opts.upstream } : {}),
      },
      env: { ...opts.env },
      configText: opts.config,
      cwd: opts.datastore,
    },
    { logger: createLogger('silent', false) },
  )
}

/** The data of every TABLE task of a run's results. */
export function tableTasks(
  results: Record<string, unknown>,
): { tbl: string; status: string; data: Record<string, unknown>; error?: unknown }[] {
  const batches = results.batches as {
    done_tasks: { task_type: string; tbl: string; status: string; data: Record<string, unknown> }[]
  }[]
  return batches.flatMap((b) => b.done_tasks.filter((t) => t.task_type === 'TABLE'))
}

/** Runs SQL in a fresh in-memory DuckDB and returns the rows as JS values (BIGINT as bigint). */
export async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:')
  const c = await db.connect()
  try {
    const r = await c.runAndReadAll(sql)
    return r.getRowObjectsJS() as Record<string, unknown>[]
  } finally {
    c.closeSync()
    db.closeSync()
  }
}

/** A `read_parquet` over every data file of a dataset folder, as the README tells readers to write it. */
export function readLake(dir: string): string {
  return `read_parquet('${dir.replace(/'/g, "''")}/**/*.parquet', hive_partitioning=true, union_by_name=true)`
}
