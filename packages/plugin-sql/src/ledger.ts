import { createHash } from 'node:crypto'
import type { UpstreamFile } from '@anchovies/core'
import { SQL_TYPES, type ColumnState, type SqlType } from './column-types.js'
import type { Target } from './config.js'
import { P, sqlError, type Dialect, type Session } from './dialects/dialect.js'

/** The load ledger: one row per (target table, upstream file) merged; committed with the merge. */
export const LEDGER_TABLE = '_anchovies_loads'
/** Per target table: the next `_seq` and the column types and changes the uploader recorded. */
export const META_TABLE = '_anchovies_tables'

const IN_CHUNK = 500

/** The ledger key of an upstream file (its stable id, hashed to a fixed width). */
export function fileKey(file: UpstreamFile): string {
  return createHash('sha1').update(file.id).digest('hex')
}

/** Creates the ledger and metadata tables of `t`'s schema when missing. */
export async function ensureBookkeeping(d: Dialect, s: Session, t: Target): Promise<void> {
  const opts = d.tableOptions
  await s.query(
    `CREATE TABLE IF NOT EXISTS ${d.sibling(t, LEDGER_TABLE)} (table_name VARCHAR(255) NOT NULL, file_key CHAR(40) NOT NULL, file_id ${d.longTextType} NOT NULL, ` +
      `row_count BIGINT NOT NULL, first_seq BIGINT NOT NULL, loaded_at ${d.timestampType} NOT NULL, uploader VARCHAR(255) NOT NULL, session_id VARCHAR(255) NOT NULL, ` +
      `PRIMARY KEY (table_name, file_key))${opts}`,
  )
  await s.query(
    `CREATE TABLE IF NOT EXISTS ${d.sibling(t, META_TABLE)} (table_name VARCHAR(255) NOT NULL PRIMARY KEY, next_seq BIGINT NOT NULL, ` +
      `columns_json ${d.longTextType} NOT NULL, changes_json ${d.longTextType} NOT NULL, updated_at ${d.timestampType} NOT NULL)${opts}`,
  )
}

/** Ids of the files of `files` already in the ledger of `t`. */
export async function loadedFileIds(
  d: Dialect,
  s: Session,
  t: Target,
  files: readonly UpstreamFile[],
): Promise<Set<string>> {
  const out = new Set<string>()
  const byKey = new Map(files.map((f) => [fileKey(f), f.id]))
  const keys = [...byKey.keys()]
  for (let i = 0; i < keys.length; i += IN_CHUNK) {
    const part = keys.slice(i, i + IN_CHUNK)
    const r = await s.query(
      `SELECT file_key FROM ${d.sibling(t, LEDGER_TABLE)} WHERE table_name = ${P} AND file_key IN (${part.map(() => P).join(', ')})`,
      [t.table, ...part],
    )
    for (const row of r.rows) {
      const id = byKey.get(String(row.file_key ?? row.FILE_KEY))
      if (id) out.add(id)
    }
  }
  return out
}

/** Whether the ledger table of `t`'s schema exists. */
export async function ledgerExists(d: Dialect, s: Session, t: Target): Promise<boolean> {
  return d.tableExists(s, { schema: t.schema, table: LEDGER_TABLE })
}

/** Records merged files in the ledger (inside the merge transaction). */
export async function recordFiles(
  d: Dialect,
  s: Session,
  t: Target,
  files: readonly { file: UpstreamFile; rows: number; firstSeq: number }[],
  loadedAt: Date,
  uploader: string,
  sessionId: string,
): Promise<void> {
  for (let i = 0; i < files.length; i += IN_CHUNK) {
    const part = files.slice(i, i + IN_CHUNK)
    const params: unknown[] = []
    const values = part.map((f) => {
      params.push(t.table, fileKey(f.file), f.file.id, f.rows, f.firstSeq, uploader, sessionId)
      return `(${P}, ${P}, ${P}, ${P}, ${P}, ${d.timestampLiteral(loadedAt)}, ${P}, ${P})`
    })
    await s.query(
      `INSERT INTO ${d.sibling(t, LEDGER_TABLE)} (table_name, file_key, file_id, row_count, first_seq, loaded_at, uploader, session_id) VALUES ${values.join(', ')}`,
      params,
    )
  }
}

/** What the metadata table holds for one target table. */
export interface TableMeta {
  readonly nextSeq: number
  readonly columns: ColumnState[]
  readonly changes: Record<string, unknown>[]
}

