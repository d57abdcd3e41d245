import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { AnchoviesError } from '../errors.js'
import type { JsonValue, Table } from '../types.js'
import { CommitLog, type CommitRecord } from './commit-log.js'
import type { WrittenFile } from './data-file.js'
import type { Datastore, DatastoreLock, LockOwner } from './datastore.js'
import { CommittedCheckpoints, Stage, type StageOwner } from './stage.js'
import { anchovyHome, encodeCheckpoint, type CheckpointStore, type DataBuffer, type StoreContext, type TableStore, type TableWriter } from './stores.js'

/** The store classes an anchovy's state is kept with (replaceable with `--*-cls`). */
export interface StateStores {
  readonly checkpoint: CheckpointStore
  readonly table: TableStore
  readonly dataBuffer: DataBuffer
}

/** What one commit made visible (for the task log). */
export interface CommitSummary {
  readonly seq: number
  readonly files: number
  readonly rows: number
}

/** `$inflight.json` names the batch that may be writing data files; the tag is in every such file's name. */
interface Inflight {
  readonly tag: string
  readonly since: string
}

const TAG_RE = /^[0-9a-f]{8}-[0-9a-z]{1,12}$/

/** The digest that verifies a checkpoint value read back (of its file text, so every store class agrees). */
export function checkpointDigest(value: JsonValue): string {
  return createHash('sha256').update(encodeCheckpoint(value)).digest('base64url')
}

/**
 * Everything that makes "all of a batch or none of it" true for one anchovy: the run lock, recovery of a batch
 * that a crash interrupted, the names of data files, per-table staging and the commit itself (data files,
 * checkpoints, table metadata, then afterCommit callbacks). It verifies what it reads back. The runtime and
 * `anchovy checkpoint set/delete` both change an anchovy's state only through it.
 */
export class AnchovyState implements StageOwner {
  readonly home: string
  readonly log: CommitLog
  private lock: DatastoreLock | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private committedValues!: CommittedCheckpoints
  private readonly tableRecords = new Map<string, string>()
  private readonly runTag = randomBytes(4).toString('hex')
  private batchId = 'session'
  private fileCounter = 0
  /** Deletions of discarded data files still running (awaited before the in-flight marker is removed). */
  private readonly deleting = new Set<Promise<void>>()
  private sessionStage: Stage | undefined

  constructor(
    private readonly ctx: StoreContext,
    private readonly stores: StateStores,
    private readonly logger: Logger,
  ) {
    this.home = anchovyHome(ctx)
    this.log = new CommitLog(ctx.datastore, this.home)
  }

  private get datastore(): Datastore {
    return this.ctx.datastore
  }

  /** The committed checkpoints (a scope that stages read through). */
  get committed(): CommittedCheckpoints {
    return this.committedValues
  }

  /** The store that keeps the committed checkpoints. */
  get checkpointStore(): CheckpointStore {
    return this.stores.checkpoint
  }

  /**
   * What is staged outside a batch (startup and shutdown hooks): it goes into the next commit, a batch's or the
   * session's own at shutdown.
   */
  get session(): Stage {
    this.sessionStage ??= new Stage(this.committedValues, this)
    return this.sessionStage
  }

  /**
   * Takes the run lock (renewed every third of `ttlMs`; `onLost` is told when another holder took it; `owner` names a
 * supervising process), then recovers; `replaced` names checkpoint keys about to be set or deleted deliberately.
   * The lock is released again if recovery fails.
   */
  async open(ttlMs: number, onLost: (err: Error) => void, replaced?: (key: string) => boolean, owner?: LockOwner): Promise<void> {
    this.lock = await this.datastore.lock(`${this.home}/$lock`, ttlMs, owner)
    this.heartbeat = setInterval(() => {
      this.lock?.renew().catch((err: unknown) => onLost(err as Error))
    }, Math.max(1000, ttlMs / 3))
    this.heartbeat.unref()
    try {
      await this.recover(replaced)
    } catch (err) {
      await this.release()
      throw err
    }
  }

  /** Stops the heartbeat and releases the lock if this state still holds it. */
  async release(): Promise<void> {
    clearInterval(this.heartbeat)
    this.heartbeat = undefined
    const lock = this.lock
    this.lock = undefined
    await lock?.release()
  }

