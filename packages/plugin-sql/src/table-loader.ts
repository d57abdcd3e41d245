import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { ColumnType, Row, Table, UpstreamFile } from '@anchovies/core'
import { coerceDeclared, declaredType, fits, textLength, typeFor, widenType, type ColumnState, type SqlType } from './column-types.js'
import type { SqlSettings, Target } from './config.js'
import { RESERVED, SEQ, sqlError, type Dialect, type Session, type Stager } from './dialects/dialect.js'
import { checkName, describeChanges, evolveTarget } from './evolve.js'
import { ensureBookkeeping, ensureMetaRow, loadedFileIds, readMeta, recordFiles, writeMeta, type TableMeta } from './ledger.js'
import { mergeStatements } from './merge.js'
import { ownValue, readExpression } from './row-access.js'

/** The row property (a symbol, so never a column) holding the index of the upstream file a row came from. */
export const FILE_INDEX = Symbol.for('anchovies.sql.fileIndex')

/** Loads of at least this many rows refresh planner statistics (PostgreSQL). */
const ANALYZE_ROWS = 10_000

/** Everything one table load needs. */
export interface LoadInput {
  readonly dialect: Dialect
  readonly target: Target
  readonly table: Table
  /** The upstream files the rows come from, in order (`row[FILE_INDEX]` indexes this list). */
  readonly files: readonly UpstreamFile[]
  /** The rows, in chunks (arrays) as the core passes them. */
  readonly rows: AsyncIterable<Row[]>
  readonly settings: SqlSettings
  readonly logger: Logger
  readonly signal: AbortSignal
  readonly uploader: string
  readonly sessionId: string
  /** Test hook: called inside the merge transaction after the rows are inserted. */
  readonly afterInsert?: (() => Promise<void> | void) | undefined
}

/** What a load did (goes to the table task's `data`). */
export interface LoadResult {
  target: string
  inserted: number
  superseded: number
  expired: number
  columns_added: string[]
  columns_widened: string[]
  files_loaded: number
  files_loaded_elsewhere: number
  /** Rows read from the upstream files. */
  rows: number
  duration_ms: number
  /** Time spent reading and staging the rows, and in the merge transaction. */
  stage_ms: number
  merge_ms: number
}

