import { once } from 'node:events'
import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { bytesOf, dateText, decimalText, jsonText, textOf, toDateTime, type ColumnState, type SqlType } from '../column-types.js'
import type { SqlSettings, Target } from '../config.js'
import { Dialect, FILE, ORD, SEQ, bindPlaceholders, sqlError, type QueryResult, type Session, type Stager } from './dialect.js'

interface PgClient {
  query(config: { text: string; values?: unknown[] }): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>
  query(stream: Writable): Writable
}

const TYPES: Record<SqlType, string> = {
  bool: 'boolean',
  int: 'bigint',
  float: 'double precision',
  decimal: 'numeric',
  str: 'text',
  datetime: 'timestamp',
  datetimetz: 'timestamptz',
  date: 'date',
  time: 'time',
  bytes: 'bytea',
  json: 'jsonb',
}

const ESC_RE = /[\\\n\r\t]/
const ESC_ALL = /[\\\n\r\t]/g
const ESC_MAP: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }
function esc(s: string): string {
  return ESC_RE.test(s) ? s.replace(ESC_ALL, (m) => ESC_MAP[m]!) : s
}

/** COPY text encoders, per column type. */
const ENCODE: Record<SqlType, (v: unknown) => string> = {
  bool: (v) => (v ? 't' : 'f'),
  int: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  float: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  decimal: decimalText,
  str: (v) => esc(textOf(v)),
  datetime: (v) => toDateTime(v).iso,
  datetimetz: (v) => toDateTime(v).iso,
  date: dateText,
  time: (v) => String(v),
  bytes: (v) => `\\\\x${bytesOf(v).toString('hex')}`,
  json: (v) => esc(jsonText(v)),
}

/** Inline COPY text expressions (of `v`, never null here) per column type; others call `ENCODE`. */
const INLINE: Partial<Record<SqlType, string>> = {
  bool: "(v === true ? 't' : v === false ? 'f' : E.bool(v))",
  int: "(typeof v === 'number' ? '' + v : E.int(v))",
  float: "(typeof v === 'number' ? '' + v : E.float(v))",
  str: "(typeof v === 'string' ? (R.test(v) ? X(v) : v) : E.str(v))",
  datetime: 'E.datetime(v)',
  datetimetz: "(typeof v === 'object' && v.iso !== undefined ? v.iso : E.datetimetz(v))",
}

/**
 * Compiles the COPY text encoder of one column layout: `(row, lead) => line` with `lead` (arrival order and file,
 * or `_seq`) as the first field. Property reads by literal name and per-type code inline, so a row costs one
 * string concatenation chain instead of a loop of generic calls.
 */
function compileEncoder(columns: readonly ColumnState[]): (row: Record<string, unknown>, lead: string) => string {
  const body: string[] = []
  const parts: string[] = ['lead']
  columns.forEach((c, j) => {
    const expr = INLINE[c.type] ?? `E[${JSON.stringify(c.type)}](v)`
    body.push(`let v${j} = row[${JSON.stringify(c.name)}]; v${j} = v${j} === null || v${j} === undefined ? '\\\\N' : ${expr.replace(/\bv\b/g, `v${j}`)};`)
    parts.push(`v${j}`)
  })
  const src = `return function encodeRow(row, lead) {\n${body.join('\n')}\nreturn ${parts.join(" + '\\t' + ")} + '\\n';\n}`
  return new Function('E', 'R', 'X', src)(ENCODE, ESC_RE, esc) as (row: Record<string, unknown>, lead: string) => string
}

/** PostgreSQL: schemas, COPY into a temporary staging table, transactional DDL. */
export class PostgresDialect extends Dialect {
  readonly name = 'postgres' as const
  readonly supportsSchemas = true
  readonly timestampType = 'timestamptz'

  protected nameProblem(name: string): string | undefined {
    const bytes = Buffer.byteLength(name)
    return bytes > 63 ? `it is ${bytes} bytes long and PostgreSQL identifiers hold at most 63 (longer names would be truncated)` : undefined
  }

  protected quoteRaw(name: string): string {
    return `"${name.replace(/"/g, '""')}"`
  }

