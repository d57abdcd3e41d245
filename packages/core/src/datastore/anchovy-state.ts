import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { AnchoviesError, AnchovyLocked, isAnchoviesError } from '../errors.js'
import { isStale } from './filesystem-datastore.js'
import type { JsonValue, Table } from '../types.js'
import { CommitLog, type CommitRecord, type CommittedFile } from './commit-log.js'
import type { WrittenFile } from './data-file.js'
import type { Datastore, DatastoreLock, LockOwner } from './datastore.js'
import { CommittedCheckpoints, Stage, type StageOwner } from './stage.js'
import {
  anchovyHome,
  encodeCheckpoint,
  type CheckpointStore,
  type DataBuffer,
  type StoreContext,
  type TableStore,
  type TableWriter,
} from './stores.js'

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

/**
 * `$inflight.json` names the batch that may be writing data files; the tag is in every such file's name. A batch
 * may commit several times (intermediate commits): `after_seq`, the newest commit when it began, bounds the records
 * that can hold its files.
 */
interface Inflight {
  readonly tag: string
  readonly since: string
  readonly after_seq?: number
}

/** One of N workers of an anchovy: each takes its own run lock and runs a disjoint share of the tables. */
export interface WorkerSlot {
  readonly num: number
  readonly count: number
}