/** Loads one table: stage in chunks, evolve the target, merge and record the ledger in one transaction. */
export async function loadTable(session: Session, raw: unknown, input: LoadInput): Promise<LoadResult> {
  const started = Date.now()
  const d = input.dialect
  const { target, table, settings: s } = input
  const qualified = d.qualified(target)
  const result: LoadResult = {
    target: target.schema ? `${target.schema}.${target.table}` : target.table,
    inserted: 0,
    superseded: 0,
    expired: 0,
    columns_added: [],
    columns_widened: [],
    files_loaded: 0,
    files_loaded_elsewhere: 0,
    rows: 0,
    duration_ms: 0,
    stage_ms: 0,
    merge_ms: 0,
  }
  const keyColumns = [...new Set([...table.uniqueBy, ...table.setBy])]
  const keys = new Set(keyColumns)
  const norm = (n: string): string => (d.caseInsensitiveNames ? n.toLowerCase() : n)

  // Concurrent uploads may create the same schema or bookkeeping tables: a second attempt sees them.
  await retryOnce(async () => {
    if (target.schema) await session.query(d.createSchema(target.schema))
    await ensureBookkeeping(d, session, target)
  })

  /** What the target holds already: recorded logical types, else types read from the catalog. */
  const readTarget = async (): Promise<{ exists: boolean; meta: TableMeta | undefined; targetCols: Map<string, ColumnState> }> => {
    const exists = await d.tableExists(session, target)
    const meta = exists ? await readMeta(d, session, target) : undefined
    const targetCols = new Map<string, ColumnState>()
    if (exists) {
      const physical = await d.physicalColumns(session, target)
      const recorded = new Map((meta?.columns ?? []).map((c) => [norm(c.name), c]))
      for (const [name, type] of physical) {
        if (RESERVED.includes(norm(name))) continue
        const rec = recorded.get(norm(name))
        targetCols.set(norm(name), rec ? { ...rec } : { name, type: d.logicalType(type), length: 0 })
      }
    }
    return { exists, meta, targetCols }
  }
  // PostgreSQL without set_by: COPY straight into the target inside the merge transaction (no staging table, no
  // INSERT … SELECT). The table's metadata row is locked first, so `_seq` is known before the first row and
  // concurrent loads of the table wait for this one; DDL is transactional, so a failure leaves nothing behind.
  const direct = d.directStager !== undefined && table.setBy.length === 0
  const now = new Date()
  let base = 1
  let inTransaction = false
  if (direct) {
    await retryOnce(async () => ensureMetaRow(d, session, target, async () => ((await d.tableExists(session, target)) ? nextSeqOf(d, session, qualified) : 1), now))
    await d.begin(session)
    inTransaction = true
  }
  let current: Awaited<ReturnType<typeof readTarget>>
  try {
    if (direct) {
      const lock = await session.query(`SELECT next_seq FROM ${d.sibling(target, '_anchovies_tables')} WHERE table_name = \u0000${d.forUpdate}`, [target.table])
      base = Number(lock.rows[0]?.next_seq ?? 1)
      const already = await loadedFileIds(d, session, target, input.files)
      if (already.size > 0) {
        inTransaction = false
        await session.query('ROLLBACK')
        if (already.size === input.files.length) {
          result.files_loaded_elsewhere = already.size
          return finish(result, started)
        }
        throw sqlError('ANCH_ERR_SQL_LEDGER', `table ${table.name}: ${already.size} of ${input.files.length} upstream files were loaded by another run meanwhile; rerun to load the rest`)
      }
    }
    current = await readTarget()
  } catch (err) {
    if (inTransaction) await session.query('ROLLBACK').catch(() => undefined)
    throw err
  }
  const { targetCols } = current

  // Staging columns start as the target's, widened by declared types.
  const cols = new Map<string, ColumnState>()
  for (const [k, c] of targetCols) cols.set(k, { ...c })
  // Declared types by column name: a Map, so a column named like an Object.prototype member is just a name.
  const declared = new Map<string, ColumnType>(Object.entries(table.columns))
  for (const [name, t] of declared) {
    checkName(d, name, cols, norm)
    const k = norm(name)
    const c = cols.get(k)
    if (c) c.type = widenType(c.type, declaredType(t))
    else cols.set(k, { name, type: declaredType(t), length: 0 })
  }
  const stage = `_anch_stage_${randomBytes(6).toString('hex')}`
  let stageCreated = false
  /** Direct loads: what the target was before this load (its net change is recorded once, at the end). */
  const initial = { exists: current.exists, targetCols: new Map([...current.targetCols].map(([k, c]) => [k, { ...c }])) }
  /**
   * Direct loads into a table this transaction creates: no other session can see it before the commit, so it is
   * loaded with `COPY … FREEZE` (no hint bits to set and nothing to freeze later). Its indexes are kept up to date
   * during the COPY: PostgreSQL has CPU to spare while the uploader decodes rows, building them afterwards is slower.
   */
  const creating = direct && !current.exists
  /** Direct loads: brings the target to the columns of `cols` (inside the transaction). */
  const evolveDirect = async (): Promise<void> => {
    const scratch = { ...result, columns_added: [], columns_widened: [] }
    await evolveTarget(d, session, input, current.exists, current.targetCols, [...cols.values()], keys, norm, now, scratch)
    current.exists = true
    for (const [k, c] of cols) current.targetCols.set(k, { ...c })
  }
  try {
    let stager: Stager
    if (direct) {
      if (cols.size > 0) await evolveDirect()
      stager = d.directStager!(raw, qualified, base, s, creating)
    } else {
      await session.query(d.createStage(stage, [...cols.values()], s, keys))
      stageCreated = true
      stager = d.stager(raw, session, stage, s)
    }
    await stager.begin([...cols.values()])
    let fast = compileRowCheck(d, [...cols.values()], keyColumns, declared)
    const hasDeclared = declared.size > 0
    const fileRows: number[] = []
    let ord = 0
    const changed = new Map<string, ColumnState>()
    const added = new Set<string>()
    // Columns by the row key as it appears (fast path), resolved to the normalised column state.
    const byKey = new Map<string, ColumnState>()
    for (const c of cols.values()) byKey.set(c.name, c)

    /** Applies staging (or, direct, target) DDL for the columns this row added or widened, between two COPYs. */
    const relayout = async (): Promise<void> => {
      await stager.finish()
      if (direct) {
        await evolveDirect()
      } else {
        for (const [k, before] of changed) {
          if (added.has(k)) continue
          const sql = d.stageWidenColumn(stage, cols.get(k)!, before, s, keys)
          if (sql) await session.query(sql)
        }
        for (const k of added) {
          const sql = d.stageAddColumn(stage, cols.get(k)!, s, keys)
          if (sql) await session.query(sql)
        }
      }
      changed.clear()
      added.clear()
      await stager.begin([...cols.values()])
      fast = compileRowCheck(d, [...cols.values()], keyColumns, declared)
    }
    const addRow = (row: Row, fi: number): Promise<void> | undefined => {
      if (!stager.add(row, ord++, fi)) return undefined
      input.signal.throwIfAborted()
      return stager.flush()
    }
    /** Checks, types and stages one row; returns a promise only when the row needs to wait (DDL, a full buffer). */
    const handle = (row: Row): Promise<void> | undefined => {
      const f = (row as Record<symbol, unknown>)[FILE_INDEX]
      const fi = typeof f === 'number' ? f : 0
      if (fast?.(row)) {
        fileRows[fi] = (fileRows[fi] ?? 0) + 1
        return addRow(row, fi)
      }
      for (const k of keyColumns) {
        const v = ownValue(row, k)
        if (v === null || v === undefined || v === '') {
          const file = input.files[fi]
          throw sqlError(
            'ANCH_ERR_SQL_NULL_KEY',
            `table ${table.name}: key column ${JSON.stringify(k)} is empty in row ${(fileRows[fi] ?? 0) + 1} of ${file ? file.path : 'the upstream data'}; unique_by/set_by columns must have a value`,
          )
        }
      }
      for (const key in row) {
        let v = row[key]
        if (hasDeclared) {
          const t = declared.get(key)
          if (t !== undefined) {
            const c = coerceDeclared(t, v)
            if (c !== v) row[key] = v = c
          }
        }
        if (v === null || v === undefined) continue
        let c = byKey.get(key)
        if (c && !d.sizesStrings && fits(c.type, v)) continue
        if (!c) {
          checkName(d, key, cols, norm)
          const k = norm(key)
          c = cols.get(k)
          if (!c) {
            c = { name: key, type: typeFor(undefined, v)!, length: 0 }
            cols.set(k, c)
            added.add(k)
            input.logger.info({ table: table.name, column: key, type: c.type }, 'new column')
          }
          byKey.set(key, c)
        }
        if (!fits(c.type, v) || (c.type === 'decimal' && !d.decimalFits(v))) {
          const k = norm(c.name)
          if (!changed.has(k) && !added.has(k)) changed.set(k, { ...c })
          let to = typeFor(c.type, v)!
          if (to === 'decimal' && !d.decimalFits(v)) to = 'str'
          input.logger.info({ table: table.name, column: c.name, from: c.type, to }, 'column widened')
          c.type = to
        }
        if (d.sizesStrings && c.type === 'str') {
          const len = textLength('str', v)
          if (len > c.length) {
            const k = norm(c.name)
            if (d.stageWidenColumn(stage, { ...c, length: len }, c, s, keys) !== null && !changed.has(k) && !added.has(k)) changed.set(k, { ...c })
            c.length = len
          }
        }
      }
      fileRows[fi] = (fileRows[fi] ?? 0) + 1
      if (changed.size || added.size || (direct && !current.exists)) return relayout().then(() => addRow(row, fi))
      return addRow(row, fi)
    }

    for await (const chunk of input.rows) {
      for (const row of chunk) {
        const wait = handle(row)
        if (wait) await wait
      }
    }
    await stager.finish()
    result.stage_ms = Date.now() - started
    result.rows = ord
    const retention = table.deletedTtl ?? (s.retentionSeconds >= 0 ? s.retentionSeconds : null)
    const del = d.timestampLiteral(now)
    const timed = async (what: string, sql: string): Promise<{ rows: Record<string, unknown>[]; affected: number }> => {
      const t0 = Date.now()
      const r = await session.query(sql)
      input.logger.debug({ table: table.name, step: what, ms: Date.now() - t0, rows: r.affected }, 'merge step')
      return r
    }
    const sortBy = (): { column: string; descending: boolean }[] =>
      table.sortBy.filter((k) => cols.has(norm(k.column))).map((k) => ({ column: cols.get(norm(k.column))!.name, descending: k.descending }))
    /** The ledger rows of this load (each file's first `_seq`). */
    const ledgerRows = (): { file: UpstreamFile; rows: number; firstSeq: number }[] => {
      let firstOrd = 0
      return input.files.map((file, i) => {
        const entry = { file, rows: fileRows[i] ?? 0, firstSeq: base + firstOrd }
        firstOrd += fileRows[i] ?? 0
        return entry
      })
    }

    if (direct) {
      const mergeStarted = Date.now()
      try {
        if (ord === 0 && (input.files.length === 0 || cols.size === 0)) {
          inTransaction = false
          await session.query('ROLLBACK')
          return finish(result, started)
        }
        // Tables and columns declared but without rows yet still get created.
        await evolveDirect()
        const changes = describeChanges(d, input, initial.exists, initial.targetCols, [...cols.values()], keys, norm, now, result)
        if (!initial.exists || changes.length || !current.meta || current.meta.columns.length === 0) {
          await writeMeta(d, session, target, [...cols.values()], [...(current.meta?.changes ?? []), ...changes], base, now)
        }
        result.inserted = ord
        await input.afterInsert?.()
        // The planner must know about the rows just copied (ANALYZE sees this transaction's rows).
        if (ord >= ANALYZE_ROWS) await timed('analyze', d.analyze(qualified)!)
        /**
         * Whether a key arrives twice in this load. A unique index over this load's rows, built and dropped in a
         * savepoint, answers it with one sort (about three times faster than GROUP BY … HAVING on a million rows).
         */
        const hasDuplicateKeys = async (): Promise<boolean> => {
          const index = `anch_dupcheck_${randomBytes(6).toString('hex')}`
          await session.query('SAVEPOINT anch_dupcheck')
          try {
            const on = table.uniqueBy.map((c) => d.quote(cols.get(norm(c))?.name ?? c, 'column name')).join(', ')
            await timed('duplicate keys', `CREATE UNIQUE INDEX ${d.quote(index)} ON ${qualified} (${on}) WHERE ${d.quote(SEQ)} >= ${base}`)
          } catch (err) {
            if ((err as { code?: unknown }).code !== '23505') throw err
            await session.query('ROLLBACK TO SAVEPOINT anch_dupcheck')
            return true
          }
          await session.query('ROLLBACK TO SAVEPOINT anch_dupcheck')
          return false
        }
        const stmts = mergeStatements(d, {
          target: qualified,
          stage: '',
          columns: [...cols.values()].map((c) => c.name),
          uniqueBy: table.uniqueBy,
          setBy: [],
          sortBy: sortBy(),
          base,
          deletedAt: del,
          expireBefore: retention !== null ? d.timestampLiteral(new Date(now.getTime() - retention * 1000)) : null,
          direct: true,
        })
        if (stmts.supersedeKeys && ord > 0) {
          if ((await timed('any current', stmts.anyCurrent!)).rows.length > 0) {
            // Rows of this load supersede older rows (and each other); then late arrivals lose to current rows.
            result.superseded += (await timed('supersede by new rows', stmts.supersedeByNew!)).affected
            // Without sort_by the later arrival always wins: no row of this load can lose to an older one.
            const late = stmts.supersedeNew && sortBy().length ? (await timed('supersede new rows', stmts.supersedeNew)).affected : 0
            result.superseded += late
            if (late > 0) result.superseded += (await timed('supersede keys', stmts.supersedeKeys)).affected
          } else if (await hasDuplicateKeys()) {
            result.superseded += (await timed('supersede by new rows', stmts.supersedeByNew!)).affected
          }
        }
        if (stmts.expire) result.expired = (await timed('expire', stmts.expire)).affected
        await recordFiles(d, session, target, ledgerRows(), now, input.uploader, input.sessionId)
        await session.query(`UPDATE ${d.sibling(target, '_anchovies_tables')} SET next_seq = \u0000, updated_at = ${del} WHERE table_name = \u0000`, [base + ord, target.table])
        inTransaction = false
        await timed('commit', 'COMMIT')
        result.merge_ms = Date.now() - mergeStarted
      } catch (err) {
        inTransaction = false
        await session.query('ROLLBACK').catch(() => undefined)
        throw err
      }
      result.files_loaded = input.files.length
      return finish(result, started)
    }

    if (ord === 0 && (input.files.length === 0 || cols.size === 0)) return finish(result, started)

    // Evolve the target to the staged columns (DDL outside the merge transaction: MySQL commits on DDL).
    for (let attempt = 0; ; attempt++) {
      try {
        const { exists, meta } = current
        const changes = await evolveTarget(d, session, input, exists, current.targetCols, [...cols.values()], keys, norm, now, result)
        if (!exists || changes.length || !meta || meta.columns.length === 0) {
          const next = exists ? await nextSeqOf(d, session, qualified) : 1
          await writeMeta(d, session, target, [...cols.values()], [...(meta?.changes ?? []), ...changes], next, now)
        }
        break
      } catch (err) {
        // Another upload changed the same table at the same time: look at it again and redo what is left.
        if (attempt >= 2 || input.signal.aborted) throw err
        input.logger.warn({ table: table.name, err }, 'the target changed while evolving it; retrying')
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
        current = await readTarget()
        for (const [k, t] of current.targetCols) {
          const c = cols.get(k)
          if (c) c.type = widenType(c.type, t.type)
        }
        result.columns_added = []
        result.columns_widened = []
      }
    }

    // Merge + ledger: one transaction.
    const columns = [...cols.values()].map((c) => c.name)
    const mergeStarted = Date.now()
    // Temporary tables are never analysed automatically; without statistics PostgreSQL plans the merge's
    // semi-joins as nested loops over the whole load (minutes instead of seconds at a million rows).
    const analyzeStage = d.analyze(d.quote(stage))
    if (analyzeStage && ord >= ANALYZE_ROWS) await timed('analyze stage', analyzeStage)
    await d.begin(session)
    try {
      const lock = await session.query(
        `SELECT next_seq FROM ${d.sibling(target, '_anchovies_tables')} WHERE table_name = \u0000${d.forUpdate}`,
        [target.table],
      )
      base = Number(lock.rows[0]?.next_seq ?? 1)
      const already = await loadedFileIds(d, session, target, input.files)
      if (already.size > 0) {
        await session.query('ROLLBACK')
        if (already.size === input.files.length) {
          result.files_loaded_elsewhere = already.size
          return finish(result, started)
        }
        throw sqlError('ANCH_ERR_SQL_LEDGER', `table ${table.name}: ${already.size} of ${input.files.length} upstream files were loaded by another run meanwhile; rerun to load the rest`)
      }
      const stmts = mergeStatements(d, {
        target: qualified,
        stage: d.quote(stage),
        columns,
        uniqueBy: table.uniqueBy,
        setBy: table.setBy,
        sortBy: sortBy(),
        base,
        deletedAt: del,
        expireBefore: retention !== null ? d.timestampLiteral(new Date(now.getTime() - retention * 1000)) : null,
      })
      if (stmts.supersedeSets) result.superseded += (await timed('supersede sets', stmts.supersedeSets)).affected
      if (stmts.countSetLosers) result.superseded += Number((await timed('count set losers', stmts.countSetLosers)).rows[0]?.n ?? 0)
      // A first load of distinct keys supersedes nothing: skip the window over the whole load.
      const needKeys = stmts.supersedeKeys !== undefined && ((await timed('any current', stmts.anyCurrent!)).rows.length > 0 || (await timed('duplicate keys', stmts.duplicateKeys!)).rows.length > 0)
      await timed('insert', stmts.insert)
      result.inserted = ord
      await input.afterInsert?.()
      if (stmts.supersedeKeys && needKeys) result.superseded += (await timed('supersede keys', stmts.supersedeKeys)).affected
      if (stmts.expire) result.expired = (await timed('expire', stmts.expire)).affected
      await recordFiles(d, session, target, ledgerRows(), now, input.uploader, input.sessionId)
      await session.query(`UPDATE ${d.sibling(target, '_anchovies_tables')} SET next_seq = \u0000, updated_at = ${del} WHERE table_name = \u0000`, [base + ord, target.table])
      await timed('commit', 'COMMIT')
      result.merge_ms = Date.now() - mergeStarted
    } catch (err) {
      await session.query('ROLLBACK').catch(() => undefined)
      throw err
    }
    result.files_loaded = input.files.length
    // Keep the planner's estimates right for the next merge (autovacuum may take a while to notice a bulk load).
    const analyzeTarget = d.analyze(qualified)
    if (analyzeTarget && ord >= ANALYZE_ROWS) await session.query(analyzeTarget).catch((err: unknown) => input.logger.warn({ err }, 'ANALYZE failed'))
    return finish(result, started)
  } finally {
    if (inTransaction) await session.query('ROLLBACK').catch(() => undefined)
    if (stageCreated) await session.query(`DROP ${d.name === 'mysql' ? 'TEMPORARY ' : ''}TABLE IF EXISTS ${d.quote(stage)}`).catch(() => undefined)
  }
}

