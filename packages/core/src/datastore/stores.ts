import { randomBytes } from 'node:crypto'
import { AnchoviesError } from '../errors.js'
import { joinPath, validateName } from '../names.js'
import { parseTable, tableRecord } from '../tables.js'
import type { ColumnType, JsonValue, Row, Table } from '../types.js'
import { DataFileWriter, readDataFileChunks, type ExpectedContent, type WrittenFile } from './data-file.js'
import type { Datastore } from './datastore.js'

/** What every store is built with. */
export interface StoreContext {
  readonly datastore: Datastore
  readonly user: string
  readonly anchovyId: string
  /** Settings a store may read (e.g. `data_file_max_bytes`). */
  readonly settings: Readonly<Record<string, unknown>>
}

/** The store classes a run uses (replaceable with `--*-cls`). */
export interface StoreClasses {
  checkpoint: new (ctx: StoreContext) => CheckpointStore
  task: new (ctx: StoreContext) => TaskStore
  table: new (ctx: StoreContext) => TableStore
  dataBuffer: new (ctx: StoreContext) => DataBuffer
}

/** `<user>/<id>` for the running anchovy or an upstream one. */
export function anchovyHome(ctx: StoreContext, anchovyId = ctx.anchovyId): string {
  return joinPath(validateName('user', ctx.user), validateName('anchovy id', anchovyId))
}

/**
 * Where one run of an anchovy keeps its run lock and in-flight marker: the anchovy's home, or with `--workers N`
 * (N > 1) its worker's folder `$workers/<num>`, so that the workers of one anchovy never block each other.
 */
export function runDir(ctx: StoreContext): string {
  const slot = workerSlot(ctx.settings)
  return slot ? `${anchovyHome(ctx)}/$workers/${slot.num}` : anchovyHome(ctx)
}

/** This run's worker number and count when settings name more than one worker. */
export function workerSlot(settings: Readonly<Record<string, unknown>>): { num: number; count: number } | undefined {
  const count = Number(settings.workers ?? 1)
  const num = Number(settings.worker_num ?? 0)
  return Number.isInteger(count) && count > 1 && Number.isInteger(num) && num >= 0 && num < count
    ? { num, count }
    : undefined
}

/** The results file name of this run (`anchovy_run_results.json`; `.w<num>` before `.json` for a worker). */
export function resultsFile(settings: Readonly<Record<string, unknown>>, base = 'anchovy_run_results'): string {
  const slot = workerSlot(settings)
  return slot ? `${base}.w${slot.num}.json` : `${base}.json`
}

/**
 * Encodes a checkpoint value as the file text: a plain string stays raw (as the Python implementation wrote it)
 * unless it is empty, parses as JSON or starts like JSON; everything else is JSON.
 */
