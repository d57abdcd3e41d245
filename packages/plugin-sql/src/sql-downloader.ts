import { createHash, randomBytes } from 'node:crypto'
import {
  Downloader,
  connection,
  source,
  type ColumnType,
  type JsonValue,
  type Row,
  type SettingSpec,
  type StreamContext,
  type Table,
} from '@anchovies/core'
import {
  extractQuery,
  extractSettings,
  readCheckpoint,
  type ExtractSettings,
  type FullCheckpoint,
  type IncrementalCheckpoint,
} from './extract/extract-plan.js'
import { MysqlSource } from './extract/mysql-source.js'
import { PgSource } from './extract/pg-source.js'
import type { Literal, SourceDialect } from './extract/source-dialect.js'
import { columnTypeOf, converter, rawJson, type SourceColumn, type SourceTable } from './extract/source-values.js'
import { SqliteSource } from './extract/sqlite-source.js'
import { SqlConnection, knexConfig } from './sql-connection.js'

/** Keys kept in a checkpoint for the rows at the last cursor value; beyond, those rows are delivered again next time. */
export const MAX_BOUNDARY_KEYS = 10_000

/** The settings sql.Downloader adds to `anchovy start`. */
export const DOWNLOADER_SETTINGS: readonly SettingSpec[] = [
  {
    key: 'sql_chunk_rows',
    env: ['ACHVY_SQL_CHUNK_ROWS'],
    type: 'int',
    default: 10_000,
    min: 1,
    description:
      "sql.Downloader: rows between commit points (a table's chunk_rows wins); rows are handed on as they are read",
  },
]

/**
 * Extracts tables and views of PostgreSQL, MariaDB/MySQL and SQLite into the datastore: every readable table is
 * discovered (`-e public.orders`, `-e 'sales.*'` select), in full mode (a complete snapshot that the uploader
 * uses to supersede rows gone from the source) or incremental mode (rows whose cursor reached the last value
 * delivered, exactly once at the boundary). Each table is read in one repeatable-read snapshot, streamed in chunks,
 * with a commit point after each chunk.
 */
export class SqlDownloader extends Downloader {
  static override settings: readonly SettingSpec[] = DOWNLOADER_SETTINGS

  /** The source database (`ACHVY_CNXN__DB__URL`). */
  @connection('db', SqlConnection) db!: SqlConnection

  private sourceDialect: SourceDialect | undefined
  private readonly catalog = new Map<string, SourceTable>()

  /** The source side of the connection (catalog queries and streaming). */
  get source(): SourceDialect {
    if (!this.sourceDialect) {
      const { config } = knexConfig(String(this.db.attrs.url), this.db.attrs)
      const conn = config.connection as Record<string, unknown>
      if (config.client === 'pg') this.sourceDialect = new PgSource(String(conn.connectionString))
      else if (config.client === 'mysql2') this.sourceDialect = new MysqlSource(conn)
      else this.sourceDialect = new SqliteSource(String(conn.filename))
    }
    return this.sourceDialect
  }

  /** Every table and view the connection can read (`schema.table`), with types and primary keys; `tbls:` overrides. */
  override async discoverTbls(): Promise<Table[]> {
    const out = new Map<string, Table>()
    const found = await this.source.discover()
    for (const t of found) {
      if (t.name.startsWith('_anchovies_')) continue
      const name = tableName(t.schema, t.name)
      if (name === undefined || out.has(name)) {
        this.runtime.logger.warn(
          { schema: t.schema, source_table: t.name },
          'sql.Downloader: a source table whose name cannot be a table name (or repeats one) is skipped; name it in tbls with source_schema/source_table',
        )
        continue
      }
      this.catalog.set(name, t)
      out.set(name, discovered(name, t))
    }
    for (const c of this.runtime.configTables) {
      const d = out.get(c.name)
      out.set(c.name, d ? overlay(d, c) : await this.described(c))
    }
    return [...out.values()]
  }

  /** A `tbls:` table with a `query:`, typed from the query's result columns (config types win). */
  private async described(c: Table): Promise<Table> {
    const query = Object.hasOwn(c.properties, 'query') ? c.properties.query : undefined
    if (typeof query !== 'string' || query.trim() === '') return c
    const session = await this.source.open()
    try {
      const columns = await session.describe(query)
      return overlay(discovered(c.name, { schema: '', name: '', kind: 'view', columns, primaryKey: [] }, false), c)
    } catch (err) {
      this.runtime.logger.warn(
        { err, table: c.name },
        'sql.Downloader: the query of a table could not be described; its column types come from the data',
      )
      return c
    } finally {
      await session.close()
    }
  }

