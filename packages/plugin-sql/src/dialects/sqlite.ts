import {
  bytesOf,
  dateText,
  decimalText,
  jsonText,
  naiveText,
  textOf,
  toDateTime,
  utcText,
  type ColumnState,
  type SqlType,
} from '../column-types.js'
import type { SqlSettings, Target } from '../config.js'
import type { FastFormat } from '../fast-path/format.js'
import { isInheritedName, ownValue } from '../row-access.js'
import {
  DEL,
  Dialect,
  FILE,
  ORD,
  SEQ,
  bindPlaceholders,
  type QueryResult,
  type Session,
  type Stager,
} from './dialect.js'

interface SqliteStatement {
  readonly reader: boolean
  all(...params: unknown[]): Record<string, unknown>[]
  run(...params: unknown[]): { changes: number }
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement
  transaction<F extends (...args: never[]) => unknown>(fn: F): F
}

/** Declared types; they decide SQLite's column affinity (a changed affinity needs a table rebuild). */
const TYPES: Record<SqlType, string> = {
  bool: 'BOOLEAN',
  int: 'INTEGER',
  float: 'REAL',
  decimal: 'TEXT',
  str: 'TEXT',
  datetime: 'TEXT',
  datetimetz: 'TEXT',
  date: 'TEXT',
  time: 'TEXT',
  bytes: 'BLOB',
  json: 'TEXT',
}

/** Bound values, per column type (datetimes as fixed-width ISO text, aware ones in UTC, so text order is time order). */
const ENCODE: Record<SqlType, (v: unknown) => unknown> = {
  bool: (v) => (v ? 1 : 0),
  int: (v) => (typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'number' ? BigInt(v) : v),
  // Whole numbers are bound as integers so a column later widened to text reads `1`, not `1.0`.
  float: (v) =>
    typeof v === 'boolean'
      ? v
        ? 1
        : 0
      : typeof v === 'bigint'
        ? Number(v)
        : Number.isSafeInteger(v)
          ? BigInt(v as number)
          : v,
  decimal: decimalText,
  str: textOf,
  datetime: (v) => isoText(naiveText(toDateTime(v), 'T')),
  datetimetz: (v) => `${isoText(utcText(toDateTime(v), 'T'))}+00:00`,
  date: dateText,
  time: (v) => String(v),
  bytes: (v) => bytesOf(v),
  json: jsonText,
}

/** Python isoformat: no fraction when it is zero (text order stays time order: `+` and the end sort before `.`). */
export function isoText(text: string): string {
  return text.endsWith('.000000') ? text.slice(0, -7) : text
}

/** SQLite (better-sqlite3): no schemas (table names are prefixed), prepared inserts in one transaction. */
export class SqliteDialect extends Dialect {
  readonly name = 'sqlite' as const
  readonly supportsSchemas = false
  override readonly caseInsensitiveNames = true
  readonly timestampType = 'TEXT'
  override readonly forUpdate = ''
  override readonly seqColumnType = 'INTEGER PRIMARY KEY'

  protected nameProblem(): string | undefined {
    return undefined
  }

  protected quoteRaw(name: string): string {
    return `"${name.replace(/"/g, '""')}"`
  }

  columnType(c: ColumnState): string {
    return TYPES[c.type]
  }

  createSchema(): string {
    throw new Error('SQLite has no schemas')
  }

  widenColumn(table: string, c: ColumnState, from: ColumnState): string[] | null {
    if (TYPES[c.type] === TYPES[from.type]) return []
    if (c.type === 'float' && (from.type === 'int' || from.type === 'bool')) return []
    if (c.type === 'int' && from.type === 'bool') return []
    void table
    return null
  }

  timestampLiteral(d: Date): string {
    return `'${d.toISOString().slice(0, 23)}000+00:00'`
  }

  createStage(name: string, columns: readonly ColumnState[]): string {
    // Untyped columns store values exactly as bound; the target's affinity applies when merging.
    const cols = [this.quote(ORD), this.quote(FILE), ...columns.map((c) => this.quote(c.name, 'column name'))]
    return `CREATE TEMPORARY TABLE ${this.quote(name)} (${cols.join(', ')})`
  }

  stageAddColumn(stage: string, c: ColumnState): string {
    return `ALTER TABLE ${this.quote(stage)} ADD COLUMN ${this.quote(c.name, 'column name')}`
  }

  stageWidenColumn(): string | null {
    return null
  }

  session(raw: unknown): Session {
    const db = raw as SqliteDatabase
    return {
      async query(sql: string, params: readonly unknown[] = []): Promise<QueryResult> {
        const stmt = db.prepare(bindPlaceholders(sql, () => '?'))
        const values = params.map((p) =>
          typeof p === 'boolean' ? (p ? 1 : 0) : p instanceof Date ? p.toISOString() : p,
        )
        if (stmt.reader) return { rows: stmt.all(...values), affected: 0 }
        return { rows: [], affected: stmt.run(...values).changes }
      },
    }
  }

  stager(raw: unknown, _session: Session, stage: string, s: SqlSettings): Stager {
    return new SqliteStager(raw as SqliteDatabase, this, stage, s.chunkSize)
  }

  override async begin(session: Session): Promise<void> {
    await session.query('BEGIN IMMEDIATE')
  }

  markDeleted(target: string, sub: string, ts: string): string {
    return `UPDATE ${target} AS t SET "_del" = ${ts} FROM (${sub}) AS d WHERE t."_seq" = d."_seq"`
  }

