import { DateTime } from '@anchovies/core'
import { naiveText, utcText, type SqlType } from '../column-types.js'
import { decimalTextFits, mysqlDecimalFits } from '../dialects/mysql.js'
import { isoText } from '../dialects/sqlite.js'
import { FILE_WIDTH, SEQ_WIDTH, type FastFormat } from './format.js'

export type { FastFormat } from './format.js'

/**
 * The byte fast path's converter: the JSON lines of one decompressed data-file member → the dialect's bulk format
 * (PostgreSQL COPY text, MySQL/MariaDB `LOAD DATA` tab-separated text, or for SQLite one JSON array of row arrays
 * that `json_each` inserts), without a row object, a JSON.parse of the line or a string per value.
 *
 * Why by hand, and only this much: a CPU profile of the uploader at 300,000 rows × 8 columns (bench-sql) put 29% of
 * its time in `JSON.parse`, 10% in `decodeRow`/`restore`/`DateTime.parse` and 17% in the row checks and COPY
 * encoding, all on the main thread. This scanner does the line structure, keys, strings, numbers, booleans, nulls,
 * dates and datetimes byte by byte; rare types (json values, decimals given as numbers, floats that are not plain
 * integers) go through the same JavaScript functions the general path uses, on the decoded value only.
 *
 * It accepts a member only when it can prove the general path would write exactly the same values: every line is a
 * flat JSON object without whitespace, with no key escapes, no duplicate keys, no unknown column holding a value, a
 * string `_types` annotation whose codes fit their columns, and values that fit their column's type as they are.
 * Anything else returns `undefined` and the caller loads the member through the general path (which widens,
 * adds columns or reports the error with the file and line).
 */

/** One column of the layout being loaded, as the converter sees it. */
export interface FastColumn {
  readonly name: string
  readonly type: SqlType
  /** The declared type (`columns:` or `exact_decimals`), when the table declares one. */
  readonly declared?: string | undefined
  /** A `unique_by`/`set_by` column: a row without a value goes to the general path (which reports it). */
  readonly key: boolean
  /** MySQL: the most characters (UTF-16 units, as `textLength` counts) the staging column holds; none: unlimited. */
  readonly maxLength?: number | undefined
}

/** What converting one member produced. */
export interface ConvertedMember {
  /** COPY text: per row a 16-digit `_seq` placeholder (`0000000000000000`), a tab, the fields, a newline. */
  readonly copy: Uint8Array
  /** Byte offset of each row in `copy` (where its placeholder starts). */
  readonly starts: Uint32Array
  readonly rows: number
  /** MySQL: per column, the longest string value's length (the caller raises the column's length to it). */
  readonly lengths?: Uint32Array | undefined
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN = 0x7b
const CLOSE = 0x7d
const NL = 0x0a
const TAB = 0x09

// biome-ignore lint/suspicious/noConstEnum: tsc inlines the kinds into the per-byte loop; no bundler or isolatedModules here
const enum Kind {
  None = 0,
  Str,
  Num,
  True,
  False,
  Null,
  Nested,
}

const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$/
const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true })
const TYPES_KEY = Buffer.from('_types')
const ESC_RE = /[\\\n\r\t]/
const ESC_ALL = /[\\\n\r\t]/g
const ESC_MAP: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }
const TSV_RE = /[\\\t\n\r\0]/
const TSV_ALL = /[\\\t\n\r\0]/g
const TSV_MAP: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0' }

/** A compiled layout: column names as the bytes a key holds, and per-row scratch arrays. */
export class FastLayout {
  readonly names: Uint8Array[]
  readonly kinds: Uint8Array
  readonly starts: Int32Array
  readonly ends: Int32Array
  readonly escaped: Uint8Array
  readonly codes: Uint8Array
  private lastTypes: Uint8Array | undefined
  private lastCodes: Uint8Array | undefined

  constructor(
    readonly columns: readonly FastColumn[],
    readonly format: FastFormat = 'postgres',
  ) {
    // JSON.stringify writes names without escapes unless they hold quotes, backslashes or control characters;
    // keys with escapes never match (the converter refuses them), so such columns always take the general path.
    this.names = columns.map((c) => Buffer.from(c.name))
    const n = columns.length
    this.kinds = new Uint8Array(n)
    this.starts = new Int32Array(n)
    this.ends = new Int32Array(n)
    this.escaped = new Uint8Array(n)
    this.codes = new Uint8Array(n)
  }

