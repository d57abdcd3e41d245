import type { SortKey } from '@anchovies/core'
import { DEL, FILE, ORD, SEQ, type Dialect } from './dialects/dialect.js'

/** What a merge needs (identifiers of target and stage are already quoted). */
export interface MergeSpec {
  readonly target: string
  readonly stage: string
  readonly columns: readonly string[]
  readonly uniqueBy: readonly string[]
  readonly setBy: readonly string[]
  readonly sortBy: readonly SortKey[]
  /** `_seq` of the first staged row (the rest follow in arrival order). */
  readonly base: number
  /** Timestamp literal written to `_del`. */
  readonly deletedAt: string
  /** Timestamp literal: superseded rows older than this are deleted (null = keep forever). */
  readonly expireBefore: string | null
  /**
   * The rows were copied straight into the target (PostgreSQL, no set_by): they are the rows with `_seq >= base`,
   * there is no staging table and nothing to insert.
   */
  readonly direct?: boolean
}

/** The set-based statements of one merge, run in this order inside one transaction. */
export interface MergeStatements {
  /** set_by: current rows of every set that arrives are superseded by the arrival. */
  readonly supersedeSets?: string
  /** set_by: how many staged rows belong to an older arrival of their set (inserted as history). */
  readonly countSetLosers?: string
  /** Inserts every staged row with its `_seq` (and `_del` for rows of an older arrival of their set). */
  readonly insert: string
  /** unique_by: among current rows of each arriving key, all but the newest get `_del`. */
  readonly supersedeKeys?: string
  /** unique_by: returns a row when the target has current rows (run before the insert). */
  readonly anyCurrent?: string
  /** unique_by: returns a row when a key arrives more than once in this load. */
  readonly duplicateKeys?: string
  /**
   * Direct loads, unique_by: current rows (of the target or of this load) that a row of this load precedes get `_del`
   * (a join of this load's rows with the current rows of their keys; no window over them).
   */
  readonly supersedeByNew?: string
  /**
   * Direct loads, unique_by, after `supersedeByNew`: rows of this load that a current row the target already had
   * precedes (late arrivals) get `_del`. When it marks any, `supersedeKeys` runs as well, so that current rows the
   * target already had for the same key are ranked among each other exactly as before.
   */
  readonly supersedeNew?: string
  /** Retention: delete rows superseded before the cut-off. */
  readonly expire?: string
}

/**
 * Builds the merge. "Newest" for unique_by is the first row in `sort_by` order (nulls last), then the latest
 * arrival (highest `_seq`). For set_by the latest arrival (upstream file) of a set replaces the whole set.
 */
export function mergeStatements(d: Dialect, m: MergeSpec): MergeStatements {
  const q = (c: string): string => d.quote(c, 'column name')
  const cols = m.columns.map(q)
  const seq = q(SEQ)
  const del = q(DEL)
  const out: { -readonly [K in keyof MergeStatements]: MergeStatements[K] } = { insert: '' }
  const tuple = (names: readonly string[], alias = ''): string => {
    const parts = names.map((n) => `${alias}${q(n)}`)
    return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`
  }

  let delExpr = 'NULL'
  if (m.setBy.length) {
    const setCols = m.setBy.map(q).join(', ')
    out.supersedeSets = `UPDATE ${m.target} SET ${del} = ${m.deletedAt} WHERE ${del} IS NULL AND ${tuple(m.setBy)} IN (SELECT ${setCols} FROM ${m.stage})`
    const latest = `MAX(${q(FILE)}) OVER (PARTITION BY ${setCols})`
    out.countSetLosers = `SELECT COUNT(*) AS n FROM (SELECT ${q(FILE)} AS f, ${latest} AS m FROM ${m.stage}) x WHERE x.f < x.m`
    delExpr = `CASE WHEN ${q(FILE)} < ${latest} THEN ${m.deletedAt} END`
  }
  // Where the arriving keys are: the staging table, or the target's rows of this load.
  const arrived = m.direct ? `${m.target} WHERE ${seq} >= ${m.base}` : m.stage
  out.insert = m.direct
    ? ''
    : `INSERT INTO ${m.target} (${[...cols, seq, del].join(', ')}) ` +
      `SELECT ${[...cols, `${m.base} + ${q(ORD)}`, delExpr].join(', ')} FROM ${m.stage}`

  if (m.uniqueBy.length) {
    const keyCols = m.uniqueBy.map((c) => `x.${q(c)}`).join(', ')
    const order = [
      ...m.sortBy.flatMap((k) => [
        `CASE WHEN x.${q(k.column)} IS NULL THEN 1 ELSE 0 END`,
        `x.${q(k.column)}${k.descending ? ' DESC' : ''}`,
      ]),
      `x.${seq} DESC`,
    ].join(', ')
    const ranked =
      `SELECT x.${seq} AS ${seq}, ROW_NUMBER() OVER (PARTITION BY ${keyCols} ORDER BY ${order}) AS rn ` +
      `FROM ${m.target} x WHERE x.${del} IS NULL AND ${tuple(m.uniqueBy, 'x.')} IN (SELECT ${m.uniqueBy.map(q).join(', ')} FROM ${arrived})`
    out.anyCurrent = `SELECT 1 AS x FROM ${m.target} WHERE ${del} IS NULL${m.direct ? ` AND ${seq} < ${m.base}` : ''} LIMIT 1`
    out.duplicateKeys = `SELECT 1 AS x FROM ${arrived} GROUP BY ${m.uniqueBy.map(q).join(', ')} HAVING COUNT(*) > 1 LIMIT 1`
    out.supersedeKeys = d.markDeleted(m.target, `SELECT r.${seq} FROM (${ranked}) r WHERE r.rn > 1`, m.deletedAt)
    if (m.direct) {
      // "n comes before t" in the window's order: sort_by (nulls last), then the later arrival.
      let before = `n.${seq} > t.${seq}`
      for (const k of [...m.sortBy].reverse()) {
        const a = `n.${q(k.column)}`
        const b = `t.${q(k.column)}`
        before = `((${a} IS NOT NULL AND ${b} IS NULL) OR ${a} ${k.descending ? '>' : '<'} ${b} OR (${a} IS NOT DISTINCT FROM ${b} AND ${before}))`
      }
      const sameKey = m.uniqueBy.map((c) => `t.${q(c)} = n.${q(c)}`).join(' AND ')
      out.supersedeByNew =
        `UPDATE ${m.target} AS t SET ${del} = ${m.deletedAt} FROM ${m.target} AS n ` +
        `WHERE n.${seq} >= ${m.base} AND t.${del} IS NULL AND ${sameKey} AND ${before}`
      out.supersedeNew =
        `UPDATE ${m.target} AS t SET ${del} = ${m.deletedAt} FROM ${m.target} AS n ` +
        `WHERE t.${seq} >= ${m.base} AND t.${del} IS NULL AND n.${seq} < ${m.base} AND n.${del} IS NULL AND ${sameKey} AND ${before}`
    }
  }
  if (m.expireBefore) out.expire = `DELETE FROM ${m.target} WHERE ${del} IS NOT NULL AND ${del} < ${m.expireBefore}`
  return out
}
