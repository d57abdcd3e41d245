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

/** A clean point in a file, where reading can go on later: just before a record. */
export interface ReadPosition {
  /** Bytes of the file's content before the record (decompressed bytes, for a gzip file). */
  readonly offset: number
  /** The physical line the record starts on (1-based), so that messages and `_line` stay right after a resume. */
  readonly line: number
  /** The column names in effect (from the header, `columns` or the first record). */
  readonly columns: readonly string[]
}

/** Resuming a file, and reporting where reading got to. */
export interface ReadOptions {
  /**
   * Go on from this position. For a plain file `bytes` must start at `resume.offset`; for a gzip file (no seeking
   * into a deflate stream) at 0, and the first `resume.offset` decompressed bytes are dropped.
   */
  readonly resume?: ReadPosition | undefined
  /**
   * Set before each yield to the position right after the rows yielded so far (undefined when it is not known
   * exactly: lines being skipped, no header yet, invalid UTF-8 in the unfinished record).
   */
  readonly progress?: { position: ReadPosition | undefined }
}

/** True when the file is read through gunzip (`.gz` with `compression: auto`, or `compression: gzip`). */
export function isGzip(file: RemoteFile, s: CsvTableSettings): boolean {
  return s.compression === 'gzip' || (s.compression === 'auto' && file.path.toLowerCase().endsWith('.gz'))
}

/**
 * Turns a file's bytes into rows, as they arrive: gunzip (`.gz` or `compression: gzip`), decode (BOM removed),
 * parse, check the field count, convert the values of typed columns. Yields the rows of each chunk as an array,
 * so memory stays bounded by the chunk size and the longest record, whatever the file size.
 */