  /** Column index of the key bytes `b[from, to)`, starting the search at `guess`; -1 when none. */
  find(b: Uint8Array, from: number, to: number, guess: number): number {
    const names = this.names
    const n = names.length
    for (let k = 0; k < n; k++) {
      let j = guess + k
      if (j >= n) j -= n
      const name = names[j]!
      if (name.length !== to - from) continue
      let same = true
      for (let i = 0; i < name.length; i++) {
        if (name[i] !== b[from + i]) {
          same = false
          break
        }
      }
      if (same) return j
    }
    return -1
  }

  /**
   * Annotation codes per column (1 = DT, 2 = D, 3 = B) for the `_types` string `b[from, to)`; undefined when it names
   * a code other than those (the caller refuses the member). Rows of a table repeat one annotation: the last is kept.
   */
  annotation(b: Uint8Array, from: number, to: number): Uint8Array | undefined {
    const last = this.lastTypes
    if (last && last.length === to - from) {
      let same = true
      for (let i = 0; i < last.length; i++) {
        if (last[i] !== b[from + i]) {
          same = false
          break
        }
      }
      if (same) return this.lastCodes
    }
    const text = utf8.decode(b.subarray(from, to))
    const codes = new Uint8Array(this.columns.length)
    if (text) {
      // As core's parseAnnotation: split on spaces, then on `@`; parts that do not split in two are ignored.
      for (const part of text.split(' ')) {
        const pieces = part.split('@')
        if (pieces.length !== 2) continue
        const [col, code] = pieces as [string, string]
        const c = code === 'DT' ? 1 : code === 'D' ? 2 : code === 'B' ? 3 : 0
        if (c === 0) return undefined
        const j = this.columns.findIndex((x) => x.name === col)
        // The first code for a column wins (restoring a value twice finds it no longer a string).
        if (j >= 0 && codes[j] === 0) codes[j] = c
      }
    }
    this.lastTypes = Uint8Array.from(b.subarray(from, to))
    this.lastCodes = codes
    return codes
  }
}

/** A growable output buffer for COPY text. */
class Out {
  buf: Buffer
  pos = 0
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(size, 1024))
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }
  ascii(s: string): void {
    this.ensure(s.length)
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i)
  }
  bytes(b: Uint8Array, from: number, to: number): void {
    this.ensure(to - from)
    // Short values byte by byte: a subarray per value costs more than the copy (profile: 3% of the worker).
    if (to - from < 64) {
      const buf = this.buf
      let p = this.pos
      for (let k = from; k < to; k++) buf[p++] = b[k]!
      this.pos = p
    } else {
      this.buf.set(b.subarray(from, to), this.pos)
      this.pos += to - from
    }
  }
  /** A JS string as UTF-8, escaped for COPY text (json values: the general path's `esc`). */
  text(s: string): void {
    const e = ESC_RE.test(s) ? s.replace(ESC_ALL, (m) => ESC_MAP[m]!) : s
    this.ensure(e.length * 3)
    this.pos += this.buf.write(e, this.pos)
  }
  /** A JS string as UTF-8, escaped for `LOAD DATA` (the general path's `tsv`). */
  tsv(s: string): void {
    this.raw(TSV_RE.test(s) ? s.replace(TSV_ALL, (m) => TSV_MAP[m]!) : s)
  }
  /** A JS string as UTF-8, as it is. */
  raw(s: string): void {
    this.ensure(s.length * 3)
    this.pos += this.buf.write(s, this.pos)
  }
  byte(c: number): void {
    this.ensure(1)
    this.buf[this.pos++] = c
  }
}

/** Length in UTF-16 units (`string.length`) of the valid UTF-8 `b[from, to)`: 4-byte sequences count two. */
function utf16Length(b: Uint8Array, from: number, to: number): number {
  let n = 0
  for (let k = from; k < to; k++) {
    const c = b[k]!
    if ((c & 0xc0) !== 0x80) n += c >= 0xf0 ? 2 : 1
  }
  return n
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 48 && c <= 57
}

