import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import { AnchoviesError, type DateTime, type LocalDate, type Datastore } from '@anchovies/core'
import { ByteWriter, ParquetWriter } from 'hyparquet-writer'
import { asDecimal, epochDays, epochMicros, jsonText, textOf, timeMicros, type ColumnState } from './column-types.js'
import { compressors, type Compression } from './compression.js'

/** One Parquet schema element, as hyparquet-writer takes it. */
type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]['schema'][number]

/** The Parquet schema element of a column (every column is OPTIONAL: NULLs are allowed everywhere). */
export function schemaElement(col: ColumnState): SchemaElement {
  const name = col.name
  const repetition_type = 'OPTIONAL' as const
  switch (col.type) {
    case 'bool':
      return { name, type: 'BOOLEAN', repetition_type }
    case 'int':
      return { name, type: 'INT64', repetition_type }
    case 'float':
      return { name, type: 'DOUBLE', repetition_type }
    case 'decimal':
      return {
        name,
        type: 'FIXED_LEN_BYTE_ARRAY',
        type_length: 16,
        converted_type: 'DECIMAL',
        logical_type: { type: 'DECIMAL', precision: 38, scale: col.scale },
        precision: 38,
        scale: col.scale,
        repetition_type,
      }
    case 'str':
      return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type }
    case 'timestamp':
      return {
        name,
        type: 'INT64',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: false, unit: 'MICROS' },
        repetition_type,
      }
    case 'timestamptz':
      return {
        name,
        type: 'INT64',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
        repetition_type,
      }
    case 'date':
      return { name, type: 'INT32', converted_type: 'DATE', logical_type: { type: 'DATE' }, repetition_type }
    case 'time':
      return {
        name,
        type: 'INT64',
        logical_type: { type: 'TIME', isAdjustedToUTC: false, unit: 'MICROS' },
        repetition_type,
      }
    case 'bytes':
      return { name, type: 'BYTE_ARRAY', repetition_type }
    case 'json':
      return { name, type: 'BYTE_ARRAY', logical_type: { type: 'JSON' }, repetition_type }
  }
}

/** The raw values of one column (holes and missing tail read as NULL), converted to what the Parquet writer encodes. */
export function columnValues(col: ColumnState, raw: ArrayLike<unknown> | undefined, n: number): unknown[] {
  const out = new Array<unknown>(n)
  const scale = 10n ** BigInt(col.scale)
  for (let i = 0; i < n; i++) {
    const v = raw === undefined ? undefined : raw[i]
    if (v === null || v === undefined) {
      out[i] = null
      continue
    }
    switch (col.type) {
      case 'bool':
        out[i] = v
        break
      case 'int':
        out[i] = typeof v === 'bigint' ? v : BigInt(typeof v === 'boolean' ? Number(v) : (v as number))
        break
      case 'float':
        out[i] = typeof v === 'number' ? v : Number(v)
        break
      case 'decimal': {
        const d = asDecimal(v)!
        out[i] = d.unscaled * (scale / 10n ** BigInt(d.scale))
        break
      }
      case 'str':
        // As UTF-8 bytes: hyparquet-writer encodes byte arrays several times faster than JS strings (same file).
        out[i] = Buffer.from(typeof v === 'string' ? v : textOf(v), 'utf8')
        break
      case 'timestamp':
      case 'timestamptz':
        out[i] = epochMicros(v as DateTime | Date)
        break
      case 'date':
        out[i] = epochDays(v as LocalDate)
        break
      case 'time':
        out[i] = timeMicros(v as string)
        break
      case 'bytes': {
        const b = v as ArrayBufferView
        out[i] = b instanceof Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
        break
      }
      case 'json':
        out[i] = Buffer.from(jsonText(v))
        break
    }
  }
  return out
}

/** Options of one Parquet file. */
export interface ParquetFileOptions {
  readonly compression: Compression
  /** Key/value metadata stored in the footer. */
  readonly kvMetadata?: readonly { key: string; value: string }[]
}