/** Reads the metadata row of `t`, if any. */
export async function readMeta(d: Dialect, s: Session, t: Target): Promise<TableMeta | undefined> {
  const r = await s.query(
    `SELECT next_seq, columns_json, changes_json FROM ${d.sibling(t, META_TABLE)} WHERE table_name = ${P}`,
    [t.table],
  )
  const row = r.rows[0]
  if (!row) return undefined
  const problem = (what: string): Error =>
    sqlError(
      'ANCH_ERR_SQL_LEDGER',
      `table ${t.table}: its row in ${META_TABLE} holds ${what}; fix the row, or delete it (the uploader then reads the column types from the database catalog)`,
    )
  const parse = (column: string): unknown => {
    try {
      return JSON.parse(String(row[column]))
    } catch {
      throw problem(`${column} that is not JSON`)
    }
  }
  const columns = parse('columns_json')
  const changes = parse('changes_json')
  if (!Array.isArray(columns)) throw problem('columns_json that is not a JSON array')
  if (!Array.isArray(changes) || !changes.every((c) => c !== null && typeof c === 'object' && !Array.isArray(c)))
    throw problem('changes_json that is not a JSON array of objects')
  // Recorded types end up in DDL and compiled row code: only the logical types the uploader writes are taken.
  const checked = columns.map((c: unknown, i): ColumnState => {
    const o = (c !== null && typeof c === 'object' ? c : {}) as Record<string, unknown>
    const { name, type, length } = o
    if (typeof name !== 'string' || name === '') throw problem(`columns_json[${i}] without a column name`)
    if (typeof type !== 'string' || !(SQL_TYPES as readonly string[]).includes(type))
      throw problem(
        `columns_json[${i}] (${JSON.stringify(name.slice(0, 80))}) with type ${JSON.stringify(String(type).slice(0, 40))}, which is not one of ${SQL_TYPES.join(', ')}`,
      )
    return {
      name,
      type: type as SqlType,
      length: typeof length === 'number' && Number.isFinite(length) && length > 0 ? Math.floor(length) : 0,
    }
  })
  return { nextSeq: Number(row.next_seq), columns: checked, changes: changes as Record<string, unknown>[] }
}

/**
 * Creates the metadata row of `t` when missing (committed before a load locks it), keeping what is there.
 * `nextSeq` gives the first `_seq` for a new row.
 */
export async function ensureMetaRow(
  d: Dialect,
  s: Session,
  t: Target,
  nextSeq: () => Promise<number>,
  now: Date,
): Promise<void> {
  const meta = d.sibling(t, META_TABLE)
  const exists = await s.query(`SELECT 1 AS x FROM ${meta} WHERE table_name = ${P}`, [t.table])
  if (exists.rows.length) return
  await s.query(
    `INSERT INTO ${meta} (table_name, next_seq, columns_json, changes_json, updated_at) VALUES (${P}, ${P}, '[]', '[]', ${d.timestampLiteral(now)})`,
    [t.table, await nextSeq()],
  )
}

/** Inserts or replaces the column part of the metadata row (outside the merge transaction, right after DDL). */
export async function writeMeta(
  d: Dialect,
  s: Session,
  t: Target,
  columns: readonly ColumnState[],
  changes: readonly Record<string, unknown>[],
  nextSeqIfNew: number,
  now: Date,
): Promise<void> {
  const meta = d.sibling(t, META_TABLE)
  const cols = JSON.stringify(columns.map((c) => ({ name: c.name, type: c.type, length: c.length })))
  const ch = JSON.stringify(changes)
  const r = await s.query(
    `UPDATE ${meta} SET columns_json = ${P}, changes_json = ${P}, updated_at = ${d.timestampLiteral(now)} WHERE table_name = ${P}`,
    [cols, ch, t.table],
  )
  if (r.affected === 0) {
    const exists = await s.query(`SELECT 1 AS x FROM ${meta} WHERE table_name = ${P}`, [t.table])
    if (exists.rows.length === 0) {
      await s.query(
        `INSERT INTO ${meta} (table_name, next_seq, columns_json, changes_json, updated_at) VALUES (${P}, ${P}, ${P}, ${P}, ${d.timestampLiteral(now)})`,
        [t.table, nextSeqIfNew, cols, ch],
      )
    }
  }
}