/** End of the JSON number starting at `i` (strict JSON grammar), or -1. */
function numberEnd(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++
  if (b[i] === 48) i++
  else if (isDigit(b[i]) && b[i] !== 48) while (i < end && isDigit(b[i])) i++
  else return -1
  if (b[i] === 0x2e) {
    i++
    if (!isDigit(b[i])) return -1
    while (i < end && isDigit(b[i])) i++
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++
    if (b[i] === 0x2b || b[i] === 0x2d) i++
    if (!isDigit(b[i])) return -1
    while (i < end && isDigit(b[i])) i++
  }
  return i
}

/**
 * End (index after the closing quote) of the JSON string whose opening quote is at `i`, or -1 for raw control
 * characters (JSON forbids them) or a bad escape. `flags[0]` is set to 1 when the string holds escapes.
 */
function stringEnd(b: Uint8Array, i: number, end: number, flags: Uint8Array): number {
  flags[0] = 0
  for (i++; i < end; i++) {
    const c = b[i]!
    if (c === QUOTE) return i + 1
    if (c < 0x20) return -1
    if (c === BACKSLASH) {
      flags[0] = 1
      const e = b[++i]
      if (e === 0x75) {
        for (let k = 1; k <= 4; k++) if (!isHex(b[i + k])) return -1
        i += 4
      } else if (
        e !== QUOTE &&
        e !== BACKSLASH &&
        e !== 0x2f &&
        e !== 0x62 &&
        e !== 0x66 &&
        e !== 0x6e &&
        e !== 0x72 &&
        e !== 0x74
      )
        return -1
    }
  }
  return -1
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))
}

/** End of the nested JSON value (object or array) at `i`: brackets counted outside strings; JSON.parse validates it. */
function nestedEnd(b: Uint8Array, i: number, end: number, flags: Uint8Array): number {
  let depth = 0
  for (; i < end; i++) {
    const c = b[i]!
    if (c === QUOTE) {
      const e = stringEnd(b, i, end, flags)
      if (e < 0) return -1
      i = e - 1
    } else if (c === OPEN || c === 0x5b) depth++
    else if (c === CLOSE || c === 0x5d) {
      depth--
      if (depth === 0) return i + 1
    }
  }
  return -1
}

function literalAt(b: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word.charCodeAt(k)) return false
  return true
}

/**
 * Copies the inside of a JSON string `b[from, to)` (escapes decoded) to `out` as COPY text; false for a NUL
 * (PostgreSQL text cannot hold it: the general path's error is the one to report).
 */
function copyString(b: Uint8Array, from: number, to: number, out: Out, escaped: boolean): boolean {
  if (!escaped) {
    // Raw UTF-8 (the member was checked to be valid UTF-8); only tab, CR, LF and backslash need COPY escapes and
    // JSON forbids the first three raw and escapes the fourth, so raw bytes go through as they are.
    out.bytes(b, from, to)
    return true
  }
  out.ensure((to - from) * 2)
  const buf = out.buf
  for (let i = from; i < to; i++) {
    const c = b[i]!
    if (c !== BACKSLASH) {
      buf[out.pos++] = c
      continue
    }
    const e = b[++i]!
    let unit: number
    switch (e) {
      case 0x6e:
        buf[out.pos++] = BACKSLASH
        buf[out.pos++] = 0x6e
        continue
      case 0x72:
        buf[out.pos++] = BACKSLASH
        buf[out.pos++] = 0x72
        continue
      case 0x74:
        buf[out.pos++] = BACKSLASH
        buf[out.pos++] = 0x74
        continue
      case BACKSLASH:
        buf[out.pos++] = BACKSLASH
        buf[out.pos++] = BACKSLASH
        continue
      case 0x62:
        buf[out.pos++] = 0x08
        continue
      case 0x66:
        buf[out.pos++] = 0x0c
        continue
      case 0x75:
        unit = hex4(b, i + 1)
        i += 4
        break
      default:
        buf[out.pos++] = e // `"` or `/`
        continue
    }
    if (unit === 0) return false
    if (unit < 0x80) {
      if (unit === BACKSLASH || unit === NL || unit === 0x0d || unit === TAB) {
        buf[out.pos++] = BACKSLASH
        buf[out.pos++] = unit === BACKSLASH ? BACKSLASH : unit === NL ? 0x6e : unit === 0x0d ? 0x72 : 0x74
      } else buf[out.pos++] = unit
      continue
    }
    let cp = unit
    if (unit >= 0xd800 && unit <= 0xdbff && b[i + 1] === BACKSLASH && b[i + 2] === 0x75) {
      const low = hex4(b, i + 3)
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
        i += 6
      }
    }
    // A lone surrogate becomes U+FFFD, as Buffer.write encodes it. Output never outgrows 2 bytes per input byte.
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd
    if (cp < 0x800) {
      buf[out.pos++] = 0xc0 | (cp >> 6)
      buf[out.pos++] = 0x80 | (cp & 0x3f)
    } else if (cp < 0x10000) {
      buf[out.pos++] = 0xe0 | (cp >> 12)
      buf[out.pos++] = 0x80 | ((cp >> 6) & 0x3f)
      buf[out.pos++] = 0x80 | (cp & 0x3f)
    } else {
      buf[out.pos++] = 0xf0 | (cp >> 18)
      buf[out.pos++] = 0x80 | ((cp >> 12) & 0x3f)
      buf[out.pos++] = 0x80 | ((cp >> 6) & 0x3f)
      buf[out.pos++] = 0x80 | (cp & 0x3f)
    }
  }
  return true
}

