import { once } from 'node:events'
import { finished } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import { AnchoviesError, DateTime, type LocalDate, type Datastore } from '@anchovies/core'
import { ByteWriter, ParquetWriter } from 'hyparquet-writer'
import { asDecimal, dateTimeMicros, epochDays, jsonText, textOf, timeMicros, type ColumnState } from './column-types.js'
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

/**
 * The raw values of one column (holes and missing tail read as NULL), converted to what the Parquet writer encodes.
 *
 * One loop per type (measured: a per-value switch over the type, a BigInt per small integer and the regex behind
 * DateTime's micros made this a tenth of the uploader's CPU), and `raw` itself when nothing needs converting.
 */
export function columnValues(col: ColumnState, raw: ArrayLike<unknown> | undefined, n: number): unknown[] {
  if (raw === undefined) return new Array<unknown>(n).fill(null)
  switch (col.type) {
    case 'bool':
      return unchanged(raw, n, 'boolean') ?? convert(raw, n, (v) => v)
    case 'float':
      return unchanged(raw, n, 'number') ?? convert(raw, n, (v) => (typeof v === 'number' ? v : Number(v)))
    case 'int':
      return intValues(raw, n)
    case 'decimal': {
      const scale = 10n ** BigInt(col.scale)
      return convert(raw, n, (v) => {
        const d = asDecimal(v)!
        return d.unscaled * (scale / 10n ** BigInt(d.scale))
      })
    }
    case 'str':
      return textValues(raw, n)
    case 'timestamp':
    case 'timestamptz': {
      // Rows of one load often share a value (the same object, or the same text): the last conversion is reused.
      let last: unknown
      let lastMicros: bigint | undefined
      return convert(raw, n, (v) => {
        if (v !== last && !(v instanceof DateTime && last instanceof DateTime && v.iso === last.iso)) {
          last = v
          lastMicros = v instanceof Date ? BigInt(v.getTime()) * 1000n : dateTimeMicros(v as DateTime)
        }
        return lastMicros
      })
    }
    case 'date':
      return convert(raw, n, (v) => epochDays(v as LocalDate))
    case 'time':
      return convert(raw, n, (v) => timeMicros(v as string))
    case 'bytes':
      return convert(raw, n, (v) => {
        const b = v as ArrayBufferView
        return b instanceof Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
      })
    case 'json':
      return convert(raw, n, (v) => Buffer.from(jsonText(v)))
  }
}

/** `raw` itself when it is an array of `n` values, each null, undefined or of type `type` (the writer reads both nulls). */
function unchanged(raw: ArrayLike<unknown>, n: number, type: 'boolean' | 'number' | 'string'): unknown[] | undefined {
  if (!Array.isArray(raw) || raw.length !== n) return undefined
  for (let i = 0; i < n; i++) {
    const v: unknown = raw[i]
    if (typeof v !== type && v !== null && v !== undefined) return undefined
  }
  return raw as unknown[]
}

/** The values converted one by one (null and undefined give null). */
function convert(raw: ArrayLike<unknown>, n: number, f: (v: unknown) => unknown): unknown[] {
  const out = new Array<unknown>(n)
  const m = Math.min(n, raw.length)
  for (let i = 0; i < m; i++) {
    const v = raw[i]
    out[i] = v === null || v === undefined ? null : f(v)
  }
  for (let i = m; i < n; i++) out[i] = null
  return out
}

/** BigInts of small whole numbers, shared (qty-like columns repeat them; each BigInt() is an allocation). */
const SMALL_INTS: readonly bigint[] = Array.from({ length: 1024 }, (_, i) => BigInt(i))

function intValues(raw: ArrayLike<unknown>, n: number): unknown[] {
  return convert(raw, n, (v) => {
    if (typeof v === 'number') return v >= 0 && v < 1024 ? SMALL_INTS[v] : BigInt(v)
    return typeof v === 'bigint' ? v : v ? 1n : 0n
  })
}

/**
 * A text column for the writer. hyparquet-writer dictionary-encodes a column chunk when a sample says it repeats:
 * such chunks are handed over as JS strings (the dictionary is keyed by them and only its distinct values become
 * UTF-8), the others as UTF-8 bytes (its own per-value TextEncoder is several times slower than Buffer.from).
 * Either way the file is the same; a wrong guess only costs time.
 */
function textValues(raw: ArrayLike<unknown>, n: number): unknown[] {
  const texts = unchanged(raw, n, 'string') ?? convert(raw, n, textOf)
  if (dictionaryLikely(texts, n)) return texts
  const out = new Array<unknown>(n)
  for (let from = 0; from < n; from += SLAB) utf8Views(texts, from, Math.min(from + SLAB, n), out)
  return out
}

/**
 * Values per shared UTF-8 buffer. Small, because the writer keeps a column chunk's min and max values (views) until
 * the file is finished, and each keeps its whole buffer alive: with a buffer per row group, peak RSS grew by about
 * 100 MB over 5,000,000 rows.
 */
const SLAB = 256

/**
 * UTF-8 bytes of `texts[from..to)` into `out`, as views of one buffer encoded at once: 2–3 times faster than a
 * Buffer.from per value (measured on 20,000 short values). Offsets follow the string lengths, so only when every
 * character is ASCII (then, and only then, the UTF-8 bytes are as many as the UTF-16 units).
 */
function utf8Views(texts: readonly unknown[], from: number, to: number, out: unknown[]): void {
  const slab = texts.slice(from, to)
  const joined = slab.join('')
  const bytes = Buffer.from(joined, 'utf8')
  const ascii = bytes.length === joined.length
  let at = bytes.byteOffset
  for (let i = from; i < to; i++) {
    const v = texts[i] as string | null | undefined
    if (v === null || v === undefined) out[i] = null
    else if (!ascii) out[i] = Buffer.from(v, 'utf8')
    else {
      out[i] = new Uint8Array(bytes.buffer, at, v.length)
      at += v.length
    }
  }
}

/**
 * hyparquet-writer's own sampling (0.17, dictionary.js `useDictionary`): 1,000 values spread over the chunk, and no
 * dictionary when the distinct ones hold more than 90 % of the sampled bytes (each counted with its 4-byte length).
 */
export function dictionaryLikely(raw: ArrayLike<unknown>, n: number): boolean {
  const size = Math.min(n, 1000)
  const seen = new Set<unknown>()
  let distinct = 0
  let total = 0
  for (let i = 0; i < size; i++) {
    const at = size === 1 ? 0 : Math.floor((i * (n - 1)) / (size - 1))
    const v = at < raw.length ? raw[at] : undefined
    if (v === null || v === undefined) continue
    const bytes = (typeof v === 'string' ? v.length : 8) + 4
    total += bytes
    if (!seen.has(v)) {
      seen.add(v)
      distinct += bytes
    }
  }
  return total > 0 && distinct / total <= 0.9
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
