import { DateTime, LocalDate, formatDate, type ColumnType } from '@anchovies/core'

/** The logical column types a lake file stores (`timestamp` is naive, `timestamptz` UTC-adjusted). */
export const LAKE_TYPES = [
  'bool',
  'int',
  'float',
  'decimal',
  'str',
  'timestamp',
  'timestamptz',
  'date',
  'time',
  'bytes',
  'json',
] as const
/** One lake column type. */
export type LakeType = (typeof LAKE_TYPES)[number]

/** Digits a Parquet DECIMAL in a 16-byte FIXED_LEN_BYTE_ARRAY holds. */
export const DECIMAL_PRECISION = 38

/** What the dataset knows about one column: its type and, for decimals, the scale. */
export interface ColumnState {
  readonly name: string
  type: LakeType
  /** Digits after the point (decimal columns). */
  scale: number
}

/** An exact decimal given as text (a declared `float` value with more digits than a double holds). */
export class DecimalText {
  constructor(
    readonly unscaled: bigint,
    readonly scale: number,
  ) {}
  toString(): string {
    const neg = this.unscaled < 0n
    const digits = (neg ? -this.unscaled : this.unscaled).toString().padStart(this.scale + 1, '0')
    const text = this.scale ? `${digits.slice(0, -this.scale)}.${digits.slice(-this.scale)}` : digits
    return neg ? `-${text}` : text
  }
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const INT_RE = /^[+-]?\d{1,30}$/
const TIME_RE = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?$/
const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/
const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', '1', 'on'])
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', '0', 'off'])

/**
 * Parses decimal text (`[+-]digits[.digits][e[+-]digits]`) into an unscaled integer and a scale, by scanning the
 * characters (cells are untrusted: no backtracking pattern). Undefined when it is not a decimal or is absurdly long.
 */
export function parseDecimal(s: string): DecimalText | undefined {
  if (s.length === 0 || s.length > 100) return undefined
  let i = 0
  let neg = false
  const c0 = s.charCodeAt(0)
  if (c0 === 43 || c0 === 45) {
    neg = c0 === 45
    i++
  }
  let digits = ''
  let scale = 0
  let seen = false
  while (i < s.length && isDigit(s.charCodeAt(i))) {
    digits += s[i]
    i++
    seen = true
  }
  if (i < s.length && s.charCodeAt(i) === 46) {
    i++
    while (i < s.length && isDigit(s.charCodeAt(i))) {
      digits += s[i]
      scale++
      i++
      seen = true
    }
  }
  if (!seen) return undefined
  if (i < s.length) {
    const e = s.charCodeAt(i)
    if (e !== 101 && e !== 69) return undefined
    i++
    let expNeg = false
    const sign = s.charCodeAt(i)
    if (sign === 43 || sign === 45) {
      expNeg = sign === 45
      i++
    }
    const start = i
    while (i < s.length && isDigit(s.charCodeAt(i))) i++
    if (i === start || i !== s.length || i - start > 3) return undefined
    const exp = Number(s.slice(start, i)) * (expNeg ? -1 : 1)
    scale -= exp
  }
  let unscaled = BigInt(digits)
  if (scale < 0) {
    unscaled *= 10n ** BigInt(-scale)
    scale = 0
  }
  // Trailing zeros after the point carry no value: drop them so `1.50` and `1.5` need the same scale.
  while (scale > 0 && unscaled % 10n === 0n) {
    unscaled /= 10n
    scale--
  }
  return new DecimalText(neg ? -unscaled : unscaled, scale)
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

/** Digits left of the point of a decimal. */
function integerDigits(d: DecimalText): number {
  const abs = d.unscaled < 0n ? -d.unscaled : d.unscaled
  const all = abs === 0n ? 1 : abs.toString().length
  return Math.max(1, all - d.scale)
}

/** True when decimal text survives the trip through a double (at most 15 significant digits). */
function exactAsDouble(d: DecimalText): boolean {
  const abs = d.unscaled < 0n ? -d.unscaled : d.unscaled
  return abs.toString().length <= 15
}

/** The type a value has on its own (null for null/undefined); strings are never guessed to be anything else. */
export function naturalType(v: unknown): LakeType | null {
  if (v === null || v === undefined) return null
  switch (typeof v) {
    case 'boolean':
      return 'bool'
    case 'number':
      return Number.isSafeInteger(v) ? 'int' : 'float'
    case 'bigint':
      return v >= INT64_MIN && v <= INT64_MAX ? 'int' : 'decimal'
    case 'string':
      return 'str'
    case 'object':
      if (v instanceof DateTime) return v.isNaive ? 'timestamp' : 'timestamptz'
      if (v instanceof Date) return 'timestamptz'
      if (v instanceof LocalDate) return 'date'
      if (ArrayBuffer.isView(v)) return 'bytes'
      if (v instanceof DecimalText) return 'decimal'
      return 'json'
    default:
      return 'str'
  }
}

/**
 * Converts a string value of a column declared with a non-string type (CSV sources give strings, and 64-bit
 * integers beyond 2^53 travel as strings): `''` becomes null; a value that does not parse is kept (the column then
 * widens to text).
 */
export function coerceDeclared(t: ColumnType, v: unknown): unknown {
  if (typeof v !== 'string' || t === 'str') {
    if (t === 'float' && typeof v === 'bigint' && (v > SAFE || v < -SAFE)) return new DecimalText(v, 0)
    return v
  }
  if (v === '') return null
  const s = v.trim()
  switch (t) {
    case 'int': {
      if (!INT_RE.test(s)) return v
      const b = BigInt(s)
      return b >= -SAFE && b <= SAFE ? Number(b) : b
    }
    case 'float': {
      const d = parseDecimal(s)
      if (!d) return v
      return exactAsDouble(d) ? Number(s) : d
    }
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

/** The type a declared column starts with (values may still widen it). */
export function declaredType(t: ColumnType): LakeType {
  const map: Record<ColumnType, LakeType> = {
    str: 'str',
    int: 'int',
    float: 'float',
    bool: 'bool',
    datetime: 'timestamptz',
    date: 'date',
    time: 'time',
    bytes: 'bytes',
    object: 'json',
  }
  return map[t]
}

const NUMERIC: readonly LakeType[] = ['bool', 'int', 'float', 'decimal']

/** The narrowest type holding both `a` and `b` (bool → int → float/decimal → text; naive → aware timestamps). */
export function widenType(a: LakeType, b: LakeType): LakeType {
  if (a === b) return a
  if (NUMERIC.includes(a) && NUMERIC.includes(b)) {
    if (a === 'decimal' || b === 'decimal') return 'decimal'
    if (a === 'float' || b === 'float') return 'float'
    return 'int'
  }
  if ((a === 'timestamp' && b === 'timestamptz') || (a === 'timestamptz' && b === 'timestamp')) return 'timestamptz'
  return 'str'
}

/** True when `v` can be stored in a column of type `t` (and `scale`) without loss. */
export function fits(t: LakeType, scale: number, v: unknown): boolean {
  if (v === null || v === undefined) return true
  switch (t) {
    case 'str':
      return true
    case 'json':
      return (
        typeof v === 'object' &&
        !ArrayBuffer.isView(v) &&
        !(v instanceof DateTime) &&
        !(v instanceof LocalDate) &&
        !(v instanceof Date) &&
        !(v instanceof DecimalText)
      )
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
    case 'decimal': {
      const d = asDecimal(v)
      return d !== undefined && d.scale <= scale && integerDigits(d) + scale <= DECIMAL_PRECISION
    }
    case 'timestamp':
      return v instanceof DateTime && v.isNaive
    case 'timestamptz':
      return v instanceof DateTime || v instanceof Date
    case 'date':
      return v instanceof LocalDate
    case 'time':
      return typeof v === 'string' && TIME_RE.test(v)
    case 'bytes':
      return ArrayBuffer.isView(v)
  }
}

/** A numeric value as an exact decimal (undefined for non-numbers and non-finite floats). */
export function asDecimal(v: unknown): DecimalText | undefined {
  if (v instanceof DecimalText) return v
  if (typeof v === 'bigint') return new DecimalText(v, 0)
  if (typeof v === 'boolean') return new DecimalText(v ? 1n : 0n, 0)
  if (typeof v === 'number' && Number.isFinite(v)) return parseDecimal(String(v))
  return undefined
}

/**
 * The column state after seeing `v`: the same object when `v` fits, else a widened copy. Decimals widen their
 * scale; a decimal that no longer fits 38 digits becomes text.
 */
export function widenFor(col: ColumnState, v: unknown): ColumnState {
  if (fits(col.type, col.scale, v)) return col
  const n = naturalType(v)
  if (n === null) return col
  let type = widenType(col.type, n)
  let scale = col.scale
  if (type === 'float' && !fits('float', 0, v)) type = 'decimal'
  if (type === 'decimal') {
    const d = asDecimal(v)
    if (!d) type = 'str'
    else {
      scale = Math.max(scale, d.scale)
      if (integerDigits(d) + scale > DECIMAL_PRECISION) type = 'str'
    }
  }
  if (type === 'json' && !fits('json', 0, v)) type = 'str'
  return { name: col.name, type, scale: type === 'decimal' ? scale : 0 }
}

/** The first state of a column from its first non-null value. */
export function stateFor(name: string, v: unknown): ColumnState {
  const t = naturalType(v) ?? 'str'
  const d = t === 'decimal' ? asDecimal(v) : undefined
  if (d && integerDigits(d) + d.scale > DECIMAL_PRECISION) return { name, type: 'str', scale: 0 }
  return { name, type: t, scale: d?.scale ?? 0 }
}

/** JSON text of a value (bytes as hex, big integers as numbers when exact, else strings). */
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

/** Microseconds since midnight of a `HH:MM[:SS[.ffffff]]` text. */
export function timeMicros(s: string): bigint {
  const m = TIME_RE.exec(s)!
  const [, h, mi, sec = '0', frac = ''] = m
  const whole = (Number(h) * 3600 + Number(mi) * 60 + Number(sec)) * 1_000_000
  return BigInt(whole + Number((frac + '000000').slice(0, 6)))
}

/** Days since 1970-01-01 of a date. */
export function epochDays(d: LocalDate): number {
  return Math.floor(Date.UTC(d.year, d.month - 1, d.day) / 86_400_000) + (d.year < 100 ? yearFix(d) : 0)
}

/** Date.UTC maps years 0–99 to 1900–1999: correct for them. */
function yearFix(d: LocalDate): number {
  const real = new Date(Date.UTC(2000, d.month - 1, d.day))
  real.setUTCFullYear(d.year)
  return Math.floor(real.getTime() / 86_400_000) - Math.floor(Date.UTC(d.year, d.month - 1, d.day) / 86_400_000)
}

/** Microseconds since the epoch (UTC) of an aware value, or of the wall clock of a naive one. */
export function epochMicros(v: DateTime | Date): bigint {
  return v instanceof Date ? BigInt(v.getTime()) * 1000n : v.epochMicros
}

/**
 * Microseconds since the epoch of a DateTime, read from the fixed positions of its ISO text (`YYYY-MM-DD[T ]HH:MM
 * [:SS[.fraction]]`, the offset is already parsed): the regex behind `epochMicros` cost about a microsecond a value,
 * paid once per value because every row has its own DateTime. Anything else (years before 100, micros beyond 2^53)
 * goes to `epochMicros`.
 */
export function dateTimeMicros(v: DateTime): bigint {
  const t = v.iso
  const n = t.length
  if (n >= 16) {
    const y = digitsAt(t, 0, 4)
    const mo = digitsAt(t, 5, 2)
    const d = digitsAt(t, 8, 2)
    const h = digitsAt(t, 11, 2)
    const mi = digitsAt(t, 14, 2)
    let s = 0
    let frac = 0
    if (n > 16 && t.charCodeAt(16) === 58) {
      s = digitsAt(t, 17, 2)
      let i = 19
      if (i < n && t.charCodeAt(i) === 46) {
        let k = 0
        for (i++; i < n && isDigit(t.charCodeAt(i)); i++, k++) if (k < 6) frac = frac * 10 + t.charCodeAt(i) - 48
        for (; k < 6; k++) frac *= 10
      }
    }
    if ((y | mo | d | h | mi | s) >= 0 && y >= 100) {
      const micros = (Date.UTC(y, mo - 1, d, h, mi, s) - (v.offsetMinutes ?? 0) * 60_000) * 1000 + frac
      if (Number.isSafeInteger(micros)) return BigInt(micros)
    }
  }
  return v.epochMicros
}

/** The number written by the `count` ASCII digits of `t` at `at`, or -1 if one is not a digit. */
function digitsAt(t: string, at: number, count: number): number {
  let n = 0
  for (let k = at; k < at + count; k++) {
    const c = t.charCodeAt(k)
    if (!isDigit(c)) return -1
    n = n * 10 + c - 48
  }
  return n
}