  /**
   * Re-applies the newest commit (a crash may have stopped after the record and before the files), removes the
   * data files of a batch that never committed, then loads the checkpoints and verifies them against the newest
   * commit's digests.
   */
  private async recover(replaced?: (key: string) => boolean): Promise<void> {
    const latest = await this.log.latest()
    if (latest) {
      await this.stores.checkpoint.apply(latest.checkpoints, latest.deleted_checkpoints)
      await this.stores.table.apply(latest.tables)
      await this.log.repairHead()
    }
    await this.removeOrphans(latest)
    await this.log.markFormat()
    this.committedValues = new CommittedCheckpoints(await readCheckpoints(this.stores.checkpoint, latest, this.home, replaced))
    for (const t of await this.stores.table.load()) this.tableRecords.set(t.name, JSON.stringify(this.stores.table.record(t)))
  }

  private inflightPath(): string {
    return `${this.home}/$inflight.json`
  }

  /**
   * Deletes the data files of a batch that stopped before it committed (they were never visible to anyone). Only
   * the batch named in `$inflight.json` can have left any, and only the newest commit can hold its files, so this
   * costs nothing after a clean run.
   */
  private async removeOrphans(latest: CommitRecord | undefined): Promise<void> {
    const raw = await this.datastore.read(this.inflightPath())
    if (!raw) return
    let tag: unknown
    try {
      tag = (JSON.parse(raw.toString('utf8')) as Partial<Inflight>).tag
    } catch {
      tag = undefined
    }
    if (typeof tag !== 'string' || !TAG_RE.test(tag)) {
      throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `${this.inflightPath()} is corrupt: it must name the batch in flight ({"tag": …}); the data files that batch left cannot be told apart. Remove the uncommitted files under ${this.home}/data by hand, then delete the marker`)
    }
    const committed = new Set((latest?.files ?? []).map((f) => f.path))
    const orphans = (await this.datastore.list(`${this.home}/data`)).filter((e) => e.path.includes(`.${tag}-`) && !committed.has(e.path))
    for (const e of orphans) await this.datastore.delete(e.path)
    const partial = (await this.datastore.sweep?.(`${this.home}/data`)) ?? 0
    if (orphans.length + partial) this.logger.info({ files: orphans.length, partial_files: partial, batch: tag }, 'removed data files of a batch that never committed')
    await this.datastore.delete(this.inflightPath())
  }

  /** Starts a batch: records it as in flight (its data files carry its tag) and returns its stage. */
  async beginBatch(batchId: string): Promise<Stage> {
    this.batchId = batchId
    const marker: Inflight = { tag: this.batchTag(), since: new Date().toISOString() }
    await this.datastore.write(this.inflightPath(), JSON.stringify(marker))
    return this.session.child()
  }

  private batchTag(): string {
    return `${this.runTag}-${this.batchId}`
  }

  /** A name part unique to this run, batch and writer (data files and anything else a batch writes). */
  fileTag(): string {
    return `${this.batchTag()}-${String(this.fileCounter++).padStart(4, '0')}`
  }

  openWriter(table: Table): TableWriter {
    return this.stores.dataBuffer.writer(table.name, this.fileTag(), table.columns)
  }

  checkWritten(table: string, files: readonly WrittenFile[]): void {
    const dir = `${this.home}/data/${table}/`
    for (const f of files) {
      // Recovery finds a dead batch's files by the tag: a file named otherwise could never be cleaned up.
      if (!f.path.startsWith(dir) || f.path.slice(dir.length).includes('/') || !f.path.includes(`.${this.batchTag()}-`)) {
        throw new AnchoviesError('ANCH_ERR_DATASTORE', `data file ${f.path} is not named as ${dir}<stamp>.<batch tag>-<n>.json.gz: a --data-buffer-cls must name files with the unique tag it is given`)
      }
      if (!Number.isInteger(f.rows) || f.rows < 0 || !Number.isInteger(f.bytes) || f.bytes < 0) {
        throw new AnchoviesError('ANCH_ERR_DATASTORE', `data file ${f.path}: the writer reported ${f.rows} rows and ${f.bytes} bytes`)
      }
    }
  }

  async deleteFiles(paths: readonly string[]): Promise<void> {
    const run = (async () => {
      for (const p of paths) {
        await this.datastore.delete(p).catch((err: unknown) => this.logger.warn({ err, path: p }, 'could not delete an uncommitted data file (the next run removes it)'))
      }
    })()
    this.deleting.add(run)
    try {
      await run
    } finally {
      this.deleting.delete(run)
    }
  }

  /**
   * Makes a stage's files, checkpoints and the records of `tables` visible in one commit record, then writes the
   * checkpoint and table files and runs the afterCommit callbacks. Nothing to commit: only the callbacks run.
   */
  async commit(stage: Stage, meta: { sessionId: string; batchId: string | null }, tables: readonly Table[] = []): Promise<CommitSummary | undefined> {
    if (stage !== this.sessionStage && this.sessionStage && !this.sessionStage.empty) this.sessionStage.mergeInto(stage)
    // A committed (or merged) session stage is spent: what is staged outside a batch from now on starts afresh.
    if (stage === this.sessionStage || this.sessionStage?.empty) this.sessionStage = undefined
    const { set, deleted } = stage.changes()
    const records: Record<string, unknown>[] = []
    for (const t of tables) {
      if (t.namespace) continue
      const rec = this.stores.table.record(t)
      if (this.tableRecords.get(t.name) !== JSON.stringify(rec)) records.push(rec)
    }
    const callbacks = [...stage.afterCommit]
    const files = [...stage.files]
    if (files.length === 0 && Object.keys(set).length === 0 && deleted.length === 0 && records.length === 0) {
      stage.clear()
      await this.runAfterCommit(callbacks)
      return undefined
    }
    // Fencing: a holder whose lock was taken over must not commit (renew throws when the lock is someone else's).
    await this.lock?.renew()
    const after = new Map(this.committedValues.values)
    for (const [k, v] of Object.entries(set)) after.set(k, v)
    for (const k of deleted) after.delete(k)
    const digests: Record<string, string> = Object.create(null) as Record<string, string>
    for (const [k, v] of after) digests[k] = checkpointDigest(v)
    const rec = await this.log.append({
      anchovy_id: this.ctx.anchovyId,
      anchovy_user: this.ctx.user,
      session_id: meta.sessionId,
      batch_id: meta.batchId,
      committed_at: new Date().toISOString(),
      files,
      checkpoints: set,
      deleted_checkpoints: deleted,
      tables: records,
      checkpoint_digests: digests,
    })
    this.committedValues.apply(set, deleted)
    for (const r of records) this.tableRecords.set(String(r.name), JSON.stringify(r))
    stage.clear()
    await this.stores.checkpoint.apply(set, deleted)
    await this.stores.table.apply(records)
    await this.runAfterCommit(callbacks)
    this.logger.info({ batch_id: meta.batchId, seq: rec.seq, files: files.length, checkpoints: Object.keys(set).length + deleted.length }, 'committed')
    return { seq: rec.seq, files: files.length, rows: files.reduce((n, f) => n + f.rows, 0) }
  }

  private async runAfterCommit(callbacks: readonly (() => Promise<void> | void)[]): Promise<void> {
    for (const fn of callbacks) {
      try {
        await fn()
      } catch (err) {
        this.logger.warn({ err }, 'an afterCommit callback failed (the batch is committed)')
      }
    }
  }

  /**
   * Ends the session's writing: when every batch ended cleanly (nothing abandoned still writing), the in-flight
   * marker goes, after the deletions of discarded files finished; otherwise it stays for the next run's recovery.
   */
  async finish(clean: boolean): Promise<void> {
    await Promise.all(this.deleting)
    if (clean) await this.datastore.delete(this.inflightPath())
  }
}

