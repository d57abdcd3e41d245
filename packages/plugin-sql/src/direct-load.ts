import { randomBytes } from 'node:crypto'
import { SEQ, sqlError } from './dialects/dialect.js'
import { describeChanges, evolveTarget } from './evolve.js'
import { ensureMetaRow, loadedFileIds, recordFiles, writeMeta } from './ledger.js'
import {
  ANALYZE_ROWS,
  fileFirstSeqs,
  finish,
  nextSeqOf,
  retryOnce,
  sortKeys,
  timer,
  type LoadJob,
  type LoadResult,
  type TargetState,
} from './load-input.js'
import { mergeStatements } from './merge.js'
import { loadFiles } from './fast-path/byte-files.js'
import { RowIntake } from './row-intake.js'
import { applySnapshots } from './snapshots.js'

/**
 * PostgreSQL without set_by: COPY straight into the target inside the merge transaction (no staging table, no
 * INSERT … SELECT). The table's metadata row is locked first, so `_seq` is known before the first row and
 * concurrent loads of the table wait for this one; DDL is transactional, so a failure leaves nothing behind.
 */
export async function loadDirect(job: LoadJob): Promise<LoadResult> {
  const { session, input, d, qualified, result, keys, norm, now, started } = job
  const { target, table, settings: s } = input
  let base = 1
  await retryOnce(async () =>
    ensureMetaRow(
      d,
      session,
      target,
      async () => ((await d.tableExists(session, target)) ? nextSeqOf(d, session, qualified) : 1),
      now,
    ),
  )
  await d.begin(session)
  let inTransaction = true
  try {
    const lock = await session.query(
      `SELECT next_seq FROM ${d.sibling(target, '_anchovies_tables')} WHERE table_name = \u0000${d.forUpdate}`,
      [target.table],
    )
    base = Number(lock.rows[0]?.next_seq ?? 1)
    const already = await loadedFileIds(d, session, target, input.files)
    if (already.size > 0) {
      inTransaction = false
      await session.query('ROLLBACK')
      if (already.size === input.files.length) {
        result.files_loaded_elsewhere = already.size
        return finish(result, started)
      }
      throw sqlError(
        'ANCH_ERR_SQL_LEDGER',
        `table ${table.name}: ${already.size} of ${input.files.length} upstream files were loaded by another run meanwhile; rerun to load the rest`,
      )
    }
    const current: TargetState = await job.readTarget()
    const cols = job.initialColumns(current.targetCols)
    /** What the target was before this load (its net change is recorded once, at the end). */
    const initial = {
      exists: current.exists,
      targetCols: new Map([...current.targetCols].map(([k, c]) => [k, { ...c }])),
    }
    /**
     * A table this transaction creates is invisible to other sessions before the commit, so it is loaded with
     * `COPY … FREEZE` (no hint bits to set and nothing to freeze later). Its indexes are kept up to date during the
     * COPY: PostgreSQL has CPU to spare while the uploader decodes rows, building them afterwards is slower.
     */
    const creating = !current.exists
    /** Brings the target to the columns of `cols` (inside the transaction). */
    const evolve = async (): Promise<void> => {
      const scratch = { ...result, columns_added: [], columns_widened: [] }
      await evolveTarget(
        d,
        session,
        input,
        current.exists,
        current.targetCols,
        [...cols.values()],
        keys,
        norm,
        now,
        scratch,
      )
      current.exists = true
      for (const [k, c] of cols) current.targetCols.set(k, { ...c })
    }
    if (cols.size > 0) await evolve()
    const stager = d.directStager!(job.raw, qualified, base, s, creating)
    const intake = new RowIntake(input, cols, job.declared, norm, {
      stager,
      applyLayout: evolve,
      forceLayout: () => !current.exists,
      widensForLength: () => true,
    })
    await intake.begin()
    if (input.byteFiles) await loadFiles(intake, input.files, input.byteFiles.open, input.byteFiles.pool, input.signal)
    else await intake.consume(input.rows)
    result.stage_ms = Date.now() - started
    const ord = intake.ord
    result.rows = ord
    if (input.byteFiles) result.fast_rows = intake.fastRows

    const mergeStarted = Date.now()
    if (
      ord === 0 &&
      (input.files.length === 0 || cols.size === 0) &&
      !(initial.exists && input.snapshots?.some((m) => m.complete))
    ) {
      inTransaction = false
      await session.query('ROLLBACK')
      return finish(result, started)
    }
    // Tables and columns declared but without rows yet still get created.
    await evolve()
    const changes = describeChanges(
      d,
      input,
      initial.exists,
      initial.targetCols,
      [...cols.values()],
      keys,
      norm,
      now,
      result,
    )
    if (!initial.exists || changes.length || !current.meta || current.meta.columns.length === 0) {
      await writeMeta(d, session, target, [...cols.values()], [...(current.meta?.changes ?? []), ...changes], base, now)
    }
    result.inserted = ord
    await input.afterInsert?.()
    const timed = timer(job)
    // The planner must know about the rows just copied (ANALYZE sees this transaction's rows).
    if (ord >= ANALYZE_ROWS) await timed('analyze', d.analyze(qualified)!)
    const del = d.timestampLiteral(now)
    const retention = table.deletedTtl ?? (s.retentionSeconds >= 0 ? s.retentionSeconds : null)
    const sortBy = sortKeys(job, cols)
    /**
     * Whether a key arrives twice in this load. A unique index over this load's rows, built and dropped in a
     * savepoint, answers it with one sort (about three times faster than GROUP BY … HAVING on a million rows).
     */
    const hasDuplicateKeys = async (): Promise<boolean> => {
      const index = `anch_dupcheck_${randomBytes(6).toString('hex')}`
      await session.query('SAVEPOINT anch_dupcheck')
      try {
        const on = table.uniqueBy.map((c) => d.quote(cols.get(norm(c))?.name ?? c, 'column name')).join(', ')
        await timed(
          'duplicate keys',
          `CREATE UNIQUE INDEX ${d.quote(index)} ON ${qualified} (${on}) WHERE ${d.quote(SEQ)} >= ${base}`,
        )
      } catch (err) {
        if (!d.isUniqueViolation(err)) throw err
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
      sortBy,
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
        const late =
          stmts.supersedeNew && sortBy.length ? (await timed('supersede new rows', stmts.supersedeNew)).affected : 0
        result.superseded += late
        if (late > 0) result.superseded += (await timed('supersede keys', stmts.supersedeKeys)).affected
      } else if (await hasDuplicateKeys()) {
        result.superseded += (await timed('supersede by new rows', stmts.supersedeByNew!)).affected
      }
    }
    const firstSeqs = fileFirstSeqs(input.files, intake.fileRows, base)
    const removed = await applySnapshots(d, session, input, firstSeqs, base + ord, del, now)
    if (input.snapshots?.length) result.snapshot_removed = removed
    result.superseded += removed
    if (stmts.expire) result.expired = (await timed('expire', stmts.expire)).affected
    await recordFiles(
      d,
      session,
      target,
      input.files.map((file, i) => ({ file, rows: intake.fileRows[i] ?? 0, firstSeq: firstSeqs[i]! })),
      now,
      input.uploader,
      input.sessionId,
    )
    await session.query(
      `UPDATE ${d.sibling(target, '_anchovies_tables')} SET next_seq = \u0000, updated_at = ${del} WHERE table_name = \u0000`,
      [base + ord, target.table],
    )
    inTransaction = false
    await timed('commit', 'COMMIT')
    result.merge_ms = Date.now() - mergeStarted
    result.files_loaded = input.files.length
    return finish(result, started)
  } finally {
    if (inTransaction) await session.query('ROLLBACK').catch(() => undefined)
  }
}
