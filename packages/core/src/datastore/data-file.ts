import { once } from 'node:events'
import { StringDecoder } from 'node:string_decoder'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip, constants as zlibConstants, type Gzip, type ZlibOptions } from 'node:zlib'
import type { Writable } from 'node:stream'
import { AnchoviesError } from '../errors.js'
import type { Row } from '../types.js'
import { DateTime, LocalDate, formatDate } from '../values.js'
import type { Datastore } from './datastore.js'

/**
 * Encodes one row as a JSON line with the `_types` annotation shared with the Python implementation:
 * top-level dates (`D`), datetimes (`DT`, ISO with offset when aware) and bytes (`B`, lower-case hex).
 */
export function encodeRow(row: Row): string {
  let types = ''
  let out: Row | undefined
  for (const key in row) {
    const v = row[key]
    if (typeof v === 'object' && v !== null) {
      let text: string
      let code: string
      if (v instanceof Date) [text, code] = [formatDate(v), 'DT']
      else if (v instanceof DateTime) [text, code] = [v.iso, 'DT']
      else if (v instanceof LocalDate) [text, code] = [v.toString(), 'D']
      else if (ArrayBuffer.isView(v)) [text, code] = [Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'), 'B']
      else continue
      out ??= { ...row }
      out[key] = text
      types += types ? ` ${key}@${code}` : `${key}@${code}`
    } else if (typeof v === 'bigint') {
      out ??= { ...row }
      out[key] = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()
    }
  }
  if ('_types' in row) {
    out ??= { ...row }
    delete out._types
  }
  const json = JSON.stringify(out ?? row)
  const tail = `"_types":${types ? JSON.stringify(types) : '""'}}`
  return json.length === 2 ? `{${tail}` : `${json.slice(0, -1)},${tail}`
}

/** Restores the values a `_types` annotation names and removes the annotation (mutates and returns `obj`). */
export function decodeRow(obj: Row): Row {
  const types = obj._types
  delete obj._types
  if (typeof types === 'string' && types) {
    for (const part of types.split(' ')) {
      const pieces = part.split('@')
      if (pieces.length !== 2) continue
      const [col, code] = pieces as [string, string]
      const v = obj[col]
      if (typeof v !== 'string') continue
      if (code === 'DT') obj[col] = DateTime.parse(v)
      else if (code === 'D') obj[col] = LocalDate.parse(v)
      else if (code === 'B') obj[col] = Buffer.from(v, 'hex')
    }
  }
  return obj
}

/** A data file written by a DataFileWriter. */
export interface WrittenFile {
  readonly path: string
  readonly rows: number
  /** Uncompressed JSON bytes. */
  readonly bytes: number
}

/** Options of the gzip JSON-lines writer. */
export interface DataFileOptions {
  /** Roll over to a new file after this many uncompressed bytes. */
  readonly maxBytes: number
  /** gzip level 1–9. */
  readonly level: number
}

const FLUSH_AT = 64 * 1024

/** Writes rows to gzip JSON-lines files under `dir`, rolling over at `maxBytes`; files are unique by `nameFor`. */
export class DataFileWriter {
  private gzip: Gzip | undefined
  private done: Promise<void> | undefined
  private current: { path: string; rows: number; bytes: number } | undefined
  private pending = ''
  private readonly files: WrittenFile[] = []

  constructor(
    private readonly datastore: Datastore,
    private readonly nameFor: (index: number) => string,
    private readonly options: DataFileOptions,
  ) {}

  /** Appends a row; resolves when the buffer has room (back-pressure), or returns undefined right away. */
  write(row: Row): Promise<void> | undefined {
    const line = encodeRow(row) + '\n'
    if (!this.current) this.open()
    const cur = this.current!
    cur.rows++
    cur.bytes += Buffer.byteLength(line)
    this.pending += line
    if (this.pending.length >= FLUSH_AT) {
      const p = this.flush()
      if (cur.bytes >= this.options.maxBytes) return (p ?? Promise.resolve()).then(() => this.finishFile())
      return p
    }
    return undefined
  }

  /** Finishes the last file and returns every file written. */
  async close(): Promise<WrittenFile[]> {
    if (this.current) await this.finishFile()
    return [...this.files]
  }

  /** Stops writing and discards the file in progress. */
  abort(err?: Error): void {
    this.gzip?.destroy(err ?? new Error('aborted'))
    this.done?.catch(() => undefined)
    this.gzip = undefined
    this.current = undefined
  }

  private open(): void {
    const path = this.nameFor(this.files.length)
    this.gzip = createGzip({ level: this.options.level, chunkSize: 64 * 1024, memLevel: 9, strategy: zlibConstants.Z_DEFAULT_STRATEGY, writableHighWaterMark: 1024 * 1024 } as ZlibOptions)
    const out: Writable = this.datastore.writeStream(path)
    this.done = pipeline(this.gzip, out)
    this.done.catch(() => undefined)
    this.current = { path, rows: 0, bytes: 0 }
  }

  private flush(): Promise<void> | undefined {
    const chunk = this.pending
    this.pending = ''
    if (!chunk) return undefined
    if (!this.gzip!.write(chunk)) {
      return Promise.race([once(this.gzip!, 'drain').then(() => undefined), this.done!])
    }
    return undefined
  }

  private async finishFile(): Promise<void> {
    await this.flush()
    const cur = this.current!
    this.gzip!.end()
    await this.done
    this.files.push({ ...cur })
    this.gzip = undefined
    this.current = undefined
  }
}

/** Reads the rows of one gzip JSON-lines data file, restoring `_types`; errors name the file and line. */
export async function* readDataFile(datastore: Datastore, path: string, signal?: AbortSignal): AsyncGenerator<Row> {
  for await (const chunk of readDataFileChunks(datastore, path, signal)) yield* chunk
}

/** Like readDataFile, in arrays of rows (one per decompressed block). */
export async function* readDataFileChunks(datastore: Datastore, path: string, signal?: AbortSignal): AsyncGenerator<Row[]> {
  const input = await datastore.readStream(path)
  const gunzip = createGunzip({ chunkSize: 64 * 1024 })
  const piped = pipeline(input, gunzip).catch((err: unknown) => {
    throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `reading data file ${path}: ${(err as Error).message}`, { cause: err })
  })
  piped.catch(() => undefined)
  const decoder = new StringDecoder('utf8')
  let rest = ''
  let lineNo = 0
  const parse = (line: string): Row => {
    lineNo++
    try {
      return decodeRow(JSON.parse(line) as Row)
    } catch (err) {
      throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `data file ${path} line ${lineNo}: ${(err as Error).message}`, { cause: err })
    }
  }
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      signal?.throwIfAborted()
      const text = rest + decoder.write(chunk)
      const lines = text.split('\n')
      rest = lines.pop() ?? ''
      const rows: Row[] = []
      for (const line of lines) if (line) rows.push(parse(line))
      if (rows.length) yield rows
    }
    await piped
    rest += decoder.end()
    if (rest.trim()) yield [parse(rest)]
  } catch (err) {
    if (err instanceof AnchoviesError) throw err
    throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `reading data file ${path}: ${(err as Error).message}`, { cause: err })
  } finally {
    input.destroy()
    gunzip.destroy()
  }
}
