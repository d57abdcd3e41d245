import type { Logger } from 'pino'
import type { TaskInfo } from '../context/context.js'
import type { Settings } from '../config/load-config.js'
import type { SettingSpec } from '../config/settings.js'
import type { CommitLog, CommittedFile } from '../datastore/commit-log.js'
import type { Datastore } from '../datastore/datastore.js'
import type { CheckpointStore, DataBuffer, TableStore } from '../datastore/stores.js'
import type { Stage } from '../datastore/stage.js'
import type { Row, Table } from '../types.js'
import { readMembers, META, type StreamMeta } from '../decorators/metadata.js'
import { bareTable, mergeTables } from '../tables.js'

/** The argument every `@source`/`@sink` method receives (sinks and transforms get the rows first). */
export interface StreamContext {
  /** The table whose rows this method produces (source) or receives (sink, transform input). */
  readonly table: Table
  /** For a transform: the table it produces. */
  readonly output?: Table
  /** The task the rows are counted in; add to `task.data` to record statistics in the task log. */
  readonly task: TaskInfo
  /** Aborted on failure of a sibling, execution timeout or SIGTERM/SIGINT: stop promptly. */
  readonly signal: AbortSignal
  readonly logger: Logger
  /**
   * Where this table task's changes wait for the batch commit: data files (`stage.writer(table)`), checkpoints and
   * afterCommit callbacks. Discarded, with the files written into it, when the task fails.
   */
  readonly stage: Stage
  /** Epoch milliseconds when this batch's execution timeout (-t) expires; undefined without -t. */
  readonly deadline: number | undefined
  /** Milliseconds left before `deadline` (Infinity without -t): stop at a clean point before it. */
  timeLeft(): number
  /**
   * A clean point of the source of a chain's first table: every row it yielded before this call and every
   * checkpoint it set so far belong together. When a limit is reached (`batch_max_rows` rows, `batch_max_bytes`
   * bytes since the table's last commit, or `commit_interval` seconds), waits until the sinks have written those
   * rows and commits them with the checkpoints as one intermediate commit, then resolves true; otherwise resolves
   * false at once. A table stopped later (failure, timeout, SIGTERM) keeps what its commit points committed.
   */
  commitPoint(): Promise<boolean>
  /** Like commitPoint(), but commits now whatever the limits (false when nothing was staged). */
  commit(): Promise<boolean>
}

/** What the runtime gives an operator (internal; plugins use it through Operator members). */
export interface OperatorRuntime {
  readonly settings: Settings
  readonly datastore: Datastore
  readonly user: string
  readonly anchovyId: string
  readonly configTables: readonly Table[]
  readonly tableStore: TableStore
  readonly checkpointStore: CheckpointStore
  readonly dataBuffer: DataBuffer
  readonly logger: Logger
  /** The commit log of `anchovyId` (the running anchovy or an upstream one). */
  commitLog(anchovyId: string): CommitLog
  /** A name part unique to this run, batch and writer (for files a batch writes besides data files). */
  uniqueFileTag(): string
}

/** One decorated method as the planner sees it. */
export interface StreamMethod {
  readonly name: string
  readonly source: string | undefined
  readonly sinks: readonly string[]
  readonly fn: (...args: unknown[]) => unknown
}

/** The base of every operator: tables, stream methods and hooks; the runtime drives it. */
export class Operator {
  /** Extra settings this operator reads from `config:`/env/flags (validated with the core ones). */
  static settings: readonly SettingSpec[] = []

  /** Set by the runtime before startup. */
  runtime!: OperatorRuntime

  /** The `@source`/`@sink` methods of this operator (most derived definitions only). */
  streamMethods(): StreamMethod[] {
    const out: StreamMethod[] = []
    for (const [name, meta] of readMembers<StreamMeta>(META.streams, this, true)) {
      const fn = (this as unknown as Record<string, unknown>)[name]
      if (typeof fn === 'function')
        out.push({ name, source: meta.source, sinks: [...meta.sinks], fn: fn as StreamMethod['fn'] })
    }
    return out
  }

  /**
   * Every table this operator can move: config.yaml `tbls`, the `$tables` of upstream anchovies, and tables named
   * by non-wildcard `@source`s. Override to discover tables dynamically (call `super.discoverTbls()` to keep these).
   */
  async discoverTbls(): Promise<Table[]> {
    const byName = new Map<string, Table>()
    for (const up of this.runtime.settings.upstream) {
      for (const t of await this.runtime.tableStore.load(up)) byName.set(`${up}.${t.name}`, t)
    }
    for (const t of this.runtime.configTables) {
      const upstreamMatches = [...byName.entries()].filter(([, u]) => u.name === t.name)
      if (upstreamMatches.length) for (const [k, u] of upstreamMatches) byName.set(k, mergeTables(u, t))
      else byName.set(t.name, t)
    }
    for (const m of this.streamMethods()) {
      if (m.source && !/[*?[]/.test(m.source) && ![...byName.values()].some((t) => t.name === m.source)) {
        byName.set(m.source, bareTable(m.source))
      }
    }
    return [...byName.values()]
  }
}

/** Rows of one upstream data file, for uploaders. */
export interface UpstreamFile extends CommittedFile {
  /** The upstream anchovy id. */
  readonly anchovyId: string
  /** Commit sequence number (0 for datastores without commit records). */
  readonly seq: number
  /** A stable id: `<anchovy id>/<path>`. */
  readonly id: string
}

/** The rows type of sources and sinks. */
export type Rows = AsyncIterable<Row>
