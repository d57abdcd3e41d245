import { once } from 'node:events'
import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import {
  bytesOf,
  dateText,
  decimalText,
  jsonText,
  textOf,
  toDateTime,
  type ColumnState,
  type SqlType,
} from '../column-types.js'
import type { SqlSettings, Target } from '../config.js'
import { readExpression } from '../row-access.js'
import {
  Dialect,
  FILE,
  ORD,
  SEQ,
  bindPlaceholders,
  sqlError,
  type QueryResult,
  type Session,
  type Stager,
} from './dialect.js'
import { SEQ_WIDTH, fillDigits, type FastFormat } from '../fast-path/format.js'

interface PgClient {
  query(config: {
    text: string
    values?: unknown[]
  }): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>
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

/**
 * COPY text written straight into a Buffer: no string per row or per value (numbers and short ASCII strings are
 * written byte by byte), one Buffer per chunk handed to the stream as it is.
 */
export class CopyBuffer {
  buf: Buffer
  pos = 0

  constructor(private readonly size: number) {
    this.buf = Buffer.allocUnsafeSlow(size)
  }

  /** Room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  /** One ASCII byte (tab, newline, `t`/`f`). */
  byte(b: number): void {
    this.ensure(1)
    this.buf[this.pos++] = b
  }

  /** `\N`. */
  nul(): void {
    this.ensure(2)
    this.buf[this.pos++] = 92
    this.buf[this.pos++] = 78
  }

  /** A safe integer in decimal. */
  int(v: number): void {
    this.ensure(17)
    const buf = this.buf
    if (v < 0) {
      buf[this.pos++] = 45
      v = -v
    }
    let n = 1
    for (let x = v; x >= 10; x = Math.floor(x / 10)) n++
    let p = this.pos + n
    this.pos = p
    do {
      const q = Math.floor(v / 10)
      buf[--p] = 48 + (v - q * 10)
      v = q
    } while (v > 0)
  }

  /** A string as UTF-8 (already escaped for COPY). */
  str(s: string): void {
    const n = s.length
    this.ensure(n * 3)
    if (n < 48) {
      const buf = this.buf
      let p = this.pos
      for (let k = 0; k < n; k++) {
        const c = s.charCodeAt(k)
        if (c > 127) {
          this.pos = p + buf.write(s.slice(k), p)
          return
        }
        buf[p++] = c
      }
      this.pos = p
    } else {
      this.pos += this.buf.write(s, this.pos)
    }
  }