export async function* readRows(
  bytes: AsyncIterable<Buffer>,
  file: RemoteFile,
  s: CsvTableSettings,
  onBad: BadRowHandler,
  options: ReadOptions = {},
): AsyncGenerator<Row[]> {
  const gz = isGzip(file, s)
  const { resume, progress } = options
  /** Content bytes received so far (from the start of the file), and decompressed bytes still to drop. */
  let received = resume && !gz ? resume.offset : 0
  let toDrop = resume && gz ? resume.offset : 0
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
  const decoder = decoderFor(s, resume !== undefined)
  const rows: Row[] = []
  const builder = new RowBuilder(file, s, rows, onBad, resume)
  const parser = new CsvParser(s, builder, resume?.line)
  /** The position after the records parsed so far: what was received, less what waits in the decoder and parser. */
  const track = (): void => {
    if (!progress) return
    const pending = parser.pending()
    const columns = builder.columns
    const waiting = pending && columns ? decoder.byteLength(pending.text) : undefined
    progress.position =
      pending && columns && waiting !== undefined
        ? { offset: received - decoder.pendingBytes() - waiting, line: pending.line, columns }
        : undefined
  }
  try {
    for await (let chunk of source) {
      if (gz) checkInflated(chunk.length)
      if (toDrop > 0) {
        const dropped = Math.min(toDrop, chunk.length)
        toDrop -= dropped
        received += dropped
        if (dropped === chunk.length) continue
        chunk = chunk.subarray(dropped)
      }
      received += chunk.length
      const text = decoder.decode(chunk)
      if (decoder.invalid) builder.suspect = true
      parser.feed(text)
      if (rows.length) {
        track()
        yield rows.splice(0, rows.length)
      }
    }
    if (toDrop > 0)
      throw new SftpError(
        'ANCH_ERR_SFTP_FILE_CHANGED',
        `/${file.path}: decompresses to fewer bytes than the ${resume!.offset} already read`,
      )
    const rest = decoder.end()
    if (decoder.invalid) builder.suspect = true
    parser.feed(rest, true)
    if (rows.length) {
      track()
      yield rows.splice(0, rows.length)
    }
  } catch (err) {
    if (gz && (err as { code?: string }).code?.startsWith('Z_')) {
      throw new SftpError(
        'ANCH_ERR_CSV_PARSE',
        `/${file.path}: not a valid gzip file (${(err as { code: string }).code})`,
        { cause: err },
      )
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
  /** Bytes received but not decoded yet (a character cut by the end of a chunk). */
  pendingBytes(): number
  /** How many bytes of the file `text` (decoded by this) came from; undefined when that is not exact. */
  byteLength(text: string): number | undefined
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

/** `resumed`: decoding starts in the middle of the file, where a U+FEFF is data, not a byte order mark. */
function decoderFor(s: CsvTableSettings, resumed: boolean): TextDecoding {
  if (s.encoding === 'utf8') return new Utf8Decoding(resumed)
  if (s.encoding === 'utf16le') return new Utf16Decoding(resumed)
  // latin1 and windows-1252 map every byte to one UTF-16 unit: nothing is invalid, nothing waits.
  const oneByte = { invalid: false, pendingBytes: () => 0, byteLength: (text: string) => text.length }
  if (s.encoding === 'latin1') return { ...oneByte, decode: (chunk) => chunk.toString('latin1'), end: () => '' }
  const decoder = new TextDecoder(ENCODINGS[s.encoding])
  return { ...oneByte, decode: (chunk) => decoder.decode(chunk, { stream: true }), end: () => decoder.decode() }
}

/** UTF-8, BOM removed: a native validity check per chunk (simdutf), a byte walk only for chunks that fail it. */
class Utf8Decoding implements TextDecoding {
  invalid = false
  private tail: Buffer | undefined

  constructor(private started = false) {}

  pendingBytes(): number {
    return this.tail?.length ?? 0
  }

  /** Exact for well-formed text; text holding invalid bytes (one U+DFFF mark per byte) is not measured. */
  byteLength(text: string): number | undefined {
    return isWellFormed(text) ? Buffer.byteLength(text, 'utf8') : undefined
  }

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
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean =>
    i + k < buf.length && buf[i + k]! >= lo && buf[i + k]! <= hi
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

  constructor(private started = false) {}

  pendingBytes(): number {
    return this.tail?.length ?? 0
  }

  /** Two bytes per UTF-16 unit, lone surrogates included (they pass through as they are). */
  byteLength(text: string): number {
    return text.length * 2
  }

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

  /** `resume`: the columns were found before (header or first record), in an earlier run. */
  constructor(
    private readonly file: RemoteFile,
    private readonly s: CsvTableSettings,
    private readonly out: Row[],
    private readonly onBad: BadRowHandler,
    resume?: ReadPosition,
  ) {
    this.declared = Object.keys(s.columns)
    if (resume) this.setColumns([...resume.columns], resume.line)
  }

  /** The column names, once known. */
  get columns(): readonly string[] | undefined {
    return this.names
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
      this.bad(
        'ANCH_ERR_CSV_PARSE',
        line,
        undefined,
        `expected ${names.length} fields, found ${fields.length} (ragged row)`,
        fields,
      )
      return
    }
    if (this.suspect) {
      for (let i = 0; i < fields.length; i++) {
        if (!isWellFormed(fields[i]!)) {
          this.bad(
            'ANCH_ERR_CSV_PARSE',
            line,
            names[i],
            `invalid ${this.s.encoding} byte sequence (shown as U+FFFD in raw)`,
            fields,
          )
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
          this.bad(
            'ANCH_ERR_CSV_VALUE',
            line,
            names[i],
            `${(err as Error).message} (column type ${this.typeOf(names[i]!)})`,
            fields,
          )
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
    this.build = rowBuilder(
      names,
      this.converters,
      names.map((n) => this.typeOf(n) === 'str' && !this.s.nullValues.length),
      this.s.lineage ? this.file.path : undefined,
    )
  }

  /** The declared type of a column (own keys only: a column may be called `__proto__`), else `str`. */
  private typeOf(name: string): ColumnType {
    return Object.hasOwn(this.s.columns, name) ? this.s.columns[name]! : 'str'
  }

  private bad(
    code: 'ANCH_ERR_CSV_PARSE' | 'ANCH_ERR_CSV_VALUE',
    line: number,
    column: string | undefined,
    reason: string,
    fields: string[],
  ): void {
    this.onBad(
      new BadRowError(
        code,
        `/${this.file.path}`,
        line,
        column,
        reason,
        this.suspect ? toWellFormed(this.rawOf(fields)) : this.rawOf(fields),
      ),
    )
  }

  private rawOf(fields: string[]): string {
    const q = this.s.quote
    const d = this.s.delimiter
    return fields
      .map((f) =>
        q !== null && (f.includes(d) || f.includes(q) || /[\r\n]/.test(f)) ? `${q}${f.split(q).join(q + q)}${q}` : f,
      )
      .join(d)
  }
}

/**
 * A function building a file's rows as object literals with the column names as constant keys, so every row
 * gets the same shape at once (V8 then keeps one hidden class, and sinks read rows fast) instead of one keyed
 * store per value. Plain `str` columns are copied without a converter call. Names that an object literal
 * cannot take as own keys (`__proto__`) and very wide files use the generic loop.
 */
function rowBuilder(
  names: string[],
  conv: Converter[],
  plain: boolean[],
  lineageFile: string | undefined,
): (fields: string[], line: number) => Row {
  if (names.includes('__proto__') || names.length > 1000) {
    return (fields, line) => {
      const row: Row = {}
      for (let i = 0; i < fields.length; i++) {
        const name = names[i]!
        if (name === '__proto__')
          Object.defineProperty(row, name, {
            value: conv[i]!(fields[i]!),
            enumerable: true,
            writable: true,
            configurable: true,
          })
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
  const make = new Function(
    'c',
    'file',
    `"use strict"; return function buildRow(f, line) { return { ${props.join(', ')} } }`,
  )
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