/** How long a committer waits for another worker's commit to finish before giving up (beyond the lock TTL). */
const COMMIT_LOCK_POLL_MS = 20

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
  /** Set when a renewal failed: the lock is someone else's now. */
  private lost: Error | undefined
  private committedValues!: CommittedCheckpoints
  private readonly tableRecords = new Map<string, string>()
  private readonly runTag = randomBytes(4).toString('hex')
  private batchId = 'session'
  private fileCounter = 0
  /** Deletions of discarded data files still running (awaited before the in-flight marker is removed). */
  private readonly deleting = new Set<Promise<void>>()
  private sessionStage: Stage | undefined
  private ttlMs = 60_000
  /** Commits of this process, one at a time (table chains commit on their own at commit points). */
  private committing: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly ctx: StoreContext,
    private readonly stores: StateStores,
    private readonly logger: Logger,
    /** Set when this run is one worker of several (`--workers`). */
    private readonly worker?: WorkerSlot,
  ) {
    this.home = anchovyHome(ctx)
    this.log = new CommitLog(ctx.datastore, this.home)
  }

  /** Where this run's lock and in-flight marker live: the anchovy's home, or its worker's folder. */
  private get runDir(): string {
    return this.worker && this.worker.count > 1 ? `${this.home}/$workers/${this.worker.num}` : this.home
  }

  /**
   * A run without workers and workers of the same anchovy never run at once (their shares would overlap): the
   * other kind's live locks are refused, naming the holder. Stale locks (a dead holder) do not count.
   */
  private async refuseOtherKind(ttlMs: number): Promise<void> {
    const others =
      this.runDir === this.home
        ? (await this.datastore.list(`${this.home}/$workers`))
            .map((e) => e.path)
            .filter((p) => /\/\$workers\/\d{1,6}\/\$lock$/.test(p))
        : [`${this.home}/$lock`]
    for (const path of others) {
      const holder = await this.datastore.readLock(path)
      if (holder && !isStale(holder, ttlMs)) throw new AnchovyLocked(holder, path.replace(/\/\$lock$/, ''))
    }
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
  async open(
    ttlMs: number,
    onLost: (err: Error) => void,
    replaced?: (key: string) => boolean,
    owner?: LockOwner,
  ): Promise<void> {
    this.ttlMs = ttlMs
    this.lock = await this.datastore.lock(`${this.runDir}/$lock`, ttlMs, owner)
    try {
      await this.refuseOtherKind(ttlMs)
    } catch (err) {
      await this.release()
      throw err
    }
    this.heartbeat = setInterval(
      () => {
        this.fence().catch((err: unknown) => onLost(err as Error))
      },
      Math.max(1000, ttlMs / 3),
    )
    this.heartbeat.unref()
    try {
      await this.underCommitLock(() => this.recover(replaced))
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
    if (latest) await this.reapply(latest, replaced)
    await this.removeOrphans(latest)
    await this.log.markFormat()
    this.committedValues = new CommittedCheckpoints(
      await readCheckpoints(this.stores.checkpoint, latest, this.home, replaced),
    )
    for (const t of await this.stores.table.load())
      this.tableRecords.set(t.name, JSON.stringify(this.stores.table.record(t)))
  }

  /**
   * Writes what the newest commit says wherever the files differ (its committer may have died between the record
   * and the files). Only differing files: rewriting another worker's files would race with its next commit.
   */
  private async reapply(latest: CommitRecord, replaced?: (key: string) => boolean): Promise<void> {
    const stored = await this.stores.checkpoint.load(replaced)
    const set: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>
    for (const [k, v] of Object.entries(latest.checkpoints))
      if (!stored.has(k) || encodeCheckpoint(stored.get(k)!) !== encodeCheckpoint(v)) set[k] = v
    await this.stores.checkpoint.apply(
      set,
      latest.deleted_checkpoints.filter((k) => stored.has(k)),
    )
    const current = new Map(
      (await this.stores.table.load()).map((t) => [t.name, JSON.stringify(this.stores.table.record(t))]),
    )
    await this.stores.table.apply(latest.tables.filter((r) => current.get(String(r.name)) !== JSON.stringify(r)))
    await this.log.repairHead()
  }

  private inflightPath(): string {
    return `${this.runDir}/$inflight.json`
  }

  /**
   * Runs `fn` holding the anchovy's commit lock (`$commit.lock`): workers of one anchovy share its commit log, so
   * catching up, appending a record and writing the checkpoint and table files it names happen one committer at a
   * time, and only the newest record can ever be half applied (a committer that died holding the lock).
   */
  private async underCommitLock<T>(fn: () => Promise<T>): Promise<T> {
    const path = `${this.home}/$commit.lock`
    const giveUp = Date.now() + 2 * this.ttlMs
    let lock: DatastoreLock | undefined
    for (;;) {
      try {
        lock = await this.datastore.lock(path, this.ttlMs)
        break
      } catch (err) {
        if (!isAnchoviesError(err, 'ANCH_ERR_LOCKED') || Date.now() > giveUp) throw err
        await new Promise((r) => setTimeout(r, COMMIT_LOCK_POLL_MS + Math.random() * COMMIT_LOCK_POLL_MS))
      }
    }
    try {
      return await fn()
    } finally {
      await lock
        .release()
        .catch((err: unknown) => this.logger.warn({ err }, 'could not release the commit lock (it expires)'))
    }
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
    let afterSeq: unknown
    try {
      ;({ tag, after_seq: afterSeq } = JSON.parse(raw.toString('utf8')) as Partial<Inflight>)
    } catch {
      tag = undefined
    }
    if (typeof tag !== 'string' || !TAG_RE.test(tag)) {
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE_CORRUPT',
        `${this.inflightPath()} is corrupt: it must name the batch in flight ({"tag": …}); the data files that batch left cannot be told apart. Remove the uncommitted files under ${this.home}/data by hand, then delete the marker`,
      )
    }
    // The batch's files may be in any commit since it began (intermediate commits); older markers name no start.
    const committed = new Set((latest?.files ?? []).map((f) => f.path))
    if (latest && typeof afterSeq === 'number' && Number.isInteger(afterSeq) && afterSeq >= 0) {
      const from = Math.max(afterSeq + 1, await this.log.base())
      for (let seq = from; seq < latest.seq; seq++)
        for (const f of (await this.log.read(seq)).files) committed.add(f.path)
    }
    const orphans = (await this.datastore.list(`${this.home}/data`)).filter(
      (e) => e.path.includes(`.${tag}-`) && !committed.has(e.path),
    )
    for (const e of orphans) await this.datastore.delete(e.path)
    const partial = (await this.datastore.sweep?.(`${this.home}/data`)) ?? 0
    if (orphans.length + partial)
      this.logger.info(
        { files: orphans.length, partial_files: partial, batch: tag },
        'removed data files of a batch that never committed',
      )
    await this.datastore.delete(this.inflightPath())
  }

  /** Starts a batch: records it as in flight (its data files carry its tag) and returns its stage. */
  async beginBatch(batchId: string): Promise<Stage> {
    this.batchId = batchId
    const marker: Inflight = { tag: this.batchTag(), since: new Date().toISOString(), after_seq: this.log.known }
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
      if (
        !f.path.startsWith(dir) ||
        f.path.slice(dir.length).includes('/') ||
        !f.path.includes(`.${this.batchTag()}-`)
      ) {
        throw new AnchoviesError(
          'ANCH_ERR_DATASTORE',
          `data file ${f.path} is not named as ${dir}<stamp>.<batch tag>-<n>.json.gz: a --data-buffer-cls must name files with the unique tag it is given`,
        )
      }
      if (!Number.isInteger(f.rows) || f.rows < 0 || !Number.isInteger(f.bytes) || f.bytes < 0) {
        throw new AnchoviesError(
          'ANCH_ERR_DATASTORE',
          `data file ${f.path}: the writer reported ${f.rows} rows and ${f.bytes} bytes`,
        )
      }
    }
  }

  async deleteFiles(paths: readonly string[]): Promise<void> {
    const run = (async () => {
      for (const p of paths) {
        await this.datastore
          .delete(p)
          .catch((err: unknown) =>
            this.logger.warn({ err, path: p }, 'could not delete an uncommitted data file (the next run removes it)'),
          )
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
   * `intermediate` commits what a table staged so far and keeps the stage (and its writers) going.
   */
  commit(
    stage: Stage,
    meta: { sessionId: string; batchId: string | null },
    tables: readonly Table[] = [],
    intermediate = false,
  ): Promise<CommitSummary | undefined> {
    const run = this.committing.then(() => this.commitNow(stage, meta, tables, intermediate))
    this.committing = run.catch(() => undefined)
    return run
  }

  private async commitNow(
    stage: Stage,
    meta: { sessionId: string; batchId: string | null },
    tables: readonly Table[],
    intermediate: boolean,
  ): Promise<CommitSummary | undefined> {
    if (!intermediate) {
      if (stage !== this.sessionStage && this.sessionStage && !this.sessionStage.empty)
        this.sessionStage.mergeInto(stage)
      // A committed (or merged) session stage is spent: what is staged outside a batch from now on starts afresh.
      if (stage === this.sessionStage || this.sessionStage?.empty) this.sessionStage = undefined
    }
    // Taken out of the stage first: a stage discarded while this commit runs (an abandoned table) must not delete
    // files a commit record is about to name.
    const { set, deleted, files, callbacks } = stage.take()
    if (!intermediate) stage.clear()
    if (
      files.length === 0 &&
      Object.keys(set).length === 0 &&
      deleted.length === 0 &&
      this.changedRecords(tables).length === 0
    ) {
      await this.runAfterCommit(callbacks)
      return undefined
    }
    let appended = false
    let committed: { rec: CommitRecord; records: Record<string, unknown>[] }
    try {
      committed = await this.underCommitLock(async () => {
        for (;;) {
          // Fencing first: a holder whose lock was taken over must not commit (renew throws when the lock is someone
          // else's), and must say so rather than report the successor's commits as a conflict.
          await this.fence()
          this.catchUp(await this.log.newer(), set, deleted, files)
          const records = this.changedRecords(tables)
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
            ...(this.worker && this.worker.count > 1 ? { worker: `${this.worker.num}/${this.worker.count}` } : {}),
            files,
            checkpoints: set,
            deleted_checkpoints: deleted,
            tables: records,
            checkpoint_digests: digests,
          })
          if (!rec) continue // a writer without the commit lock (an older version) took the number: catch up again
          appended = true
          this.committedValues.apply(set, deleted)
          for (const r of records) this.tableRecords.set(String(r.name), JSON.stringify(r))
          await this.stores.checkpoint.apply(set, deleted)
          await this.stores.table.apply(records)
          return { rec, records }
        }
      })
    } catch (err) {
      if (!appended && files.length) await this.deleteFiles(files.map((f) => f.path))
      throw err
    }
    const { rec, records } = committed
    await this.runAfterCommit(callbacks)
    this.logger.info(
      {
        batch_id: meta.batchId,
        seq: rec.seq,
        files: files.length,
        checkpoints: Object.keys(set).length + deleted.length,
        tables: records.length,
        ...(intermediate ? { intermediate } : {}),
      },
      'committed',
    )
    return { seq: rec.seq, files: files.length, rows: files.reduce((n, f) => n + f.rows, 0) }
  }

  /** The `$tables` records of `tables` that differ from what is committed. */
  private changedRecords(tables: readonly Table[]): Record<string, unknown>[] {
    const records: Record<string, unknown>[] = []
    for (const t of tables) {
      if (t.namespace) continue
      const rec = this.stores.table.record(t)
      if (this.tableRecords.get(t.name) !== JSON.stringify(rec)) records.push(rec)
    }
    return records
  }

  /**
   * Takes in what other writers of this anchovy (workers, `anchovy checkpoint`) committed since this run last
   * looked. A record that changed a checkpoint this commit sets or deletes, or committed data of a table this
   * commit holds, means two runs moved the same table at once: this commit is refused rather than duplicate it.
   */
  private catchUp(
    records: readonly CommitRecord[],
    set: Readonly<Record<string, JsonValue>>,
    deleted: readonly string[],
    files: readonly CommittedFile[],
  ): void {
    const mine = new Set([...Object.keys(set), ...deleted])
    const myTables = new Set(files.map((f) => f.table))
    for (const r of records) {
      const key = [...Object.keys(r.checkpoints), ...r.deleted_checkpoints].find((k) => mine.has(k))
      const table = r.files.find((f) => myTables.has(f.table))?.table
      if (key !== undefined || table !== undefined) {
        throw new AnchoviesError(
          'ANCH_ERR_LOCKED',
          `${table !== undefined ? `table ${table}` : `checkpoint ${key}`} was committed by another run of ${this.home} (commit ${r.seq}, session ${r.session_id}${r.worker ? `, worker ${r.worker}` : ''}) while this run held it: two runs (or workers with different --workers) moved the same table at once; this commit is refused so nothing is duplicated, and the table runs again next time`,
        )
      }
      this.committedValues.apply(r.checkpoints, r.deleted_checkpoints)
      for (const t of r.tables)
        if (t && typeof t === 'object' && typeof (t as { name?: unknown }).name === 'string')
          this.tableRecords.set((t as { name: string }).name, JSON.stringify(t))
    }
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
   * Commit retention: removes the commit records older than `days` that every registered reader
   * (`$readers/<reader id>/<table>.json`, written by uploaders after each commit) has read, never the newest one.
   * A reader file that cannot be read as `{"seq": n}` keeps everything (it is reported).
   */
  async pruneCommits(days: number): Promise<number> {
    return this.underCommitLock(async () => {
      let minRead = Infinity
      for (const e of await this.datastore.list(`${this.home}/$readers`)) {
        const raw = await this.datastore.read(e.path)
        let seq: unknown
        try {
          seq = (JSON.parse(raw?.toString('utf8') ?? '') as { seq?: unknown }).seq
        } catch {
          seq = undefined
        }
        if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0) {
          this.logger.warn(
            { path: e.path },
            'commit retention: a reader file is not {"seq": <commit>}; keeping every commit record (delete the file if that reader is gone)',
          )
          return 0
        }
        minRead = Math.min(minRead, seq)
      }
      const cutoff = Date.now() - days * 86_400_000
      const base = await this.log.base()
      const end = (await this.log.newer(), this.log.known)
      let keepFrom = base
      for (let seq = base; seq < end && seq <= minRead; seq++) {
        const at = Date.parse((await this.log.read(seq)).committed_at)
        if (!(at < cutoff)) break
        keepFrom = seq + 1
      }
      const removed = await this.log.prune(keepFrom)
      if (removed)
        this.logger.info(
          { removed, first_kept: keepFrom },
          'commit retention: removed commit records every reader has read',
        )
      return removed
    })
  }

  /**
   * Ends the session's writing: when every batch ended cleanly (nothing abandoned still writing), the in-flight
   * marker goes, after the deletions of discarded files finished; otherwise it stays for the next run's recovery.
   */
  async finish(clean: boolean): Promise<void> {
    await Promise.all(this.deleting)
    if (!clean || this.lost !== undefined) return
    // A run whose lock was taken over must not delete its successor's marker (on a folder, deletes are not fenced).
    try {
      await this.fence()
    } catch (err) {
      this.logger.error({ err }, 'lost the run lock; the in-flight marker is left to its new holder')
      return
    }
    await this.datastore.delete(this.inflightPath())
  }

  /** Whether this run learnt that its lock was taken over (heartbeat, commit or finish): it must not write again. */
  get lockLost(): boolean {
    return this.lost !== undefined
  }

  /** Renews the run lock, remembering a loss: every write of a run that lost its lock is refused from then on. */
  private async fence(): Promise<void> {
    if (this.lost !== undefined) throw this.lost
    try {
      await this.lock?.renew()
    } catch (err) {
      this.lost = err as Error
      throw err
    }
  }
}

/**
 * The committed checkpoints: what the store holds, with the newest commit laid over it (a crash may have stopped
 * before its files were written; without the lock this is what a reader must do), verified against that commit's
 * digests. A value changed, added or removed outside a commit is reported (naming the key), never used; keys
 * `replaced` says are about to be set or deleted deliberately are not checked.
 */
export async function readCheckpoints(
  store: CheckpointStore,
  latest: CommitRecord | undefined,
  home: string,
  replaced?: (key: string) => boolean,
): Promise<Map<string, JsonValue>> {
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
    if (!Object.hasOwn(digests, key))
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE_CORRUPT',
        `${where(key)} was not written by any commit (commit ${latest.seq} does not list it): ${fix}`,
      )
    if (digests[key] !== checkpointDigest(value))
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE_CORRUPT',
        `${where(key)} does not hold the value commit ${latest.seq} wrote: ${fix}`,
      )
  }
  for (const key of Object.keys(digests)) {
    if (!values.has(key) && !replaced?.(key))
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE_CORRUPT',
        `${where(key)} is missing (commit ${latest.seq} wrote it): ${fix}`,
      )
  }
  return values
}
