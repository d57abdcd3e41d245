import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { ColumnType, Row } from '@anchovies/core'
import { ENCODINGS, type CsvTableSettings } from './config.js'
import { converterFor, type Converter } from './convert.js'
import { CsvParser } from './csv-parser.js'
import { BadRowError, SftpError } from './errors.js'
import type { RemoteFile } from './remote-fs.js'

/** Called with every bad row; throws to fail the table (`on_bad_row: fail`). */
export type BadRowHandler = (bad: BadRowError) => void

/**
 * Turns a file's bytes into rows, as they arrive: gunzip (`.gz` or `compression: gzip`), decode (BOM removed),
 * parse, check the field count, convert the values of typed columns. Yields the rows of each chunk as an array,
 * so memory stays bounded by the chunk size and the longest record, whatever the file size.
 */
export async function* readRows(bytes: AsyncIterable<Buffer>, file: RemoteFile, s: CsvTableSettings, onBad: BadRowHandler): AsyncGenerator<Row[]> {
  const gz = s.compression === 'gzip' || (s.compression === 'auto' && /\.gz$/i.test(file.path))
  let source: AsyncIterable<Buffer> = bytes
  let gunzip: ReturnType<typeof createGunzip> | undefined
  if (gz) {
    gunzip = createGunzip({ chunkSize: 64 * 1024 })
    const input = Readable.from(bytes, { objectMode: false })
    const g = gunzip
    pipeline(input, g).catch((err: unknown) => g.destroy(err as Error))
    source = g
  }
  const decode = decoderFor(s)
  const rows: Row[] = []
  const builder = new RowBuilder(file, s, rows, onBad)
  const parser = new CsvParser(s, builder)
  try {
    for await (const chunk of source) {
      const text = decode(chunk, false)
      if (!builder.suspect && text.includes('\uFFFD')) builder.suspect = true
      parser.feed(text)
      if (rows.length) {
        yield rows.splice(0, rows.length)
      }
    }
    parser.feed(decode(undefined, true), true)
    if (rows.length) yield rows.splice(0, rows.length)
  } catch (err) {
    if (gz && (err as { code?: string }).code?.startsWith('Z_')) {
      throw new SftpError('ANCH_ERR_CSV_PARSE', `/${file.path}: not a valid gzip file (${(err as { code: string }).code})`, { cause: err })
    }
    throw err
  } finally {
    gunzip?.destroy()
  }
}

function decoderFor(s: CsvTableSettings): (chunk: Buffer | undefined, final: boolean) => string {
  if (s.encoding === 'latin1') return (chunk) => (chunk ? chunk.toString('latin1') : '')
  const decoder = new TextDecoder(ENCODINGS[s.encoding])
  return (chunk, final) => (final ? decoder.decode() : decoder.decode(chunk, { stream: true }))
}

/** Builds rows from parsed records: header, field count, types, lineage; reports bad rows. */
class RowBuilder {
  /** Set once the decoded text held U+FFFD: from then on, fields are checked for invalid bytes. */
  suspect = false
  private names: string[] | undefined
  private converters: Converter[] = []
  /** Builds a row from fields that passed the count check: converted values, lineage. */
  private build: (fields: string[], line: number) => Row = () => ({})
  private readonly declared: string[]

  constructor(
    private readonly file: RemoteFile,
    private readonly s: CsvTableSettings,
    private readonly out: Row[],
    private readonly onBad: BadRowHandler,
  ) {
    this.declared = Object.keys(s.columns)
  }

  record(fields: string[], line: number): void {
    let names = this.names
    if (!names) {
      if (this.s.header) {
        this.setColumns(headerNames(fields), line)
        return
      }
      names = this.declared.length ? this.declared : fields.map((_, i) => `column_${i + 1}`)
      this.setColumns(names, line)
      names = this.names!
    }
    if (fields.length !== names.length) {
      this.bad('ANCH_ERR_CSV_PARSE', line, undefined, `expected ${names.length} fields, found ${fields.length} (ragged row)`, fields)
      return
    }
    if (this.suspect) {
      for (let i = 0; i < fields.length; i++) {
        if (fields[i]!.includes('\uFFFD')) {
          this.bad('ANCH_ERR_CSV_PARSE', line, names[i], `invalid ${this.s.encoding} byte sequence (decoded as U+FFFD)`, fields)
          return
        }
      }
    }
    let row: Row
    try {
      row = this.build(fields, line)
    } catch {
      // Find the first value that does not convert (converters are pure: running them again is harmless).
      const conv = this.converters
      for (let i = 0; i < fields.length; i++) {
        try {
          conv[i]!(fields[i]!)
        } catch (err) {
          this.bad('ANCH_ERR_CSV_VALUE', line, names[i], `${(err as Error).message} (column type ${this.typeOf(names[i]!)})`, fields)
          return
        }
      }
      throw new Error('a row failed to build although every value converts')
    }
    this.out.push(row)
  }

