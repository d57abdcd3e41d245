import { createRequire } from 'node:module'
import { DateTime, LocalDate, type ColumnType } from '@anchovies/core'

const require = createRequire(import.meta.url)

/**
 * How a source column's values become datastore values. Every kind keeps the value exact: 64-bit integers beyond
 * 2^53 become BigInt (written as a string), decimals stay text, timestamps keep microseconds and their zone.
 */
export type ValueKind =
  | 'int'
  | 'int64'
  | 'float'
  | 'decimal'
  | 'bool'
  | 'datetimetz'
  | 'datetime'
  | 'date'
  | 'time'
  | 'bytes'
  | 'json'
  | 'array'
  | 'text'

/** One column of a source table or query. */
export interface SourceColumn {
  readonly name: string
  /** The type as the database names it (for the task log and errors). */
  readonly dbType: string
  readonly kind: ValueKind
}

/** A table or view the connection can read. */
export interface SourceTable {
  readonly schema: string
  readonly name: string
  readonly kind: 'table' | 'view'
  readonly columns: readonly SourceColumn[]
  /** Primary key columns in key order (empty for views and tables without one). */
  readonly primaryKey: readonly string[]
}

/** The anchovies column type of a value kind (decimals are `float` plus the `exact_decimals` table property). */
export function columnTypeOf(kind: ValueKind): ColumnType {
  switch (kind) {
    case 'int':
    case 'int64':
      return 'int'
    case 'float':
    case 'decimal':
      return 'float'
    case 'bool':
      return 'bool'
    case 'datetimetz':
    case 'datetime':
      return 'datetime'
    case 'date':
      return 'date'
    case 'time':
      return 'time'
    case 'bytes':
      return 'bytes'
    case 'json':
    case 'array':
      return 'object'
    case 'text':
      return 'str'
  }
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

function int64(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= -SAFE && v <= SAFE ? Number(v) : v
  if (typeof v === 'string') {
    const n = Number(v)
    return Number.isSafeInteger(n) ? n : BigInt(v)
  }
  return v
}

/**
 * ISO text of a database timestamp: `T` between date and time, the fraction padded to microseconds (Python's
 * isoformat), an offset `+00` written `+00:00`; `aware` adds `+00:00` to text without an offset (MySQL TIMESTAMP
 * read in a UTC session). Undefined when the text is not an ISO timestamp (BC dates, infinity, years past 9999).
 * Character checks, no regular expressions: this runs for every timestamp of an extract.
 */
export function isoTimestamp(text: string, aware: boolean): string | undefined {
  const n = text.length
  if (
    n < 19 ||
    text.charCodeAt(4) !== 45 ||
    text.charCodeAt(7) !== 45 ||
    (text.charCodeAt(10) !== 32 && text.charCodeAt(10) !== 84) ||
    text.charCodeAt(13) !== 58 ||
    text.charCodeAt(16) !== 58
  )
    return undefined
  let i = 19
  let end = 19
  let nonZero = false
  if (i < n && text.charCodeAt(i) === 46) {
    let j = i + 1
    for (; j < n; j++) {
      const c = text.charCodeAt(j)
      if (c < 48 || c > 57) break
      if (c !== 48) nonZero = true
    }
    if (j - i - 1 > 6) return undefined
    end = j
    i = j
  }
  const micros = nonZero ? `.${text.slice(20, end)}${'000000'.slice(end - 20)}` : ''
  let zone: string
  if (i === n) zone = aware ? '+00:00' : ''
  else {
    const sign = text.charCodeAt(i)
    const rest = n - i
    if (rest === 1 && sign === 90) zone = '+00:00'
    else if (sign !== 43 && sign !== 45) return undefined
    else if (rest === 3 && digits(text, i + 1, 2)) zone = `${text.slice(i)}:00`
    else if (rest === 6 && digits(text, i + 1, 2) && text.charCodeAt(i + 3) === 58 && digits(text, i + 4, 2))
      zone = text.slice(i)
    else if (rest === 5 && digits(text, i + 1, 4)) zone = `${text.slice(i, i + 3)}:${text.slice(i + 3)}`
    else return undefined
  }
  return `${text.slice(0, 10)}T${text.slice(11, 19)}${micros}${zone}`
}

function digits(s: string, from: number, count: number): boolean {
  for (let k = from; k < from + count; k++) {
    const c = s.charCodeAt(k)
    if (c < 48 || c > 57) return false
  }
  return true
}

function dateTime(v: unknown, aware: boolean): unknown {
  if (v instanceof Date) return DateTime.fromDate(v)
  if (typeof v !== 'string') return v
  const iso = isoTimestamp(v, aware)
  if (iso === undefined) return v
  try {
    return DateTime.parse(iso)
  } catch {
    return v
  }
}

function hexBytes(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (typeof v === 'string') return v.startsWith('\\x') ? Buffer.from(v.slice(2), 'hex') : Buffer.from(v, 'utf8')
  return v
}

/** A converter of a driver value (text from PostgreSQL COPY, typed values from mysql2 and better-sqlite3; never null). */
export function converter(kind: ValueKind): (v: unknown) => unknown {
  switch (kind) {
    case 'int':
      return (v) => (typeof v === 'string' ? Number(v) : typeof v === 'bigint' ? int64(v) : v)
    case 'int64':
      return int64
    case 'float':
      return (v) => (typeof v === 'number' ? v : Number(v))
    case 'decimal':
      return (v) => (typeof v === 'string' ? v : typeof v === 'bigint' ? v.toString() : String(v))
    case 'bool':
      return (v) => (typeof v === 'boolean' ? v : v === 't' || v === 1 || v === 1n || v === '1' || v === 'true')
    case 'datetimetz':
      return (v) => dateTime(v, true)
    case 'datetime':
      return (v) => dateTime(v, false)
    case 'date':
      return (v) => {
        if (typeof v !== 'string') return v instanceof Date ? LocalDate.fromDate(v) : v
        try {
          return LocalDate.parse(v.length > 10 ? v.slice(0, 10) : v)
        } catch {
          return v
        }
      }
    case 'time':
      return (v) => String(v)
    case 'bytes':
      return hexBytes
    case 'json':
      return (v) => {
        if (typeof v !== 'string') return Buffer.isBuffer(v) ? tryJson(v.toString('utf8')) : v
        return tryJson(v)
      }
    case 'array': {
      const parse = pgArrayParser()
      return (v) => (typeof v === 'string' && parse ? parse(v) : v)
    }
    case 'text':
      return (v) =>
        typeof v === 'string'
          ? v
          : typeof v === 'bigint'
            ? v.toString()
            : Buffer.isBuffer(v)
              ? v.toString('utf8')
              : String(v)
  }
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

/** A raw driver value as JSON for checkpoints (cursor values, boundary keys): bigint as text, bytes as hex. */
export function rawJson(v: unknown): string | number | boolean | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string' || typeof v === 'boolean') return v
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v)
  if (typeof v === 'bigint') return v >= -SAFE && v <= SAFE ? Number(v) : v.toString()
  if (Buffer.isBuffer(v)) return v.toString('hex')
  if (v instanceof Date) return v.toISOString()
  return JSON.stringify(v)
}

let arrayParser: ((text: string) => unknown) | null | undefined

/** PostgreSQL array text (`{1,"a b",NULL}`) to a JS array of element texts, through pg's own parser. */
function pgArrayParser(): ((text: string) => unknown) | null {
  if (arrayParser === undefined) {
    try {
      const ap = (
        require('pg-types') as {
          arrayParser: { create(text: string, parse: (x: string) => unknown): { parse(): unknown } }
        }
      ).arrayParser
      arrayParser = (t) => ap.create(t, (x) => x).parse()
    } catch {
      arrayParser = null
    }
  }
  return arrayParser
}
