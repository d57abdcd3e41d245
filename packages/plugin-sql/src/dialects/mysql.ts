import { Readable } from 'node:stream'
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
import { FILE_WIDTH, SEQ_WIDTH, fillDigits, type FastFormat } from '../fast-path/format.js'
import { isInheritedName, ownValue } from '../row-access.js'
import {
  Dialect,
  FILE,
  ORD,
  bindPlaceholders,
  sqlError,
  type QueryResult,
  type Session,
  type Stager,
} from './dialect.js'

interface MysqlConnection {
  query(
    sql: string | { sql: string; infileStreamFactory?: () => Readable },
    cb: (err: Error | null, result: unknown) => void,
  ): void
}

const MAX_KEY_CHARS = 768
const TEXT_CHARS = 16_383
const MEDIUMTEXT_CHARS = 4_194_303

/** Escapes a string as a MySQL literal (backslash escapes; the session keeps NO_BACKSLASH_ESCAPES off). */
export function mysqlString(s: string): string {
  return `'${s.replace(/[\0\n\r\b\t\\'"\x1a]/g, (c) => {
    switch (c) {
      case '\0':
        return '\\0'
      case '\n':
        return '\\n'
      case '\r':
        return '\\r'
      case '\b':
        return '\\b'
      case '\t':
        return '\\t'
      case '\x1a':
        return '\\Z'
      default:
        return `\\${c}`
    }
  })}'`
}

/** A literal of any JS value (for bound parameters). */
export function mysqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'number' || typeof v === 'bigint') return String(v)
  if (typeof v === 'boolean') return v ? '1' : '0'
  if (v instanceof Date) return `'${utcText(toDateTime(v))}'`
  if (Buffer.isBuffer(v)) return `X'${v.toString('hex')}'`
  return mysqlString(String(v))
}

const ENCODE: Record<SqlType, (v: unknown) => string> = {
  bool: (v) => (v ? '1' : '0'),
  int: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  float: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  decimal: (v) => `'${decimalText(v)}'`,
  str: (v) => mysqlString(textOf(v)),
  datetime: (v) => `'${naiveText(toDateTime(v))}'`,
  datetimetz: (v) => `'${utcText(toDateTime(v))}'`,
  date: (v) => `'${dateText(v)}'`,
  time: (v) => `'${String(v)}'`,
  bytes: (v) => `X'${bytesOf(v).toString('hex')}'`,
  json: (v) => mysqlString(jsonText(v)),
}

const TSV_RE = /[\\\t\n\r\0]/
const TSV_ALL = /[\\\t\n\r\0]/g
const TSV_MAP: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0' }
function tsv(s: string): string {
  return TSV_RE.test(s) ? s.replace(TSV_ALL, (m) => TSV_MAP[m]!) : s
}

/** `LOAD DATA` field text, per column type (bytes as hex, turned back by `UNHEX` in the statement). */
const TSV_ENCODE: Record<SqlType, (v: unknown) => string> = {
  bool: (v) => (v ? '1' : '0'),
  int: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  float: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : String(v)),
  decimal: decimalText,
  str: (v) => tsv(textOf(v)),
  datetime: (v) => naiveText(toDateTime(v)),
  datetimetz: (v) => utcText(toDateTime(v)),
  date: dateText,
  time: (v) => String(v),
  bytes: (v) => bytesOf(v).toString('hex'),
  json: (v) => tsv(jsonText(v)),
}

/**
 * Whether decimal text fits DECIMAL(65,30): no exponent, at most 35 digits before the point once leading zeros go,
 * at most 30 after it once trailing zeros go. One pass over the characters (the value may be a huge hostile cell).
 */
