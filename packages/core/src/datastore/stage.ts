import type { CheckpointScope } from '../context/context.js'
import type { JsonValue, Row, Table } from '../types.js'
import type { CommittedFile } from './commit-log.js'
import type { WrittenFile } from './data-file.js'
import type { TableWriter } from './stores.js'

const DELETED = Symbol('deleted')

/** What a stage needs from the batch commit that owns it (see AnchovyState). */
export interface StageOwner {
  /** A writer of `table`'s data files, named so that recovery can find them if the batch never commits. */
  openWriter(table: Table): TableWriter
  /** Checks that files a writer reports are this run's own data files of `table` (see AnchovyState). */
  checkWritten(table: string, files: readonly WrittenFile[]): void
  /** Deletes data files that will never be committed (their stage was discarded). */
  deleteFiles(paths: readonly string[]): Promise<void>
}

/**
 * Staged changes of one scope (the session, a batch or one table chain): checkpoint values, data files and
 * afterCommit callbacks. A chain's stage is merged into its batch only when the chain succeeds; a batch's stage
 * becomes the commit; a discarded stage deletes the data files written into it.
 */
export class Stage implements CheckpointScope {
  private readonly values = new Map<string, JsonValue | typeof DELETED>()
  readonly files: CommittedFile[] = []
  /** Callbacks to run once the commit holding this stage's changes exists (e.g. delete source files). */
  readonly afterCommit: (() => Promise<void> | void)[] = []
  /** Writers handed out and not closed yet: discarding the stage aborts them. */
  private readonly writers = new Set<StagedWriter>()
  /** Set when the stage was discarded (failed or abandoned chain): late writes are dropped, late files deleted. */
  private dead = false

  constructor(
    private readonly parent: CheckpointScope,
    private readonly owner: StageOwner,
  ) {}

  get(key: string): JsonValue | undefined {
    const v = this.values.get(key)
    if (v === DELETED) return undefined
    return v !== undefined ? structuredClone(v) : this.parent.get(key)
  }

  set(key: string, value: JsonValue | undefined): void {
    if (this.dead) return
    this.values.set(key, value === undefined ? DELETED : structuredClone(value))
  }

  /** A stage for one chain of this batch, merged back on success. */
  child(): Stage {
    return new Stage(this, this.owner)
  }

  /**
   * A writer of `table`'s rows into data files; `close()` stages what it wrote here (committed with the batch),
   * `abort()` (or discarding the stage) deletes it. `cut()` on the stage closes its current file early (an
   * intermediate commit takes it) and the next row starts a new one.
   */
  writer(table: Table): TableWriter {
    const w = new StagedWriter(this, table)
    this.writers.add(w)
    return w
  }

  /** Opens the data file writer a staged writer writes through (named by the batch owner). */
  openInner(table: Table): TableWriter {
    return this.owner.openWriter(table)
  }

  /** Forgets a staged writer that was closed or aborted. */
  writerDone(w: StagedWriter): void {
    this.writers.delete(w)
  }

  /**
   * Closes the current data file of every open writer of this stage and stages the files (what was written so far
   * becomes part of the next commit); the writers go on in new files.
   */
  async cut(): Promise<void> {
    await Promise.all([...this.writers].map((w) => w.cut()))
  }

  /** Uncompressed bytes written through this stage's open writers and staged here (for the batch size limit). */
  get bytes(): number {
    let n = this.files.reduce((sum, f) => sum + f.bytes, 0)
    for (const w of this.writers) n += w.bytes
    return n
  }

  /** Records data files written for `table` (by a writer of this stage, or by a custom sink through the data buffer). */
  stageFiles(table: string, files: readonly WrittenFile[]): void {
    this.owner.checkWritten(table, files)
    if (this.dead) {
      void this.owner.deleteFiles(files.map((f) => f.path))
      return
    }
    for (const f of files) this.files.push({ table, path: f.path, rows: f.rows, bytes: f.bytes })
  }

