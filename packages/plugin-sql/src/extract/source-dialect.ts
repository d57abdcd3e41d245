import type { SourceColumn, SourceTable, ValueKind } from './source-values.js'

/** A literal value in extract SQL: from checkpoints and config (cursor values, keys, initial_value). */
export type Literal = string | number | boolean | null

/** One dedicated connection reading one table in a repeatable-read snapshot. */
export interface SourceSession {
  /** Starts the read-only snapshot transaction. */
  begin(): Promise<void>
  /** Ends it (a read-only transaction: commit and rollback are the same). */
  end(): Promise<void>
  /** The columns a SELECT returns (for `query:` tables and for tables, in select-list order). */
  describe(sql: string): Promise<SourceColumn[]>
  /**
   * Streams the rows of `sql` as arrays of raw driver values (null for NULL), in batches of at most about `chunkRows`
   * (often fewer); reads ahead of the consumer by at most about one batch (back-pressure down to the database's
   * socket or cursor).
   */
  stream(
    sql: string,
    columns: readonly SourceColumn[],
    chunkRows: number,
    signal: AbortSignal,
  ): AsyncGenerator<unknown[][]>
  /** Closes the connection (destroys it when a stream was left unfinished). */
  close(): Promise<void>
}

/** What differs between source databases: catalog queries, quoting, literals, streaming. */
export interface SourceDialect {
  readonly name: 'postgres' | 'mysql' | 'sqlite'
  quote(name: string): string
  qualified(schema: string, table: string): string
  literal(v: Literal): string
  /** `expr` minus `lag` (seconds for date and time kinds, units otherwise), as SQL. */
  minusLag(expr: string, kind: ValueKind, lag: number): string
  /** Every table and view the connection can read: one query for the columns, one for the primary keys. */
  discover(): Promise<SourceTable[]>
  /** A new connection for one table's extract. */
  open(): Promise<SourceSession>
}

/** Quotes an SQL string literal by doubling single quotes (standard_conforming_strings, SQLite). */
export function standardString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}
