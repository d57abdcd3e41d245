import { createHash } from 'node:crypto'
import type { ColumnState } from './column-types.js'
import { DEL, RESERVED, SEQ, sqlError, type Dialect, type Session } from './dialects/dialect.js'
import type { LoadInput, LoadResult } from './load-input.js'

/** Rejects column names the dialect cannot hold, reserved names and case-insensitive duplicates. */
export function checkName(
  d: Dialect,
  name: string,
  cols: ReadonlyMap<string, ColumnState>,
  norm: (n: string) => string,
): void {
  d.quote(name, 'column name')
  if (RESERVED.includes(norm(name)) || RESERVED.includes(name.toLowerCase())) {
    throw sqlError(
      'ANCH_ERR_SQL_NAME',
      `column name ${JSON.stringify(name)} is reserved by sql.Uploader (${RESERVED.join(', ')}); rename it upstream`,
    )
  }
  const existing = cols.get(norm(name))
  if (existing && existing.name !== name) {
    throw sqlError(
      'ANCH_ERR_SQL_NAME',
      `columns ${JSON.stringify(existing.name)} and ${JSON.stringify(name)} differ only in case, which ${d.name} cannot tell apart; rename one upstream`,
    )
  }
}

/** Creates the target or adds and widens its columns; returns the changes for the metadata table. */
export async function evolveTarget(
  d: Dialect,
  session: Session,
  input: LoadInput,
  exists: boolean,
  targetCols: ReadonlyMap<string, ColumnState>,
  columns: readonly ColumnState[],
  keys: ReadonlySet<string>,
  norm: (n: string) => string,
  now: Date,
  result: LoadResult,
): Promise<Record<string, unknown>[]> {
  const { target, settings: s, table } = input
  const qualified = d.qualified(target)
  const changes = describeChanges(d, input, exists, targetCols, columns, keys, norm, now, result)
  const ddl = async (sql: string): Promise<void> => void (await session.query(sql))
  if (!exists) {
    const defs = columns.map((c) => `${d.quote(c.name, 'column name')} ${d.columnType(c, keys.has(c.name), s)}`)
    await ddl(
      `CREATE TABLE ${qualified} (${d.quote(SEQ)} ${d.seqColumnType}, ${[...defs, `${d.quote(DEL)} ${d.timestampType}`].join(', ')})${d.tableOptions}`,
    )
    for (const sql of d.seqIndexes(target, indexName(target, [SEQ]))) await ddl(sql)
    input.logger.info({ table: table.name, target: qualified }, 'created table')
  } else {
    const byName = new Map(columns.map((c) => [c.name, c]))
    let rebuild = false
    for (const change of changes) {
      const c = byName.get(change.column as string)!
      const isKey = keys.has(c.name)
      if (change.change === 'added') {
        await ddl(`ALTER TABLE ${qualified} ADD COLUMN ${d.quote(c.name, 'column name')} ${d.columnType(c, isKey, s)}`)
        input.logger.info({ table: table.name, column: c.name, type: c.type }, 'added column')
        continue
      }
      const stmts = d.widenColumn(qualified, c, targetCols.get(norm(c.name))!, isKey, s)
      if (stmts === null) rebuild = true
      else for (const sql of stmts) await ddl(sql)
      input.logger.info({ table: table.name, column: c.name, from: change.from, to: c.type }, 'widened column')
    }
    if (rebuild) await d.rebuild(session, target, columns, keys, s)
  }
  // The key index once every key column exists (a load may create the table before its first row arrives).
  if (keys.size && [...keys].every((k) => columns.some((c) => norm(c.name) === norm(k)))) {
    const cols = [...keys]
    await ddl(d.createKeyIndex(target, indexName(target, cols), cols))
  }
  return changes
}

/** The name of the uploader's index on `columns` of `target` (a hash: the same for every load, always short enough). */
function indexName(target: LoadInput['target'], columns: readonly string[]): string {
  const prefix = columns.length === 1 && columns[0] === SEQ ? 'anch_seq' : 'anch_key'
  return `${prefix}_${createHash('sha1')
    .update(`${target.schema ?? ''}.${target.table}(${columns.join(',')})`)
    .digest('hex')
    .slice(0, 16)}`
}

/**
 * The changes from `targetCols` (what the target had) to `columns`, as the table's metadata records them, without
 * DDL: `evolveTarget` applies them; direct loads change the target step by step while rows arrive and record the
 * net change once.
 */
export function describeChanges(
  d: Dialect,
  input: LoadInput,
  exists: boolean,
  targetCols: ReadonlyMap<string, ColumnState>,
  columns: readonly ColumnState[],
  keys: ReadonlySet<string>,
  norm: (n: string) => string,
  now: Date,
  result: LoadResult,
): Record<string, unknown>[] {
  const s = input.settings
  const at = now.toISOString()
  if (!exists) return [{ at, change: 'created', columns: columns.map((c) => ({ name: c.name, type: c.type })) }]
  const changes: Record<string, unknown>[] = []
  for (const c of columns) {
    const before = targetCols.get(norm(c.name))
    if (!before) {
      result.columns_added.push(c.name)
      changes.push({ at, change: 'added', column: c.name, type: c.type })
      continue
    }
    const isKey = keys.has(c.name)
    if (before.type === c.type && d.columnType(before, isKey, s) === d.columnType(c, isKey, s)) continue
    result.columns_widened.push(c.name)
    changes.push({ at, change: 'widened', column: c.name, from: before.type, to: c.type })
  }
  return changes
}
