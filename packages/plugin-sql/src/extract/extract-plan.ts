import { AnchoviesError, type JsonValue, type Table } from '@anchovies/core'
import type { Literal, SourceDialect } from './source-dialect.js'
import type { SourceColumn } from './source-values.js'

/** The table settings sql.Downloader reads (`tbls.<name>.…`). */
export const EXTRACT_KEYS = [
  'mode',
  'cursor',
  'query',
  'initial_value',
  'lag',
  'where',
  'chunk_rows',
  'source_schema',
  'source_table',
] as const

/** One table's extract settings, validated. */
export interface ExtractSettings {
  readonly mode: 'full' | 'incremental'
  readonly cursor: readonly string[]
  readonly query: string | undefined
  readonly initialValue: Literal | undefined
  readonly lag: number
  readonly where: string | undefined
  readonly chunkRows: number
  /** The source table (discovered tables; config tables without `query` name it with source_schema/source_table). */
  readonly source: { schema: string; table: string } | undefined
}

/** The incremental checkpoint: the last cursor value delivered and the keys delivered at exactly that value. */
export interface IncrementalCheckpoint {
  readonly mode: 'incremental'
  readonly cursor_columns: string[]
  readonly cursor: (string | number | boolean | null)[]
  /** Keys (JSON text of the key's raw values, or a row digest without unique_by) at `cursor`; null: too many kept. */
  readonly keys: string[] | null
}

/** The full-mode checkpoint: which snapshot, whether complete, and (while not) the last key delivered. */
export interface FullCheckpoint {
  readonly mode: 'full'
  readonly snapshot: string
  readonly complete: boolean
  readonly after: (string | number | boolean | null)[] | null
  readonly rows: number
  readonly at: string
}

function prop(table: Table, key: string): unknown {
  return Object.hasOwn(table.properties, key) ? table.properties[key] : undefined
}

function names(v: unknown): string[] | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v === 'string')
    return v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' && x !== '')) return [...(v as string[])]
  return undefined
}

/** Reads and checks a table's extract settings; every problem is listed in one configuration error. */
export function extractSettings(table: Table, defaultChunkRows: number): ExtractSettings {
  const problems: string[] = []
  const at = `tbls.${table.name}`
  const cursorRaw = prop(table, 'cursor')
  const cursor = names(cursorRaw) ?? []
  if (cursorRaw !== undefined && cursorRaw !== null && cursorRaw !== '' && cursor.length === 0)
    problems.push(`${at}.cursor: must be a column name, "a, b" or a list of names`)
  const modeRaw = prop(table, 'mode')
  let mode: 'full' | 'incremental' = cursor.length ? 'incremental' : 'full'
  if (modeRaw !== undefined && modeRaw !== null) {
    if (modeRaw !== 'full' && modeRaw !== 'incremental')
      problems.push(`${at}.mode: must be full or incremental, not ${JSON.stringify(modeRaw)}`)
    else mode = modeRaw
  }
  if (mode === 'incremental' && cursor.length === 0)
    problems.push(`${at}.mode: incremental needs a cursor (tbls.${table.name}.cursor: updated_at)`)
  const text = (key: string): string | undefined => {
    const v = prop(table, key)
    if (v === undefined || v === null || v === '') return undefined
    if (typeof v !== 'string') problems.push(`${at}.${key}: must be text`)
    return typeof v === 'string' ? v : undefined
  }
  const query = text('query')
  const where = text('where')
  const iv = prop(table, 'initial_value')
  let initialValue: Literal | undefined
  if (iv !== undefined && iv !== null) {
    if (typeof iv === 'string' || typeof iv === 'number' || typeof iv === 'boolean') initialValue = iv
    else if (iv instanceof Date) initialValue = iv.toISOString()
    else problems.push(`${at}.initial_value: must be a number, text or a date`)
  }
  const num = (key: string, dflt: number, min: number): number => {
    const v = prop(table, key)
    if (v === undefined || v === null || v === '') return dflt
    const n = Number(v)
    if (!Number.isFinite(n) || n < min) {
      problems.push(`${at}.${key}: must be a number >= ${min}, not ${JSON.stringify(v)}`)
      return dflt
    }
    return n
  }
  const lag = num('lag', 0, 0)
  const chunkRows = Math.floor(num('chunk_rows', defaultChunkRows, 1))
  const schema = text('source_schema')
  const tbl = text('source_table')
  if (!query && !tbl)
    problems.push(
      `${at}: no such table or view in the source database, and no query: name an existing table (see the discovered names with -e), or give tbls.${table.name}.query`,
    )
  if (problems.length)
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `sql.Downloader: invalid table settings:\n  - ${problems.join('\n  - ')}`,
    )
  return {
    mode,
    cursor,
    query,
    initialValue,
    lag,
    where,
    chunkRows,
    source: tbl ? { schema: schema ?? '', table: tbl } : undefined,
  }
}

