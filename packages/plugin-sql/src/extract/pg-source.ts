import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import { sqlError } from '../dialects/dialect.js'
import { CopyTextParser } from './copy-text.js'
import { standardString, type Literal, type SourceDialect, type SourceSession } from './source-dialect.js'
import type { SourceColumn, SourceTable, ValueKind } from './source-values.js'

const require = createRequire(import.meta.url)

interface PgClient {
  connect(): Promise<void>
  end(): Promise<void>
  query(config: {
    text: string
    rowMode?: 'array'
  }): Promise<{ rows: unknown[]; fields: { name: string; dataTypeID: number }[] }>
  query(stream: Readable): Readable
  on(event: 'error', fn: (err: Error) => void): void
}

/**
 * COPY data buffered ahead of the parser. pg-copy-streams pushes one small Buffer per row: a megabyte of them is
 * thousands of heap objects that live long enough to be promoted, and the old generation (peak RSS) grows by tens
 * of megabytes between full collections; 64 KiB keeps the socket busy all the same.
 */
const COPY_BUFFER_BYTES = 64 * 1024

/** The value kind of a PostgreSQL type (`typname`, `typcategory` of the base type). */
export function pgKind(typname: string, category: string): ValueKind {
  switch (typname) {
    case 'int2':
    case 'int4':
    case 'oid':
      return 'int'
    case 'int8':
      return 'int64'
    case 'float4':
    case 'float8':
      return 'float'
    case 'numeric':
      return 'decimal'
    case 'bool':
      return 'bool'
    case 'timestamptz':
      return 'datetimetz'
    case 'timestamp':
      return 'datetime'
    case 'date':
      return 'date'
    case 'time':
    case 'timetz':
      return 'time'
    case 'bytea':
      return 'bytes'
    case 'json':
    case 'jsonb':
      return 'json'
  }
  return category === 'A' ? 'array' : 'text'
}

/** PostgreSQL: catalog from pg_class/pg_attribute, rows through `COPY (SELECT …) TO STDOUT` in a snapshot. */
export class PgSource implements SourceDialect {
  readonly name = 'postgres' as const

  constructor(private readonly connectionString: string) {}

  quote(name: string): string {
    return `"${name.replace(/"/g, '""')}"`
  }

  qualified(schema: string, table: string): string {
    return `${this.quote(schema)}.${this.quote(table)}`
  }

  literal(v: Literal): string {
    if (v === null) return 'NULL'
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : standardString(String(v))
    if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE'
    return standardString(v)
  }

  minusLag(expr: string, kind: ValueKind, lag: number): string {
    if (kind === 'datetimetz') return `(CAST(${expr} AS timestamptz) - make_interval(secs => ${lag}))`
    if (kind === 'datetime') return `(CAST(${expr} AS timestamp) - make_interval(secs => ${lag}))`
    if (kind === 'date') return `(CAST(${expr} AS date) - ${Math.ceil(lag / 86400)})`
    return `(${expr} - ${lag})`
  }

  private async client(): Promise<PgClient> {
    let pg: { Client: new (c: object) => PgClient }
    try {
      pg = require('pg') as typeof pg
    } catch (cause) {
      throw sqlError('ANCH_ERR_SQL_DRIVER', 'postgres needs the pg package: npm install pg pg-copy-streams', { cause })
    }
    const client = new pg.Client({ connectionString: this.connectionString })
    // A connection error after connect (server gone) must not crash the process: the stream reports it.
    client.on('error', () => undefined)
    await client.connect()
    await client.query({
      text: "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 3; SET bytea_output = 'hex'",
    })
    return client
  }

  async discover(): Promise<SourceTable[]> {
    const c = await this.client()
    try {
      const cols = await c.query({
        rowMode: 'array',
        text: `SELECT n.nspname, cl.relname, cl.relkind, a.attname, COALESCE(bt.typname, t.typname), COALESCE(bt.typcategory, t.typcategory), format_type(a.atttypid, a.atttypmod)
          FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
          JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
          WHERE cl.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT cl.relispartition
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
            AND has_table_privilege(cl.oid, 'SELECT')
          ORDER BY n.nspname, cl.relname, a.attnum`,
      })
      const keys = await c.query({
        rowMode: 'array',
        text: `SELECT n.nspname, cl.relname, a.attname FROM pg_index i JOIN pg_class cl ON cl.oid = i.indrelid
          JOIN pg_namespace n ON n.oid = cl.relnamespace JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum = ANY(i.indkey)
          WHERE i.indisprimary AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY n.nspname, cl.relname, array_position(i.indkey::int2[], a.attnum)`,
      })
      return assemble(cols.rows as string[][], keys.rows as string[][], (r) => ({
        schema: r[0]!,
        name: r[1]!,
        kind: r[2] === 'v' || r[2] === 'm' ? 'view' : 'table',
        column: { name: r[3]!, dbType: r[6]!, kind: pgKind(r[4]!, r[5]!) },
      }))
    } finally {
      await c.end().catch(() => undefined)
    }
  }