export function decimalTextFits(text: string): boolean {
  let i = text.charCodeAt(0) === 43 || text.charCodeAt(0) === 45 ? 1 : 0
  while (i < text.length && text.charCodeAt(i) === 48) i++
  let intDigits = 0
  for (; i < text.length && text.charCodeAt(i) !== 46; i++) {
    const c = text.charCodeAt(i)
    if (c === 101 || c === 69) return false
    if (++intDigits > 35) return false
  }
  // After the point: digits up to the last non-zero one.
  let fracDigits = 0
  for (let k = i + 1, n = 0; k < text.length; k++) {
    const c = text.charCodeAt(k)
    if (c === 101 || c === 69) return false
    n++
    if (c !== 48) fracDigits = n
  }
  return fracDigits <= 30
}

/** Whether a number fits DECIMAL(65,30) exactly. */
export function mysqlDecimalFits(v: number): boolean {
  return Number.isFinite(v) && Math.abs(v) < 1e35 && Number(v.toFixed(30)) === v
}

/** MySQL and MariaDB: databases as schemas, utf8mb4 with binary collation, strict mode, multi-row inserts. */
export class MysqlDialect extends Dialect {
  readonly name = 'mysql' as const
  readonly supportsSchemas = true
  override readonly sizesStrings = true
  override readonly caseInsensitiveNames = true
  readonly timestampType = 'DATETIME(6)'
  override readonly tableOptions = ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin'
  override readonly longTextType = 'LONGTEXT'

  override dropStage(name: string): string {
    return `DROP TEMPORARY TABLE IF EXISTS ${this.quote(name)}`
  }

  override isUniqueViolation(err: unknown): boolean {
    return (err as { code?: unknown }).code === 'ER_DUP_ENTRY'
  }

  /** DECIMAL(65,30): at most 35 digits before the point and 30 after (MySQL would round the rest away). */
  override decimalFits(v: unknown): boolean {
    if (typeof v === 'boolean') return true
    if (typeof v === 'number') return mysqlDecimalFits(v)
    return decimalTextFits(String(v))
  }

  protected nameProblem(name: string): string | undefined {
    if ([...name].length > 64) return `it is ${[...name].length} characters long and MySQL identifiers hold at most 64`
    if (/\s$/.test(name)) return 'MySQL identifiers cannot end with a space'
    if (/[\u{10000}-\u{10FFFF}]/u.test(name))
      return 'MySQL identifiers cannot contain characters outside the Basic Multilingual Plane (e.g. emoji)'
    return undefined
  }