  /** Moves everything staged here into `target`. */
  mergeInto(target: Stage): void {
    for (const [k, v] of this.values) target.values.set(k, v)
    target.files.push(...this.files)
    target.afterCommit.push(...this.afterCommit)
    this.clear()
  }

  /** Drops what was staged: the data files written here are deleted (they were never visible to anyone). */
  async discard(): Promise<void> {
    const paths = this.files.map((f) => f.path)
    const writers = [...this.writers]
    this.clear()
    await Promise.all(writers.map((w) => w.abort()))
    if (paths.length) await this.owner.deleteFiles(paths)
  }

  /** Forgets what was staged after it was committed (or discarded): the stage is spent. */
  clear(): void {
    this.dead = true
    this.reset()
    this.writers.clear()
  }

  /** Forgets what an intermediate commit took; the stage (and its open writers) go on. */
  reset(): void {
    this.values.clear()
    this.files.length = 0
    this.afterCommit.length = 0
  }

  onCommit(fn: () => Promise<void> | void): void {
    if (!this.dead) this.afterCommit.push(fn)
  }

  get empty(): boolean {
    return this.values.size === 0 && this.files.length === 0 && this.afterCommit.length === 0
  }

  /** Takes everything staged out of the stage (for a commit); the stage goes on empty. */
  take(): {
    set: Record<string, JsonValue>
    deleted: string[]
    files: CommittedFile[]
    callbacks: (() => Promise<void> | void)[]
  } {
    const taken = { ...this.changes(), files: [...this.files], callbacks: [...this.afterCommit] }
    this.reset()
    return taken
  }

  /** Checkpoint changes: values set and keys deleted (a null-prototype map: keys come from user code). */
  changes(): { set: Record<string, JsonValue>; deleted: string[] } {
    const set: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>
    const deleted: string[] = []
    for (const [k, v] of this.values) {
      if (v === DELETED) deleted.push(k)
      else set[k] = v
    }
    return { set, deleted }
  }
}

/** A table writer of a stage: its files are staged when it closes or when the stage is cut. */
class StagedWriter implements TableWriter {
  private inner: TableWriter | undefined

  constructor(
    private readonly stage: Stage,
    private readonly table: Table,
  ) {}

  write(row: Row): Promise<void> | undefined {
    this.inner ??= this.stage.openInner(this.table)
    return this.inner.write(row)
  }

  /** Uncompressed bytes written since this writer last staged its files. */
  get bytes(): number {
    return this.inner?.bytes ?? 0
  }

  /** Closes the file in progress and stages it; the next write opens a new one. */
  async cut(): Promise<void> {
    const inner = this.inner
    this.inner = undefined
    if (!inner) return
    this.stage.stageFiles(this.table.name, await inner.close())
  }

  async close(): Promise<WrittenFile[]> {
    const inner = this.inner
    this.inner = undefined
    this.stage.writerDone(this)
    const files = inner ? await inner.close() : []
    this.stage.stageFiles(this.table.name, files)
    return files
  }

  abort(err?: Error): Promise<void> | void {
    const inner = this.inner
    this.inner = undefined
    this.stage.writerDone(this)
    return inner?.abort(err)
  }
}

/** The committed checkpoints, updated in memory after each commit. */
export class CommittedCheckpoints implements CheckpointScope {
  constructor(readonly values: Map<string, JsonValue>) {}

  get(key: string): JsonValue | undefined {
    const v = this.values.get(key)
    return v === undefined ? undefined : structuredClone(v)
  }

  set(): void {
    throw new Error('committed checkpoints are read-only')
  }

  apply(set: Readonly<Record<string, JsonValue>>, deleted: readonly string[]): void {
    for (const [k, v] of Object.entries(set)) this.values.set(k, v)
    for (const k of deleted) this.values.delete(k)
  }
}
