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

/** One column of a row-group buffer: its raw values and where its state is in the dataset's columns. */
interface BufferedColumn {
  readonly name: string
  readonly values: unknown[]
  /** Where the column is in the load's columns (-1 until known). */
  at: number
}

/**
 * Rows waiting for their row group, held as columns of raw values: a row object is garbage as soon as it is
 * taken, and a column converts in one pass when the group is written.
 */
class GroupBuffer {
  n = 0
  readonly seqs: number[] = []
  readonly columns = new Map<string, BufferedColumn>()
  /** The previous row's columns in key order: rows of a table nearly always repeat it (skips the Map lookups). */
  order: BufferedColumn[] = []

  column(name: string): BufferedColumn {
    let c = this.columns.get(name)
    if (!c) {
      c = { name, values: this.n ? new Array<unknown>(this.n).fill(undefined) : [], at: -1 }
      this.columns.set(name, c)
    }
    return c
  }

  clear(): void {
    this.n = 0
    this.seqs.length = 0
    this.columns.clear()
    this.order = []
  }
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
 * Writes one load's rows as staged Parquet files: rows are buffered (as columns) up to a row group, the dataset's
 * schema is widened as values arrive (a change starts new files: old files are never rewritten), and each
 * partition streams into its own file, rolled at `fileMaxRows`/`fileMaxBytes`. Nothing is visible to readers until
 * the load commits.
 */
export class LoadWriter {
  private readonly buffers = new Map<string, GroupBuffer>()
  private buffered = 0
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
  private readonly declared: ReadonlyMap<string, ColumnType>

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
    this.declared = new Map(Object.entries(options.declared))
  }

  /** Rows taken so far. */
  get rows(): number {
    return this.nextSeq - this.firstSeq
  }

  /** The dataset's columns as this load leaves them. */
  get schema(): readonly ColumnState[] {
    return this.columns
  }

