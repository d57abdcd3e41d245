import { createRequire } from 'node:module'
import { sqlError } from '../dialects/dialect.js'
import { assemble } from './pg-source.js'
import { standardString, type Literal, type SourceDialect, type SourceSession } from './source-dialect.js'
import type { SourceTable, ValueKind } from './source-values.js'

const require = createRequire(import.meta.url)

interface Statement {
  raw(on: boolean): Statement
  safeIntegers(on: boolean): Statement
  iterate(): IterableIterator<unknown[]>
  all(): unknown[]
  columns(): { name: string; type: string | null }[]
}
interface Database {
  prepare(sql: string): Statement
  exec(sql: string): void
  close(): void
}

/** The value kind of a SQLite declared column type (its affinity, refined by common type names). */
export function sqliteKind(declared: string | null): ValueKind {
  const t = (declared ?? '').toUpperCase()
  if (t === 'BOOLEAN' || t === 'BOOL') return 'bool'
  if (t.includes('INT')) return 'int64'
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return t === 'JSON' ? 'json' : 'text'
  if (t.includes('BLOB')) return 'bytes'
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'float'
  if (t.startsWith('DECIMAL') || t.startsWith('NUMERIC')) return 'decimal'
  if (t === 'TIMESTAMPTZ' || t === 'TIMESTAMP WITH TIME ZONE') return 'datetimetz'
  if (t === 'DATETIME' || t === 'TIMESTAMP') return 'datetime'
  if (t === 'DATE') return 'date'
  if (t === 'TIME') return 'time'
  if (t === 'JSON') return 'json'
  return 'text'
}

/** SQLite (better-sqlite3): catalog from sqlite_master and pragma_table_info, rows through `iterate()`. */
export class SqliteSource implements SourceDialect {
  readonly name = 'sqlite' as const

  constructor(private readonly filename: string) {}

  quote(name: string): string {
    return `"${name.replace(/"/g, '""')}"`
  }

  qualified(schema: string, table: string): string {
    return `${this.quote(schema)}.${this.quote(table)}`
  }

  literal(v: Literal): string {
    if (v === null) return 'NULL'
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : standardString(String(v))
    if (typeof v === 'boolean') return v ? '1' : '0'
    return standardString(v)
  }

  minusLag(expr: string, kind: ValueKind, lag: number): string {
    if (kind === 'datetime' || kind === 'datetimetz' || kind === 'date')
      return `strftime('%Y-%m-%d %H:%M:%f', ${expr}, '-${lag} seconds')`
    return `(${expr} - ${lag})`
  }

  private db(): Database {
    let Ctor: new (file: string, opts: object) => Database
    try {
      Ctor = require('better-sqlite3') as typeof Ctor
    } catch (cause) {
      throw sqlError('ANCH_ERR_SQL_DRIVER', 'sqlite needs the better-sqlite3 package: npm install better-sqlite3', {
        cause,
      })
    }
    return new Ctor(this.filename, { readonly: true, fileMustExist: true })
  }

  async discover(): Promise<SourceTable[]> {
    const db = this.db()
    try {
      const cols = db
        .prepare(
          `SELECT 'main', m.name, m.type, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p
           WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY m.name, p.cid`,
        )
        .raw(true)
        .all() as string[][]
      const keys = db
        .prepare(
          `SELECT 'main', m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.pk > 0 ORDER BY m.name, p.pk`,
        )
        .raw(true)
        .all() as string[][]
      return assemble(cols, keys, (r) => ({
        schema: 'main',
        name: String(r[1]),
        kind: r[2] === 'view' ? 'view' : 'table',
        column: { name: String(r[3]), dbType: String(r[4] ?? ''), kind: sqliteKind(r[4] ?? null) },
      }))
    } finally {
      db.close()
    }
  }

  async open(): Promise<SourceSession> {
    const db = this.db()
    let open = false
    return {
      begin: async () => {
        // A deferred transaction: its first read fixes the snapshot every later read of it sees.
        db.exec('BEGIN')
        open = true
      },
      end: async () => {
        if (open) db.exec('COMMIT')
        open = false
      },
      describe: async (sql) =>
        db
          .prepare(sql)
          .columns()
          .map((c) => ({ name: c.name, dbType: c.type ?? '', kind: sqliteKind(c.type) })),
      stream: async function* (sql, _columns, chunkRows, signal) {
        const it = db.prepare(sql).raw(true).safeIntegers(true).iterate()
        let chunk: unknown[][] = []
        try {
          for (const row of it) {
            chunk.push(row)
            if (chunk.length >= chunkRows) {
              signal.throwIfAborted()
              yield chunk
              chunk = []
            }
          }
          if (chunk.length) yield chunk
        } finally {
          it.return?.()
        }
      },
      close: async () => {
        if (open) {
          try {
            db.exec('ROLLBACK')
          } catch {
            // nothing open
          }
        }
        db.close()
      },
    }
  }
}