/**
 * A Parquet file streamed into a datastore object: row groups are encoded by hyparquet-writer and handed to the
 * datastore's write stream as they finish (back-pressure included), so memory holds one row group, not the file.
 */
export class ParquetFile {
  private readonly out: Writable
  private readonly done: Promise<void>
  private readonly sink: StreamWriter
  private readonly writer: ParquetWriter
  private readonly schema: SchemaElement[]
  /** Rows written so far. */
  rows = 0

  constructor(
    datastore: Datastore,
    readonly path: string,
    readonly columns: readonly ColumnState[],
    options: ParquetFileOptions,
  ) {
    this.out = datastore.writeStream(path)
    this.done = finished(this.out)
    this.done.catch(() => undefined)
    this.sink = new StreamWriter(this.out, this.done)
    this.schema = [{ name: 'schema', num_children: columns.length }, ...columns.map(schemaElement)]
    this.writer = new ParquetWriter({
      writer: this.sink,
      schema: this.schema,
      codec: options.compression === 'zstd' ? 'ZSTD' : 'SNAPPY',
      compressors: compressors(),
      createdBy: 'anchovies plugin-lake (hyparquet-writer)',
      ...(options.kvMetadata ? { kvMetadata: [...options.kvMetadata] } : {}),
    })
  }

  /** Bytes written so far (compressed). */
  get bytes(): number {
    return this.sink.offset
  }

  /** Writes `n` rows as one row group; `raw` gives a column's values (undefined: all NULL). */
  async writeGroup(n: number, raw: (col: ColumnState) => ArrayLike<unknown> | undefined): Promise<void> {
    if (n === 0) return
    // Columns are converted when the writer reaches them, and only the latest is kept: memory holds one converted
    // column at a time, not the whole row group twice.
    let cached: { index: number; data: unknown[] } | undefined
    const columnData = this.columns.map((c, index) => ({
      name: c.name,
      get data(): unknown[] {
        if (cached?.index !== index) cached = { index, data: columnValues(c, raw(c), n) }
        return cached.data
      },
    }))
    try {
      await this.writer.write({ columnData: columnData as never, rowGroupSize: n })
    } catch (err) {
      if (err instanceof AnchoviesError) throw err
      throw new AnchoviesError(
        'ANCH_ERR_LAKE_WRITE',
        `writing a row group to ${this.path}: ${(err as Error).message}`,
        { cause: err },
      )
    }
    this.rows += n
  }

  /** Writes the footer and waits until the object is stored. */
  async close(): Promise<{ path: string; rows: number; bytes: number }> {
    // JSON columns are encoded from our own JSON text (hyparquet-writer's JSON conversion turns big integers into
    // doubles); the legacy JSON annotation, which readers such as DuckDB look for, goes into the footer only.
    for (const e of this.schema) if (e.logical_type?.type === 'JSON') e.converted_type = 'JSON'
    await this.writer.finish()
    this.out.end()
    await this.done
    return { path: this.path, rows: this.rows, bytes: this.sink.offset }
  }

  /** Discards the file (nothing becomes visible). */
  abort(err?: Error): void {
    this.out.destroy(err ?? new Error('aborted'))
  }
}

/** hyparquet-writer's Writer over a Node stream: the buffer is handed to the stream after each row group. */
class StreamWriter extends ByteWriter {
  constructor(
    private readonly out: Writable,
    private readonly done: Promise<void>,
  ) {
    super(1 << 20)
  }

  flush(): Promise<void> | undefined {
    if (this.index === 0) return undefined
    const chunk = Buffer.from(new Uint8Array(this.buffer, 0, this.index))
    this.index = 0
    if (this.out.write(chunk)) return undefined
    return Promise.race([once(this.out, 'drain').then(() => undefined), this.done])
  }

  override finish(): Promise<void> | undefined {
    return this.flush()
  }
}