/**
 * The committed checkpoints: what the store holds, with the newest commit laid over it (a crash may have stopped
 * before its files were written; without the lock this is what a reader must do), verified against that commit's
 * digests. A value changed, added or removed outside a commit is reported (naming the key), never used; keys
 * `replaced` says are about to be set or deleted deliberately are not checked.
 */
export async function readCheckpoints(store: CheckpointStore, latest: CommitRecord | undefined, home: string, replaced?: (key: string) => boolean): Promise<Map<string, JsonValue>> {
  const values = await store.load(replaced)
  if (!latest) return values
  for (const [k, v] of Object.entries(latest.checkpoints)) values.set(k, v)
  for (const k of latest.deleted_checkpoints) values.delete(k)
  const digests = latest.checkpoint_digests
  if (!digests) return values // records written before digests existed
  const where = (key: string): string => `checkpoint ${home}/$checkpoints/${key}`
  const fix = 'restore it from a backup, or set it deliberately with anchovy checkpoint set/delete'
  for (const [key, value] of values) {
    if (replaced?.(key)) continue
    if (!Object.hasOwn(digests, key)) throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `${where(key)} was not written by any commit (commit ${latest.seq} does not list it): ${fix}`)
    if (digests[key] !== checkpointDigest(value)) throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `${where(key)} does not hold the value commit ${latest.seq} wrote: ${fix}`)
  }
  for (const key of Object.keys(digests)) {
    if (!values.has(key) && !replaced?.(key)) throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `${where(key)} is missing (commit ${latest.seq} wrote it): ${fix}`)
  }
  return values
}