  protected quoteRaw(name: string): string {
    return `\`${name.replace(/`/g, '``')}\``
  }

  columnType(c: ColumnState, isKey: boolean, s: SqlSettings): string {
    switch (c.type) {
      case 'bool':
        return 'BOOLEAN'
      case 'int':
        return 'BIGINT'
      case 'float':
        return 'DOUBLE'
      case 'decimal':
        return 'DECIMAL(65,30)'
      case 'str':
        if (isKey) {
          const n = Math.max(s.primaryLength, c.length)
          if (n > MAX_KEY_CHARS) {
            throw sqlError(
              'ANCH_ERR_SQL_KEY_TOO_LONG',
              `key column ${c.name} holds a value of ${c.length} characters; MySQL keys hold at most ${MAX_KEY_CHARS}`,
            )
          }
          return `VARCHAR(${n})`
        }
        if (c.length <= s.defaultLength) return `VARCHAR(${s.defaultLength})`
        if (c.length <= TEXT_CHARS) return 'TEXT'
        if (c.length <= MEDIUMTEXT_CHARS) return 'MEDIUMTEXT'
        return 'LONGTEXT'
      case 'datetime':
      case 'datetimetz':
        return 'DATETIME(6)'
      case 'date':
        return 'DATE'
      case 'time':
        return 'TIME(6)'
      case 'bytes':
        return 'LONGBLOB'
      case 'json':
        return 'JSON'
    }
  }

  createSchema(schema: string): string {
    return `CREATE DATABASE IF NOT EXISTS ${this.quote(schema, 'schema name')} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`
  }

  widenColumn(table: string, c: ColumnState, from: ColumnState, isKey: boolean, s: SqlSettings): string[] {
    const col = this.quote(c.name, 'column name')
    const stmts: string[] = []
    if (c.type === 'datetimetz' && from.type === 'datetime') return stmts
    if (c.type === 'str' && from.type === 'bytes') {
      stmts.push(`UPDATE ${table} SET ${col} = HEX(${col})`)
    }
    stmts.push(`ALTER TABLE ${table} MODIFY COLUMN ${col} ${this.columnType(c, isKey, s)} NULL`)
    return stmts
  }

  timestampLiteral(d: Date): string {
    return `'${d.toISOString().replace('T', ' ').replace('Z', '')}000'`
  }

  createStage(name: string, columns: readonly ColumnState[], s: SqlSettings, keys: ReadonlySet<string>): string {
    const cols = [
      `${this.quote(ORD)} BIGINT`,
      `${this.quote(FILE)} INT`,
      ...columns.map((c) => `${this.quote(c.name, 'column name')} ${this.stageType(c, s, keys)}`),
    ]
    return `CREATE TEMPORARY TABLE ${this.quote(name)} (${cols.join(', ')}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
  }

  private stageType(c: ColumnState, s: SqlSettings, keys: ReadonlySet<string>): string {
    // Staging strings are LONGTEXT except keys, so only key lengths are checked while staging.
    if (c.type === 'str' && !keys.has(c.name)) return 'LONGTEXT'
    return this.columnType(c, keys.has(c.name), s)
  }

  stageAddColumn(stage: string, c: ColumnState, s: SqlSettings, keys: ReadonlySet<string>): string {
    return `ALTER TABLE ${this.quote(stage)} ADD COLUMN ${this.quote(c.name, 'column name')} ${this.stageType(c, s, keys)}`
  }

  stageWidenColumn(
    stage: string,
    c: ColumnState,
    from: ColumnState,
    s: SqlSettings,
    keys: ReadonlySet<string>,
  ): string | null {
    const to = this.stageType(c, s, keys)
    if (to === this.stageType(from, s, keys) && !(c.type === 'str' && from.type === 'bytes')) return null
    const col = this.quote(c.name, 'column name')
    if (c.type === 'str' && from.type === 'bytes')
      return `ALTER TABLE ${this.quote(stage)} MODIFY COLUMN ${col} LONGTEXT`
    return `ALTER TABLE ${this.quote(stage)} MODIFY COLUMN ${col} ${to}`
  }

  session(raw: unknown): Session {
    const conn = raw as MysqlConnection
    return {
      query(sql: string, params: readonly unknown[] = []): Promise<QueryResult> {
        const text = bindPlaceholders(sql, (i) => mysqlLiteral(params[i]))
        return new Promise((resolve, reject) => {
          conn.query(text, (err, result) => {
            if (err) return reject(err)
            if (Array.isArray(result)) resolve({ rows: result as Record<string, unknown>[], affected: 0 })
            else resolve({ rows: [], affected: Number((result as { affectedRows?: number }).affectedRows ?? 0) })
          })
        })
      },
    }
  }

  stager(raw: unknown, session: Session, stage: string, s: SqlSettings): Stager {
    if (!s.mysqlLocalInfile) return new MysqlInsertStager(session, this, stage, s.chunkSize)
    return new MysqlLoadDataStager(raw as MysqlConnection, session, this, stage, s.chunkSize)
  }

  markDeleted(target: string, sub: string, ts: string): string {
    return `UPDATE ${target} AS t JOIN (${sub}) AS d ON t.\`_seq\` = d.\`_seq\` SET t.\`_del\` = ${ts}`
  }

  /** MySQL cannot read the table an UPDATE changes in a subquery: the keys from `start` on go through a derived table. */
  override supersedeAbsent(target: string, keys: readonly string[], start: number, ts: string): string {
    const where = `x.\`_del\` IS NULL AND x.\`_seq\` < ${start}`
    if (keys.length === 0) return `UPDATE ${target} AS x SET x.\`_del\` = ${ts} WHERE ${where}`
    const on = keys.map((k) => `n.${k} = x.${k}`).join(' AND ')
    return `UPDATE ${target} AS x LEFT JOIN (SELECT DISTINCT ${keys.join(', ')} FROM ${target} WHERE \`_seq\` >= ${start}) AS n ON ${on} SET x.\`_del\` = ${ts} WHERE ${where} AND n.${keys[0]} IS NULL`
  }

  async tableExists(session: Session, t: Target): Promise<boolean> {
    const r = await session.query(
      'SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = COALESCE(\u0000, DATABASE()) AND table_name = \u0000',
      [t.schema, t.table],
    )
    return Number(r.rows[0]?.n ?? 0) > 0
  }

  async physicalColumns(session: Session, t: Target): Promise<Map<string, string>> {
    const r = await session.query(
      'SELECT column_name AS name, column_type AS type FROM information_schema.columns WHERE table_schema = COALESCE(\u0000, DATABASE()) AND table_name = \u0000 ORDER BY ordinal_position',
      [t.schema, t.table],
    )
    return new Map(r.rows.map((x) => [String(x.name ?? x.NAME).toLowerCase(), String(x.type ?? x.TYPE)]))
  }

  logicalType(physical: string): SqlType {
    const p = physical.toLowerCase()
    if (p.startsWith('tinyint(1)')) return 'bool'
    if (/^(big|small|medium|tiny)?int/.test(p)) return 'int'
    if (p.startsWith('double') || p.startsWith('float')) return 'float'
    if (p.startsWith('decimal')) return 'decimal'
    if (p.startsWith('datetime') || p.startsWith('timestamp')) return 'datetime'
    if (p === 'date') return 'date'
    if (p.startsWith('time')) return 'time'
    if (p.includes('blob') || p.includes('binary')) return 'bytes'
    if (p === 'json') return 'json'
    return 'str'
  }

  createKeyIndex(t: Target, indexName: string, columns: readonly string[]): string {
    return `CREATE INDEX IF NOT EXISTS ${this.quote(indexName)} ON ${this.qualified(t)} (${[...columns, '_del'].map((c) => this.quote(c, 'column name')).join(', ')})`
  }
}

