import { Connection, Uploader, chunksOf, connection, qualifiedName, session, sink, source, type Row, type SettingSpec, type StreamContext, type Table, type UpstreamFile } from '@anchovies/core'
import { SQL_SETTINGS, schemaMap, sqlSettings, targetOf, type Target } from './config.js'
import { ledgerExists, loadedFileIds } from './ledger.js'
import { SqlConnection } from './sql-connection.js'
import { FILE_INDEX, loadTable } from './table-loader.js'

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

  /** Per table (qualified name): the files this task reads, in order. */
  private readonly planned = new Map<string, UpstreamFile[]>()

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
      const loaded = await this.db.withSession(async (s) => ((await ledgerExists(this.db.dialect, s, target)) ? loadedFileIds(this.db.dialect, s, target, all) : new Set<string>()))
      if (loaded.size) {
        files = all.filter((f) => !loaded.has(f.id))
        ctx.logger.info({ table: ctx.table.name, skipped: loaded.size }, 'upstream files already loaded (ledger); skipping them')
      }
      ctx.task.data.files_already_loaded = loaded.size
    }
    ctx.task.data.files = files.length
    this.planned.set(qualifiedName(ctx.table), files)
    for (let i = 0; i < files.length; i++) {
      for await (const chunk of this.readUpstream(files[i]!, ctx.signal)) {
        for (const row of chunk) (row as Record<symbol, unknown>)[FILE_INDEX] = i
        yield chunk
      }
    }
    const last = all.at(-1)
    if (last) this.advance(ctx, last)
  }

  /** Stages, evolves and merges one table's rows; records what it did in the task log. */
  @sink('*')
  async upload(rows: AsyncIterable<Row>, ctx: StreamContext): Promise<void> {
    const key = qualifiedName(ctx.table)
    const target = this.targetOf(ctx.table)
    const planned = this.planned
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
    const result = await this.db.withSession((s, raw) =>
      loadTable(s, raw, {
        dialect: this.db.dialect,
        target,
        table: ctx.table,
        // Set by the source before its first row; read when the rows are done.
        get files() {
          return planned.get(key) ?? []
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
    this.planned.delete(key)
    Object.assign(ctx.task.data, result)
  }

  /** Called inside the merge transaction after the insert (a seam for fault-injection tests). */
  protected afterInsert(_table: Table): Promise<void> | void {}
}
