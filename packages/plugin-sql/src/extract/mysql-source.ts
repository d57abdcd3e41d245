import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import { sqlError } from '../dialects/dialect.js'
import { mysqlString } from '../dialects/mysql.js'
import { assemble } from './pg-source.js'
import type { Literal, SourceDialect, SourceSession } from './source-dialect.js'
import type { SourceColumn, SourceTable, ValueKind } from './source-values.js'

const require = createRequire(import.meta.url)

interface MysqlConn {
  query(
    opts: { sql: string; rowsAsArray?: boolean },
    cb: (
      err: Error | null,
      rows: unknown,
      fields: { name: string; columnType: number; columnLength: number; flags: number }[],
    ) => void,
  ): void
  query(opts: { sql: string; rowsAsArray?: boolean }): { stream(opts: { highWaterMark: number }): Readable }
  end(cb: (err?: Error) => void): void
  destroy(): void
  on(event: 'error', fn: (err: Error) => void): void
}

/** The value kind of a MySQL/MariaDB column (`DATA_TYPE`, `COLUMN_TYPE`). */
export function mysqlKind(dataType: string, columnType: string): ValueKind {
  const t = dataType.toLowerCase()
  if (t === 'tinyint' && columnType.toLowerCase().startsWith('tinyint(1)')) return 'bool'
  if (t === 'bigint') return 'int64'
  if (['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'year'].includes(t)) return 'int'
  if (t === 'decimal' || t === 'numeric') return 'decimal'
  if (t === 'float' || t === 'double' || t === 'real') return 'float'
  if (t === 'timestamp') return 'datetimetz'
  if (t === 'datetime') return 'datetime'
  if (t === 'date') return 'date'
  if (t === 'time') return 'time'
  if (t === 'json') return 'json'
  if (t.includes('blob') || t === 'binary' || t === 'varbinary' || t === 'bit') return 'bytes'
  return 'text'
}

/** The value kind of a result field (mysql2 column type codes), for `query:` tables. */
function fieldKind(f: { columnType: number; columnLength: number; flags: number }): {
  kind: ValueKind
  dbType: string
} {
  const binary = (f.flags & 128) !== 0
  switch (f.columnType) {
    case 1:
      return f.columnLength === 1 ? { kind: 'bool', dbType: 'tinyint(1)' } : { kind: 'int', dbType: 'tinyint' }
    case 2:
    case 3:
    case 9:
    case 13:
      return { kind: 'int', dbType: 'int' }
    case 8:
      return { kind: 'int64', dbType: 'bigint' }
    case 0:
    case 246:
      return { kind: 'decimal', dbType: 'decimal' }
    case 4:
    case 5:
      return { kind: 'float', dbType: 'double' }
    case 7:
      return { kind: 'datetimetz', dbType: 'timestamp' }
    case 12:
      return { kind: 'datetime', dbType: 'datetime' }
    case 10:
      return { kind: 'date', dbType: 'date' }
    case 11:
      return { kind: 'time', dbType: 'time' }
    case 245:
      return { kind: 'json', dbType: 'json' }
    case 16:
      return { kind: 'bytes', dbType: 'bit' }
    case 249:
    case 250:
    case 251:
    case 252:
    case 253:
    case 254:
      return binary ? { kind: 'bytes', dbType: 'blob' } : { kind: 'text', dbType: 'text' }
  }
  return { kind: 'text', dbType: String(f.columnType) }
}

const SYSTEM = "('mysql', 'information_schema', 'performance_schema', 'sys')"

/** MySQL and MariaDB: catalog from information_schema, rows through a mysql2 stream in a consistent snapshot. */
export class MysqlSource implements SourceDialect {
  readonly name = 'mysql' as const

  constructor(private readonly options: Readonly<Record<string, unknown>>) {}

  quote(name: string): string {
    return `\`${name.replace(/`/g, '``')}\``
  }

  qualified(schema: string, table: string): string {
    return `${this.quote(schema)}.${this.quote(table)}`
  }

  literal(v: Literal): string {
    if (v === null) return 'NULL'
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : mysqlString(String(v))
    if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE'
    return mysqlString(v)
  }

  minusLag(expr: string, kind: ValueKind, lag: number): string {
    if (kind === 'datetimetz' || kind === 'datetime' || kind === 'date') return `(${expr} - INTERVAL ${lag} SECOND)`
    return `(${expr} - ${lag})`
  }

  private async connect(): Promise<MysqlConn> {
    let mysql: { createConnection(o: object): MysqlConn }
    try {
      mysql = require('mysql2') as typeof mysql
    } catch (cause) {
      throw sqlError('ANCH_ERR_SQL_DRIVER', 'mysql needs the mysql2 package: npm install mysql2', { cause })
    }
    const conn = mysql.createConnection({ ...this.options })
    conn.on('error', () => undefined)
    await run(conn, "SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',NO_ENGINE_SUBSTITUTION')")
    return conn
  }

  async discover(): Promise<SourceTable[]> {
    const c = await this.connect()
    try {
      const cols = (await run(
        c,
        `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE FROM information_schema.COLUMNS c
         JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
         WHERE c.TABLE_SCHEMA NOT IN ${SYSTEM} ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`,
      )) as string[][]
      const keys = (await run(
        c,
        `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA NOT IN ${SYSTEM}
         ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
      )) as string[][]
      // MariaDB's JSON is LONGTEXT with a json_valid() check: those columns are JSON too.
      const json = new Set<string>()
      try {
        const checks = (await run(
          c,
          `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CHECK_CLAUSE LIKE 'json_valid(%'`,
        )) as string[][]
        for (const [s, t, clause] of checks) {
          const m = /^json_valid\(`((?:[^`]|``)+)`\)$/.exec(String(clause))
          if (m) json.add(JSON.stringify([String(s), String(t), m[1]!.replace(/``/g, '`')]))
        }
      } catch {
        // MySQL before 8.0.16 has no CHECK_CONSTRAINTS
      }
      return assemble(cols, keys, (r) => {
        const [schema, name, type, col, dataType, columnType] = r.map(String) as [
          string,
          string,
          string,
          string,
          string,
          string,
        ]
        const isJson = json.has(JSON.stringify([schema, name, col]))
        return {
          schema,
          name,
          kind: type === 'VIEW' ? 'view' : 'table',
          column: { name: col, dbType: columnType, kind: isJson ? 'json' : mysqlKind(dataType, columnType) },
        }
      })
    } finally {
      await new Promise<void>((resolve) => c.end(() => resolve()))
    }
  }

  async open(): Promise<SourceSession> {
    const c = await this.connect()
    let unfinished = false
    return {
      begin: async () => {
        await run(c, 'SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        await run(c, 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY')
      },
      end: async () => {
        if (!unfinished) await run(c, 'COMMIT')
      },
      describe: async (sql) => {
        const fields = await new Promise<{ name: string; columnType: number; columnLength: number; flags: number }[]>(
          (resolve, reject) =>
            c.query({ sql: `SELECT * FROM (${sql}) AS anch_describe LIMIT 0` }, (err, _rows, f) =>
              err ? reject(err) : resolve(f ?? []),
            ),
        )
        return fields.map((f) => ({ name: f.name, ...fieldKind(f) }))
      },
      stream: async function* (sql, _columns, chunkRows, signal) {
        const stream = c.query({ sql, rowsAsArray: true }).stream({ highWaterMark: Math.min(chunkRows, 10_000) })
        unfinished = true
        const onAbort = (): void =>
          void stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
        signal.addEventListener('abort', onAbort, { once: true })
        let chunk: unknown[][] = []
        try {
          for await (const row of stream as AsyncIterable<unknown[]>) {
            chunk.push(row)
            if (chunk.length >= chunkRows) {
              yield chunk
              chunk = []
            }
          }
          if (chunk.length) yield chunk
          unfinished = false
        } finally {
          signal.removeEventListener('abort', onAbort)
        }
      },
      close: async () => {
        if (unfinished) c.destroy()
        else await new Promise<void>((resolve) => c.end(() => resolve()))
      },
    }
  }
}

function run(c: MysqlConn, sql: string): Promise<unknown[]> {
  return new Promise((resolve, reject) =>
    c.query({ sql, rowsAsArray: true }, (err, rows) => (err ? reject(err) : resolve(Array.isArray(rows) ? rows : []))),
  )
}

export type { SourceColumn }