  /** Streams one table into the datastore, setting its checkpoint and offering a commit point after every chunk. */
  @source('*')
  async *extract(ctx: StreamContext): AsyncGenerator<Row[]> {
    const table = ctx.table
    const s = extractSettings(table, Number(this.runtime.settings.sql_chunk_rows ?? 10_000))
    const d = this.source
    const key = table.name
    const previous = readCheckpoint(ctx.stage.get(key))
    const session = await d.open()
    const data = ctx.task.data
    try {
      await session.begin()
      const cat = this.catalog.get(table.name)
      const columns: readonly SourceColumn[] =
        s.query || !cat
          ? await session.describe(s.query ?? `SELECT * FROM ${d.qualified(s.source!.schema, s.source!.table)}`)
          : cat.columns
      const keys = table.uniqueBy
      let last: IncrementalCheckpoint | undefined
      let full: FullCheckpoint | undefined
      if (s.mode === 'incremental' && previous?.mode === 'incremental') {
        if (sameList(previous.cursor_columns, s.cursor)) last = previous
        else
          ctx.logger.warn(
            { was: previous.cursor_columns, now: s.cursor },
            'sql.Downloader: the cursor changed; reading from initial_value again',
          )
      }
      const resumable = s.mode === 'full' && keys.length > 0
      if (s.mode === 'full') {
        full =
          previous?.mode === 'full' && !previous.complete && previous.after && resumable
            ? previous
            : {
                mode: 'full',
                snapshot: `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`,
                complete: false,
                after: null,
                rows: 0,
                at: new Date().toISOString(),
              }
        if (full === previous)
          ctx.logger.info({ snapshot: full.snapshot, after: full.after }, 'sql.Downloader: resuming a full snapshot')
      }
      const q = extractQuery(d, s, columns, keys, { last: last?.cursor, after: full?.after ?? undefined })
      ctx.logger.debug({ sql: q.sql }, 'sql.Downloader: extract')
      data.mode = s.mode
      const build = rowBuilder(columns)
      const keyOf = q.keyIndex.length
        ? (r: unknown[]) => JSON.stringify(q.keyIndex.map((i) => rawJson(r[i])))
        : (r: unknown[]) =>
            createHash('sha1')
              .update(JSON.stringify(r.map(rawJson)))
              .digest('base64url')
      // The checkpoint's boundary: rows at exactly its cursor value whose key it lists were delivered already.
      const boundaryCursor = last ? JSON.stringify(last.cursor) : undefined
      const boundaryKeys = last?.keys ? new Set(last.keys) : undefined
      // What the next checkpoint will say: the newest cursor value read and the keys read at it.
      let cursor: Literal[] | undefined = last?.cursor
      let cursorText = boundaryCursor
      let cursorKeys: Set<string> | null = last ? (last.keys ? new Set(last.keys) : null) : new Set()
      let rows = 0
      let skipped = 0
      let after = full?.after ?? null
      let out: Row[] = []
      /** Hands on the rows converted so far (no commit point). */
      const handOn = function* (): Generator<Row[]> {
        if (out.length) {
          rows += out.length
          const batch = out
          out = []
          yield batch
        }
      }
      /** Hands on the rows converted so far, records the checkpoint that covers them and offers a commit point. */
      const emit = async function* (): AsyncGenerator<Row[]> {
        yield* handOn()
        if (s.mode === 'incremental' && cursor) {
          ctx.stage.set(key, {
            mode: 'incremental',
            cursor_columns: [...s.cursor],
            cursor,
            keys: cursorKeys ? [...cursorKeys] : null,
          } satisfies IncrementalCheckpoint as unknown as JsonValue)
          await ctx.commitPoint()
        } else if (full && resumable) {
          ctx.stage.set(key, { ...full, after, rows: full.rows + rows } as unknown as JsonValue)
          await ctx.commitPoint()
        }
      }
      let pending = 0
      for await (const chunk of session.stream(q.sql, columns, s.chunkRows, ctx.signal)) {
        for (const r of chunk) {
          if (s.mode === 'incremental') {
            const cur = q.cursorIndex.map((i) => rawJson(r[i]))
            const text = JSON.stringify(cur)
            const k = keyOf(r)
            const delivered = text === boundaryCursor && boundaryKeys?.has(k) === true
            if (text === cursorText) {
              if (cursorKeys) {
                cursorKeys.add(k)
                if (cursorKeys.size > MAX_BOUNDARY_KEYS) cursorKeys = null
              }
            } else {
              cursor = cur
              cursorText = text
              cursorKeys = new Set([k])
            }
            if (delivered) {
              skipped++
              continue
            }
          }
          out.push(build(r))
        }
        if (s.mode === 'full' && resumable && chunk.length)
          after = q.keyIndex.map((i) => rawJson(chunk[chunk.length - 1]![i]))
        pending += chunk.length
        if (pending >= s.chunkRows) {
          pending = 0
          yield* emit()
        } else {
          // Rows go on as each source chunk arrives, commit points only every chunk_rows: rows held until the
          // commit point would outlive two young-generation collections and be promoted, and the old generation
          // would grow by their size between full collections (with the 1 MiB COPY read-ahead: 225 MB peak RSS, now 125).
          yield* handOn()
        }
      }
      if (pending > 0) yield* emit()
      if (full) {
        ctx.stage.set(key, {
          ...full,
          complete: true,
          after: null,
          rows: full.rows + rows,
          at: new Date().toISOString(),
        } as unknown as JsonValue)
        data.snapshot = full.snapshot
      }
      if (s.mode === 'incremental' && cursorKeys === null)
        ctx.logger.warn(
          { cursor },
          `sql.Downloader: more than ${MAX_BOUNDARY_KEYS} rows share the last cursor value; they are delivered again next run (add a column to the cursor to tell them apart)`,
        )
      data.rows = rows
      data.boundary_rows_skipped = skipped
      await session.end()
    } finally {
      await session.close()
    }
  }
}