function hex4(b: Uint8Array, at: number): number {
  let v = 0
  for (let k = 0; k < 4; k++) {
    const c = b[at + k]!
    v = v * 16 + (c <= 57 ? c - 48 : c <= 70 ? c - 55 : c - 87)
  }
  return v
}

/** Whether `b[from, to)` is a datetime DateTime.parse accepts on its quick path; 1 aware, 0 naive, -1 no. */
function datetimeKind(b: Uint8Array, from: number, to: number): number {
  const n = to - from
  const at = (k: number): number => b[from + k]!
  const digits = (k: number, count: number): boolean => {
    for (let i = k; i < k + count; i++) if (!isDigit(b[from + i])) return false
    return true
  }
  if (n < 16 || at(4) !== 45 || at(7) !== 45 || at(13) !== 58) return -1
  const sep = at(10)
  if ((sep !== 84 && sep !== 32) || !digits(0, 4) || !digits(5, 2) || !digits(8, 2) || !digits(11, 2) || !digits(14, 2))
    return -1
  let i = 16
  if (i < n && at(i) === 58) {
    if (i + 3 > n || !digits(i + 1, 2)) return -1
    i += 3
    if (i < n && at(i) === 46) {
      let j = i + 1
      while (j < n && j <= i + 9 && isDigit(at(j))) j++
      if (j === i + 1) return -1
      i = j
    }
  }
  if (i === n) return 0
  const c = at(i)
  if (c === 90) return i + 1 === n ? 1 : -1
  if (c !== 43 && c !== 45) return -1
  if (i + 3 > n || !digits(i + 1, 2)) return -1
  const colon = i + 3 < n && at(i + 3) === 58 ? 1 : 0
  if (i + 5 + colon !== n || !digits(i + 3 + colon, 2)) return -1
  return 1
}

/** Whether `b[from, to)` is `YYYY-MM-DD` with ASCII digits (LocalDate.parse's shape; it writes the same text back). */
function isDate(b: Uint8Array, from: number, to: number): boolean {
  if (to - from !== 10 || b[from + 4] !== 45 || b[from + 7] !== 45) return false
  for (const k of [0, 1, 2, 3, 5, 6, 8, 9]) if (!isDigit(b[from + k])) return false
  return true
}

function latin1(b: Uint8Array, from: number, to: number): string {
  return Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('latin1')
}

/**
 * Whether `s` is a decimal number (`[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?`), the shape
 * coerceDeclared accepts for exact decimals.
 */