  /** Takes the bytes written so far and starts a new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos)
    this.buf = Buffer.allocUnsafeSlow(Math.max(this.size, 1024))
    this.pos = 0
    return out
  }
}

/** Inline COPY text writes (of `v`, never null here) per column type into CopyBuffer `w`; others call `ENCODE`. */
const INLINE: Partial<Record<SqlType, string>> = {
  bool: '(v === true ? w.byte(116) : v === false ? w.byte(102) : w.str(E.bool(v)))',
  int: "(typeof v === 'number' && Number.isSafeInteger(v) ? w.int(v) : w.str(E.int(v)))",
  float: "(typeof v === 'number' ? (Number.isSafeInteger(v) ? w.int(v) : w.str('' + v)) : w.str(E.float(v)))",
  str: "w.str(typeof v === 'string' ? (R.test(v) ? X(v) : v) : E.str(v))",
  datetime: 'w.str(E.datetime(v))',
  datetimetz: "w.str(typeof v === 'object' && typeof v.iso === 'string' ? v.iso : E.datetimetz(v))",
}

/**
 * Compiles the COPY text encoder of one column layout: `(row, w) => void` writes the row's fields after the lead
 * fields the caller wrote. Property reads by literal name and per-type code inline, instead of a loop of generic calls.
 */
function compileEncoder(columns: readonly ColumnState[]): (row: Record<string, unknown>, w: CopyBuffer) => void {
  const body: string[] = []
  columns.forEach((c, j) => {
    if (!Object.hasOwn(ENCODE, c.type))
      throw new TypeError(`no COPY encoding for column type ${JSON.stringify(c.type)}`)
    const expr =
      (Object.hasOwn(INLINE, c.type) ? INLINE[c.type] : undefined) ?? `w.str(E[${JSON.stringify(c.type)}](v))`
    // The column name reaches the source only as a JSON string literal (see readExpression).
    body.push(
      `w.byte(9); const v${j} = ${readExpression('row', c.name)}; if (v${j} === null || v${j} === undefined) w.nul(); else ${expr.replace(/\bv\b/g, `v${j}`)};`,
    )
  })
  const src = `return function encodeRow(row, w) {\n${body.join('\n')}\nw.byte(10);\n}`
  return new Function('E', 'R', 'X', 'H', src)(ENCODE, ESC_RE, esc, Object.hasOwn) as (
    row: Record<string, unknown>,
    w: CopyBuffer,
  ) => void
}

/** PostgreSQL: schemas, COPY into a temporary staging table, transactional DDL. */
export class PostgresDialect extends Dialect {
  readonly name = 'postgres' as const
  readonly supportsSchemas = true
  readonly timestampType = 'timestamptz'
  /**
   * New tables get no B-tree on `_seq`, only a BRIN index: `_seq` grows with the physical order of the rows, the
   * history queries ask for ranges of it (`_seq >= base`), and a B-tree costs about a second per million rows on
   * every COPY and on every superseding update (each new row version gets an entry). Uniqueness comes from the
   * allocator: `_seq` = `next_seq` of the table's metadata row, locked FOR UPDATE by the load that writes it, plus
   * the arrival order. Tables created with the primary key keep it. README: "PostgreSQL table layout".
   */
  override readonly seqColumnType = 'BIGINT NOT NULL'

  override seqIndexes(t: Target, indexName: string): string[] {
    return [
      `CREATE INDEX ${this.quote(indexName)} ON ${this.qualified(t)} USING brin ("_seq") WITH (autosummarize = on)`,
    ]
  }

  override isUniqueViolation(err: unknown): boolean {
    return (err as { code?: unknown }).code === '23505'
  }

  protected nameProblem(name: string): string | undefined {
    const bytes = Buffer.byteLength(name)
    return bytes > 63
      ? `it is ${bytes} bytes long and PostgreSQL identifiers hold at most 63 (longer names would be truncated)`
      : undefined
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
    return [
      `ALTER TABLE ${table} ALTER COLUMN ${col} TYPE ${TYPES[c.type]} USING ${this.convert(col, from.type, c.type)}`,
    ]
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
        if (from === 'datetimetz')
          return `regexp_replace(to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\\.000000$', '') || '+00:00'`
        if (from === 'datetime')
          return `regexp_replace(to_char(${col}, 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\\.000000$', '')`
        return `${col}::text`
      default:
        return `${col}::${TYPES[to]}`
    }
  }

  timestampLiteral(d: Date): string {
    return `'${d.toISOString()}'::timestamptz`
  }