  issue(line: number, reason: string, raw: string): void {
    this.onBad(new BadRowError('ANCH_ERR_CSV_PARSE', `/${this.file.path}`, line, undefined, reason, raw))
  }

  private setColumns(names: string[], line: number): void {
    if (this.s.header) {
      const missing = this.declared.filter((c) => !names.includes(c))
      if (missing.length) {
        throw new SftpError(
          'ANCH_ERR_CSV_PARSE',
          `/${this.file.path} line ${line}: the header has no column ${missing.map((c) => JSON.stringify(c)).join(', ')} declared in columns (header: ${names.slice(0, 20).join(', ')})`,
        )
      }
    }
    this.names = names
    this.converters = names.map((n) => converterFor(this.typeOf(n), this.s))
    this.build = rowBuilder(names, this.converters, names.map((n) => this.typeOf(n) === 'str' && !this.s.nullValues.length), this.s.lineage ? this.file.path : undefined)
  }

  /** The declared type of a column (own keys only: a column may be called `__proto__`), else `str`. */
  private typeOf(name: string): ColumnType {
    return Object.hasOwn(this.s.columns, name) ? this.s.columns[name]! : 'str'
  }

  private bad(code: 'ANCH_ERR_CSV_PARSE' | 'ANCH_ERR_CSV_VALUE', line: number, column: string | undefined, reason: string, fields: string[]): void {
    this.onBad(new BadRowError(code, `/${this.file.path}`, line, column, reason, this.rawOf(fields)))
  }

  private rawOf(fields: string[]): string {
    const q = this.s.quote
    const d = this.s.delimiter
    return fields
      .map((f) => (q !== null && (f.includes(d) || f.includes(q) || /[\r\n]/.test(f)) ? `${q}${f.split(q).join(q + q)}${q}` : f))
      .join(d)
  }
}

/**
 * A function building a file's rows as object literals with the column names as constant keys, so every row
 * gets the same shape at once (V8 then keeps one hidden class, and sinks read rows fast) instead of one keyed
 * store per value. Plain `str` columns are copied without a converter call. Names that an object literal
 * cannot take as own keys (`__proto__`) and very wide files use the generic loop.
 */
function rowBuilder(names: string[], conv: Converter[], plain: boolean[], lineageFile: string | undefined): (fields: string[], line: number) => Row {
  if (names.includes('__proto__') || names.length > 1000) {
    return (fields, line) => {
      const row: Row = {}
      for (let i = 0; i < fields.length; i++) {
        const name = names[i]!
        if (name === '__proto__') Object.defineProperty(row, name, { value: conv[i]!(fields[i]!), enumerable: true, writable: true, configurable: true })
        else row[name] = conv[i]!(fields[i]!)
      }
      if (lineageFile !== undefined) {
        row._file = lineageFile
        row._line = line
      }
      return row
    }
  }
  const props = names.map((n, i) => `${JSON.stringify(n)}: ${plain[i] ? `f[${i}]` : `c[${i}](f[${i}])`}`)
  if (lineageFile !== undefined) props.push('"_file": file', '"_line": line')
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const make = new Function('c', 'file', `"use strict"; return function buildRow(f, line) { return { ${props.join(', ')} } }`)
  return make(conv, lineageFile) as (fields: string[], line: number) => Row
}

/** Header names: trimmed; empty ones become `column_<n>`; repeats get `_2`, `_3`, …. */
function headerNames(fields: string[]): string[] {
  const seen = new Map<string, number>()
  return fields.map((f, i) => {
    const base = f.trim() || `column_${i + 1}`
    const n = (seen.get(base) ?? 0) + 1
    seen.set(base, n)
    return n === 1 ? base : `${base}_${n}`
  })
}