  columnType(c: ColumnState): string {
    return TYPES[c.type]
  }

  createSchema(schema: string): string {
    return `CREATE SCHEMA IF NOT EXISTS ${this.quote(schema, 'schema name')}`
  }

  widenColumn(table: string, c: ColumnState, from: ColumnState): string[] {
    const col = this.quote(c.name, 'column name')
    return [`ALTER TABLE ${table} ALTER COLUMN ${col} TYPE ${TYPES[c.type]} USING ${this.convert(col, from.type, c.type)}`]
  }

  private convert(col: string, from: SqlType, to: SqlType): string {
    if (from === to) return col
    const viaInt = from === 'bool' ? `${col}::int` : col
    switch (to) {
      case 'int':
        return `${viaInt}::bigint`
      case 'float':
        return `${viaInt}::double precision`
      case 'decimal':
        return `${viaInt}::numeric`
      case 'datetimetz':
        return `${col} AT TIME ZONE 'UTC'`
      case 'json':
        return from === 'bytes' ? `to_jsonb(encode(${col}, 'hex'))` : `to_jsonb(${col})`
      case 'str':
        if (from === 'bytes') return `encode(${col}, 'hex')`
        // ISO text as the datastore writes it (Python isoformat: no fraction when it is zero).
        if (from === 'datetimetz') return `regexp_replace(to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\\.000000$', '') || '+00:00'`
        if (from === 'datetime') return `regexp_replace(to_char(${col}, 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\\.000000$', '')`
        return `${col}::text`
      default:
        return `${col}::${TYPES[to]}`
    }
  }

  timestampLiteral(d: Date): string {
    return `'${d.toISOString()}'::timestamptz`
  }

  createStage(name: string, columns: readonly ColumnState[]): string {
    const cols = [`${this.quote(ORD)} bigint`, `${this.quote(FILE)} integer`, ...columns.map((c) => `${this.quote(c.name, 'column name')} ${TYPES[c.type]}`)]
    return `CREATE TEMPORARY TABLE ${this.quote(name)} (${cols.join(', ')})`
  }

  stageAddColumn(stage: string, c: ColumnState): string {
    return `ALTER TABLE ${this.quote(stage)} ADD COLUMN ${this.quote(c.name, 'column name')} ${TYPES[c.type]}`
  }

  stageWidenColumn(stage: string, c: ColumnState, from: ColumnState): string | null {
    if (TYPES[c.type] === TYPES[from.type]) return null
    return this.widenColumn(this.quote(stage), c, from)[0]!
  }

  session(raw: unknown): Session {
    const client = raw as PgClient
    return {
      async query(sql: string, params: readonly unknown[] = []): Promise<QueryResult> {
        const text = bindPlaceholders(sql, (i) => `$${i + 1}`)
        const r = await client.query({ text, values: [...params] })
        return { rows: r.rows ?? [], affected: r.rowCount ?? 0 }
      },
    }
  }

  stager(raw: unknown, _session: Session, stage: string, s: SqlSettings): Stager {
    return new PgCopyStager(raw as PgClient, this, this.quote(stage), s.chunkSize, undefined)
  }

  override directStager(raw: unknown, table: string, seqBase: number, s: SqlSettings): Stager {
    return new PgCopyStager(raw as PgClient, this, table, s.chunkSize, seqBase)
  }

  override async begin(session: Session): Promise<void> {
    await session.query('BEGIN')
    // The merge sorts and hashes whole loads: give it memory for this transaction only.
    await session.query("SET LOCAL work_mem = '256MB'")
  }

  override analyze(table: string): string {
    return `ANALYZE ${table}`
  }

  markDeleted(target: string, sub: string, ts: string): string {
    return `UPDATE ${target} AS t SET "_del" = ${ts} FROM (${sub}) AS d WHERE t."_seq" = d."_seq"`
  }

  async tableExists(session: Session, t: Target): Promise<boolean> {
    const r = await session.query('SELECT to_regclass(\u0000) AS oid', [this.qualified(t)])
    return r.rows[0]?.oid != null
  }

