import type { CheckpointScope } from '../context/context.js'
import type { WrittenFile } from '../datastore/data-file.js'
import type { CommittedFile } from '../datastore/commit-log.js'
import type { JsonValue } from '../types.js'

const DELETED = Symbol('deleted')

/**
 * Staged changes of one scope (the session, a batch or one table chain): checkpoint values and data files.
 * A chain's scope is merged into its batch only when the chain succeeds; a batch's scope becomes the commit.
 */
export class StagingScope implements CheckpointScope {
  private readonly values = new Map<string, JsonValue | typeof DELETED>()
  readonly files: CommittedFile[] = []
  /** Callbacks to run once the commit holding this scope's changes exists (e.g. delete source files). */
  readonly afterCommit: (() => Promise<void> | void)[] = []
  /** Set when the scope was discarded (failed or abandoned chain): late writes are ignored. */
  private dead = false

  constructor(private readonly parent: CheckpointScope) {}

  get(key: string): JsonValue | undefined {
    const v = this.values.get(key)
    if (v === DELETED) return undefined
    return v !== undefined ? structuredClone(v) : this.parent.get(key)
  }

  set(key: string, value: JsonValue | undefined): void {
    if (this.dead) return
    this.values.set(key, value === undefined ? DELETED : structuredClone(value))
  }

  stage(table: string, files: readonly WrittenFile[]): void {
    if (this.dead) return
    for (const f of files) this.files.push({ table, path: f.path, rows: f.rows, bytes: f.bytes })
  }

  /** Moves everything staged here into `target`. */
  mergeInto(target: StagingScope): void {
    for (const [k, v] of this.values) target.values.set(k, v)
    target.files.push(...this.files)
    target.afterCommit.push(...this.afterCommit)
    this.discard()
  }

  discard(): void {
    this.dead = true
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

  /** Checkpoint changes: values set and keys deleted. */
  changes(): { set: Record<string, JsonValue>; deleted: string[] } {
    const set: Record<string, JsonValue> = {}
    const deleted: string[] = []
    for (const [k, v] of this.values) {
      if (v === DELETED) deleted.push(k)
      else set[k] = v
    }
    return { set, deleted }
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

  apply(set: Record<string, JsonValue>, deleted: readonly string[]): void {
    for (const [k, v] of Object.entries(set)) this.values.set(k, v)
    for (const k of deleted) this.values.delete(k)
  }
}
