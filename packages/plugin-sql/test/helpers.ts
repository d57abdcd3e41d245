import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, startAnchovy } from '@anchovies/core'

export const FIXTURES = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), 'fixtures')
export const FEED = `${FIXTURES}/operators.js:Feed`
export const FAILING = `${FIXTURES}/operators.js:FailingUploader`
export const PY_FIXTURE = nodePath.resolve(FIXTURES, '../../../../test/fixtures/py-anchovies-datastore/fixture')

declare global {
  // eslint-disable-next-line no-var
  var __anchSqlFeed: Record<string, unknown[]> | undefined
  // eslint-disable-next-line no-var
  var __anchSqlFailMerge: string | undefined
}

/** Queues rows for the Feed downloader's next batch. */
export function feed(table: string, rows: unknown[]): void {
  globalThis.__anchSqlFeed ??= {}
  globalThis.__anchSqlFeed[table] = rows
}

/** A temporary folder removed by the returned function. */
export function tempDir(prefix = 'anch-sql-'): { dir: string; remove: () => void } {
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
  /** Tables to run (`-e`). */
  enable?: string[]
}): Promise<{ exitCode: number; results: Record<string, unknown> }> {
  return startAnchovy(
    {
      flags: {
        operator_cls: opts.operator,
        id: opts.id,
        user: opts.user ?? 'test',
        datastore: opts.datastore,
        ...(opts.upstream ? { upstream: opts.upstream } : {}),
        ...(opts.enable ? { enabled: opts.enable } : {}),
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
): { tbl: string; status: string; data: Record<string, unknown> }[] {
  const batches = results.batches as {
    done_tasks: { task_type: string; tbl: string; status: string; data: Record<string, unknown> }[]
  }[]
  return batches.flatMap((b) => b.done_tasks.filter((t) => t.task_type === 'TABLE'))
}