export function encodeCheckpoint(value: JsonValue): string {
  if (typeof value === 'string' && value !== '' && !/^[\s{["]/.test(value)) {
    try {
      JSON.parse(value)
    } catch {
      return value
    }
  }
  return JSON.stringify(value)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Decodes checkpoint file text: JSON when it parses, else the raw string. Text that cannot have been written
 * whole (empty, NUL or invalid UTF-8, JSON cut short) is reported as corrupt rather than read as a value; a
 * correctly encoded U+FFFD is an ordinary character.
 */
export function decodeCheckpoint(data: string | Uint8Array, where = 'checkpoint'): JsonValue {
  let text: string
  try {
    text = typeof data === 'string' ? data : utf8.decode(data)
  } catch {
    throw new AnchoviesError(
      'ANCH_ERR_DATASTORE_CORRUPT',
      `${where} is corrupt (not valid UTF-8): restore it or delete the key deliberately with anchovy checkpoint delete`,
    )
  }
  try {
    return JSON.parse(text) as JsonValue
  } catch {
    if (text === '' || text.includes('\u0000') || /^[\s{["]/.test(text)) {
      throw new AnchoviesError(
        'ANCH_ERR_DATASTORE_CORRUPT',
        `${where} is corrupt (${text === '' ? 'empty' : 'not a complete value'}): restore it or delete the key deliberately with anchovy checkpoint delete`,
      )
    }
    return text
  }
}

/** Committed checkpoints in `$checkpoints/<key>` (one file per key, as in the Python implementation). */
export class CheckpointStore {
  constructor(protected readonly ctx: StoreContext) {}

  protected dir(): string {
    return `${anchovyHome(this.ctx)}/$checkpoints`
  }

  /**
   * Every committed checkpoint. A damaged file is an error, unless `replaced` says its key is about to be set or
   * deleted deliberately (its raw text is returned then).
   */
  async load(replaced?: (key: string) => boolean): Promise<Map<string, JsonValue>> {
    const out = new Map<string, JsonValue>()
    const dir = this.dir()
    for (const e of await this.ctx.datastore.list(dir)) {
      const key = e.path.slice(dir.length + 1)
      if (key.includes('/')) continue
      const raw = await this.ctx.datastore.read(e.path)
      if (!raw) continue
      try {
        out.set(key, decodeCheckpoint(raw, e.path))
      } catch (err) {
        if (!replaced?.(key)) throw err
        out.set(key, raw.toString('latin1'))
      }
    }
    return out
  }

  /** Writes committed changes (called after the commit record exists; must be idempotent). */
  async apply(set: Readonly<Record<string, JsonValue>>, deleted: readonly string[]): Promise<void> {
    await Promise.all([
      ...Object.entries(set).map(([k, v]) =>
        this.ctx.datastore.write(`${this.dir()}/${validateName('checkpoint key', k)}`, encodeCheckpoint(v)),
      ),
      ...deleted.map((k) => this.ctx.datastore.delete(`${this.dir()}/${validateName('checkpoint key', k)}`)),
    ])
  }
}

/** Table metadata in `$tables/<name>.json` (the Python implementation's format). */
export class TableStore {
  constructor(protected readonly ctx: StoreContext) {}

  /** The tables recorded by `anchovyId` (default: the running anchovy); upstream tables get its id as namespace. */
  async load(anchovyId = this.ctx.anchovyId): Promise<Table[]> {
    const dir = `${anchovyHome(this.ctx, anchovyId)}/$tables`
    const tables: Table[] = []
    for (const e of await this.ctx.datastore.list(dir)) {
      if (!e.path.endsWith('.json')) continue
      const raw = await this.ctx.datastore.read(e.path)
      if (!raw) continue
      let rec: Record<string, unknown>
      try {
        rec = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
      } catch (err) {
        throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `table metadata ${e.path} is not valid JSON`, {
          cause: err,
        })
      }
      const problems: string[] = []
      const name = typeof rec.name === 'string' ? rec.name : e.path.slice(dir.length + 1, -5)
      const { namespace: _ignored, name: _n, ...rest } = rec
      const table = parseTable(name, rest, e.path, problems, anchovyId === this.ctx.anchovyId ? null : anchovyId)
      if (problems.length) throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', problems.join('; '))
      tables.push(table)
    }
    return tables
  }

  /** Writes table records (called after the commit record exists). */
  async apply(records: readonly Record<string, unknown>[]): Promise<void> {
    const dir = `${anchovyHome(this.ctx)}/$tables`
    await Promise.all(
      records.map((r) =>
        this.ctx.datastore.write(`${dir}/${validateName('table name', String(r.name))}.json`, JSON.stringify(r)),
      ),
    )
  }

  /** The record `apply` writes for a table. */
  record(table: Table): Record<string, unknown> {
    return tableRecord(table)
  }
}

/** One task log record (one JSON file per task). */
export interface TaskRecord {
  readonly anchovy_id: string
  readonly anchovy_user: string
  readonly session_id: string
  readonly batch_id: string | null
  readonly operator: string
  readonly task_type: string
  readonly task_key: string
  readonly tbl: string | null
  readonly status: 'OK' | 'ERR'
  readonly started_at: string
  readonly completed_at: string
  readonly timestamp: string
  readonly duration: number
  readonly thread_id: string
  readonly data: Record<string, unknown>
}

/** Task logs in `<user>/<id>/$task_logs/<session>-<batch>.<NNNN>.json` and results in `$results/`. */
export class TaskStore {
  constructor(protected readonly ctx: StoreContext) {}

  /** Where a task record goes. */
  protected taskPath(record: TaskRecord, counter: number): string {
    return `${anchovyHome(this.ctx)}/$task_logs/${record.session_id}-${record.batch_id ?? 'session'}.${String(counter).padStart(4, '0')}.json`
  }

  /** Writes a task record; never overwrites an existing one. */
  async write(record: TaskRecord, counter: number, text: string): Promise<void> {
    let path = this.taskPath(record, counter)
    for (let i = 0; !(await this.ctx.datastore.createExclusive(path, text)); i++) {
      if (i > 5) throw new AnchoviesError('ANCH_ERR_DATASTORE', `task log ${path} exists already`)
      path = path.replace(/\.json$/, `.${randomBytes(2).toString('hex')}.json`)
    }
  }

  /** Writes the run results (latest + one per session). */
  async writeResults(sessionId: string, text: string): Promise<void> {
    const dir = `${anchovyHome(this.ctx)}/$results`
    await this.ctx.datastore.write(`${dir}/${resultsFile(this.ctx.settings)}`, text)
    await this.ctx.datastore.write(`${dir}/sessions/${sessionId}.json`, text)
  }

  /** Writes the service heartbeat (after every batch in service mode). */
  async writeHeartbeat(text: string): Promise<void> {
    await this.ctx.datastore.write(
      `${anchovyHome(this.ctx)}/$results/${resultsFile(this.ctx.settings, 'heartbeat')}`,
      text,
    )
  }

  /** The folder holding this anchovy's task logs (and nothing of another anchovy's). */
  protected logRoot(): string {
    return `${anchovyHome(this.ctx)}/$task_logs`
  }

  /**
   * Log retention: deletes task logs and per-session results last written before `cutoff`, except those of
   * `keepSession` (the run that prunes) and of every session a `$results/anchovy_run_results*.json` names (each
   * worker's latest run, which the healthcheck and readers of the results go by). A run still writing has fresh
   * files, so it is never touched. Returns how many files went.
   */
  async prune(cutoff: Date, keepSession: string): Promise<number> {
    const ds = this.ctx.datastore
    const results = `${anchovyHome(this.ctx)}/$results`
    const keep = new Set([keepSession])
    for (const e of await ds.list(results)) {
      const name = e.path.slice(results.length + 1)
      if (!/^anchovy_run_results(?:\.w\d+)?\.json$/.test(name)) continue
      try {
        const id = (JSON.parse((await ds.read(e.path))?.toString('utf8') ?? '') as { session_id?: unknown }).session_id
        if (typeof id === 'string') keep.add(id)
      } catch {
        // an unreadable latest results file names no session; the healthcheck reports it
      }
    }
    const sessionOf = (path: string): string => {
      const base = path.slice(path.lastIndexOf('/') + 1)
      return base.slice(0, base.search(/[-]|\.json$/) >>> 0)
    }
    let removed = 0
    for (const [dir, isFile] of [
      [this.logRoot(), (p: string) => p.endsWith('.json')],
      [`${results}/sessions`, (p: string) => p.endsWith('.json')],
    ] as const) {
      for (const e of await ds.list(dir)) {
        if (!isFile(e.path) || !(e.mtime.getTime() < cutoff.getTime()) || keep.has(sessionOf(e.path))) continue
        await ds.delete(e.path)
        removed++
      }
    }
    return removed
  }
}

/**
 * Task logs of every anchovy in one Hive-partitioned location for central monitoring:
 * `$task_logs/anchovy_user=<user>/anchovy_id=<id>/date=<yyyy-mm-dd>/<session>-<batch>.<NNNN>.json` at the root.
 */
export class HiveTaskStore extends TaskStore {
  protected override logRoot(): string {
    return joinPath(
      '$task_logs',
      `anchovy_user=${validateName('user', this.ctx.user)}`,
      `anchovy_id=${validateName('anchovy id', this.ctx.anchovyId)}`,
    )
  }

  protected override taskPath(record: TaskRecord, counter: number): string {
    return joinPath(
      '$task_logs',
      `anchovy_user=${validateName('user', this.ctx.user)}`,
      `anchovy_id=${validateName('anchovy id', this.ctx.anchovyId)}`,
      `date=${record.timestamp.slice(0, 10)}`,
      `${record.session_id}-${record.batch_id ?? 'session'}.${String(counter).padStart(4, '0')}.json`,
    )
  }
}

/** Writes one table's rows during a batch. */
export interface TableWriter {
  write(row: Row): Promise<void> | undefined
  /** Finishes writing; the files become visible only when the batch commits. */
  close(): Promise<WrittenFile[]>
  /** Discards what was written (deletes every file this writer finished, too). */
  abort(err?: Error): Promise<void> | void
  /** Uncompressed bytes written so far (optional: the batch size limit counts rows only without it). */
  readonly bytes?: number
}

/** The data files of an anchovy: gzip JSON lines under `data/<table>/`. */
export class DataBuffer {
  constructor(protected readonly ctx: StoreContext) {}

  /**
   * A writer for `table`'s rows in this batch; `unique` makes file names unique to the run and batch (recovery finds
   * the files of a batch that never committed by it, so every file name must contain `.<unique>-`); `columns` are
   * the table's declared types.
   */
  writer(table: string, unique: string, columns: Readonly<Record<string, ColumnType>> = {}): TableWriter {
    const dir = `${anchovyHome(this.ctx)}/data/${validateName('table name', table)}`
    const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)
    const maxBytes = Number(this.ctx.settings.data_file_max_bytes ?? 64 * 1024 * 1024)
    const level = Number(this.ctx.settings.data_compression_level ?? 1)
    const floats = new Set(Object.keys(columns).filter((c) => columns[c] === 'float'))
    return new DataFileWriter(
      this.ctx.datastore,
      (i) => `${dir}/${stamp}.${unique}-${String(i).padStart(4, '0')}.json.gz`,
      { maxBytes, level, ...(floats.size ? { floats } : {}) },
    )
  }

  /** Reads one data file's rows. */
  async *read(path: string, signal?: AbortSignal): AsyncGenerator<Row> {
    for await (const chunk of this.readChunks(path, signal)) yield* chunk
  }

  /**
   * Reads one data file's rows in arrays (one per decompressed block: the fast path); with `expected` (from its
   * commit record) a file that does not hold exactly that many rows and bytes fails, naming the file.
   */
  readChunks(path: string, signal?: AbortSignal, expected?: ExpectedContent): AsyncGenerator<Row[]> {
    return readDataFileChunks(this.ctx.datastore, path, signal, expected)
  }

  /** The data files of `table` of `anchovyId`, by name (for datastores without commit records). */
  async files(anchovyId: string, table: string): Promise<string[]> {
    const dir = `${anchovyHome(this.ctx, anchovyId)}/data/${validateName('table name', table)}`
    return (await this.ctx.datastore.list(dir)).filter((e) => e.path.endsWith('.json.gz')).map((e) => e.path)
  }
}
