import { AnchoviesError } from '@anchovies/core'
import type { ColumnState, SqlType } from '../column-types.js'
import type { SqlSettings, Target } from '../config.js'
import type { FastFormat } from '../fast-path/format.js'

/** The databases the uploader speaks. */
export type DialectName = 'postgres' | 'mysql' | 'sqlite'

/** Placeholder for a bound value in SQL built by the uploader (NUL never appears in a valid identifier). */
export const P = '\u0000'

/** Rows and affected-row count of one statement. */
export interface QueryResult {
  readonly rows: Record<string, unknown>[]
  readonly affected: number
}

/** One pinned database connection. */
export interface Session {
  /** Runs one statement; `P` marks each bound value in order. */
  query(sql: string, params?: readonly unknown[]): Promise<QueryResult>
}

/**
 * Loads rows into a staging table, encoding each row as it arrives (rows are never held, only their encoded
 * form up to `limit` rows), so memory stays flat. A column layout change needs `finish()` then `begin()`.
 */
export interface Stager {
  /** Starts a layout: the columns every following row is encoded with. */
  begin(columns: readonly ColumnState[]): Promise<void> | void
  /** Encodes one row; returns true when the buffer is full and `flush()` must be awaited. */
  add(row: Record<string, unknown>, ord: number, file: number): boolean
  /** Sends the buffered rows (may return before the database has stored them). */
  flush(): Promise<void>
  /** Waits until everything added is in the staging table. */
  finish(): Promise<void>
  /** The bulk format `addCopy` takes now (undefined: none; the byte fast path then loads rows through `add`). */
  fastFormat?(): FastFormat | undefined
  /**
   * Byte fast path: sends a member converted to `fastFormat()` whose rows start at `starts`; each row's placeholder
   * gets `ord` + the row's index (PostgreSQL: added to seqBase, as `_seq`) and, for MySQL, `file`. Rows buffered by
   * `add` are sent first.
   */
  addCopy?(copy: Buffer, starts: Uint32Array, ord: number, file: number): Promise<void>
  /** Abandons a bulk load in progress after an error, so the session can roll back. */
  abort?(): void
}

/** Name of the staging columns that carry arrival order and file index. */
export const ORD = '_anch_ord'
export const FILE = '_anch_file'
/** History columns. */
export const SEQ = '_seq'
export const DEL = '_del'
/** Names a data column may not have. */
export const RESERVED = [SEQ, DEL, ORD, FILE]

/** What differs between databases: names, types, bulk paths and a few statement shapes. */
export abstract class Dialect {
  abstract readonly name: DialectName
  /** Whether schemas exist (PostgreSQL schemas, MySQL databases); SQLite prefixes table names instead. */
  abstract readonly supportsSchemas: boolean
  /** Whether string columns need a length (MySQL VARCHAR). */
  readonly sizesStrings: boolean = false
  /** Whether a decimal value fits the dialect's decimal type exactly (else the column widens to text). */
  decimalFits(_v: unknown): boolean {
    return true
  }
  /** Whether identifiers compare case-insensitively. */
  readonly caseInsensitiveNames: boolean = false
  /** Column type of `_del` and other timestamps of the uploader. */
  abstract readonly timestampType: string
  /** `FOR UPDATE` where the dialect supports it. */
  readonly forUpdate: string = ' FOR UPDATE'
  /** Column definition of `_seq` in tables the uploader creates (the history key). */
  readonly seqColumnType: string = 'BIGINT NOT NULL PRIMARY KEY'
  /** Indexes on `_seq` created right after a new table (`indexName` unquoted), where `seqColumnType` makes none. */
  seqIndexes(_t: Target, _indexName: string): string[] {
    return []
  }
  /** Column type of long text in the bookkeeping tables (file ids, JSON). */
  readonly longTextType: string = 'TEXT'
  /** Drops a staging table (temporary; quoted here). */
  dropStage(name: string): string {
    return `DROP TABLE IF EXISTS ${this.quote(name)}`
  }
  /** Whether a database error is a deadlock or serialization failure (the transaction was rolled back; retry it). */
  isDeadlock(err: unknown): boolean {
    const code = (err as { code?: unknown }).code
    return code === 'ER_LOCK_DEADLOCK' || code === '40P01' || code === '40001'
  }
  /** Whether a database error is a unique-key violation. */
  isUniqueViolation(_err: unknown): boolean {
    return false
  }

  /** Why `name` cannot be an identifier here, or undefined. */
  protected abstract nameProblem(name: string): string | undefined
  protected abstract quoteRaw(name: string): string

  /** Quotes an identifier after checking the dialect can represent it. */
  quote(name: string, what = 'identifier'): string {
    if (typeof name !== 'string' || name.length === 0) throw nameError(this.name, what, String(name), 'it is empty')
    if (name.includes('\u0000')) throw nameError(this.name, what, name, 'it contains a NUL character')
    const p = this.nameProblem(name)
    if (p) throw nameError(this.name, what, name, p)
    return this.quoteRaw(name)
  }

  /** `schema.table`, quoted. */
  qualified(t: Target): string {
    return t.schema
      ? `${this.quote(t.schema, 'schema name')}.${this.quote(t.table, 'table name')}`
      : this.quote(t.table, 'table name')
  }

