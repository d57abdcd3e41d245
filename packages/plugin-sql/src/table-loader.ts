import type { ColumnType } from '@anchovies/core'
import { declaredType, widenType, type ColumnState, type DeclaredType } from './column-types.js'
import { RESERVED, type Dialect, type Session } from './dialects/dialect.js'
import { loadDirect } from './direct-load.js'
import { checkName } from './evolve.js'
import { ensureBookkeeping, readMeta } from './ledger.js'
import { emptyResult, retryOnce, type LoadInput, type LoadJob, type LoadResult } from './load-input.js'
import { ensureSnapshotTable } from './snapshots.js'
import { loadStaged } from './staged-load.js'

export { FILE_INDEX } from './load-input.js'
export type { LoadInput, LoadJob, LoadResult, SnapshotMark, TargetState } from './load-input.js'

/**
 * Loads one table. PostgreSQL tables without `set_by` are copied straight into the target inside the merge
 * transaction (direct-load); everything else is staged in a temporary table and merged (staged-load).
 */
export async function loadTable(session: Session, raw: unknown, input: LoadInput): Promise<LoadResult> {
  const started = Date.now()
  const d = input.dialect
  const { target, table } = input
  const norm = (n: string): string => (d.caseInsensitiveNames ? n.toLowerCase() : n)
  // Concurrent uploads may create the same schema or bookkeeping tables: a second attempt sees them.
  await retryOnce(async () => {
    if (target.schema) await session.query(d.createSchema(target.schema))
    await ensureBookkeeping(d, session, target)
    if (input.snapshots?.length) await ensureSnapshotTable(d, session, target)
  })
  const declared = new Map<string, DeclaredType>(Object.entries(table.columns) as [string, ColumnType][])
  for (const c of exactDecimals(table.properties)) declared.set(c, 'decimal')
  const job: LoadJob = {
    session,
    raw,
    input,
    d,
    qualified: d.qualified(target),
    result: emptyResult(target.schema ? `${target.schema}.${target.table}` : target.table),
    keys: new Set([...table.uniqueBy, ...table.setBy]),
    norm,
    declared,
    now: new Date(),
    started,
    async readTarget() {
      const exists = await d.tableExists(session, target)
      const meta = exists ? await readMeta(d, session, target) : undefined
      const targetCols = new Map<string, ColumnState>()
      if (exists) {
        const physical = await d.physicalColumns(session, target)
        const recorded = new Map((meta?.columns ?? []).map((c) => [norm(c.name), c]))
        for (const [name, type] of physical) {
          if (RESERVED.includes(norm(name))) continue
          const rec = recorded.get(norm(name))
          targetCols.set(norm(name), rec ? { ...rec } : { name, type: d.logicalType(type), length: 0 })
        }
      }
      return { exists, meta, targetCols }
    },
    initialColumns(targetCols) {
      const cols = new Map<string, ColumnState>()
      for (const [k, c] of targetCols) cols.set(k, { ...c })
      for (const [name, t] of declared) {
        checkName(d, name, cols, norm)
        const k = norm(name)
        const c = cols.get(k)
        if (c) c.type = widenType(c.type, declaredType(t))
        else cols.set(k, { name, type: declaredType(t), length: 0 })
      }
      return cols
    },
  }
  return canLoadDirect(d, table.setBy) ? loadDirect(job) : loadStaged(job)
}

/** Whether a table is copied straight into its target (PostgreSQL, no set_by). */
export function canLoadDirect(d: { directStager?: unknown }, setBy: readonly string[]): boolean {
  return d.directStager !== undefined && setBy.length === 0
}

/**
 * Whether the byte fast path can load a table: PostgreSQL direct loads (COPY text into the target), MySQL/MariaDB
 * when `LOAD DATA LOCAL INFILE` is allowed (tab-separated text into the staging table) and SQLite (JSON arrays into
 * the staging table). PostgreSQL staged loads (set_by) stay on the general path.
 */
export function canLoadFast(d: Dialect, setBy: readonly string[], mysqlLocalInfile: boolean): boolean {
  if (d.name === 'postgres') return canLoadDirect(d, setBy)
  return d.name === 'sqlite' || mysqlLocalInfile
}

/** The `exact_decimals` table property (sql.Downloader: source DECIMAL/NUMERIC columns) as a list of names. */
export function exactDecimals(properties: Readonly<Record<string, unknown>>): string[] {
  const v = Object.hasOwn(properties, 'exact_decimals') ? properties.exact_decimals : undefined
  if (typeof v === 'string')
    return v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : []
}