  /** Adds rows; writes the buffered row groups when they hold `rowGroupRows` rows. */
  async add(rows: readonly Row[]): Promise<void> {
    const spec = this.options.partition
    const declared = this.declared
    for (const row of rows) {
      let key = ''
      if (spec)
        key = `${spec.key}=${partitionValue(spec, Object.hasOwn(row, spec.column) ? row[spec.column] : undefined)}`
      let buf = this.buffers.get(key)
      if (!buf) this.buffers.set(key, (buf = new GroupBuffer()))
      const i = buf.n
      const order = buf.order
      let j = 0
      let sameOrder = true
      // for-in is the fastest walk over a plain row's keys; inherited keys are skipped like JSON does.
      const plain = Object.getPrototypeOf(row) === Object.prototype
      for (const name in row) {
        // The Set lookup only for names starting with `_` (95): it was a per-value cost.
        if ((!plain && !Object.hasOwn(row, name)) || (name.charCodeAt(0) === 95 && RESERVED.has(name))) continue
        let v = row[name]
        if (declared.size && (typeof v === 'string' || typeof v === 'bigint')) {
          const t = declared.get(name)
          if (t) v = coerceDeclared(t, v)
        }
        let c = sameOrder ? order[j] : undefined
        if (!c || c.name !== name) {
          if (sameOrder) {
            sameOrder = false
            order.length = j
          }
          c = buf.column(name)
        }
        if (!sameOrder) order.push(c)
        j++
        const values = c.values
        while (values.length < i) values.push(undefined)
        values.push(v)
        // Most values fit their column as it is: checked here without the name lookup of observe().
        const at = c.at
        if (at >= 0 && v !== null && v !== undefined) {
          const col = this.columns[at]!
          if (col.type === 'str' || fits(col.type, col.scale, v)) continue
        }
        c.at = this.observe(name, v)
      }
      if (sameOrder && order.length > j) order.length = j
      buf.seqs.push(this.nextSeq++)
      buf.n++
      if (++this.buffered >= this.options.rowGroupRows) await this.flush()
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

  /**
   * Widens the dataset's schema to hold `v` in column `name`; records new columns and widened types. Returns where
   * the column is in `columns` (-1 while it has none: a column seen only with NULLs and not declared).
   */
  private observe(name: string, v: unknown): number {
    const at = this.byName.get(name)
    if (at === undefined) {
      const t = this.declared.get(name)
      if (v === null || v === undefined) {
        if (t) this.addColumn({ name, type: declaredType(t), scale: 0 })
        return this.byName.get(name) ?? -1
      }
      this.addColumn(t ? declaredState(name, t, v) : stateFor(name, v))
      return this.byName.get(name)!
    }
    if (v === null || v === undefined) return at
    const col = this.columns[at]!
    if (fits(col.type, col.scale, v)) return at
    const next = widenFor(col, v)
    if (next === col) return at
    this.changes.push({ load: this.load, column: name, from: describe(col), to: describe(next) })
    this.columns[at] = next
    this.version++
    return at
  }

  private addColumn(c: ColumnState): void {
    this.byName.set(c.name, this.columns.length)
    this.columns.push(c)
    this.changes.push({ load: this.load, column: c.name, from: null, to: describe(c) })
    this.version++
  }

  private async flush(): Promise<void> {
    this.buffered = 0
    for (const [key, buf] of this.buffers) {
      if (buf.n === 0) continue
      await this.writeRows(key, buf)
      buf.clear()
    }
  }

  private async writeRows(key: string, buf: GroupBuffer): Promise<void> {
    const partition = this.options.partition ? key : undefined
    let at = 0
    while (at < buf.n) {
      let f = this.open.get(key)
      if (f && f.version !== this.version) {
        await this.closeFile(key)
        f = undefined
      }
      if (!f) f = await this.openFile(key, partition)
      const n = Math.min(this.options.fileMaxRows - f.file.rows, buf.n - at)
      const from = at
      const slice = (values: unknown[]): ArrayLike<unknown> =>
        from === 0 && n === buf.n ? values : values.slice(from, from + n)
      const seqs = slice(buf.seqs) as ArrayLike<number>
      this.track(
        f,
        seqs,
        this.options.partition
          ? buf.columns.get(this.options.partition.column)?.values.slice(from, from + n)
          : undefined,
      )
      await f.file.writeGroup(n, (c) => {
        if (c.name === SEQ_COLUMN) return seqs
        if (c.name === LOADED_AT_COLUMN) return new Array<unknown>(n).fill(this.loadedAt)
        const values = buf.columns.get(c.name)?.values
        return values && slice(values)
      })
      at += n
      // Most recently used last: the first entry is the one to finish when too many are open.
      this.open.delete(key)
      this.open.set(key, f)
      if (f.file.rows >= this.options.fileMaxRows || f.file.bytes >= this.options.fileMaxBytes)
        await this.closeFile(key)
    }
  }

  private track(f: OpenFile, seqs: ArrayLike<number>, values: readonly unknown[] | undefined): void {
    if (seqs.length === 0) return
    if (f.file.rows === 0) f.firstSeq = seqs[0]!
    f.lastSeq = seqs[seqs.length - 1]!
    if (!values) return
    for (const v of values) {
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
    const columns: ColumnState[] = [
      ...this.columns,
      { name: SEQ_COLUMN, type: 'int', scale: 0 },
      { name: LOADED_AT_COLUMN, type: 'timestamptz', scale: 0 },
    ]
    const file = new ParquetFile(this.ds, `${this.staging}/${String(n).padStart(5, '0')}.parquet.part`, columns, {
      compression: this.options.compression,
      kvMetadata: [{ key: 'anchovies.load', value: String(this.load) }],
    })
    const f: OpenFile = {
      file,
      version: this.version,
      partition,
      firstSeq: 0,
      lastSeq: 0,
      min: undefined,
      max: undefined,
      minText: undefined,
      maxText: undefined,
    }
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