/** A valid anchovies table name for a source table (`schema.table`; other characters become `_`), or undefined. */
export function tableName(schema: string, name: string): string | undefined {
  const clean = (s: string): string => s.replace(/[^A-Za-z0-9_\-.]/g, '_')
  let n = `${clean(schema)}.${clean(name)}`.replace(/\.{2,}/g, '._')
  if (n.startsWith('.') || n.startsWith('-')) n = `_${n.slice(1)}`
  return n.length <= 128 && /^[A-Za-z0-9_][A-Za-z0-9_\-.]*$/.test(n) ? n : undefined
}

/** The table a discovered source table becomes. */
function discovered(name: string, t: SourceTable, source = true): Table {
  const columns = Object.create(null) as Record<string, ColumnType>
  for (const c of t.columns) columns[c.name] = columnTypeOf(c.kind)
  const properties = Object.create(null) as Record<string, unknown>
  if (source) {
    properties.source_schema = t.schema
    properties.source_table = t.name
    properties.source_kind = t.kind
  }
  const decimals = t.columns.filter((c) => c.kind === 'decimal').map((c) => c.name)
  if (decimals.length) properties.exact_decimals = decimals
  return {
    name,
    namespace: null,
    columns,
    uniqueBy: [...t.primaryKey],
    setBy: [],
    sortBy: [],
    deletedTtl: null,
    dataChangeTimestampField: null,
    properties,
  }
}

/** A discovered table with what `tbls:` says about it laid over (column types, keys, sort and properties). */
function overlay(base: Table, over: Table): Table {
  return {
    name: base.name,
    namespace: over.namespace ?? base.namespace,
    columns: Object.assign(Object.create(null) as Record<string, ColumnType>, base.columns, over.columns),
    uniqueBy: over.uniqueBy.length ? over.uniqueBy : base.uniqueBy,
    setBy: over.setBy.length ? over.setBy : base.setBy,
    sortBy: over.sortBy.length ? over.sortBy : base.sortBy,
    deletedTtl: over.deletedTtl ?? base.deletedTtl,
    dataChangeTimestampField: over.dataChangeTimestampField ?? base.dataChangeTimestampField,
    properties: Object.assign(Object.create(null) as Record<string, unknown>, base.properties, over.properties),
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * A function turning one raw row (driver values in select-list order) into a datastore row. Column names reach the
 * compiled code only as JSON string literals in computed keys (so `__proto__` is an own property, never the prototype).
 */
function rowBuilder(columns: readonly SourceColumn[]): (r: unknown[]) => Row {
  const convs = columns.map((c) => converter(c.kind))
  const parts = columns.map(
    (c, i) => `[${JSON.stringify(c.name)}]: r[${i}] === null || r[${i}] === undefined ? null : C[${i}](r[${i}])`,
  )
  return new Function('C', `return function buildRow(r) { return { ${parts.join(', ')} } }`)(convs) as (
    r: unknown[],
  ) => Row
}

export type { ExtractSettings }