/** A JSON value read back from a checkpoint as a list of SQL literals, or undefined when it is not one. */
function literals(v: JsonValue | undefined): Literal[] | undefined {
  if (!Array.isArray(v) || !v.every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x)))
    return undefined
  return v as Literal[]
}

/** The checkpoint of a table as this downloader wrote it, checked; undefined when absent or not ours. */
export function readCheckpoint(v: JsonValue | undefined): IncrementalCheckpoint | FullCheckpoint | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined
  const o = v as Record<string, JsonValue>
  if (o.mode === 'incremental') {
    const cursor = literals(o.cursor)
    const cols = o.cursor_columns
    const keys = o.keys
    if (!cursor || !Array.isArray(cols) || !cols.every((c) => typeof c === 'string')) return undefined
    if (keys !== null && !(Array.isArray(keys) && keys.every((k) => typeof k === 'string'))) return undefined
    return { mode: 'incremental', cursor_columns: cols as string[], cursor, keys: keys as string[] | null }
  }
  if (o.mode === 'full' && typeof o.snapshot === 'string' && typeof o.complete === 'boolean') {
    const after = o.after === null ? null : literals(o.after)
    if (after === undefined) return undefined
    return {
      mode: 'full',
      snapshot: o.snapshot,
      complete: o.complete,
      after,
      rows: typeof o.rows === 'number' ? o.rows : 0,
      at: typeof o.at === 'string' ? o.at : '',
    }
  }
  return undefined
}

/** The SELECT of one extract, with the positions of cursor and key columns in its select list. */
export interface ExtractQuery {
  readonly sql: string
  readonly cursorIndex: number[]
  readonly keyIndex: number[]
}

/**
 * Builds the extract's SELECT. Incremental: `cursor IS NOT NULL AND (cursor) >= (last)` (inclusive: rows that share
 * the last value arrive again and the caller drops those whose key the checkpoint lists), or `first cursor column >=
 * last - lag`; ordered by cursor then key. Full: ordered by key, resuming after `after` when given.
 */
export function extractQuery(
  d: SourceDialect,
  s: ExtractSettings,
  columns: readonly SourceColumn[],
  keys: readonly string[],
  from: { last?: readonly Literal[] | undefined; after?: readonly Literal[] | undefined },
): ExtractQuery {
  const index = (name: string, what: string): number => {
    const i = columns.findIndex((c) => c.name === name)
    if (i < 0)
      throw new AnchoviesError(
        'ANCH_ERR_CONFIG',
        `sql.Downloader: ${what} ${JSON.stringify(name)} is not a column of the source (columns: ${columns
          .map((c) => c.name)
          .join(', ')
          .slice(0, 400)})`,
      )
    return i
  }
  const cursorIndex = s.mode === 'incremental' ? s.cursor.map((c) => index(c, 'cursor column')) : []
  const keyIndex = keys.map((k) => index(k, 'unique_by column'))
  const q = (n: string): string => d.quote(n)
  const tuple = (parts: readonly string[]): string => (parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`)
  const base = s.query ? `(${s.query}) AS anch_q` : d.qualified(s.source!.schema, s.source!.table)
  const conds: string[] = []
  if (s.where) conds.push(`(${s.where})`)
  let order: string[] = []
  if (s.mode === 'incremental') {
    const cur = s.cursor.map(q)
    for (const c of cur) conds.push(`${c} IS NOT NULL`)
    if (from.last) {
      if (s.lag > 0)
        conds.push(`${cur[0]} >= ${d.minusLag(d.literal(from.last[0] ?? null), columns[cursorIndex[0]!]!.kind, s.lag)}`)
      else conds.push(`${tuple(cur)} >= ${tuple(from.last.map((v) => d.literal(v)))}`)
    } else if (s.initialValue !== undefined) {
      conds.push(`${cur[0]} >= ${d.literal(s.initialValue)}`)
    }
    order = [...cur, ...keys.filter((k) => !s.cursor.includes(k)).map(q)]
  } else {
    if (from.after && keys.length) conds.push(`${tuple(keys.map(q))} > ${tuple(from.after.map((v) => d.literal(v)))}`)
    order = keys.map(q)
  }
  const select = columns.map((c) => q(c.name)).join(', ')
  const sql = `SELECT ${select} FROM ${base}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''}${order.length ? ` ORDER BY ${order.join(', ')}` : ''}`
  return { sql, cursorIndex, keyIndex }
}
