import type { Logger } from '@anchovies/core'
import type { Row, Table, UpstreamFile } from '@anchovies/core'
import type { ColumnState, DeclaredType } from './column-types.js'
import type { SqlSettings, Target } from './config.js'
import type { TableMeta } from './ledger.js'
import { SEQ, type Dialect, type Session } from './dialects/dialect.js'
import type { OpenFile } from './fast-path/byte-files.js'
import type { MemberPool } from './fast-path/worker-pool.js'

/** The row property (a symbol, so never a column) holding the index of the upstream file a row came from. */
export const FILE_INDEX = Symbol.for('anchovies.sql.fileIndex')

/** Loads of at least this many rows refresh planner statistics (PostgreSQL). */
export const ANALYZE_ROWS = 10_000

/**
 * A complete snapshot of a full-mode source table (sql.Downloader) that this load finishes: every current row the
 * snapshot does not contain is superseded. `firstFile` is the index in `files` of the snapshot's first file in this
 * load (-1: none of its files is in this load).
 */
export interface SnapshotMark {
  readonly id: string
  readonly firstFile: number
  readonly complete: boolean
  /** Rows the snapshot holds in all (as its source recorded it). */
  readonly rows: number
}

/** Everything one table load needs. */
export interface LoadInput {
  readonly dialect: Dialect
  readonly target: Target
  readonly table: Table
  /** The upstream files the rows come from, in order (`row[FILE_INDEX]` indexes this list). */
  readonly files: readonly UpstreamFile[]
  /** The rows, in chunks (arrays) as the core passes them. */
  readonly rows: AsyncIterable<Row[]>
  readonly settings: SqlSettings
  readonly logger: Logger
  readonly signal: AbortSignal
  readonly uploader: string
  readonly sessionId: string
  /** Full-mode snapshots the files belong to, in commit order. */
  readonly snapshots?: readonly SnapshotMark[] | undefined
  /**
   * Byte fast path: the sink reads `files` itself (the source yielded no rows), converting their members to COPY
   * text in worker threads; only direct PostgreSQL loads take it.
   */
  readonly byteFiles?: { readonly open: OpenFile; readonly pool: MemberPool } | undefined
  /** Test hook: called inside the merge transaction after the rows are inserted. */
  readonly afterInsert?: (() => Promise<void> | void) | undefined
}

/** What a load did (goes to the table task's `data`). */
export interface LoadResult {
  target: string
  inserted: number
  superseded: number
  expired: number
  columns_added: string[]
  columns_widened: string[]
  files_loaded: number
  files_loaded_elsewhere: number
  /** Rows read from the upstream files. */
  rows: number
  duration_ms: number
  /** Time spent reading and staging the rows, and in the merge transaction. */
  stage_ms: number
  merge_ms: number
  /** Byte fast path: rows that went to the database as COPY text converted by a worker (the rest took the general path). */
  fast_rows?: number
  /** Current rows a complete full-mode snapshot no longer contained (superseded with `_del`). */
  snapshot_removed?: number
}

/** A fresh result for `target`. */
export function emptyResult(target: string): LoadResult {
  return {
    target,
    inserted: 0,
    superseded: 0,
    expired: 0,
    columns_added: [],
    columns_widened: [],
    files_loaded: 0,
    files_loaded_elsewhere: 0,
    rows: 0,
    duration_ms: 0,
    stage_ms: 0,
    merge_ms: 0,
  }
}

/** Stamps the duration and returns the result. */
export function finish(result: LoadResult, started: number): LoadResult {
  result.duration_ms = Date.now() - started
  return result
}

/** Runs `fn`, and once more after a short random pause if it fails (concurrent uploads creating the same objects). */
export async function retryOnce(fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch {
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
    await fn()
  }
}

/** The `_seq` after the highest one in `qualified`. */
export async function nextSeqOf(d: Dialect, session: Session, qualified: string): Promise<number> {
  const r = await session.query(`SELECT COALESCE(MAX(${d.quote(SEQ)}), 0) + 1 AS n FROM ${qualified}`)
  return Number(r.rows[0]?.n ?? 1)
}

/** What the target holds already: recorded logical types, else types read from the catalog. */
export interface TargetState {
  exists: boolean
  meta: TableMeta | undefined
  targetCols: Map<string, ColumnState>
}

/** What both load strategies share for one table load. */
export interface LoadJob {
  readonly session: Session
  readonly raw: unknown
  readonly input: LoadInput
  readonly d: Dialect
  readonly qualified: string
  readonly result: LoadResult
  readonly keys: ReadonlySet<string>
  readonly norm: (n: string) => string
  /** Declared types by column name (a Map: a column named like an Object.prototype member is just a name). */
  readonly declared: ReadonlyMap<string, DeclaredType>
  readonly now: Date
  readonly started: number
  readTarget(): Promise<TargetState>
  /** The load's starting columns: the target's, widened by declared types. */
  initialColumns(targetCols: ReadonlyMap<string, ColumnState>): Map<string, ColumnState>
}

/** Runs a merge statement and logs how long it took. */
export function timer(
  job: LoadJob,
): (what: string, sql: string) => Promise<{ rows: Record<string, unknown>[]; affected: number }> {
  return async (what, sql) => {
    const t0 = Date.now()
    const r = await job.session.query(sql)
    job.input.logger.debug({ step: what, ms: Date.now() - t0, rows: r.affected }, 'merge step')
    return r
  }
}

/** The table's sort keys that name load columns, spelled as the columns are. */
export function sortKeys(
  job: LoadJob,
  cols: ReadonlyMap<string, ColumnState>,
): { column: string; descending: boolean }[] {
  return job.input.table.sortBy
    .filter((k) => cols.has(job.norm(k.column)))
    .map((k) => ({ column: cols.get(job.norm(k.column))!.name, descending: k.descending }))
}

/** The first `_seq` of each file's rows (rows get `_seq` = base + arrival order, file after file). */
export function fileFirstSeqs(files: readonly UpstreamFile[], fileRows: readonly number[], base: number): number[] {
  let next = base
  return files.map((_, i) => {
    const first = next
    next += fileRows[i] ?? 0
    return first
  })
}