  async open(): Promise<SourceSession> {
    const c = await this.client()
    let copyTo: (sql: string, options?: { highWaterMark: number }) => Readable
    try {
      copyTo = (require('pg-copy-streams') as { to: (sql: string, options?: { highWaterMark: number }) => Readable }).to
    } catch (cause) {
      await c.end()
      throw sqlError(
        'ANCH_ERR_SQL_DRIVER',
        'extracting from PostgreSQL needs the pg-copy-streams package: npm install pg-copy-streams',
        { cause },
      )
    }
    let unfinished = false
    let broken = false
    return {
      begin: async () => {
        await c.query({ text: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' })
        await c.query({ text: 'SET LOCAL standard_conforming_strings = on' })
      },
      end: async () => {
        if (!broken) await c.query({ text: 'COMMIT' })
      },
      describe: async (sql) => {
        const r = await c.query({ text: `SELECT * FROM (${sql}) AS anch_describe LIMIT 0`, rowMode: 'array' })
        const oids = [...new Set(r.fields.map((f) => f.dataTypeID))]
        const t = await c.query({
          rowMode: 'array',
          text: `SELECT t.oid, COALESCE(bt.typname, t.typname), COALESCE(bt.typcategory, t.typcategory), format_type(t.oid, NULL) FROM pg_type t LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype WHERE t.oid IN (${oids.join(', ') || '0'})`,
        })
        const byOid = new Map((t.rows as [number, string, string, string][]).map((x) => [Number(x[0]), x]))
        return r.fields.map((f) => {
          const x = byOid.get(f.dataTypeID)
          return { name: f.name, dbType: x?.[3] ?? String(f.dataTypeID), kind: x ? pgKind(x[1], x[2]) : 'text' }
        })
      },
      stream: async function* (sql, _columns, chunkRows, signal) {
        const stream = c.query(copyTo(`COPY (${sql}) TO STDOUT`, { highWaterMark: COPY_BUFFER_BYTES }))
        unfinished = true
        const parser = new CopyTextParser()
        let chunk: unknown[][] = []
        const onAbort = (): void =>
          void stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
        signal.addEventListener('abort', onAbort, { once: true })
        try {
          // Rows go on as each network chunk is parsed (a few hundred): holding raw rows longer costs more garbage
          // collection than it saves.
          for await (const buf of stream as AsyncIterable<Buffer>) {
            const rows = parser.push(buf)
            for (let i = 0; i < rows.length; i++) chunk.push(rows[i]!)
            if (chunk.length >= Math.min(chunkRows, 1000)) {
              yield chunk
              chunk = []
            }
          }
          parser.end()
          if (chunk.length) yield chunk
          unfinished = false
        } finally {
          signal.removeEventListener('abort', onAbort)
          if (unfinished) broken = true
        }
      },
      close: async () => {
        if (broken) {
          // The server is still sending COPY data: end the connection instead of draining it.
          const conn = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection
          conn?.stream?.destroy()
          return
        }
        await c.end().catch(() => undefined)
      },
    }
  }
}

/** Groups one-row-per-column catalog rows into tables and attaches primary keys. */
export function assemble<R>(
  columnRows: readonly R[],
  keyRows: readonly string[][],
  read: (r: R) => { schema: string; name: string; kind: 'table' | 'view'; column: SourceColumn },
): SourceTable[] {
  const tables = new Map<
    string,
    { schema: string; name: string; kind: 'table' | 'view'; columns: SourceColumn[]; primaryKey: string[] }
  >()
  for (const r of columnRows) {
    const x = read(r)
    const id = JSON.stringify([x.schema, x.name])
    let t = tables.get(id)
    if (!t) tables.set(id, (t = { schema: x.schema, name: x.name, kind: x.kind, columns: [], primaryKey: [] }))
    t.columns.push(x.column)
  }
  for (const k of keyRows) tables.get(JSON.stringify([String(k[0]), String(k[1])]))?.primaryKey.push(String(k[2]))
  return [...tables.values()]
}
