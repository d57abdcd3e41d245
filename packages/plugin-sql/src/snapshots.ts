import type { Target } from './config.js'
import { P, type Dialect, type Session } from './dialects/dialect.js'
import type { LoadInput } from './load-input.js'

/** Per target table and full-mode snapshot: the first `_seq` of its rows and when it completed. */
export const SNAPSHOT_TABLE = '_anchovies_snapshots'

/** Creates the snapshot table of `t`'s schema when missing. */
export async function ensureSnapshotTable(d: Dialect, s: Session, t: Target): Promise<void> {
  await s.query(
    `CREATE TABLE IF NOT EXISTS ${d.sibling(t, SNAPSHOT_TABLE)} (table_name VARCHAR(255) NOT NULL, snapshot_id VARCHAR(255) NOT NULL, ` +
      `first_seq BIGINT NOT NULL, started_at ${d.timestampType} NOT NULL, completed_at ${d.timestampType} NULL, PRIMARY KEY (table_name, snapshot_id))${d.tableOptions}`,
  )
}

/**
 * Inside the merge transaction, after the rows of this load are in the target: records where each snapshot of the
 * load starts, and for the newest snapshot that completes in this load supersedes every current row before its start
 * whose key none of its rows has (without `unique_by`: every current row before its start). A snapshot that never
 * completes supersedes nothing. Returns the number of rows superseded.
 */
export async function applySnapshots(
  d: Dialect,
  session: Session,
  input: LoadInput,
  /** `_seq` of the first row of each file of the load, and of the row after the last. */
  firstSeqs: readonly number[],
  nextSeq: number,
  deletedAt: string,
  now: Date,
): Promise<number> {
  const marks = input.snapshots ?? []
  if (marks.length === 0) return 0
  const t = input.target
  const table = d.sibling(t, SNAPSHOT_TABLE)
  let completeStart: number | undefined
  for (const m of marks) {
    const r = await session.query(
      `SELECT first_seq, completed_at FROM ${table} WHERE table_name = ${P} AND snapshot_id = ${P}`,
      [t.table, m.id],
    )
    const row = r.rows[0]
    let start: number
    if (row) {
      start = Number(row.first_seq)
      if (row.completed_at !== null && row.completed_at !== undefined) continue
      if (m.complete)
        await session.query(
          `UPDATE ${table} SET completed_at = ${d.timestampLiteral(now)} WHERE table_name = ${P} AND snapshot_id = ${P}`,
          [t.table, m.id],
        )
    } else {
      if (m.firstFile >= 0) start = firstSeqs[m.firstFile]!
      else if (m.rows === 0) start = nextSeq
      else {
        // Its rows were loaded without a record of where they start (never by this uploader): removing rows is not safe.
        input.logger.warn(
          { snapshot: m.id },
          'full snapshot whose start is unknown: rows it no longer contains are kept',
        )
        continue
      }
      await session.query(
        `INSERT INTO ${table} (table_name, snapshot_id, first_seq, started_at, completed_at) VALUES (${P}, ${P}, ${P}, ${d.timestampLiteral(now)}, ${m.complete ? d.timestampLiteral(now) : 'NULL'})`,
        [t.table, m.id, start],
      )
    }
    if (m.complete) completeStart = start
  }
  if (completeStart === undefined) return 0
  const keys = input.table.uniqueBy.map((c) => d.quote(c, 'column name'))
  const r = await session.query(d.supersedeAbsent(d.qualified(t), keys, completeStart, deletedAt))
  return r.affected
}
