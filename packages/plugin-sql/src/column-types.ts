import { DateTime, LocalDate, formatDate, type ColumnType } from '@anchovies/core'

/** The logical column types the uploader stores; each dialect maps them to its own DDL. */
export const SQL_TYPES = [
  'bool',
  'int',
  'float',
  'decimal',
  'str',
  'datetime',
  'datetimetz',
  'date',
  'time',
  'bytes',
  'json',
] as const
/** A logical column type (`datetime` is naive, `datetimetz` timezone-aware). */
export type SqlType = (typeof SQL_TYPES)[number]

/** What the uploader knows about one target column. */
export interface ColumnState {
  readonly name: string
  type: SqlType
  /** Longest string seen (characters), for dialects that size string columns. */
  length: number
}

/** An exact decimal number given as text (a declared `float` column's value with more digits than a double holds). */
export class DecimalText {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
  toJSON(): string {
    return this.text
  }
}

/**
 * True when a decimal string (of `isDecimalText`'s shape) survives the round trip through a double: at most 15
 * significant digits in its mantissa. One pass over the characters (cells are untrusted and may be huge).
 */
function exactAsDouble(s: string): boolean {
  let first = -1
  let last = -1
  let point = -1
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 101 || c === 69) break
    if (c === 46) point = i
    else if (c >= 49 && c <= 57) {
      if (first < 0) first = i
      last = i
    }
  }
  if (first < 0) return true
  // Significant digits run from the first to the last non-zero digit; a point between them is not a digit.
  return last - first + 1 - (point > first && point < last ? 1 : 0) <= 15
}

/**
 * Whether `s` is a decimal number: `[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?`. A scan of the characters,
 * not a regular expression: the pattern's `\d+\.?\d*` backtracks quadratically on a long digit run that does not end
 * the way it expects (a 200 KB cell took tens of seconds).
 */
export function isDecimalText(s: string): boolean {
  const n = s.length
  let i = 0
  const sign = s.charCodeAt(0)
  if (sign === 43 || sign === 45) i++
  let digits = 0
  while (i < n && isDigit(s.charCodeAt(i))) {
    i++
    digits++
  }
  if (i < n && s.charCodeAt(i) === 46) {
    i++
    while (i < n && isDigit(s.charCodeAt(i))) {
      i++
      digits++
    }
  }
  if (digits === 0) return false
  if (i === n) return true
  const e = s.charCodeAt(i)
  if (e !== 101 && e !== 69) return false
  i++
  const expSign = s.charCodeAt(i)
  if (expSign === 43 || expSign === 45) i++
  const expStart = i
  while (i < n && isDigit(s.charCodeAt(i))) i++
  return i > expStart && i === n
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const INT_RE = /^[+-]?\d+$/
const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$/
const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/
const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', '1', 'on'])
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', '0', 'off'])

/** The type a value has on its own (null for null/undefined); strings are never guessed to be anything else. */
export function naturalType(v: unknown): SqlType | null {
  if (v === null || v === undefined) return null
  switch (typeof v) {
    case 'boolean':
      return 'bool'
    case 'number':
      return Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER
        ? 'int'
        : Number.isFinite(v)
          ? 'float'
          : 'float'
    case 'bigint':
      return v >= INT64_MIN && v <= INT64_MAX ? 'int' : 'decimal'
    case 'string':
      return 'str'
    case 'object':
      if (v instanceof DateTime) return v.isNaive ? 'datetime' : 'datetimetz'
      if (v instanceof Date) return 'datetimetz'
      if (v instanceof LocalDate) return 'date'
      if (ArrayBuffer.isView(v)) return 'bytes'
      if (v instanceof DecimalText) return 'decimal'
      return 'json'
    default:
      return 'str'
  }
}

/**
 * A declared column type: a table's `columns` type, or `decimal` for a column its `exact_decimals` property names
 * (sql.Downloader: a source DECIMAL/NUMERIC, written to the datastore as text so every digit survives).
 */
export type DeclaredType = ColumnType | 'decimal'

/** The first SQL type a declared `columns` type starts with. */
export function declaredType(t: DeclaredType): SqlType {
  switch (t) {
    case 'decimal':
      return 'decimal'
    case 'str':
      return 'str'
    case 'int':
      return 'int'
    case 'float':
      return 'float'
    case 'bool':
      return 'bool'
    case 'datetime':
      return 'datetime'
    case 'date':
      return 'date'
    case 'time':
      return 'time'
    case 'bytes':
      return 'bytes'
    case 'object':
      return 'json'
  }
}

/**
 * Converts a string value of a column declared with a non-string type (CSV files give strings only):
 * `''` becomes null; a value that does not parse is returned unchanged (the column then widens to text).
 */
export function coerceDeclared(t: DeclaredType, v: unknown): unknown {
  if (typeof v !== 'string' || t === 'str') return v
  if (v === '') return null
  const s = v.trim()
  switch (t) {
    case 'decimal':
      return isDecimalText(s) ? new DecimalText(s) : v
    case 'int':
      if (!INT_RE.test(s)) return v
      {
        const b = BigInt(s)
        return b >= -SAFE && b <= SAFE ? Number(b) : b
      }
    case 'float':
      return isDecimalText(s) ? (exactAsDouble(s) ? Number(s) : new DecimalText(s)) : v
    case 'bool': {
      const w = s.toLowerCase()
      return TRUE_WORDS.has(w) ? true : FALSE_WORDS.has(w) ? false : v
    }
    case 'datetime':
      try {
        return DateTime.parse(s)
      } catch {
        return v
      }
    case 'date':
      try {
        return LocalDate.parse(s)
      } catch {
        return v
      }
    case 'time':
      return TIME_RE.test(s) ? s : v
    case 'bytes':
      return HEX_RE.test(s) ? Buffer.from(s, 'hex') : v
    case 'object':
      try {
        return JSON.parse(s) as unknown
      } catch {
        return v
      }
  }
}

const NUMERIC: readonly SqlType[] = ['bool', 'int', 'float', 'decimal']

/** The narrowest type holding both `a` and `b` (the widening ladder: bool → int → float/decimal → text). */
export function widenType(a: SqlType, b: SqlType): SqlType {
  if (a === b) return a
  if (NUMERIC.includes(a) && NUMERIC.includes(b)) {
    if (a === 'decimal' || b === 'decimal') return 'decimal'
    if (a === 'float' || b === 'float') return 'float'
    return 'int'
  }
  if ((a === 'datetime' && b === 'datetimetz') || (a === 'datetimetz' && b === 'datetime')) return 'datetimetz'
  if (a === 'json' || b === 'json') return a === 'str' || b === 'str' ? 'str' : 'json'
  return 'str'
}

/** True when `v` can be stored in a column of type `t` without loss. */
export function fits(t: SqlType, v: unknown): boolean {
  if (v === null || v === undefined) return true
  switch (t) {
    case 'str':
    case 'json':
      return true
    case 'bool':
      return typeof v === 'boolean'
    case 'int':
      return (
        typeof v === 'boolean' ||
        (typeof v === 'number' && Number.isSafeInteger(v)) ||
        (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX)
      )
    case 'float':
      return typeof v === 'boolean' || typeof v === 'number' || (typeof v === 'bigint' && v >= -SAFE && v <= SAFE)
    case 'decimal':
      return typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint' || v instanceof DecimalText
    case 'datetime':
      return v instanceof DateTime && v.isNaive
    case 'datetimetz':
      return v instanceof DateTime || v instanceof Date
    case 'date':
      return v instanceof LocalDate
    case 'time':
      return typeof v === 'string' && TIME_RE.test(v)
    case 'bytes':
      return ArrayBuffer.isView(v)
  }
}

/** The type a column of type `t` must become to hold `v` (`t` itself when it fits). */
export function typeFor(t: SqlType | undefined, v: unknown): SqlType | undefined {
  if (t !== undefined && fits(t, v)) return t
  const n = naturalType(v)
  if (n === null) return t
  if (t === undefined) return n
  const w = widenType(t, n)
  // A 64-bit integer beyond 2^53 does not fit a double: such a mix needs an exact decimal.
  return fits(w, v) ? w : w === 'float' ? 'decimal' : 'str'
}

/** JSON text of a value (bytes as hex, dates as ISO, big integers as numbers when exact, else strings). */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x >= -SAFE && x <= SAFE ? Number(x) : x.toString()
    if (
      x &&
      typeof x === 'object' &&
      (x as { type?: unknown }).type === 'Buffer' &&
      Array.isArray((x as { data?: unknown }).data)
    ) {
      return Buffer.from((x as { data: number[] }).data).toString('hex')
    }
    return x
  })
}

