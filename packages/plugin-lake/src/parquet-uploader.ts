import {
  AnchoviesError,
  Uploader,
  chunksOf,
  connection,
  qualifiedName,
  session,
  sink,
  source,
  type Row,
  type SettingSpec,
  type StreamContext,
  type Table,
  type UpstreamFile,
} from '@anchovies/core'
import { loadZstd } from './compression.js'
import { LAKE_SETTINGS, loadOptions } from './config.js'
import { LakeConnection } from './lake-connection.js'
import { datasetBase } from './layout.js'
import { commitLoad, recoverDataset, type DatasetState, type LoadRecord } from './load-log.js'
import { LoadWriter } from './load-writer.js'

/** What the source of a table task hands its sink. */
interface Planned {
  readonly files: readonly UpstreamFile[]
  readonly state: DatasetState
}

/**
 * Writes what upstream anchovies committed as Parquet datasets, one per upstream table, at
 * `<lake>/<upstream id>/<table>/`, keeping history (`_seq`, `_loaded_at`) and never rewriting a file.
 *
 * Exactly once: a load's files are staged under `_anchovies/staging/`, then one load record
 * (`_anchovies/loads/<n>.json`, created exclusively) commits them together with the upstream files they came from,
 * and only then are they moved to their final names. A rerun finishes publishing a committed load and skips the
 * upstream files its record names, so a crash between the lake commit and the datastore commit of the position
 * never loads a row twice; staged files of a load that never committed are deleted.
 */
export class ParquetUploader extends Uploader {
  static override settings: readonly SettingSpec[] = LAKE_SETTINGS

  /** The lake (`ACHVY_CNXN__LAKE__URL`): a folder or `az://container/prefix`. */
  @connection('lake', LakeConnection) lake!: LakeConnection

  private readonly planned = new Map<string, Planned>()

  /** Recovers the dataset, then reads the pending upstream files its load records do not name yet. */
  @source('*')
  override async *defaultSource(ctx: StreamContext): AsyncGenerator<Row[]> {
    const all = await this.pendingFiles(ctx)
    const state = await recoverDataset(this.lake.datastore, datasetBase(ctx.table), tableInfo(ctx.table))
    if (state.uploader !== undefined && state.uploader !== this.runtime.anchovyId) {
      throw new AnchoviesError(
        'ANCH_ERR_LAKE_CONFLICT',
        `the dataset ${state.base} of the lake belongs to uploader ${JSON.stringify(state.uploader)}, not ${JSON.stringify(this.runtime.anchovyId)}: give each uploader its own lake location`,
      )
    }
    const files = all.filter((f) => !state.loaded.has(f.id))
    if (files.length < all.length)
      ctx.logger.info(
        { table: ctx.table.name, skipped: all.length - files.length },
        'upstream files already in the lake (load records); skipping them',
      )
    ctx.task.data.files_already_loaded = all.length - files.length
    ctx.task.data.files = files.length
    this.planned.set(qualifiedName(ctx.table), { files, state })
    for (const f of files) yield* this.readUpstream(f, ctx.signal)
    const last = all.at(-1)
    if (last) this.advance(ctx, last)
  }

  /** Writes one table's rows as one load: staged files, then the commit of its load record, then publication. */
  @sink('*')
  async upload(rows: AsyncIterable<Row>, ctx: StreamContext): Promise<void> {
    const key = qualifiedName(ctx.table)
    const options = loadOptions(ctx.table, this.runtime.settings)
    if (options.compression === 'zstd') await loadZstd()
    let writer: LoadWriter | undefined
    const loadedAt = new Date()
    try {
      for await (const chunk of chunksOf(rows)) {
        if (!writer) {
          // The source sets its plan before its first row.
          const plan = this.planned.get(key)!
          writer = new LoadWriter(
            this.lake.datastore,
            plan.state.base,
            plan.state.nextLoad,
            plan.state.nextSeq,
            plan.state.columns,
            loadedAt,
            options,
            this.runtime.uniqueFileTag(),
          )
        }
        await writer.add(chunk)
      }
      const plan = this.planned.get(key)
      if (!writer || !plan || writer.rows === 0) {
        ctx.task.data.rows_written = 0
        return
      }
      const files = await writer.finish()
      const rec: LoadRecord = {
        format: 1,
        seq: plan.state.nextLoad,
        uploader: this.runtime.anchovyId,
        session_id: session().sessionId,
        loaded_at: loadedAt.toISOString(),
        first_seq: plan.state.nextSeq,
        rows: writer.rows,
        upstream_files: plan.files.map((f) => f.id),
        files,
        columns: [...writer.schema],
        changes: writer.changes,
      }
      await commitLoad(this.lake.datastore, plan.state, rec, tableInfo(ctx.table), () => this.afterCommit(ctx.table))
      Object.assign(ctx.task.data, {
        load: rec.seq,
        rows_written: rec.rows,
        parquet_files: files.length,
        parquet_bytes: files.reduce((n, f) => n + f.bytes, 0),
        schema_changes: rec.changes.length,
      })
    } catch (err) {
      await writer?.abort().catch(() => undefined)
      throw err
    } finally {
      this.planned.delete(key)
    }
  }

  /** Called after a load record committed, before its files are published (a seam for fault-injection tests). */
  protected afterCommit(_table: Table): Promise<void> | void {}
}

/** The table metadata recorded in the manifest (keys and sort order, for readers building "current rows"). */
function tableInfo(table: Table): Record<string, unknown> {
  return {
    name: table.name,
    upstream: table.namespace,
    unique_by: [...table.uniqueBy],
    set_by: [...table.setBy],
    sort_by: table.sortBy.map((k) => (k.descending ? `-${k.column}` : k.column)),
    columns: { ...table.columns },
    partition_by: Object.hasOwn(table.properties, 'partition_by') ? table.properties.partition_by : null,
  }
}
