import {
  Connection,
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
import { SQL_SETTINGS, schemaMap, sqlSettings, targetOf, type Target } from './config.js'
import { ledgerExists, loadedFileIds } from './ledger.js'
import { SqlConnection } from './sql-connection.js'
import type { OpenFile } from './fast-path/byte-files.js'
import { MemberPool } from './fast-path/worker-pool.js'
import { FILE_INDEX, canLoadFast, loadTable, type SnapshotMark } from './table-loader.js'

/** `sql_fast_path: auto` takes the byte fast path from this many uncompressed bytes to load (worker start-up pays off). */
const FAST_PATH_BYTES = 4 * 1024 * 1024

/**
 * Uploads what upstream anchovies committed into a SQL database, keeping history (`_seq`/`_del`).
 * Exactly once: the merge of a batch of upstream files and their ledger rows (`_anchovies_loads`) commit in one
 * database transaction; files already in the ledger are skipped, so a crash between that commit and the
 * datastore commit of the position never loads a file twice.
 */
export class SqlUploader extends Uploader {
  static override settings: readonly SettingSpec[] = SQL_SETTINGS

  /** The target database (`ACHVY_CNXN__DB__URL`). */
  @connection('db', SqlConnection) db!: SqlConnection
  /** Optional schema names per upstream anchovy id (`ACHVY_CNXN__SCHEMAS__<ID>=<schema>`). */
  @connection('schemas', Connection, { optional: true }) schemas: Connection | undefined

  /** Tables (qualified names) whose source left the files to the sink's byte fast path. */
  private readonly byteTables = new Set<string>()
  /** Per table (qualified name): the files this task reads, in order. */
  private readonly planned = new Map<string, UpstreamFile[]>()
  /** Per table (qualified name): the full-mode snapshots (sql.Downloader) the task's commits carry. */
  private readonly snapshots = new Map<string, SnapshotMark[]>()

  /** Where an upstream table lands. */
  targetOf(table: Table): Target {
    return targetOf(table, {
      user: this.runtime.user,
      anchovyId: this.runtime.anchovyId,
      settings: sqlSettings(this.runtime.settings),
      schemaMap: schemaMap(this.schemas?.attrs),
      schemas: this.db.dialect.supportsSchemas,
    })
  }

  /** Reads the pending upstream files that are not in the ledger yet; rows carry their file's index. */
  @source('*')
  override async *defaultSource(ctx: StreamContext): AsyncGenerator<Row[]> {
    const all = await this.pendingFiles(ctx)
    let files = all
    if (all.length) {
      const target = this.targetOf(ctx.table)
      const loaded = await this.db.withSession(async (s) =>
        (await ledgerExists(this.db.dialect, s, target))
          ? loadedFileIds(this.db.dialect, s, target, all)
          : new Set<string>(),
      )
      if (loaded.size) {
        files = all.filter((f) => !loaded.has(f.id))
        ctx.logger.info(
          { table: ctx.table.name, skipped: loaded.size },
          'upstream files already loaded (ledger); skipping them',
        )
      }
      ctx.task.data.files_already_loaded = loaded.size
    }
    ctx.task.data.files = files.length
    this.planned.set(qualifiedName(ctx.table), files)
    const snap = await this.snapshotMarks(ctx, all, files)
    this.snapshots.set(qualifiedName(ctx.table), snap.marks)
    if (snap.marks.length) ctx.task.data.snapshots = snap.marks.map((m) => ({ id: m.id, complete: m.complete }))
    if (this.useFastPath(ctx.table, files)) {
      // The sink reads the files as bytes; no row object is made, so no user code could have seen one.
      this.byteTables.add(qualifiedName(ctx.table))
      ctx.task.data.fast_path = true
    } else
      for (let i = 0; i < files.length; i++) {
        for await (const chunk of this.readUpstream(files[i]!, ctx.signal)) {
          for (const row of chunk) (row as Record<symbol, unknown>)[FILE_INDEX] = i
          yield chunk
        }
      }
    const last = all.at(-1)
    if (last) this.advance(ctx, last)
    // Commits after the last file that only mark a snapshot (an empty source table) are consumed too.
    if (snap.end > (last?.seq ?? 0) && snap.end > this.position(ctx).seq) {
      this.advance(ctx, {
        anchovyId: ctx.table.namespace!,
        seq: snap.end,
        id: '',
        table: ctx.table.name,
        path: '',
        rows: 0,
        bytes: 0,
      })
    }
  }

  /**
   * Whether the byte fast path loads this table: it is on (`sql_fast_path`; `auto`: at least FAST_PATH_BYTES to
   * load), the dialect takes it for this table (canLoadFast), and no user code would see the rows: the operator's stream methods
   * are exactly this class's default source and sink (a subclass adding a source, sink or transform falls back).
   */
  private useFastPath(table: Table, files: readonly UpstreamFile[]): boolean {
    const s = sqlSettings(this.runtime.settings)
    const mode = s.fastPath
    if (mode === 'off' || files.length === 0 || !canLoadFast(this.db.dialect, table.setBy, s.mysqlLocalInfile))
      return false
    if (mode === 'auto' && files.reduce((n, f) => n + f.bytes, 0) < FAST_PATH_BYTES) return false
    const methods = this.streamMethods()
    const own = SqlUploader.prototype
    return (
      methods.length === 2 &&
      methods.every(
        (m) =>
          (m.name === 'defaultSource' && m.fn === own.defaultSource) || (m.name === 'upload' && m.fn === own.upload),
      )
    )
  }

  /**
   * The full-mode snapshots of sql.Downloader among the commits this task reads: a commit whose checkpoint of the
   * table (`<table>`: `{mode: 'full', snapshot, complete}`) names a snapshot holds files of it; the commit that says
   * `complete` ends it. Datastores without commit records (Python) have none. `end`: the last commit considered.
   */
  private async snapshotMarks(
    ctx: StreamContext,
    all: readonly UpstreamFile[],
    files: readonly UpstreamFile[],
  ): Promise<{ marks: SnapshotMark[]; end: number }> {
    const up = ctx.table.namespace
    if (!up) return { marks: [], end: 0 }
    const log = this.runtime.commitLog(up)
    const pos = this.position(ctx).seq
    if (all.some((f) => f.seq === 0) || !(await log.usesCommits())) return { marks: [], end: 0 }
    const limit = Number(this.runtime.settings.upload_batch_size ?? 0)
    const bytes = all.reduce((n, f) => n + f.bytes, 0)
    const seqs = await log.sequences(pos)
    // pendingFiles stops after the commit that reaches upload_batch_size; otherwise it looked at every commit.
    const end = limit > 0 && bytes >= limit && all.length ? all.at(-1)!.seq : (seqs.at(-1) ?? pos)
    const bySeq = new Map<number, string>()
    const order: { id: string; complete: boolean; rows: number }[] = []
    for (const seq of seqs) {
      if (seq > end) break
      const rec = await log.read(seq)
      const v = Object.hasOwn(rec.checkpoints, ctx.table.name) ? rec.checkpoints[ctx.table.name] : undefined
      if (
        !v ||
        typeof v !== 'object' ||
        Array.isArray(v) ||
        v.mode !== 'full' ||
        typeof v.snapshot !== 'string' ||
        v.snapshot === '' ||
        v.snapshot.length > 200
      )
        continue
      bySeq.set(seq, v.snapshot)
      let entry = order.find((o) => o.id === v.snapshot)
      if (!entry) order.push((entry = { id: v.snapshot, complete: false, rows: 0 }))
      if (v.complete === true) entry.complete = true
      if (typeof v.rows === 'number') entry.rows = v.rows
    }
    const marks = order.map((o) => ({ ...o, firstFile: files.findIndex((f) => bySeq.get(f.seq) === o.id) }))
    return { marks, end }
  }

  /** Stages, evolves and merges one table's rows; records what it did in the task log. */
  @sink('*')
  async upload(rows: AsyncIterable<Row>, ctx: StreamContext): Promise<void> {
    const key = qualifiedName(ctx.table)
    const target = this.targetOf(ctx.table)
    const planned = this.planned
    const snapshots = this.snapshots
    // Wait for the first row before taking a connection: the source checks the ledger first, and SQLite has one.
    const it = chunksOf(rows)[Symbol.asyncIterator]()
    const first = await it.next()
    const all: AsyncIterable<Row[]> = {
      [Symbol.asyncIterator]: () => {
        let pending: IteratorResult<Row[]> | undefined = first
        return {
          next: () => {
            const p = pending
            pending = undefined
            return p ? Promise.resolve(p) : it.next()
          },
          return: async (v?: unknown) => (it.return ? it.return(v) : { done: true as const, value: undefined }),
        }
      },
    }
    const byteFiles = this.byteTables.delete(key) ? await this.byteReader() : undefined
    const result = await this.db
      .withSession((s, raw) =>
        loadTable(s, raw, {
          byteFiles,
          dialect: this.db.dialect,
          target,
          table: ctx.table,
          // Set by the source before its first row; read when the rows are done.
          get files() {
            return planned.get(key) ?? []
          },
          get snapshots() {
            return snapshots.get(key) ?? []
          },
          rows: all,
          settings: sqlSettings(this.runtime.settings),
          logger: ctx.logger,
          signal: ctx.signal,
          uploader: this.runtime.anchovyId,
          sessionId: session().sessionId,
          afterInsert: () => this.afterInsert(ctx.table),
        }),
      )
      .finally(() => byteFiles?.pool.close())
    this.planned.delete(key)
    this.snapshots.delete(key)
    Object.assign(ctx.task.data, result)
  }

  /** The byte fast path's file access and worker threads (one pool per table load). */
  private async byteReader(): Promise<{ open: OpenFile; pool: MemberPool }> {
    const datastore = this.runtime.datastore
    return { open: (path) => datastore.readStream(path), pool: new MemberPool() }
  }

  /** Called inside the merge transaction after the insert (a seam for fault-injection tests). */
  protected afterInsert(_table: Table): Promise<void> | void {}
}
