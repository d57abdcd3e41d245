import { AnchoviesError, DateTime, LocalDate, type Table } from '@anchovies/core'
import { epochDays, epochMicros, textOf } from './column-types.js'

/** The folder of the lake's bookkeeping inside a table's dataset (Spark, Synapse and DuckDB globs skip it). */
export const META_DIR = '_anchovies'
/** The hive partition value of NULL (the name Hive, Spark and DuckDB use). */
export const NULL_PARTITION = '__HIVE_DEFAULT_PARTITION__'

/** Where one upstream table's dataset lives in the lake, relative to the lake root. */
export function datasetBase(table: Table): string {
  return `${table.namespace ?? '_'}/${table.name}`
}

/** A load record's path. */
export function loadPath(base: string, seq: number): string {
  return `${base}/${META_DIR}/loads/${String(seq).padStart(10, '0')}.json`
}

/** The derived manifest's path. */
export function manifestPath(base: string): string {
  return `${base}/${META_DIR}/manifest.json`
}

/** The folder of staged (not yet published) files. */
export function stagingDir(base: string): string {
  return `${base}/${META_DIR}/staging`
}

/** The name of the `n`-th file of load `seq`: sortable by load, then by file. */
export function partName(seq: number, n: number): string {
  return `part-${String(seq).padStart(10, '0')}-${String(n).padStart(5, '0')}.parquet`
}

/** How a table's files are split into hive folders (`partition_by`). */
export interface PartitionSpec {
  readonly column: string
  /** A date part of a datetime/date column, or undefined to partition by the column's value. */
  readonly by: 'year' | 'month' | 'day' | undefined
  /** The folder key (`dt` for date parts, the column's name otherwise). */
  readonly key: string
}

const DATE_PARTS = ['year', 'month', 'day'] as const

/**
 * Reads `partition_by` from a table's properties: `order_date` or `{column: updated_at, by: day[, name: dt]}`.
 * Undefined when absent; a malformed value fails naming the table and the key.
 */
export function partitionSpec(table: Table, fallback: unknown): PartitionSpec | undefined {
  const raw = Object.hasOwn(table.properties, 'partition_by') ? table.properties.partition_by : fallback
  if (raw === undefined || raw === null || raw === '') return undefined
  const bad = (why: string): AnchoviesError =>
    new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `tbls.${table.name}.partition_by: ${why}; write a column name (partition_by: order_date) or {column: updated_at, by: day}`,
    )
  if (typeof raw === 'string') return { column: raw, by: undefined, key: checkKey(raw, bad) }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('expected a column name or a map')
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o))
    if (!['column', 'by', 'name'].includes(k)) throw bad(`unknown key ${JSON.stringify(k.slice(0, 40))}`)
  if (typeof o.column !== 'string' || o.column === '') throw bad('column is missing')
  let by: PartitionSpec['by']
  if (o.by !== undefined) {
    if (typeof o.by !== 'string' || !(DATE_PARTS as readonly string[]).includes(o.by))
      throw bad(`by must be one of ${DATE_PARTS.join(', ')}`)
    by = o.by as PartitionSpec['by']
  }
  const key = o.name === undefined ? (by ? 'dt' : o.column) : o.name
  if (typeof key !== 'string' || key === '') throw bad('name must be a non-empty string')
  return { column: o.column, by, key: checkKey(key, bad) }
}

/** A folder key must be plain: it names a column for every reader of the dataset. */
function checkKey(key: string, bad: (why: string) => Error): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(key))
    throw bad(`${JSON.stringify(key.slice(0, 40))} cannot name a hive folder (letters, digits and _)`)
  return key
}

/** The folder value of one row's partition column (escaped like Hive: `%XX` for anything unusual). */
export function partitionValue(spec: PartitionSpec, v: unknown): string {
  if (v === null || v === undefined || v === '') return NULL_PARTITION
  if (spec.by) {
    const date = dateOf(v)
    if (!date) return escapeValue(textOf(v))
    const y = String(date.year).padStart(4, '0')
    const m = String(date.month).padStart(2, '0')
    const d = String(date.day).padStart(2, '0')
    return spec.by === 'year' ? y : spec.by === 'month' ? `${y}-${m}` : `${y}-${m}-${d}`
  }
  const text = v instanceof LocalDate ? v.toString() : textOf(v)
  return escapeValue(text.length > 200 ? text.slice(0, 200) : text)
}

/** The calendar date of a datetime (in UTC for aware values, the wall clock for naive ones) or a date. */
function dateOf(v: unknown): LocalDate | undefined {
  if (v instanceof LocalDate) return v
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : LocalDate.fromDate(v)
  if (v instanceof DateTime) return LocalDate.fromDate(new Date(Number(epochMicros(v) / 1000n)))
  return undefined
}

function escapeValue(text: string): string {
  let out = ''
  for (const ch of text) {
    if (/^[A-Za-z0-9_\-.: ]$/.test(ch) && ch !== ':') out += ch
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  // A value of dots alone would read as a relative folder to some tools.
  return /^\.+$/.test(out) ? out.replace(/\./g, '%2E') : out
}

/** A value's rank for min/max statistics: numbers, bigints, strings and instants compare within their kind. */
export function rankOf(v: unknown): number | bigint | string | undefined {
  if (v === null || v === undefined) return undefined
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') return v
  if (v instanceof DateTime || v instanceof Date) return epochMicros(v)
  if (v instanceof LocalDate) return epochDays(v)
  return undefined
}
