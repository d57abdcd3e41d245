import { DateTime, type Datastore, type Row, type ColumnType } from '@anchovies/core'
import { coerceDeclared, declaredType, fits, stateFor, widenFor, type ColumnState } from './column-types.js'
import type { Compression } from './compression.js'
import { partName, partitionValue, rankOf, stagingDir, type PartitionSpec } from './layout.js'
import type { LoadFile, SchemaChange } from './load-log.js'
import { ParquetFile } from './parquet-file.js'

/** The columns every row gets besides its own. */
export const SEQ_COLUMN = '_seq'
export const LOADED_AT_COLUMN = '_loaded_at'
const RESERVED = new Set([SEQ_COLUMN, LOADED_AT_COLUMN])

/** How a load writes its files. */
export interface LoadOptions {
  readonly compression: Compression
  readonly rowGroupRows: number
  readonly fileMaxRows: number
  readonly fileMaxBytes: number
  readonly partition: PartitionSpec | undefined
  /** Files open at once (one per partition) before the least recently used is finished. */
  readonly maxOpenFiles: number
  /** Declared column types (`tbls.<name>.columns`): string values are converted to them. */
  readonly declared: Readonly<Record<string, ColumnType>>
}

/** A row waiting for its row group, with its `_seq`. */
interface Pending {
  readonly row: Row
  readonly seq: number
}

interface OpenFile {
  readonly file: ParquetFile
  readonly version: number
  readonly partition: string | undefined
  firstSeq: number
  lastSeq: number
  min: ReturnType<typeof rankOf>
  max: ReturnType<typeof rankOf>
  minText: string | undefined
  maxText: string | undefined
}

/**
 * Writes one load's rows as staged Parquet files: rows are buffered up to a row group, the dataset's schema is
 * widened to hold them (a change starts new files: old files are never rewritten), and each partition streams into
 * its own file, rolled at `fileMaxRows`/`fileMaxBytes`. Nothing is visible to readers until the load commits.
 */
export class LoadWriter {
  private buffer: Pending[] = []
  private readonly open = new Map<string, OpenFile>()
  private readonly finished: LoadFile[] = []
  private columns: ColumnState[]
  private readonly byName = new Map<string, number>()
  private version = 0
  private fileCount = 0
  private nextSeq: number
  readonly changes: SchemaChange[] = []
  private readonly loadedAt: DateTime
  private readonly staging: string

  constructor(
    private readonly ds: Datastore,
    private readonly base: string,
    private readonly load: number,
    private readonly firstSeq: number,
    columns: readonly ColumnState[],
    loadedAt: Date,
    private readonly options: LoadOptions,
    tag: string,
  ) {
    this.columns = columns.map((c) => ({ ...c }))
    this.columns.forEach((c, i) => this.byName.set(c.name, i))
    this.nextSeq = firstSeq
    this.loadedAt = DateTime.fromDate(loadedAt)
    this.staging = `${stagingDir(base)}/${String(load).padStart(10, '0')}-${tag}`
  }

  /** Rows taken so far. */
  get rows(): number {
    return this.nextSeq - this.firstSeq
  }

  /** The dataset's columns as this load leaves them. */
  get schema(): readonly ColumnState[] {
    return this.columns
  }

  /** Adds rows; writes a row group when the buffer is full. */
  async add(rows: readonly Row[]): Promise<void> {
    const declared = this.options.declared
    for (const row of rows) {
      for (const col in declared) {
        if (Object.hasOwn(row, col)) {
          const v = row[col]
          if (typeof v === 'string' || typeof v === 'bigint') row[col] = coerceDeclared(declared[col]!, v) as Row[string]
        }
      }
      this.buffer.push({ row, seq: this.nextSeq++ })
      if (this.buffer.length >= this.options.rowGroupRows) await this.flush()
    }
  }

  /** Writes what is buffered and finishes every file; returns the files (staged paths and final names). */
  async finish(): Promise<LoadFile[]> {
    await this.flush()
    for (const key of [...this.open.keys()]) await this.closeFile(key)
    return this.finished
  }

  /** Discards every file written (they were only staged). */
  async abort(): Promise<void> {
    for (const f of this.open.values()) f.file.abort()
    this.open.clear()
    for (const f of this.finished) await this.ds.delete(f.staged).catch(() => undefined)
  }

  private async flush(): Promise<void> {
    const pending = this.buffer
    if (pending.length === 0) return
    this.buffer = []
    this.widen(pending)
    const spec = this.options.partition
    if (!spec) return this.writeRows(undefined, pending)
    const groups = new Map<string, Pending[]>()
    for (const p of pending) {
      const key = `${spec.key}=${partitionValue(spec, p.row[spec.column])}`
      let g = groups.get(key)
      if (!g) groups.set(key, (g = []))
      g.push(p)
    }
    for (const [key, g] of groups) await this.writeRows(key, g)
  }

