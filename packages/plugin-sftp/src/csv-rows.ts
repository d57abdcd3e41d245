import { isUtf8 } from 'node:buffer'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { ColumnType, Row } from '@anchovies/core'
import { ENCODINGS, LINEAGE_COLUMNS, RATIO_FLOOR, type CsvTableSettings } from './config.js'
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
  const gz = s.compression === 'gzip' || (s.compression === 'auto' && file.path.toLowerCase().endsWith('.gz'))
  let source: AsyncIterable<Buffer> = bytes
  let gunzip: ReturnType<typeof createGunzip> | undefined
  if (gz) {
    gunzip = createGunzip({ chunkSize: 64 * 1024 })
    const input = Readable.from(bytes, { objectMode: false })
    const g = gunzip
    pipeline(input, g).catch((err: unknown) => g.destroy(err as Error))
    source = g
  }
  let inflated = 0
  /** Stops a decompression bomb as its bytes come out of gunzip (before they are decoded or parsed). */
  const checkInflated = (n: number): void => {
    inflated += n
    // The compressed bytes the inflater consumed so far (not those it buffered ahead: one 64 KiB chunk of a bomb
    // inflates to 64 MiB).
    const compressed = gunzip!.bytesWritten
    if (s.maxDecompressedBytes > 0 && inflated > s.maxDecompressedBytes) {
      throw new SftpError(
        'ANCH_ERR_SFTP_LIMIT',
        `/${file.path}: decompresses to more than max_decompressed_size (${s.maxDecompressedBytes} bytes); stopped. If the file is genuine, raise tbls.${s.table}.max_decompressed_size`,
      )
    }
    if (s.maxCompressionRatio > 0 && inflated > RATIO_FLOOR && inflated > s.maxCompressionRatio * compressed) {
      throw new SftpError(
        'ANCH_ERR_SFTP_LIMIT',
        `/${file.path}: ${compressed} compressed bytes decompressed to ${inflated} so far, more than max_compression_ratio (${s.maxCompressionRatio}:1) allows (a decompression bomb?); stopped. If the file is genuine, raise tbls.${s.table}.max_compression_ratio`,
      )
    }
  }
  const decoder = decoderFor(s)
  const rows: Row[] = []
  const builder = new RowBuilder(file, s, rows, onBad)
  const parser = new CsvParser(s, builder)
  try {
    for await (const chunk of source) {
      if (gz) checkInflated(chunk.length)
      const text = decoder.decode(chunk)
      if (decoder.invalid) builder.suspect = true
      parser.feed(text)
      if (rows.length) {
        yield rows.splice(0, rows.length)
      }
    }
    const rest = decoder.end()
    if (decoder.invalid) builder.suspect = true
    parser.feed(rest, true)
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

/**
 * Turns a file's bytes into text chunk by chunk. Invalid byte sequences are detected on the bytes (never by
 * looking for U+FFFD in the text: a file may hold a correctly encoded U+FFFD) and come out as a lone surrogate,
 * which no valid input decodes to; `invalid` says one was met.
 */
interface TextDecoding {
  decode(chunk: Buffer): string
  /** The end of the file: an incomplete sequence left over is invalid. */
  end(): string
  /** True once invalid bytes were met. */
  readonly invalid: boolean
}

/** What an invalid byte sequence decodes to: a lone surrogate, which valid UTF-8 or UTF-16 never gives. */
const INVALID = '\uDFFF'

/** True when `text` holds no lone surrogate (String.prototype.isWellFormed; Node 20 has it, the ES2023 lib does not type it). */
export function isWellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed()
}

function toWellFormed(text: string): string {
  return (text as unknown as { toWellFormed(): string }).toWellFormed()
}

function decoderFor(s: CsvTableSettings): TextDecoding {
  if (s.encoding === 'utf8') return new Utf8Decoding()
  if (s.encoding === 'utf16le') return new Utf16Decoding()
  if (s.encoding === 'latin1') return { decode: (chunk) => chunk.toString('latin1'), end: () => '', invalid: false }
  // windows-1252 maps every byte: nothing is invalid.
  const decoder = new TextDecoder(ENCODINGS[s.encoding])
  return { decode: (chunk) => decoder.decode(chunk, { stream: true }), end: () => decoder.decode(), invalid: false }
}

/** UTF-8, BOM removed: a native validity check per chunk (simdutf), a byte walk only for chunks that fail it. */
class Utf8Decoding implements TextDecoding {
  invalid = false
  private tail: Buffer | undefined
  private started = false

  decode(chunk: Buffer): string {
    let buf = this.tail ? Buffer.concat([this.tail, chunk]) : chunk
    this.tail = undefined
    const cut = incompleteUtf8Tail(buf)
    if (cut < buf.length) {
      this.tail = Buffer.from(buf.subarray(cut))
      buf = buf.subarray(0, cut)
    }
    if (!this.started && buf.length) {
      this.started = true
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3)
    }
    if (isUtf8(buf)) return buf.toString('utf8')
    this.invalid = true
    return decodeMarkingInvalid(buf)
  }

  end(): string {
    if (!this.tail) return ''
    this.tail = undefined
    this.invalid = true
    return INVALID
  }
}