  async physicalColumns(session: Session, t: Target): Promise<Map<string, string>> {
    const r = await session.query(
      `SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_schema = COALESCE(\u0000, current_schema()) AND table_name = \u0000 ORDER BY ordinal_position`,
      [t.schema, t.table],
    )
    return new Map(r.rows.map((x) => [String(x.name), String(x.type)]))
  }

  logicalType(physical: string): SqlType {
    const p = physical.toLowerCase()
    if (p === 'boolean') return 'bool'
    if (['bigint', 'integer', 'smallint'].includes(p)) return 'int'
    if (['double precision', 'real'].includes(p)) return 'float'
    if (p === 'numeric') return 'decimal'
    if (p === 'timestamp with time zone') return 'datetimetz'
    if (p.startsWith('timestamp')) return 'datetime'
    if (p === 'date') return 'date'
    if (p.startsWith('time')) return 'time'
    if (p === 'bytea') return 'bytes'
    if (p === 'json' || p === 'jsonb') return 'json'
    return 'str'
  }

  createKeyIndex(t: Target, indexName: string, columns: readonly string[]): string {
    return `CREATE INDEX IF NOT EXISTS ${this.quote(indexName)} ON ${this.qualified(t)} (${columns.map((c) => this.quote(c, 'column name')).join(', ')}) WHERE "_del" IS NULL`
  }
}

let copyFrom: ((sql: string) => Writable) | undefined

function loadCopyFrom(): (sql: string) => Writable {
  if (!copyFrom) {
    try {
      const req = createRequire(import.meta.url)
      copyFrom = (req('pg-copy-streams') as { from: (sql: string) => Writable }).from
    } catch (cause) {
      throw sqlError('ANCH_ERR_SQL_DRIVER', 'PostgreSQL bulk loads need the pg-copy-streams package: npm install pg-copy-streams', { cause })
    }
  }
  return copyFrom
}

/**
 * Streams rows into the staging table with one `COPY … FROM STDIN` per column layout. A buffer is written
 * without waiting; the next write waits for the previous to drain, so PostgreSQL ingests buffer n while the
 * uploader reads and encodes buffer n+1.
 */
class PgCopyStager implements Stager {
  private stream: Writable | undefined
  private done: Promise<void> | undefined
  private drain: Promise<unknown> | undefined
  private names: string[] = []
  private encode: (row: Record<string, unknown>, lead: string) => string = () => ''
  private lines: string[] = []
  private bytes = 0

  constructor(
    private readonly client: PgClient,
    private readonly dialect: PostgresDialect,
    /** The quoted table to COPY into. */
    private readonly table: string,
    private readonly limit: number,
    /** Direct loads: `_seq` = seqBase + arrival order, no staging columns. */
    private readonly seqBase: number | undefined,
  ) {}

  begin(columns: readonly ColumnState[]): void {
    this.names = columns.map((c) => c.name)
    this.encode = compileEncoder(columns)
  }

  add(row: Record<string, unknown>, ord: number, file: number): boolean {
    const line = this.encode(row, this.seqBase === undefined ? `${ord}\t${file}` : `${this.seqBase + ord}`)
    this.lines.push(line)
    this.bytes += line.length
    return this.bytes >= 1 << 20 || this.lines.length >= this.limit
  }

  async flush(): Promise<void> {
    if (!this.lines.length) return
    if (this.drain) {
      await this.drain
      this.drain = undefined
    }
    if (!this.stream) {
      const lead = this.seqBase === undefined ? [ORD, FILE] : [SEQ]
      const names = [...lead, ...this.names].map((n) => this.dialect.quote(n, 'column name')).join(', ')
      this.stream = this.client.query(loadCopyFrom()(`COPY ${this.table} (${names}) FROM STDIN`))
      this.done = finished(this.stream)
      this.done.catch(() => undefined)
    }
    const chunk = this.lines.join('')
    this.lines = []
    this.bytes = 0
    if (!this.stream.write(chunk)) this.drain = Promise.race([once(this.stream, 'drain'), this.done])
  }

  async finish(): Promise<void> {
    await this.flush()
    if (!this.stream) return
    const s = this.stream
    const done = this.done!
    this.stream = undefined
    this.done = undefined
    this.drain = undefined
    s.end()
    await done
  }
}