async function retryOnce(fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch {
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
    await fn()
  }
}

function finish(result: LoadResult, started: number): LoadResult {
  result.duration_ms = Date.now() - started
  return result
}

async function nextSeqOf(d: Dialect, session: Session, qualified: string): Promise<number> {
  const r = await session.query(`SELECT COALESCE(MAX(${d.quote(SEQ)}), 0) + 1 AS n FROM ${qualified}`)
  return Number(r.rows[0]?.n ?? 1)
}

/** Inline "fits" tests per type (of `v`, never null); other types call `fits`. */
const FITS: Readonly<Partial<Record<SqlType, string>>> = {
  bool: "typeof v === 'boolean'",
  int: "(typeof v === 'number' && Number.isSafeInteger(v)) || F('int', v)",
  float: "typeof v === 'number' || F('float', v)",
  str: 'true',
  json: 'true',
}

/**
 * Compiles the common case of a row's checks for one column layout: every key column has a value, declared
 * columns are coerced, every value fits its column's type and the row has no other properties. True: stage the
 * row as it is; false: the row needs the general path (an error, a new column, a wider type). Undefined where
 * the dialect sizes strings (every string's length matters there).
 */
function compileRowCheck(d: Dialect, columns: readonly ColumnState[], keyColumns: readonly string[], declared: ReadonlyMap<string, ColumnType>): ((row: Row) => boolean) | undefined {
  if (d.sizesStrings) return undefined
  const keys = new Set(keyColumns)
  // Names and types reach the source only as JSON string literals (see readExpression), never as code.
  const body: string[] = ['let n = 0']
  columns.forEach((c, j) => {
    const name = JSON.stringify(c.name)
    const v = `v${j}`
    body.push(`let ${v} = ${readExpression('row', c.name)}`)
    const t = declared.get(c.name)
    if (t && t !== 'str') body.push(`if (typeof ${v} === 'string') { ${v} = C(${JSON.stringify(t)}, ${v}); row[${name}] = ${v} }`)
    if (keys.has(c.name)) body.push(`if (${v} === null || ${v} === undefined || ${v} === '') return false`)
    const inline = Object.hasOwn(FITS, c.type) ? FITS[c.type] : undefined
    let test = (inline ?? `F(${JSON.stringify(c.type)}, v)`).replace(/\bv\b/g, v)
    if (c.type === 'decimal') test = `(${test}) && D(${v})`
    body.push(`if (${v} !== null && ${v} !== undefined) { n++; if (!(${test})) return false }`)
  })
  // Key columns without a column yet (the general path reports them, or adds the column).
  for (const k of keyColumns) {
    if (!columns.some((c) => c.name === k)) body.push(`{ const k = ${readExpression('row', k)}; if (k === null || k === undefined || k === '') return false }`)
  }
  // Every property is a known column exactly when the count of properties equals the count of known ones present.
  body.push('let k = 0', 'for (const _ in row) k++', 'return k === n')
  const src = `return function checkRow(row) {\n${body.join('\n')}\n}`
  return new Function('F', 'C', 'D', 'H', src)(fits, coerceDeclared, (v: unknown) => d.decimalFits(v), Object.hasOwn) as (row: Row) => boolean
}