/** Where a multi-byte sequence cut off by the end of `buf` starts (`buf.length` when none is). */
function incompleteUtf8Tail(buf: Buffer): number {
  const n = buf.length
  for (let back = 1; back <= 3 && back <= n; back++) {
    const b = buf[n - back]!
    if ((b & 0xc0) === 0x80) continue
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1
    return need > back ? n - back : n
  }
  return n
}

/** Length of the valid UTF-8 sequence at `i` (0 when the bytes there are not one), per RFC 3629. */
function utf8SequenceAt(buf: Buffer, i: number): number {
  const b = buf[i]!
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < buf.length && buf[i + k]! >= lo && buf[i + k]! <= hi
  if (b < 0x80) return 1
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0
  if (b === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0
  if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) return cont(1) && cont(2) ? 3 : 0
  if (b === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0
  if (b === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0
  if (b >= 0xf1 && b <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0
  if (b === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0
  return 0
}

function decodeMarkingInvalid(buf: Buffer): string {
  let out = ''
  let run = 0
  for (let i = 0; i < buf.length; ) {
    const len = utf8SequenceAt(buf, i)
    if (len) {
      i += len
      continue
    }
    out += buf.toString('utf8', run, i) + INVALID
    i++
    run = i
  }
  return out + buf.toString('utf8', run)
}

/** UTF-16LE, BOM removed: lone surrogates (invalid) pass through as they are; a pair cut by a chunk end waits. */
class Utf16Decoding implements TextDecoding {
  invalid = false
  private tail: Buffer | undefined
  private started = false

  decode(chunk: Buffer): string {
    let buf = this.tail ? Buffer.concat([this.tail, chunk]) : chunk
    this.tail = undefined
    let cut = buf.length & ~1
    if (cut >= 2) {
      const last = buf.readUInt16LE(cut - 2)
      if (last >= 0xd800 && last <= 0xdbff) cut -= 2
    }
    if (cut < buf.length) {
      this.tail = Buffer.from(buf.subarray(cut))
      buf = buf.subarray(0, cut)
    }
    let text = buf.toString('utf16le')
    if (!this.started && text.length) {
      this.started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    if (!isWellFormed(text)) this.invalid = true
    return text
  }

  end(): string {
    if (!this.tail) return ''
    this.tail = undefined
    this.invalid = true
    return INVALID
  }
}

/** Builds rows from parsed records: header, field count, types, lineage; reports bad rows. */
class RowBuilder {
  /** Set once the decoder met invalid bytes: from then on, fields are checked for the lone surrogates marking them. */
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
        if (!isWellFormed(fields[i]!)) {
          this.bad('ANCH_ERR_CSV_PARSE', line, names[i], `invalid ${this.s.encoding} byte sequence (shown as U+FFFD in raw)`, fields)
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
    if (this.s.lineage) {
      const clash = LINEAGE_COLUMNS.filter((c) => names.includes(c))
      if (clash.length) {
        throw new SftpError(
          'ANCH_ERR_CSV_PARSE',
          `/${this.file.path} line ${line}: the file has a column ${clash.join(' and ')}, which lineage: true also writes (its values would be lost); rename the column in the file or set tbls.${this.s.table}.lineage: false`,
        )
      }
    }
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
    this.onBad(new BadRowError(code, `/${this.file.path}`, line, column, reason, this.suspect ? toWellFormed(this.rawOf(fields)) : this.rawOf(fields)))
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

/**
 * Header names: trimmed; the file's own names keep them (first occurrence); an empty name becomes `column_<n>`
 * and a repeat `<name>_2`, `<name>_3`, … — always a name no other column has (`x,x,x_2` gives `x, x_3, x_2`), so
 * no column is ever lost. Linear in the header size whatever the names.
 */
export function headerNames(fields: string[]): string[] {
  const trimmed = fields.map((f) => f.trim())
  const names: (string | undefined)[] = trimmed.map(() => undefined)
  const used = new Set<string>()
  trimmed.forEach((t, i) => {
    if (t && !used.has(t)) {
      used.add(t)
      names[i] = t
    }
  })
  /** Per base name, the next suffix to try: each candidate is tried once, so this stays linear. */
  const next = new Map<string, number>()
  return trimmed.map((t, i) => {
    const own = names[i]
    if (own !== undefined) return own
    const base = t || `column_${i + 1}`
    if (!t && !used.has(base)) {
      used.add(base)
      return base
    }
    let n = next.get(base) ?? 2
    while (used.has(`${base}_${n}`)) n++
    next.set(base, n + 1)
    const name = `${base}_${n}`
    used.add(name)
    return name
  })
}