/** Multi-row INSERTs of up to ~1 MB of SQL each. */
class MysqlInsertStager implements Stager {
  private head = ''
  private names: string[] = []
  /** Per column: the name is also an Object.prototype member, so the row must own it (see row-access). */
  private inherited: boolean[] = []
  private enc: ((v: unknown) => string)[] = []
  private sql = ''
  private rows = 0

  constructor(
    private readonly session: Session,
    private readonly dialect: MysqlDialect,
    private readonly stage: string,
    private readonly limit: number,
  ) {}

  begin(columns: readonly ColumnState[]): void {
    this.names = columns.map((c) => c.name)
    this.inherited = columns.map((c) => isInheritedName(c.name))
    this.enc = columns.map((c) => ENCODE[c.type])
    this.head = `INSERT INTO ${this.dialect.quote(this.stage)} (${[ORD, FILE, ...this.names].map((n) => this.dialect.quote(n, 'column name')).join(', ')}) VALUES `
  }

  add(row: Record<string, unknown>, ord: number, file: number): boolean {
    let t = `(${ord},${file}`
    for (let j = 0; j < this.names.length; j++) {
      const v = this.inherited[j] ? ownValue(row, this.names[j]!) : row[this.names[j]!]
      t += v === null || v === undefined ? ',NULL' : `,${this.enc[j]!(v)}`
    }
    this.sql += this.sql ? `,${t})` : `${t})`
    this.rows++
    return this.sql.length >= 1 << 20 || this.rows >= this.limit
  }

  async flush(): Promise<void> {
    if (!this.sql) return
    const sql = this.head + this.sql
    this.sql = ''
    this.rows = 0
    await this.session.query(sql)
  }

  async finish(): Promise<void> {
    await this.flush()
  }
}

/**
 * `LOAD DATA LOCAL INFILE` from memory (tab-separated, up to ~1 MB per statement) when the server allows local
 * infiles (`local_infile=ON`); multi-row INSERTs otherwise.
 */
