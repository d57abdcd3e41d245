import { createHash } from 'node:crypto'
import { appendFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'

export { rng } from '../support/rng.mjs'

/** The generated columns and the types the downloader declares for them. */
export const COLUMNS = {
  id: 'str',
  rev: 'int',
  qty: 'int',
  amount: 'float',
  name: 'str',
  ts: 'datetime',
  ok: 'bool',
  note: 'str',
} as const
export type ColumnName = keyof typeof COLUMNS
const NAMES = Object.keys(COLUMNS) as ColumnName[]

/** One generated row: the text of every column as written to the file. */
export type SourceRow = Record<ColumnName, string>

/** The generated tables: one comma-separated with \n, one tab-separated with \r\n. */
export const TABLES = {
  orders: { dir: 'orders', ext: 'csv', delimiter: ',', eol: '\n', prefix: 'o' },
  stock: { dir: 'stock', ext: 'tsv', delimiter: '\t', eol: '\r\n', prefix: 's' },
} as const
export type TableName = keyof typeof TABLES

/** The downloader's config.yaml for the generated tables (unique_by the generated id). */
export function downloaderConfig(): string {
  const cols = `{${NAMES.map((c) => `${c}: ${COLUMNS[c]}`).join(', ')}}`
  return [
    'tbls:',
    '  orders:',
    '    path: /orders/*.csv',
    `    columns: ${cols}`,
    '    unique_by: id',
    '  stock:',
    '    path: /stock/*.tsv',
    '    delimiter: tab',
    `    columns: ${cols}`,
    '    unique_by: id',
    '',
  ].join('\n')
}

const TRUE = new Set(['true', 't', 'yes', 'y', '1', 'on'])
const FALSE = new Set(['false', 'f', 'no', 'n', '0', 'off'])
const TEXTS = [
  'plain',
  'Anchovy, Inc.',
  'say "hi"',
  'Ünïcödé 漢字 🐟',
  '  padded  ',
  'two\nlines',
  "it's",
  'back\\slash',
  '',
  'x'.repeat(70),
  '#not a comment',
  'a;b|c',
]

/** Canonical text of one value of a column, whatever side it comes from (file text, datastore row, database row). */
export function canonical(column: string, v: unknown): string {
  if (v === null || v === undefined) return '∅'
  const type = COLUMNS[column as ColumnName]
  switch (type) {
    case 'int':
      return String(typeof v === 'string' ? BigInt(v) : v)
    case 'float':
      return String(Number(v))
    case 'bool':
      if (v === true || TRUE.has(String(v).toLowerCase())) return 'true'
      if (v === false || FALSE.has(String(v).toLowerCase())) return 'false'
      return `?${String(v)}`
    case 'datetime': {
      const d =
        v instanceof Date
          ? v
          : typeof (v as { toDate?: unknown }).toDate === 'function'
            ? (v as { toDate(): Date }).toDate()
            : new Date(String(v))
      return String(d.getTime())
    }
    default:
      return String(v)
  }
}

/** The canonical line of a row (every generated column, in order). */
export function canonicalRow(row: Record<string, unknown>): string {
  return NAMES.map((c) => canonical(c, row[c])).join('\u0001')
}

/** The canonical line of a generated row: empty text is null in every non-str column. */
export function canonicalSource(row: SourceRow): string {
  return NAMES.map((c) => (row[c] === '' && COLUMNS[c] !== 'str' ? '∅' : canonical(c, row[c]))).join('\u0001')
}

/** One version of a file, as the downloader must deliver it: all of its rows or none. */
export interface FileVersion {
  readonly rows: number
  readonly hash: string
}

interface SourceFile {
  readonly table: TableName
  readonly stem: string
  readonly file: string
  rows: SourceRow[]
  mtime: number
}

function hashRows(lines: Iterable<string>): string {
  const h = createHash('sha1')
  for (const l of lines) h.update(l).update('\n')
  return h.digest('hex')
}

function quote(text: string, delimiter: string): string {
  return /["\r\n]/.test(text) || text.includes(delimiter) || text !== text.trim()
    ? `"${text.replace(/"/g, '""')}"`
    : text
}

/**
 * Delimited files under an sftp root that change between runs: new files, rewritten files (some rows changed,
 * some added, no id ever removed) and appended rows. Every change bumps a global revision written into the rows
 * it touches, so the largest `rev` of a file names its version; every version is remembered by hash.
 */
export class ChangingSource {
  private readonly files: SourceFile[] = []
  private rev = 0
  private clock = Math.floor(Date.now() / 1000) - 100_000
  /** Per table and file stem: every version (by max rev) that ever existed. */
  readonly versions = new Map<string, Map<number, FileVersion>>()
  rowCount = 0

  constructor(
    readonly root: string,
    private readonly random: () => number,
  ) {
    for (const t of Object.values(TABLES)) mkdirSync(path.join(root, t.dir), { recursive: true, mode: 0o755 })
  }

  private int(n: number): number {
    return Math.floor(this.random() * n)
  }

  private pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!
  }

  private row(stem: string, n: number): SourceRow {
    const r = this.random
    const ts = new Date(
      Date.UTC(
        2024,
        this.int(12),
        1 + this.int(28),
        this.int(24),
        this.int(60),
        this.int(60),
        r() < 0.3 ? this.int(1000) : 0,
      ),
    )
    return {
      id: `${stem}-${String(n).padStart(6, '0')}`,
      rev: String(this.rev),
      qty: r() < 0.1 ? '' : String(this.int(2000) - 100),
      amount: (this.int(10_000_000) / 100 - 1000).toFixed(this.int(3)),
      name: this.pick(TEXTS),
      ts: r() < 0.05 ? '' : r() < 0.5 ? ts.toISOString() : ts.toISOString().replace('Z', '+00:00'),
      ok: this.pick(['true', 'false', 'yes', 'no', '1', '0', '']),
      note: r() < 0.5 ? '' : `n${this.int(1e6)}`,
    }
  }

  private text(f: SourceFile, rows: readonly SourceRow[], header: boolean): string {
    const t = TABLES[f.table]
    const lines = rows.map((row) => NAMES.map((c) => quote(row[c], t.delimiter)).join(t.delimiter))
    if (header) lines.unshift(NAMES.join(t.delimiter))
    return lines.map((l) => l + t.eol).join('')
  }

  /**
   * Writes a file's content (whole or appended) with a fresh, strictly later whole-second mtime (or, for a
   * partner whose clock jumped back, `backdate` seconds before its previous mtime), and records the version.
   */
  private save(f: SourceFile, appended: SourceRow[] | null, backdate = 0): void {
    if (backdate) f.mtime -= backdate
    else {
      this.clock = Math.max(this.clock + 1, f.mtime + 1)
      f.mtime = this.clock
    }
    if (appended) appendFileSync(f.file, this.text(f, appended, false))
    else writeFileSync(f.file, this.text(f, f.rows, true), { mode: 0o644 })
    utimesSync(f.file, f.mtime, f.mtime)
    const key = `${f.table}/${f.stem}`
    const list = this.versions.get(key) ?? new Map<number, FileVersion>()
    list.set(this.rev, { rows: f.rows.length, hash: hashRows(f.rows.map(canonicalSource)) })
    this.versions.set(key, list)
  }

  /** Adds a new file of about `rows` rows (the first files go to each table in turn). */
  addFile(rows: number): void {
    const names = Object.keys(TABLES) as TableName[]
    const table = this.files.length < names.length ? names[this.files.length]! : this.pick(names)
    const t = TABLES[table]
    const stem = `${t.prefix}${String(this.files.length).padStart(4, '0')}`
    this.rev++
    const f: SourceFile = { table, stem, file: path.join(this.root, t.dir, `${stem}.${t.ext}`), rows: [], mtime: 0 }
    for (let i = 0; i < Math.max(1, rows); i++) f.rows.push(this.row(stem, i))
    this.files.push(f)
    this.rowCount += f.rows.length
    this.save(f, null)
  }

  private pickFile(table?: TableName): SourceFile {
    return this.pick(table ? this.files.filter((f) => f.table === table) : this.files)
  }

  /** Appends rows to an existing file (of `table`, if given); its old bytes stay as they are. */
  appendRows(rows: number, table?: TableName): void {
    const f = this.pickFile(table)
    this.rev++
    const added: SourceRow[] = []
    for (let i = 0; i < Math.max(1, rows); i++) added.push(this.row(f.stem, f.rows.length + i))
    f.rows.push(...added)
    this.rowCount += added.length
    this.save(f, added)
  }

  /** Rewrites an existing file (of `table`, if given): changes about a fifth of its rows, adds `extra` rows; no id disappears. */
  rewriteFile(extra: number, table?: TableName, backdate = 0): void {
    const f = this.pickFile(table)
    this.rev++
    const changes = Math.max(1, Math.floor(f.rows.length / 5))
    for (let i = 0; i < changes; i++) {
      const n = this.int(f.rows.length)
      f.rows[n] = this.row(f.stem, n)
    }
    for (let i = 0; i < extra; i++) f.rows.push(this.row(f.stem, f.rows.length))
    this.rowCount += extra
    this.save(f, null, backdate)
  }

  /** One round of changes sized so that the source ends near `finalRows` after `rounds` rounds. */
  mutate(finalRows: number, roundsLeft: number): string[] {
    const budget = Math.max(1, Math.floor((finalRows - this.rowCount) / Math.max(1, roundsLeft)))
    const did: string[] = []
    const actions = 1 + this.int(3)
    for (let a = 0; a < actions; a++) {
      const share = Math.max(1, Math.floor(budget / actions))
      const r = this.random()
      if (this.files.length < Object.keys(TABLES).length || r < 0.3) {
        this.addFile(share)
        did.push(`new ${this.files.at(-1)!.stem}`)
      } else if (r < 0.65) {
        this.appendRows(share)
        did.push('append')
      } else {
        this.rewriteFile(this.random() < 0.5 ? 0 : Math.floor(share / 2))
        did.push('rewrite')
      }
    }
    return did
  }

  /** The rows every table must hold as current rows in the end: the latest version of every file, by id. */
  expected(): Map<TableName, Map<string, string>> {
    const out = new Map<TableName, Map<string, string>>()
    for (const t of Object.keys(TABLES) as TableName[]) out.set(t, new Map())
    for (const f of this.files) for (const r of f.rows) out.get(f.table)!.set(r.id, canonicalSource(r))
    return out
  }

  /** The latest version (max rev) of every file, by `table/stem`. */
  latest(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [key, list] of this.versions) out.set(key, Math.max(...list.keys()))
    return out
  }
}

/** The hash of a run of rows read back from the datastore (same format as FileVersion.hash). */
export function hashOf(rows: readonly Record<string, unknown>[]): string {
  return hashRows(rows.map(canonicalRow))
}