  async tableExists(session: Session, t: Target): Promise<boolean> {
    const r = await session.query("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = \u0000", [
      t.table,
    ])
    return Number(r.rows[0]?.n ?? 0) > 0
  }

  async physicalColumns(session: Session, t: Target): Promise<Map<string, string>> {
    const r = await session.query(`SELECT name, type FROM pragma_table_info(\u0000)`, [t.table])
    return new Map(r.rows.map((x) => [String(x.name).toLowerCase(), String(x.type)]))
  }

  logicalType(physical: string): SqlType {
    const p = physical.toUpperCase()
    if (p === 'BOOLEAN') return 'bool'
    if (p.includes('INT')) return 'int'
    if (p.includes('REAL') || p.includes('FLOA') || p.includes('DOUB')) return 'float'
    if (p.includes('BLOB')) return 'bytes'
    return 'str'
  }

  createKeyIndex(t: Target, indexName: string, columns: readonly string[]): string {
    return `CREATE INDEX IF NOT EXISTS ${this.quote(indexName)} ON ${this.qualified(t)} (${columns.map((c) => this.quote(c, 'column name')).join(', ')}) WHERE "_del" IS NULL`
  }

  /** Recreates `t` with new declared types (SQLite cannot change a column's type in place). */
  override async rebuild(
    session: Session,
    t: Target,
    columns: readonly ColumnState[],
    _keys: ReadonlySet<string>,
    _s: SqlSettings,
  ): Promise<void> {
    const tmp = `${t.table}__anch_rebuild`
    const cols = columns.map((c) => this.quote(c.name, 'column name'))
    const defs = columns.map((c) => `${this.quote(c.name, 'column name')} ${TYPES[c.type]}`)
    const casts = columns.map((c) =>
      TYPES[c.type] === 'TEXT'
        ? `CAST(${this.quote(c.name, 'column name')} AS TEXT)`
        : this.quote(c.name, 'column name'),
    )
    await session.query(`DROP TABLE IF EXISTS ${this.quote(tmp)}`)
    await session.query(
      `CREATE TABLE ${this.quote(tmp)} (${this.quote(SEQ)} INTEGER PRIMARY KEY, ${defs.join(', ')}, ${this.quote(DEL)} TEXT)`,
    )
    await session.query(
      `INSERT INTO ${this.quote(tmp)} (${this.quote(SEQ)}, ${cols.join(', ')}, ${this.quote(DEL)}) SELECT ${this.quote(SEQ)}, ${casts.join(', ')}, ${this.quote(DEL)} FROM ${this.qualified(t)}`,
    )
    await session.query(`DROP TABLE ${this.qualified(t)}`)
    await session.query(`ALTER TABLE ${this.quote(tmp)} RENAME TO ${this.quote(t.table)}`)
  }
}

/** Prepared INSERTs into the staging table, one transaction per buffer of encoded rows. */
class SqliteStager implements Stager {
  private names: string[] = []
  /** Per column: the name is also an Object.prototype member, so the row must own it (see row-access). */
  private inherited: boolean[] = []
  private enc: ((v: unknown) => unknown)[] = []
  private stmt: SqliteStatement | undefined
  private json: SqliteStatement | undefined
  private pending: unknown[][] = []

  constructor(
    private readonly db: SqliteDatabase,
    private readonly dialect: SqliteDialect,
    private readonly stage: string,
    private readonly limit: number,
  ) {}

  begin(columns: readonly ColumnState[]): void {
    this.names = columns.map((c) => c.name)
    this.inherited = columns.map((c) => isInheritedName(c.name))
    this.enc = columns.map((c) => ENCODE[c.type])
    const cols = [ORD, FILE, ...this.names].map((n) => this.dialect.quote(n, 'column name'))
    this.stmt = this.db.prepare(
      `INSERT INTO ${this.dialect.quote(this.stage)} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
    )
    // Byte fast path: a member's rows as one JSON array, taken apart by SQLite's own JSON functions (no JS value
    // per cell: the bench's general path spent most of its main-thread time decoding rows and binding cells).
    const values = columns.map((c, j) => (c.type === 'bytes' ? `unhex(value ->> ${j})` : `value ->> ${j}`))
    this.json = this.db.prepare(
      `INSERT INTO ${this.dialect.quote(this.stage)} (${cols.join(', ')}) SELECT ${['? + key', '?', ...values].join(', ')} FROM json_each(CAST(? AS TEXT))`,
    )
  }

  fastFormat(): FastFormat {
    return 'sqlite'
  }

  /** Byte fast path: one member converted to `[[v, …], …]` (the bytes are bound as a blob and read as UTF-8 text). */
  async addCopy(copy: Buffer, _starts: Uint32Array, ord: number, file: number): Promise<void> {
    await this.flush()
    this.json!.run(ord, file, copy)
  }

  add(row: Record<string, unknown>, ord: number, file: number): boolean {
    const values: unknown[] = new Array(this.names.length + 2)
    values[0] = ord
    values[1] = file
    for (let j = 0; j < this.names.length; j++) {
      const v = this.inherited[j] ? ownValue(row, this.names[j]!) : row[this.names[j]!]
      values[j + 2] = v === null || v === undefined ? null : this.enc[j]!(v)
    }
    this.pending.push(values)
    return this.pending.length >= Math.min(this.limit, 10_000)
  }

  async flush(): Promise<void> {
    if (!this.pending.length) return
    const rows = this.pending
    const stmt = this.stmt!
    this.pending = []
    this.db.transaction(() => {
      for (const values of rows) stmt.run(...values)
    })()
  }

  async finish(): Promise<void> {
    await this.flush()
  }
}