/** Text of any value stored in a string column. */
export function textOf(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof DecimalText) return String(v)
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (v instanceof DateTime) return v.iso
  if (v instanceof Date) return formatDate(v)
  if (v instanceof LocalDate) return v.toString()
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  return jsonText(v)
}

/** Decimal text of a numeric value. */
export function decimalText(v: unknown): string {
  if (typeof v === 'boolean') return v ? '1' : '0'
  return String(v)
}

/** A DateTime for a datetime value (JS Dates become aware UTC values). */
export function toDateTime(v: unknown): DateTime {
  return v instanceof DateTime ? v : DateTime.fromDate(v as Date)
}

/** `YYYY-MM-DD HH:MM:SS.ffffff` of the instant in UTC (naive values are read as UTC). */
export function utcText(dt: DateTime, sep = ' '): string {
  const micros = dt.epochMicros
  let ms = micros / 1000n
  let rem = micros % 1000n
  if (rem < 0n) {
    rem += 1000n
    ms -= 1n
  }
  const iso = new Date(Number(ms)).toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 10)}${sep}${iso.slice(11, 23)}${String(rem).padStart(3, '0')}`
}

/** The wall-clock text of a naive DateTime as `YYYY-MM-DD HH:MM:SS.ffffff`. */
export function naiveText(dt: DateTime, sep = ' '): string {
  return utcText(dt, sep)
}

/** `YYYY-MM-DD` of a date (faster than `LocalDate.toString`, which the bulk paths call per value). */
export function dateText(v: unknown): string {
  if (!(v instanceof LocalDate)) return String(v)
  const { year: y, month: m, day: d } = v
  return `${y < 1000 ? String(y).padStart(4, '0') : y}-${m < 10 ? '0' : ''}${m}-${d < 10 ? '0' : ''}${d}`
}

/** Bytes of a binary value. */
export function bytesOf(v: unknown): Buffer {
  const b = v as ArrayBufferView
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** Length in characters a value takes as text (for sizing string columns). */
export function textLength(t: SqlType, v: unknown): number {
  if (v === null || v === undefined) return 0
  if (t === 'str') return typeof v === 'string' ? v.length : textOf(v).length
  return 0
}