  /** A sibling table in the same schema as `t` (the ledger, the metadata table). */
  sibling(t: Target, table: string): string {
    return this.qualified({ schema: t.schema, table })
  }

  /** The DDL type of a column. */
  abstract columnType(c: ColumnState, isKey: boolean, s: SqlSettings): string
  /** `CREATE SCHEMA` statement, when schemas exist. */
  abstract createSchema(schema: string): string
  /** Options after `CREATE TABLE (...)`. */
  readonly tableOptions: string = ''
  /** Statements that change the column's type from `from` to `to` in `table` (null: the table must be rebuilt). */
  abstract widenColumn(
    table: string,
    c: ColumnState,
    from: ColumnState,
    isKey: boolean,
    s: SqlSettings,
  ): string[] | null
  /** A literal timestamp for `_del`, `loaded_at` and retention cut-offs. */
  abstract timestampLiteral(d: Date): string
  /** `CREATE TEMPORARY TABLE` for staging. */
  abstract createStage(name: string, columns: readonly ColumnState[], s: SqlSettings, keys: ReadonlySet<string>): string
  /** Adds a staging column (or null when the staging table needs no change). */
  abstract stageAddColumn(stage: string, c: ColumnState, s: SqlSettings, keys: ReadonlySet<string>): string | null
  /** Widens a staging column (null when nothing to do). */
  abstract stageWidenColumn(
    stage: string,
    c: ColumnState,
    from: ColumnState,
    s: SqlSettings,
    keys: ReadonlySet<string>,
  ): string | null
  /** A bulk loader into the staging table. */
  abstract stager(raw: unknown, session: Session, stage: string, s: SqlSettings): Stager
  /**
   * A bulk loader straight into the target (quoted `table`) inside the merge transaction, writing `_seq` =
   * `seqBase` + arrival order and no staging columns; undefined where the dialect stages every load. `created`: the
   * transaction created the table (PostgreSQL loads it with `COPY … FREEZE`).
   */
  directStager?(raw: unknown, table: string, seqBase: number, s: SqlSettings, created: boolean): Stager
  /** A session over a raw driver connection. */
  abstract session(raw: unknown): Session
  /** Starts the merge transaction. */
  async begin(session: Session): Promise<void> {
    await session.query('BEGIN')
  }
  /** A statement refreshing the planner's statistics of a table after a bulk load, or null. */
  analyze(_table: string): string | null {
    return null
  }
  /** `UPDATE target SET _del = <ts> WHERE _seq IN (<sub>)` in the dialect's join-update form. */
  abstract markDeleted(target: string, sub: string, ts: string): string
  /**
   * Supersedes current rows of `target` before `_seq` `start` whose key (quoted `keys`) no row from `start` on has;
   * without keys every current row before `start` (a complete snapshot replaced them).
   */
  supersedeAbsent(target: string, keys: readonly string[], start: number, ts: string): string {
    const where = `x.${this.quote(DEL)} IS NULL AND x.${this.quote(SEQ)} < ${start}`
    if (keys.length === 0) return `UPDATE ${target} AS x SET ${this.quote(DEL)} = ${ts} WHERE ${where}`
    const same = keys.map((k) => `n.${k} = x.${k}`).join(' AND ')
    return `UPDATE ${target} AS x SET ${this.quote(DEL)} = ${ts} WHERE ${where} AND NOT EXISTS (SELECT 1 FROM ${target} AS n WHERE n.${this.quote(SEQ)} >= ${start} AND ${same})`
  }
  /** Whether `t` exists. */
  abstract tableExists(session: Session, t: Target): Promise<boolean>
  /** The physical columns of `t` (lower-cased name for case-insensitive dialects → declared type). */
  abstract physicalColumns(session: Session, t: Target): Promise<Map<string, string>>
  /** The logical type of a physical column type (for tables the uploader did not create). */
  abstract logicalType(physical: string): SqlType
  /** An index on the key columns of current rows. */
  abstract createKeyIndex(t: Target, indexName: string, columns: readonly string[]): string
  /** Rebuilds a table with new column types (SQLite only). */
  async rebuild(
    _session: Session,
    _t: Target,
    _columns: readonly ColumnState[],
    _keys: ReadonlySet<string>,
    _s: SqlSettings,
  ): Promise<void> {
    throw new AnchoviesError('ANCH_ERR_TABLE', `${this.name}: rebuilding tables is not supported`)
  }
}

function nameError(dialect: string, what: string, name: string, why: string): AnchoviesError {
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)
  const hint =
    what === 'schema name'
      ? 'map the anchovy id to another schema with ACHVY_CNXN__SCHEMAS__<ANCHOVY_ID>=<schema>'
      : what === 'table name'
        ? 'set the sql_table property of the table'
        : 'rename it upstream'
  return sqlError('ANCH_ERR_SQL_NAME', `${what} ${shown} cannot be used in ${dialect}: ${why}; ${hint}`)
}

/** Replaces each `P` in `sql` with what `bind(i)` returns. */
export function bindPlaceholders(sql: string, bind: (i: number) => string): string {
  let i = 0
  return sql.replace(/\u0000/g, () => bind(i++))
}

/** A coded error of this plugin (the codes are listed in the README). */
export function sqlError(code: `ANCH_ERR_SQL_${string}`, message: string, options?: ErrorOptions): AnchoviesError {
  return new AnchoviesError(code as never, message, options)
}