  /** Widens the schema to hold every value of `pending`; records new columns and widened types. */
  private widen(pending: readonly Pending[]): void {
    const declared = this.options.declared
    let changed = false
    for (const { row } of pending) {
      for (const name in row) {
        if (!Object.hasOwn(row, name) || RESERVED.has(name)) continue
        const v = row[name]
        const at = this.byName.get(name)
        if (at === undefined) {
          if (v === null || v === undefined) {
            if (!Object.hasOwn(declared, name)) continue
            this.addColumn({ name, type: declaredType(declared[name]!), scale: 0 })
          } else this.addColumn(Object.hasOwn(declared, name) ? declaredState(name, declared[name]!, v) : stateFor(name, v))
          changed = true
          continue
        }
        const col = this.columns[at]!
        const next = widenFor(col, v)
        if (next !== col) {
          this.changes.push({ load: this.load, column: name, from: describe(col), to: describe(next) })
          this.columns[at] = next
          changed = true
        }
      }
    }
    if (changed) this.version++
  }

  private addColumn(c: ColumnState): void {
    this.byName.set(c.name, this.columns.length)
    this.columns.push(c)
    this.changes.push({ load: this.load, column: c.name, from: null, to: describe(c) })
  }

  private async writeRows(partition: string | undefined, rows: Pending[]): Promise<void> {
    const key = partition ?? ''
    let at = 0
    while (at < rows.length) {
      let f = this.open.get(key)
      if (f && f.version !== this.version) {
        await this.closeFile(key)
        f = undefined
      }
      if (!f) f = await this.openFile(key, partition)
      const room = this.options.fileMaxRows - f.file.rows
      const part = rows.slice(at, at + room)
      at += part.length
      this.track(f, part)
      await f.file.writeGroup(
        part.map((p) => p.row),
        (c) => this.picker(c, part),
      )
      // Most recently used last: the first entry is the one to finish when too many are open.
      this.open.delete(key)
      this.open.set(key, f)
      if (f.file.rows >= this.options.fileMaxRows || f.file.bytes >= this.options.fileMaxBytes) await this.closeFile(key)
    }
  }

  /** How to read a column's value from a row (the bookkeeping columns come from the load). */
  private picker(c: ColumnState, part: readonly Pending[]): (row: Row) => unknown {
    if (c.name === SEQ_COLUMN) {
      let i = 0
      return () => part[i++]!.seq
    }
    if (c.name === LOADED_AT_COLUMN) return () => this.loadedAt
    const name = c.name
    return (row) => (Object.hasOwn(row, name) ? row[name] : undefined)
  }

  private track(f: OpenFile, part: readonly Pending[]): void {
    if (part.length === 0) return
    if (f.file.rows === 0) f.firstSeq = part[0]!.seq
    f.lastSeq = part.at(-1)!.seq
    const spec = this.options.partition
    if (!spec) return
    for (const { row } of part) {
      const v = row[spec.column]
      const r = rankOf(v)
      if (r === undefined) continue
      if (f.min === undefined || (typeof f.min === typeof r && r < f.min)) {
        f.min = r
        f.minText = rankText(v)
      }
      if (f.max === undefined || (typeof f.max === typeof r && r > f.max)) {
        f.max = r
        f.maxText = rankText(v)
      }
    }
  }

  private async openFile(key: string, partition: string | undefined): Promise<OpenFile> {
    while (this.open.size >= this.options.maxOpenFiles) await this.closeFile(this.open.keys().next().value!)
    const n = ++this.fileCount
    const columns: ColumnState[] = [...this.columns, { name: SEQ_COLUMN, type: 'int', scale: 0 }, { name: LOADED_AT_COLUMN, type: 'timestamptz', scale: 0 }]
    const file = new ParquetFile(this.ds, `${this.staging}/${String(n).padStart(5, '0')}.parquet.part`, columns, {
      compression: this.options.compression,
      kvMetadata: [{ key: 'anchovies.load', value: String(this.load) }],
    })
    const f: OpenFile = { file, version: this.version, partition, firstSeq: 0, lastSeq: 0, min: undefined, max: undefined, minText: undefined, maxText: undefined }
    this.open.set(key, f)
    return f
  }

  private async closeFile(key: string): Promise<void> {
    const f = this.open.get(key)
    if (!f) return
    this.open.delete(key)
    const done = await f.file.close()
    const n = Number(/(\d{5})\.parquet\.part$/.exec(done.path)![1])
    const folder = f.partition ? `${this.base}/${f.partition}` : this.base
    this.finished.push({
      path: `${folder}/${partName(this.load, n)}`,
      staged: done.path,
      rows: done.rows,
      bytes: done.bytes,
      first_seq: f.firstSeq,
      last_seq: f.lastSeq,
      ...(f.partition ? { partition: f.partition } : {}),
      ...(f.minText !== undefined ? { min: f.minText } : {}),
      ...(f.maxText !== undefined ? { max: f.maxText } : {}),
    })
  }
}

/** The first state of a declared column: its declared type when the value fits it (a `time` text), else the value's. */
function declaredState(name: string, t: ColumnType, v: unknown): ColumnState {
  const d = declaredType(t)
  return d === 'time' && fits('time', 0, v) ? { name, type: 'time', scale: 0 } : stateFor(name, v)
}

/** A column type as recorded in the manifest (`decimal(38,4)`). */
function describe(c: ColumnState): string {
  return c.type === 'decimal' ? `decimal(38,${c.scale})` : c.type
}

function rankText(v: unknown): string {
  if (v instanceof DateTime) return v.iso
  if (v instanceof Date) return v.toISOString()
  return String(v)
}
