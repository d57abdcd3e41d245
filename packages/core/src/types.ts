/** One row: a flat object of column values (nested objects and arrays are allowed as values). */
export type Row = Record<string, unknown>

/** The column types a table's `columns` map may name. */
export const COLUMN_TYPES = ['str', 'int', 'float', 'bool', 'datetime', 'date', 'time', 'bytes', 'object'] as const
/** A column type name from `tbls.<name>.columns`. */
export type ColumnType = (typeof COLUMN_TYPES)[number]

/** The `@onTask` phases, in lifecycle order (`error` runs when a phase or table fails). */
export const TASK_PHASES = ['startup', 'xopen', 'xclose', 'shutdown', 'error'] as const
/** A phase an `@onTask` hook can attach to. */
export type TaskPhase = (typeof TASK_PHASES)[number]

/** The `task_type` values written to task logs. */
export type TaskType = 'STARTUP' | 'XOPEN' | 'TABLE' | 'XCLOSE' | 'ERROR' | 'SHUTDOWN'

/** One `sort_by` entry. */
export interface SortKey {
  readonly column: string
  readonly descending: boolean
}

/** A table an operator moves, from `config.yaml`, discovery or an upstream anchovy's `$tables`. */
export interface Table {
  /** Bare table name (the `tbls:` key). */
  readonly name: string
  /** The anchovy id whose data this table is (upstream tables of an uploader), or null for the running anchovy. */
  readonly namespace: string | null
  readonly columns: Readonly<Record<string, ColumnType>>
  readonly uniqueBy: readonly string[]
  readonly setBy: readonly string[]
  readonly sortBy: readonly SortKey[]
  /** Seconds a superseded row is kept by uploaders that keep history; null = forever. */
  readonly deletedTtl: number | null
  readonly dataChangeTimestampField: string | null
  /** Plugin-specific keys (`path`, `delimiter`, …). */
  readonly properties: Readonly<Record<string, unknown>>
}

/** A value that can be stored as a checkpoint. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
