import { randomBytes } from 'node:crypto'
import { widenType } from './column-types.js'
import { sqlError } from './dialects/dialect.js'
import { evolveTarget } from './evolve.js'
import { loadedFileIds, recordFiles, writeMeta } from './ledger.js'
import {
  ANALYZE_ROWS,
  fileFirstSeqs,
  finish,
  nextSeqOf,
  sortKeys,
  timer,
  type LoadJob,
  type LoadResult,
} from './load-input.js'
import { mergeStatements } from './merge.js'
import { loadFiles } from './fast-path/byte-files.js'
import { RowIntake } from './row-intake.js'
import { applySnapshots } from './snapshots.js'

/**
 * MySQL/MariaDB, SQLite, and PostgreSQL tables with set_by: rows go into a temporary staging table as they arrive;
 * then the target is evolved (outside the transaction: MySQL commits on DDL) and one transaction merges the stage
 * and records the ledger.
 */
export async function loadStaged(job: LoadJob): Promise<LoadResult> {
  const { session, input, d, qualified, result, keys, norm, now, started } = job
  const { target, table, settings: s } = input
  let current = await job.readTarget()
  const cols = job.initialColumns(current.targetCols)
  const stage = `_anch_stage_${randomBytes(6).toString('hex')}`
  let stageCreated = false
  try {
    await session.query(d.createStage(stage, [...cols.values()], s, keys))
    stageCreated = true
    const intake = new RowIntake(input, cols, job.declared, norm, {
      stager: d.stager(job.raw, session, stage, s),
      applyLayout: async ({ added, changed }) => {
        for (const [k, before] of changed) {
          if (added.has(k)) continue
          const sql = d.stageWidenColumn(stage, cols.get(k)!, before, s, keys)
          if (sql) await session.query(sql)
        }
        for (const k of added) {
          const sql = d.stageAddColumn(stage, cols.get(k)!, s, keys)
          if (sql) await session.query(sql)
        }
      },
      forceLayout: () => false,
      widensForLength: (c, length) => d.stageWidenColumn(stage, { ...c, length }, c, s, keys) !== null,
    })
    await intake.begin()
    if (input.byteFiles) await loadFiles(intake, input.files, input.byteFiles.open, input.byteFiles.pool, input.signal)
    else await intake.consume(input.rows)
    result.stage_ms = Date.now() - started
    const ord = intake.ord
    result.rows = ord
    if (input.byteFiles) result.fast_rows = intake.fastRows
    if (
      ord === 0 &&
      (input.files.length === 0 || cols.size === 0) &&
      !(current.exists && input.snapshots?.some((m) => m.complete))
    )
      return finish(result, started)

    // Evolve the target to the staged columns (DDL outside the merge transaction: MySQL commits on DDL).
    for (let attempt = 0; ; attempt++) {
      try {
        const { exists, meta } = current
        const changes = await evolveTarget(
          d,
          session,
          input,
          exists,
          current.targetCols,
          [...cols.values()],
          keys,
          norm,
          now,
          result,
        )
        if (!exists || changes.length || !meta || meta.columns.length === 0) {
          const next = exists ? await nextSeqOf(d, session, qualified) : 1
          await writeMeta(d, session, target, [...cols.values()], [...(meta?.changes ?? []), ...changes], next, now)
        }
        break
      } catch (err) {
        // Another upload changed the same table at the same time: look at it again and redo what is left.
        if (attempt >= 2 || input.signal.aborted) throw err
        input.logger.warn({ err }, 'the target changed while evolving it; retrying')
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
        current = await job.readTarget()
        for (const [k, t] of current.targetCols) {
          const c = cols.get(k)
          if (c) c.type = widenType(c.type, t.type)
        }
        result.columns_added = []
        result.columns_widened = []
      }
    }

    const timed = timer(job)
    const del = d.timestampLiteral(now)
    const retention = table.deletedTtl ?? (s.retentionSeconds >= 0 ? s.retentionSeconds : null)
    const mergeStarted = Date.now()
    // Temporary tables are never analysed automatically; without statistics PostgreSQL plans the merge's
    // semi-joins as nested loops over the whole load (minutes instead of seconds at a million rows).
    const analyzeStage = d.analyze(d.quote(stage))
    if (analyzeStage && ord >= ANALYZE_ROWS) await timed('analyze stage', analyzeStage)
    for (let attempt = 0; ; attempt++) {
      await d.begin(session)
      try {
        const lock = await session.query(
          `SELECT next_seq FROM ${d.sibling(target, '_anchovies_tables')} WHERE table_name = \u0000${d.forUpdate}`,
          [target.table],
        )
        const base = Number(lock.rows[0]?.next_seq ?? 1)
        const already = await loadedFileIds(d, session, target, input.files)
        if (already.size > 0) {
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
        const stmts = mergeStatements(d, {
          target: qualified,
          stage: d.quote(stage),
          columns: [...cols.values()].map((c) => c.name),
          uniqueBy: table.uniqueBy,
          setBy: table.setBy,
          sortBy: sortKeys(job, cols),
          base,
          deletedAt: del,
          expireBefore: retention !== null ? d.timestampLiteral(new Date(now.getTime() - retention * 1000)) : null,
        })
        if (stmts.supersedeSets) result.superseded += (await timed('supersede sets', stmts.supersedeSets)).affected
        if (stmts.countSetLosers)
          result.superseded += Number((await timed('count set losers', stmts.countSetLosers)).rows[0]?.n ?? 0)
        // A first load of distinct keys supersedes nothing: skip the window over the whole load.
        const needKeys =
          stmts.supersedeKeys !== undefined &&
          ((await timed('any current', stmts.anyCurrent!)).rows.length > 0 ||
            (await timed('duplicate keys', stmts.duplicateKeys!)).rows.length > 0)
        await timed('insert', stmts.insert)
        result.inserted = ord
        await input.afterInsert?.()
        if (stmts.supersedeKeys && needKeys)
          result.superseded += (await timed('supersede keys', stmts.supersedeKeys)).affected
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
        await timed('commit', 'COMMIT')
        result.merge_ms = Date.now() - mergeStarted
        break
      } catch (err) {
        await session.query('ROLLBACK').catch(() => undefined)
        // A deadlock with a concurrent load of the same table rolled everything back: the stage is intact, redo it.
        if (attempt >= 2 || !d.isDeadlock(err) || input.signal.aborted) throw err
        input.logger.warn({ err }, 'the merge deadlocked with a concurrent load; retrying it')
        result.superseded = 0
        result.expired = 0
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 250))
      }
    }
    result.files_loaded = input.files.length
    // Keep the planner's estimates right for the next merge (autovacuum may take a while to notice a bulk load).
    const analyzeTarget = d.analyze(qualified)
    if (analyzeTarget && ord >= ANALYZE_ROWS)
      await session.query(analyzeTarget).catch((err: unknown) => input.logger.warn({ err }, 'ANALYZE failed'))
    return finish(result, started)
  } finally {
    if (stageCreated) await session.query(d.dropStage(stage)).catch(() => undefined)
  }
}