function isDecimalText(s: string): boolean {
  let i = 0
  const n = s.length
  if (s[0] === '+' || s[0] === '-') i++
  let digits = 0
  while (i < n && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++, digits++
  if (s[i] === '.') {
    i++
    while (i < n && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++, digits++
  }
  if (digits === 0) return false
  if (i === n) return true
  if (s[i] !== 'e' && s[i] !== 'E') return false
  i++
  if (s[i] === '+' || s[i] === '-') i++
  const e = i
  while (i < n && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++
  return i > e && i === n
}

/**
 * Converts the JSON lines `b` (one whole member: valid UTF-8, ending with a newline) into COPY text for `layout`,
 * or returns undefined when any line needs the general path. `jsonText` is plugin-sql's JSON encoder for json columns.
 */
export function convertMember(
  b: Uint8Array,
  layout: FastLayout,
  jsonText: (v: unknown) => string,
): ConvertedMember | undefined {
  const end = b.length
  if (end > 0 && b[end - 1] !== NL) return undefined
  const cols = layout.columns
  const ncols = cols.length
  if (ncols === 0) return undefined
  const { kinds, starts, ends, escaped } = layout
  const out = new Out(end + (end >> 2))
  const PG = layout.format === 'postgres'
  const MY = layout.format === 'mysql'
  const SL = layout.format === 'sqlite'
  const lengths = MY ? new Uint32Array(ncols) : undefined
  let rowStarts = new Uint32Array(Math.max(16, end >> 6))
  let rows = 0
  const flags = new Uint8Array(1)
  let i = 0
  while (i < end) {
    if (b[i] === NL) {
      i++ // an empty line: not a row (the general path skips it too)
      continue
    }
    if (b[i] !== OPEN) return undefined
    kinds.fill(Kind.None)
    let typesFrom = -1
    let typesTo = -1
    let guess = 0
    i++
    if (b[i] === CLOSE) i++
    else {
      for (;;) {
        if (b[i] !== QUOTE) return undefined
        const keyFrom = i + 1
        let k = keyFrom
        while (k < end && b[k] !== QUOTE && b[k] !== BACKSLASH && b[k]! >= 0x20) k++
        if (b[k] !== QUOTE) return undefined
        const keyTo = k
        if (b[k + 1] !== COLON) return undefined
        i = k + 2
        const c = b[i]
        let kind: Kind
        let vFrom = i
        let vTo: number
        if (c === QUOTE) {
          vTo = stringEnd(b, i, end, flags)
          if (vTo < 0) return undefined
          kind = Kind.Str
        } else if (c === 0x74) {
          if (!literalAt(b, i, 'true')) return undefined
          vTo = i + 4
          kind = Kind.True
        } else if (c === 0x66) {
          if (!literalAt(b, i, 'false')) return undefined
          vTo = i + 5
          kind = Kind.False
        } else if (c === 0x6e) {
          if (!literalAt(b, i, 'null')) return undefined
          vTo = i + 4
          kind = Kind.Null
        } else if (c === OPEN || c === 0x5b) {
          vTo = nestedEnd(b, i, end, flags)
          if (vTo < 0) return undefined
          kind = Kind.Nested
        } else {
          vTo = numberEnd(b, i, end)
          if (vTo < 0) return undefined
          kind = Kind.Num
        }
        // `_types` is the format's own key, never a column (decodeRow removes it).
        const j = isTypesKey(b, keyFrom, keyTo) ? -2 : layout.find(b, keyFrom, keyTo, guess)
        if (j === -2) {
          // `_types`: only the string form (the object form is rare: the general path reads it).
          if (kind !== Kind.Str || typesFrom >= 0 || flags[0]) return undefined
          typesFrom = vFrom + 1
          typesTo = vTo - 1
        } else if (j < 0) {
          // An unknown column: a null is ignored (the general path skips nulls before looking at the name).
          if (kind !== Kind.Null) return undefined
        } else {
          if (kinds[j] !== Kind.None) return undefined // a duplicate key (JSON.parse keeps the last one)
          kinds[j] = kind
          if (kind === Kind.Str) {
            vFrom++
            escaped[j] = flags[0]!
          }
          starts[j] = vFrom
          ends[j] = kind === Kind.Str ? vTo - 1 : vTo
          guess = j + 1 === ncols ? 0 : j + 1
        }
        i = vTo
        if (b[i] === COMMA) {
          i++
          continue
        }
        if (b[i] === CLOSE) {
          i++
          break
        }
        return undefined
      }
    }
    if (b[i] !== NL) return undefined
    i++
    const codes = typesFrom >= 0 ? layout.annotation(b, typesFrom, typesTo) : undefined
    if (typesFrom >= 0 && codes === undefined) return undefined
    if (rows === rowStarts.length) {
      const next = new Uint32Array(rows * 2)
      next.set(rowStarts)
      rowStarts = next
    }
    if (SL) out.byte(rows === 0 ? 0x5b : COMMA)
    rowStarts[rows++] = out.pos
    if (SL) out.byte(0x5b)
    else {
      out.ensure(SEQ_WIDTH + 1 + FILE_WIDTH)
      out.buf.fill(48, out.pos, out.pos + SEQ_WIDTH)
      out.pos += SEQ_WIDTH
      if (MY) {
        out.buf[out.pos++] = TAB
        out.buf.fill(48, out.pos, out.pos + FILE_WIDTH)
        out.pos += FILE_WIDTH
      }
    }
    for (let j = 0; j < ncols; j++) {
      const col = cols[j]!
      const kind = kinds[j]!
      const code = codes ? codes[j]! : 0
      out.ensure(5)
      if (!SL) out.buf[out.pos++] = TAB
      else if (j > 0) out.buf[out.pos++] = COMMA
      const from = starts[j]!
      const to = ends[j]!
      if (kind === Kind.None || kind === Kind.Null) {
        if (col.key) return undefined
        if (SL) out.ascii('null')
        else {
          out.buf[out.pos++] = BACKSLASH
          out.buf[out.pos++] = 0x4e
        }
        continue
      }
      if (code !== 0 && kind === Kind.Str) {
        // An annotated string is restored into a DateTime, LocalDate or Buffer: it must meet a column of that type.
        const ok =
          (code === 1 &&
            (col.type === 'datetimetz'
              ? datetimeKind(b, from, to) >= 0
              : col.type === 'datetime' && datetimeKind(b, from, to) === 0)) ||
          (code === 2 && col.type === 'date' && isDate(b, from, to)) ||
          (code === 3 && col.type === 'bytes' && isHexPairs(b, from, to))
        if (!ok) return undefined
        if (SL) out.byte(QUOTE)
        if (code === 3) {
          if (PG) out.ascii('\\\\x')
          out.ensure(to - from)
          // Buffer.toString('hex') writes lower case.
          for (let k = from; k < to; k++) {
            const x = b[k]!
            out.buf[out.pos++] = x >= 65 && x <= 70 ? x + 32 : x
          }
        } else if (code === 1 && !PG) {
          // The text the general path writes for the restored DateTime (rare enough to take the same functions).
          const dt = DateTime.parse(latin1(b, from, to))
          if (MY) out.ascii(col.type === 'datetimetz' ? utcText(dt) : naiveText(dt))
          else out.ascii(col.type === 'datetimetz' ? `${isoText(utcText(dt, 'T'))}+00:00` : isoText(naiveText(dt, 'T')))
        } else out.bytes(b, from, to) // DateTime.iso and dateText give back the text as it was
        if (SL) out.byte(QUOTE)
        continue
      }
      // A declared non-text type converts unannotated strings (CSV values) before they are checked: only exact
      // decimals and times keep their text as it is (when it has no surrounding spaces); otherwise the general path.
      if (
        kind === Kind.Str &&
        col.declared !== undefined &&
        col.declared !== 'str' &&
        !((col.declared === 'decimal' || col.declared === 'time') && col.type === col.declared)
      )
        return undefined
      switch (col.type) {
        case 'str': {
          // Other values in a text column are their text (textOf): numbers as String(number), booleans as words.
          const at = out.pos
          let length: number
          if (kind === Kind.Num) {
            if (SL) out.byte(QUOTE)
            if (!writeNumber(b, from, to, out, false)) return undefined
            length = out.pos - at
            if (SL) out.byte(QUOTE)
          } else if (kind === Kind.True || kind === Kind.False) {
            out.ascii(SL ? (kind === Kind.True ? '"true"' : '"false"') : kind === Kind.True ? 'true' : 'false')
            length = kind === Kind.True ? 4 : 5
          } else {
            if (kind !== Kind.Str || (col.key && from === to)) return undefined
            const esc = escaped[j] === 1
            if (PG) {
              if (!copyString(b, from, to, out, esc)) return undefined
              break
            }
            if (SL) {
              // SQLite decodes the JSON string itself, to the bytes better-sqlite3 binds for the JS string (also for
              // `\u0000` and lone surrogates, which both write as CESU-8: the differential test holds both).
              out.bytes(b, from - 1, to + 1)
              break
            }
            if (esc) {
              const text = JSON.parse(utf8.decode(b.subarray(from - 1, to + 1))) as string
              length = text.length
              out.tsv(text)
            } else {
              length = utf16Length(b, from, to)
              out.bytes(b, from, to)
            }
          }
          if (MY) {
            if (col.maxLength !== undefined && length > col.maxLength) return undefined
            if (length > lengths![j]!) lengths![j] = length
          }
          break
        }
        case 'bool':
          if (kind === Kind.True) out.buf[out.pos++] = PG ? 0x74 : 0x31
          else if (kind === Kind.False) out.buf[out.pos++] = PG ? 0x66 : 0x30
          else return undefined
          break
        case 'int':
        case 'float':
        case 'decimal': {
          if (kind === Kind.Str && col.type === 'decimal') {
            // An exact decimal given as text (sql.Downloader): coerceDeclared keeps the trimmed text.
            if (escaped[j] || from === to || b[from]! <= 0x20 || b[to - 1]! <= 0x20) return undefined
            const s = latin1(b, from, to)
            if (!isDecimalText(s) || (MY && !decimalTextFits(s))) return undefined
            out.ascii(SL ? `"${s}"` : s)
            break
          }
          if (kind !== Kind.Num) return undefined
          if (!PG && col.type === 'decimal') {
            // decimalText: String(value); MySQL's DECIMAL(65,30) must hold it exactly.
            const v = Number(latin1(b, from, to))
            if (MY && !mysqlDecimalFits(v)) return undefined
            out.ascii(SL ? `"${v}"` : String(v))
            break
          }
          const at = out.pos
          if (!writeNumber(b, from, to, out, col.type === 'int')) return undefined
          if (SL && col.type === 'float' && out.pos - at > 15) {
            // The general path binds whole numbers beyond 2^53 as doubles: a fraction keeps SQLite reading a real.
            let plain = true
            for (let k = at; k < out.pos && plain; k++) plain = isDigit(out.buf[k]) || (k === at && out.buf[k] === 0x2d)
            if (plain && !Number.isSafeInteger(Number(latin1(out.buf, at, out.pos)))) out.ascii('.0')
          }
          break
        }
        case 'json': {
          if (code !== 0) return undefined
          const v = JSON.parse(
            utf8.decode(b.subarray(kind === Kind.Str ? from - 1 : from, kind === Kind.Str ? to + 1 : to)),
          ) as unknown
          if (SL) out.raw(JSON.stringify(jsonText(v)))
          else out.text(jsonText(v))
          break
        }
        case 'time': {
          if (kind !== Kind.Str || escaped[j]) return undefined
          const s = latin1(b, from, to)
          if (!TIME_RE.test(s)) return undefined
          out.ascii(SL ? `"${s}"` : s)
          break
        }
        default:
          // datetime, datetimetz, date and bytes need their annotation (handled above).
          return undefined
      }
    }
    out.byte(SL ? 0x5d : NL)
  }
  if (SL) {
    if (rows === 0) return undefined
    out.byte(0x5d)
  }
  return { copy: out.buf.subarray(0, out.pos), starts: rowStarts.subarray(0, rows), rows, lengths }
}

function isTypesKey(b: Uint8Array, from: number, to: number): boolean {
  if (to - from !== TYPES_KEY.length) return false
  for (let k = 0; k < TYPES_KEY.length; k++) if (b[from + k] !== TYPES_KEY[k]) return false
  return true
}

/**
 * Writes the JSON number `b[from, to)` as String(Number(text)), which is what the general path writes for a number
 * (w.int for safe integers gives the same digits); false when `safeInteger` is asked and it is not one.
 */
function writeNumber(b: Uint8Array, from: number, to: number, out: Out, safeInteger: boolean): boolean {
  // Plain integers up to 15 digits are their own text (except -0, which is 0).
  let plain = to - from <= 15
  for (let k = b[from] === 0x2d ? from + 1 : from; plain && k < to; k++) plain = isDigit(b[k])
  if (plain && !(to - from === 2 && b[from] === 0x2d && b[from + 1] === 48)) {
    out.bytes(b, from, to)
    return true
  }
  const v = Number(latin1(b, from, to))
  if (safeInteger && !Number.isSafeInteger(v)) return false
  out.ascii(String(v))
  return true
}

function isHexPairs(b: Uint8Array, from: number, to: number): boolean {
  if ((to - from) % 2 !== 0) return false
  for (let k = from; k < to; k++) if (!isHex(b[k])) return false
  return true
}

/** The bytes of `view` in an ArrayBuffer of their own (to transfer to or from a worker). */
export function ownBuffer(view: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(view.byteLength)
  new Uint8Array(out).set(view)
  return out
}