class MysqlLoadDataStager implements Stager {
  private local: boolean | undefined
  private readonly inserts: MysqlInsertStager
  private names: string[] = []
  private inherited: boolean[] = []
  private enc: ((v: unknown) => string)[] = []
  private statement = ''
  private buf = ''
  private rows = 0

  constructor(
    private readonly conn: MysqlConnection,
    private readonly session: Session,
    private readonly dialect: MysqlDialect,
    private readonly stage: string,
    private readonly limit: number,
  ) {
    this.inserts = new MysqlInsertStager(session, dialect, stage, limit)
  }

  async begin(columns: readonly ColumnState[]): Promise<void> {
    if (this.local === undefined) {
      const r = await this.session.query('SELECT @@local_infile AS v')
      this.local = Number(r.rows[0]?.v ?? 0) === 1
    }
    this.inserts.begin(columns)
    this.names = columns.map((c) => c.name)
    this.inherited = columns.map((c) => isInheritedName(c.name))
    this.enc = columns.map((c) => TSV_ENCODE[c.type])
    const q = (n: string): string => this.dialect.quote(n, 'column name')
    const targets = [q(ORD), q(FILE), ...columns.map((c, j) => (c.type === 'bytes' ? `@b${j}` : q(c.name)))]
    const sets = columns.flatMap((c, j) => (c.type === 'bytes' ? [`${q(c.name)} = UNHEX(@b${j})`] : []))
    this.statement =
      `LOAD DATA LOCAL INFILE 'anchovies.tsv' INTO TABLE ${q(this.stage)} CHARACTER SET utf8mb4 ` +
      `FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (${targets.join(', ')})${sets.length ? ` SET ${sets.join(', ')}` : ''}`
  }

  add(row: Record<string, unknown>, ord: number, file: number): boolean {
    if (this.local === false) return this.inserts.add(row, ord, file)
    let line = `${ord}\t${file}`
    for (let j = 0; j < this.names.length; j++) {
      const v = this.inherited[j] ? ownValue(row, this.names[j]!) : row[this.names[j]!]
      line += v === null || v === undefined ? '\t\\N' : `\t${this.enc[j]!(v)}`
    }
    this.buf += line + '\n'
    this.rows++
    return this.buf.length >= 1 << 20 || this.rows >= this.limit
  }

  fastFormat(): FastFormat | undefined {
    return this.local ? 'mysql' : undefined
  }

  /** Byte fast path: one member's `LOAD DATA` text, its `_anch_ord`/`_anch_file` placeholders filled in. */
  async addCopy(copy: Buffer, starts: Uint32Array, ord: number, file: number): Promise<void> {
    await this.flush()
    for (let r = 0; r < starts.length; r++) {
      fillDigits(copy, starts[r]! + SEQ_WIDTH, ord + r)
      fillDigits(copy, starts[r]! + SEQ_WIDTH + 1 + FILE_WIDTH, file)
    }
    await this.send(copy)
  }

  async flush(): Promise<void> {
    if (this.local === false) return this.inserts.flush()
    if (!this.buf) return
    const data = this.buf
    this.buf = ''
    this.rows = 0
    await this.send(Buffer.from(data, 'utf8'))
  }

  private async send(data: Buffer): Promise<void> {
    const warnings = await new Promise<number>((resolve, reject) => {
      this.conn.query({ sql: this.statement, infileStreamFactory: () => Readable.from([data]) }, (err, result) =>
        err ? reject(err) : resolve(Number((result as { warningStatus?: number }).warningStatus ?? 0)),
      )
    })
    // LOCAL loads turn conversion errors into warnings (as IGNORE does): a warning means a value did not fit.
    if (warnings > 0) {
      const r = await this.session.query('SHOW WARNINGS LIMIT 3')
      const what = r.rows.map((w) => String(w.Message ?? w.message)).join('; ')
      throw sqlError(
        'ANCH_ERR_SQL_VALUE',
        `staging ${this.stage}: MySQL could not store ${warnings} value(s) exactly: ${what}`,
      )
    }
  }

  async finish(): Promise<void> {
    await this.flush()
  }
}