  createStage(name: string, columns: readonly ColumnState[]): string {
    const cols = [
      `${this.quote(ORD)} bigint`,
      `${this.quote(FILE)} integer`,
      ...columns.map((c) => `${this.quote(c.name, 'column name')} ${TYPES[c.type]}`),
    ]
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

  override directStager(raw: unknown, table: string, seqBase: number, s: SqlSettings, created: boolean): Stager {
    return new PgCopyStager(raw as PgClient, this, table, s.chunkSize, seqBase, created)
  }

  override async begin(session: Session): Promise<void> {
    await session.query('BEGIN')
    // The merge sorts and hashes whole loads: give it memory for this transaction only.
    await session.query("SET LOCAL work_mem = '256MB'")
    await session.query("SET LOCAL maintenance_work_mem = '256MB'")
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

/** Bytes of COPY text sent at a time. */
const CHUNK_BYTES = 1 << 20

let copyFrom: ((sql: string) => Writable) | undefined

function loadCopyFrom(): (sql: string) => Writable {
  if (!copyFrom) {
    try {
      const req = createRequire(import.meta.url)
      copyFrom = (req('pg-copy-streams') as { from: (sql: string) => Writable }).from
    } catch (cause) {
      throw sqlError(
        'ANCH_ERR_SQL_DRIVER',
        'PostgreSQL bulk loads need the pg-copy-streams package: npm install pg-copy-streams',
        { cause },
      )
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
  private encode: (row: Record<string, unknown>, w: CopyBuffer) => void = () => undefined
  private readonly out = new CopyBuffer(CHUNK_BYTES + (CHUNK_BYTES >> 3))
  private rows = 0
  /** Why the COPY in progress failed (the server's error), once it has. */
  private failed: unknown

  constructor(
    private readonly client: PgClient,
    private readonly dialect: PostgresDialect,
    /** The quoted table to COPY into. */
    private readonly table: string,
    private readonly limit: number,
    /** Direct loads: `_seq` = seqBase + arrival order, no staging columns. */
    private readonly seqBase: number | undefined,
    /** The table was created in this transaction: rows go in frozen (no hint bits to set, nothing to vacuum-freeze later). */
    private readonly freeze = false,
  ) {}

  begin(columns: readonly ColumnState[]): void {
    this.names = columns.map((c) => c.name)
    this.encode = compileEncoder(columns)
  }

  add(row: Record<string, unknown>, ord: number, file: number): boolean {
    const w = this.out
    if (this.seqBase === undefined) {
      w.int(ord)
      w.byte(9)
      w.int(file)
    } else {
      w.int(this.seqBase + ord)
    }
    this.encode(row, w)
    return w.pos >= CHUNK_BYTES || ++this.rows >= this.limit
  }

  async flush(): Promise<void> {
    if (this.out.pos === 0) return
    const chunk = this.out.take()
    this.rows = 0
    await this.send(chunk)
  }

  /** Writes one chunk of COPY text (opening the COPY first); waits only for the previous chunk to drain. */
  private async send(chunk: Buffer): Promise<void> {
    if (this.drain) {
      await this.drain
      this.drain = undefined
    }
    if (!this.stream) {
      const lead = this.seqBase === undefined ? [ORD, FILE] : [SEQ]
      const names = [...lead, ...this.names].map((n) => this.dialect.quote(n, 'column name')).join(', ')
      this.stream = this.client.query(
        loadCopyFrom()(`COPY ${this.table} (${names}) FROM STDIN${this.freeze ? ' WITH (FREEZE)' : ''}`),
      )
      this.done = finished(this.stream)
      // pg-copy-streams drops its connection when the server rejects the COPY: a write after that fails with a
      // TypeError that would hide the server's error, so the error is kept and rethrown instead of writing.
      this.done.catch((err: unknown) => {
        this.failed ??= err
      })
    }
    if (this.failed) throw this.failed
    if (!this.stream.write(chunk)) {
      this.drain = Promise.race([once(this.stream, 'drain'), this.done])
      // A failed COPY is reported by `done` (finish); a drain nobody waits for any more must not be unhandled.
      this.drain.catch(() => undefined)
    }
  }

  /** Abandons the COPY in progress (pg-copy-streams sends CopyFail), so the session can roll back. */
  abort(): void {
    this.stream?.destroy(new Error('load abandoned'))
    this.stream = undefined
  }

  fastFormat(): FastFormat | undefined {
    return this.seqBase === undefined ? undefined : 'postgres'
  }

  async addCopy(copy: Buffer, starts: Uint32Array, ord: number): Promise<void> {
    if (this.seqBase === undefined) throw new TypeError('COPY text is only taken by direct loads')
    await this.flush()
    // Writes each row's _seq into its zero-filled placeholder.
    const base = this.seqBase + ord
    for (let r = 0; r < starts.length; r++) fillDigits(copy, starts[r]! + SEQ_WIDTH, base + r)
    await this.send(copy)
  }

  async finish(): Promise<void> {
    await this.flush()
    if (!this.stream) return
    const s = this.stream
    const done = this.done!
    this.stream = undefined
    this.done = undefined
    this.drain = undefined
    if (this.failed) throw this.failed
    s.end()
    await done
  }
}
