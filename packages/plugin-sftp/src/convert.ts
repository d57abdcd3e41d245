import { DateTime, LocalDate, type ColumnType } from '@anchovies/core'

/** How text values become typed values (from the table settings). */
export interface ConvertOptions {
  /** `iso` (default), `epoch`, `epoch_ms`, or a strftime pattern such as `%d/%m/%Y %H:%M:%S`. */
  readonly datetimeFormat: string
  /** `iso` (default) or a strftime pattern such as `%d.%m.%Y`. */
  readonly dateFormat: string
  /** Zone for datetimes without an offset: `UTC`, `+02:00` or an IANA name; null keeps them naive. */
  readonly timezone: string | null
  /** `.` (default) or `,` for numbers such as `1234,5`. */
  readonly decimalSeparator: string
  /** `hex` (default) or `base64`. */
  readonly bytesFormat: 'hex' | 'base64'
  /** Values read as null in every column (an empty value is null in every non-`str` column anyway). */
  readonly nullValues: readonly string[]
}

/** Converts one text value; throws an Error whose message says why the value does not convert. */
export type Converter = (text: string) => unknown

// Every pattern here runs on file content: none may backtrack more than linearly (no nested or adjacent
// overlapping quantifiers). Numbers are checked by isInteger/isDecimal, not by a pattern.
const TIME_RE = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,9})?)?$/
const TRUE = new Set(['true', 't', 'yes', 'y', '1', 'on'])
const FALSE = new Set(['false', 'f', 'no', 'n', '0', 'off'])
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec']

/** Builds the converter of a column type; problems with the options are thrown as plain errors (config time). */
export function converterFor(type: ColumnType, options: ConvertOptions): Converter {
  const nulls = new Set(options.nullValues)
  const base = baseConverter(type, options)
  if (type === 'str') return nulls.size ? (t) => (nulls.has(t) ? null : t) : (t) => t
  if (!nulls.size) return (t) => (t === '' ? null : base(t))
  return (t) => (t === '' || nulls.has(t) ? null : base(t))
}

function baseConverter(type: ColumnType, o: ConvertOptions): Converter {
  switch (type) {
    case 'str':
      return (t) => t
    case 'int':
      return (t) => {
        // Fast path: up to 15 digits (always a safe integer), optionally signed, nothing else.
        const len = t.length
        if (len <= 15) {
          let k = 0
          let neg = false
          const c0 = t.charCodeAt(0)
          if (c0 === 45 || c0 === 43) {
            neg = c0 === 45
            k = 1
          }
          if (k < len) {
            let n = 0
            for (; k < len; k++) {
              const d = t.charCodeAt(k) - 48
              if (d < 0 || d > 9) break
              n = n * 10 + d
            }
            if (k === len) return neg ? -n : n
          }
        }
        const s = t.trim()
        if (!isInteger(s)) throw new Error(`${quote(t)} is not an integer`)
        const n = Number(s)
        return Number.isSafeInteger(n) ? n : BigInt(s)
      }
    case 'float': {
      const comma = o.decimalSeparator === ','
      const point = comma ? 44 : 46
      return (t) => {
        // Fast path: [-+]digits[.digits], nothing else (Number() of that text is the value).
        const len = t.length
        let k = t.charCodeAt(0) === 45 || t.charCodeAt(0) === 43 ? 1 : 0
        let digits = 0
        for (; k < len; k++) {
          const d = t.charCodeAt(k) - 48
          if (d < 0 || d > 9) break
          digits++
        }
        if (k < len && t.charCodeAt(k) === point) {
          for (k++; k < len; k++) {
            const d = t.charCodeAt(k) - 48
            if (d < 0 || d > 9) break
            digits++
          }
        }
        if (k === len && digits > 0) return Number(comma ? t.replace(',', '.') : t)
        let s = t.trim()
        if (comma) s = s.replace(',', '.')
        if (!isDecimal(s)) throw new Error(`${quote(t)} is not a number`)
        return Number(s)
      }
    }
    case 'bool':
      return (t) => {
        const s = t.trim().toLowerCase()
        if (TRUE.has(s)) return true
        if (FALSE.has(s)) return false
        throw new Error(`${quote(t)} is not a boolean (true/false, yes/no, 1/0, t/f, y/n, on/off)`)
      }
    case 'datetime':
      return datetimeConverter(o)
    case 'date': {
      if (o.dateFormat === 'iso') {
        return (t) => {
          // Fast path: exactly YYYY-MM-DD.
          if (t.length === 10 && t.charCodeAt(4) === 45 && t.charCodeAt(7) === 45) {
            const year = digits(t, 0, 4)
            const month = digits(t, 5, 2)
            const day = digits(t, 8, 2)
            if (year >= 0 && month >= 0 && day >= 0) {
              checkDate(year, month, day, t)
              return new LocalDate(year, month, day)
            }
          }
          const s = t.trim()
          const d = LocalDate.parse(
            /^\d{4}-\d{2}-\d{2}/.test(s) && s.length > 10 && /^[T ]/.test(s.slice(10)) ? s.slice(0, 10) : s,
          )
          checkDate(d.year, d.month, d.day, t)
          return d
        }
      }
      const parse = strptime(o.dateFormat)
      return (t) => {
        const p = parse(t.trim())
        if (!p) throw new Error(`${quote(t)} does not match date_format ${quote(o.dateFormat)}`)
        checkDate(p.year, p.month, p.day, t)
        return new LocalDate(p.year, p.month, p.day)
      }
    }
    case 'time':
      return (t) => {
        const s = t.trim()
        if (!TIME_RE.test(s)) throw new Error(`${quote(t)} is not a time (HH:MM[:SS[.ffffff]])`)
        return s
      }
    case 'bytes':
      return o.bytesFormat === 'base64'
        ? (t) => {
            const s = t.trim()
            if (!isBase64(s)) throw new Error(`${quote(t)} is not base64`)
            return Buffer.from(s, 'base64')
          }
        : (t) => {
            let s = t.trim()
            const c1 = s.charCodeAt(1)
            if (
              (s.charCodeAt(0) === 92 && (c1 === 120 || c1 === 88)) ||
              (s.charCodeAt(0) === 48 && (c1 === 120 || c1 === 88))
            )
              s = s.slice(2)
            if (!isHex(s)) throw new Error(`${quote(t)} is not hex`)
            return Buffer.from(s, 'hex')
          }
    case 'object':
      return (t) => {
        try {
          return JSON.parse(t) as unknown
        } catch {
          throw new Error(`${quote(t)} is not JSON`)
        }
      }
  }
}

/** `[+-]?digits` (what INT used to match), by char codes. */
export function isInteger(s: string): boolean {
  let k = s.charCodeAt(0) === 43 || s.charCodeAt(0) === 45 ? 1 : 0
  if (k === s.length) return false
  for (; k < s.length; k++) {
    const d = s.charCodeAt(k) - 48
    if (d < 0 || d > 9) return false
  }
  return true
}

/** `[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?`, by char codes (the regular expression backtracked quadratically). */
export function isDecimal(s: string): boolean {
  const n = s.length
  let k = s.charCodeAt(0) === 43 || s.charCodeAt(0) === 45 ? 1 : 0
  let digits = 0
  while (k < n && isDigit(s.charCodeAt(k))) k++, digits++
  if (k < n && s.charCodeAt(k) === 46) {
    k++
    while (k < n && isDigit(s.charCodeAt(k))) k++, digits++
  }
  if (digits === 0) return false
  if (k < n && (s.charCodeAt(k) === 101 || s.charCodeAt(k) === 69)) {
    k++
    if (k < n && (s.charCodeAt(k) === 43 || s.charCodeAt(k) === 45)) k++
    const start = k
    while (k < n && isDigit(s.charCodeAt(k))) k++
    if (k === start) return false
  }
  return k === n
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57
}

/** Standard or URL-safe base64, at most two `=` at the end, not one character too many. */
function isBase64(s: string): boolean {
  let end = s.length
  if (s.charCodeAt(end - 1) === 61) end--
  if (s.charCodeAt(end - 1) === 61) end--
  for (let k = 0; k < end; k++) {
    const c = s.charCodeAt(k)
    const ok =
      (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 43 || c === 47 || c === 95 || c === 45
    if (!ok) return false
  }
  return end % 4 !== 1
}

/** An even number of hex digits. */
function isHex(s: string): boolean {
  if (s.length % 2) return false
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k)
    if (!(isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false
  }
  return true
}

interface Parts {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
  fraction: string
  offset: string | undefined
}

function datetimeConverter(o: ConvertOptions): Converter {
  const zone = o.timezone === null ? null : zoneOf(o.timezone)
  /** The value of a checked wall clock (`YYYY-MM-DDTHH:MM:SS[.f]`) with the given or the zone's offset. */
  const make = (wall: string, offset: string | undefined, p: Parts): DateTime => {
    if (offset === undefined && zone) {
      const minutes = zone(Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second))
      return DateTime.ofValidated(`${wall}${formatOffset(minutes)}`, minutes)
    }
    if (offset === undefined) return DateTime.ofValidated(wall, null)
    if (offset === 'Z') return DateTime.ofValidated(`${wall}+00:00`, 0)
    if (offset.length === 6 && offset.charCodeAt(3) === 58) {
      const hours = digits(offset, 1, 2)
      const minutes = digits(offset, 4, 2)
      if (hours >= 0 && minutes >= 0)
        return DateTime.ofValidated(`${wall}${offset}`, (offset.charCodeAt(0) === 45 ? -1 : 1) * (hours * 60 + minutes))
    }
    return DateTime.parse(`${wall}${offset}`)
  }
  const finish = (p: Parts, t: string): DateTime => {
    checkDate(p.year, p.month, p.day, t)
    if (p.hour > 23 || p.minute > 59 || p.second > 60) throw new Error(`${quote(t)} is not a valid time of day`)
    const wall = `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}${p.fraction ? `.${p.fraction.slice(0, 6)}` : ''}`
    return make(wall, p.offset, p)
  }
  if (o.datetimeFormat === 'epoch' || o.datetimeFormat === 'epoch_ms') {
    const scale = o.datetimeFormat === 'epoch' ? 1000 : 1
    return (t) => {
      const s = t.trim()
      if (!isDecimal(s)) throw new Error(`${quote(t)} is not a ${o.datetimeFormat} timestamp`)
      const d = new Date(Number(s) * scale)
      if (Number.isNaN(d.getTime())) throw new Error(`${quote(t)} is out of range`)
      return DateTime.fromDate(d)
    }
  }
  if (o.datetimeFormat === 'iso') {
    const re =
      /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i
    const parts: Parts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, fraction: '', offset: undefined }
    return (t) => {
      // Fast path: YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|±HH:MM], checked with char codes, no regex.
      const fast = fastIso(t, parts)
      if (fast !== undefined) {
        checkDate(parts.year, parts.month, parts.day, t)
        if (parts.hour > 23 || parts.minute > 59 || parts.second > 60)
          throw new Error(`${quote(t)} is not a valid time of day`)
        // Already in the canonical form (T, at most 6 fraction digits): the text is the wall clock as it is.
        if (fast > 0) return make(t.slice(0, fast), parts.offset, parts)
        return finish(parts, t)
      }
      const m = re.exec(t.trim())
      if (!m)
        throw new Error(
          `${quote(t)} is not an ISO datetime (YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]); set datetime_format`,
        )
      return finish(
        {
          year: +m[1]!,
          month: +m[2]!,
          day: +m[3]!,
          hour: +(m[4] ?? 0),
          minute: +(m[5] ?? 0),
          second: +(m[6] ?? 0),
          fraction: m[7] ?? '',
          offset: normalizeOffset(m[8]),
        },
        t,
      )
    }
  }
  const parse = strptime(o.datetimeFormat)
  return (t) => {
    const p = parse(t.trim())
    if (!p) throw new Error(`${quote(t)} does not match datetime_format ${quote(o.datetimeFormat)}`)
    return finish(p, t)
  }
}

const DIRECTIVES: Record<string, [pattern: string, field: string]> = {
  Y: ['(\\d{4})', 'year'],
  y: ['(\\d{2})', 'year2'],
  m: ['(\\d{1,2})', 'month'],
  d: ['(\\d{1,2})', 'day'],
  H: ['(\\d{1,2})', 'hour'],
  I: ['(\\d{1,2})', 'hour12'],
  M: ['(\\d{1,2})', 'minute'],
  S: ['(\\d{1,2})', 'second'],
  f: ['(\\d{1,9})', 'fraction'],
  z: ['(Z|[+-]\\d{2}:?\\d{2})', 'offset'],
  p: ['(AM|PM|am|pm)', 'ampm'],
  b: ['([A-Za-z]{3})', 'monthName'],
  B: ['([A-Za-z]{3,9})', 'monthName'],
}

/** Compiles a strftime pattern (`%Y %m %d %H %I %M %S %f %z %p %b %B %y %%`) into a parser; throws on unknown directives. */
export function strptime(format: string): (text: string) => Parts | undefined {
  const fields: string[] = []
  let re = '^'
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!
    if (c !== '%') {
      if (/\s/.test(c)) {
        // One `\s+` per run of blanks: two in a row would backtrack quadratically on a long run of spaces.
        if (!re.endsWith('\\s+')) re += '\\s+'
        continue
      }
      re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      continue
    }
    const d = format[++i]
    if (d === '%') {
      re += '%'
      continue
    }
    if (d === 'T') {
      re += '(\\d{1,2}):(\\d{1,2}):(\\d{1,2})'
      fields.push('hour', 'minute', 'second')
      continue
    }
    const spec = d === undefined ? undefined : DIRECTIVES[d]
    if (!spec)
      throw new Error(
        `unknown directive %${d ?? ''} in ${quote(format)} (use %Y %m %d %H %I %M %S %f %z %p %b %B %y %T)`,
      )
    re += spec[0]
    fields.push(spec[1])
  }
  const regex = new RegExp(`${re}$`)
  return (text) => {
    const m = regex.exec(text)
    if (!m) return undefined
    const p: Parts = { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, fraction: '', offset: undefined }
    let pm: boolean | undefined
    let hour12: number | undefined
    fields.forEach((f, k) => {
      const v = m[k + 1]!
      switch (f) {
        case 'year2':
          p.year = 2000 + Number(v) - (Number(v) >= 69 ? 100 : 0)
          break
        case 'fraction':
          p.fraction = v
          break
        case 'offset':
          p.offset = normalizeOffset(v)
          break
        case 'ampm':
          pm = v.toLowerCase() === 'pm'
          break
        case 'hour12':
          hour12 = Number(v)
          break
        case 'monthName':
          p.month = MONTHS.indexOf(v.slice(0, 3).toLowerCase()) + 1
          break
        default:
          ;(p as unknown as Record<string, number>)[f] = Number(v)
      }
    })
    if (hour12 !== undefined) p.hour = (hour12 % 12) + (pm ? 12 : 0)
    if (p.month < 1) return undefined
    return p
  }
}

function normalizeOffset(v: string | undefined): string | undefined {
  if (v === undefined) return undefined
  if (v.toUpperCase() === 'Z') return 'Z'
  const digits = v.slice(1).replace(':', '')
  return `${v[0]}${digits.slice(0, 2)}:${digits.slice(2, 4) || '00'}`
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function checkDate(year: number, month: number, day: number, text: string): void {
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    (day > MONTH_DAYS[month - 1]! && !(month === 2 && day === 29 && isLeap(year)))
  ) {
    throw new Error(`${quote(text)} is not a valid calendar date`)
  }
}

function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
}

/**
 * Reads `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|z|±HH:MM]` into `p` with char codes. Returns undefined when `t` has
 * another shape (the caller then uses the general parser), else the length of the wall-clock part when `t` is
 * already canonical (`T` and at most 6 fraction digits), else 0. Does not check ranges.
 */
function fastIso(t: string, p: Parts): number | undefined {
  const n = t.length
  if (n < 19 || t.charCodeAt(4) !== 45 || t.charCodeAt(7) !== 45 || t.charCodeAt(13) !== 58 || t.charCodeAt(16) !== 58)
    return undefined
  const sep = t.charCodeAt(10)
  if (sep !== 32 && sep !== 84 && sep !== 116) return undefined
  const year = digits(t, 0, 4)
  const month = digits(t, 5, 2)
  const day = digits(t, 8, 2)
  const hour = digits(t, 11, 2)
  const minute = digits(t, 14, 2)
  const second = digits(t, 17, 2)
  if ((year | month | day | hour | minute | second) < 0) return undefined
  let i = 19
  let fraction = ''
  if (i < n && t.charCodeAt(i) === 46) {
    let j = i + 1
    while (j < n && t.charCodeAt(j) >= 48 && t.charCodeAt(j) <= 57) j++
    if (j === i + 1 || j - i - 1 > 9) return undefined
    fraction = t.slice(i + 1, j)
    i = j
  }
  const wallEnd = i
  let offset: string | undefined
  if (i < n) {
    const c = t.charCodeAt(i)
    if ((c === 90 || c === 122) && i + 1 === n) offset = 'Z'
    else if (
      (c === 43 || c === 45) &&
      i + 6 === n &&
      t.charCodeAt(i + 3) === 58 &&
      digits(t, i + 1, 2) >= 0 &&
      digits(t, i + 4, 2) >= 0
    )
      offset = t.slice(i)
    else return undefined
  }
  p.year = year
  p.month = month
  p.day = day
  p.hour = hour
  p.minute = minute
  p.second = second
  p.fraction = fraction
  p.offset = offset
  return sep === 84 && fraction.length <= 6 ? wallEnd : 0
}

/** The number written by the `count` ASCII digits of `t` at `at`, or -1 if one is not a digit. */
function digits(t: string, at: number, count: number): number {
  let n = 0
  for (let k = at; k < at + count; k++) {
    const d = t.charCodeAt(k) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/** A function giving a zone's UTC offset in minutes for a wall-clock time (as UTC milliseconds); throws on an unknown zone. */
export function zoneOf(name: string): (wallMs: number) => number {
  if (/^(utc|z|gmt)$/i.test(name)) return () => 0
  const fixed = /^([+-])(\d{2}):?(\d{2})$/.exec(name)
  if (fixed) {
    const minutes = (fixed[1] === '-' ? -1 : 1) * (Number(fixed[2]) * 60 + Number(fixed[3]))
    return () => minutes
  }
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: name,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  })
  const offsetAt = (ms: number): number => {
    const parts: Record<string, number> = {}
    for (const part of fmt.formatToParts(new Date(ms)))
      if (part.type !== 'literal') parts[part.type] = Number(part.value)
    const asUtc = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!)
    return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60000)
  }
  return (wallMs) => {
    const first = offsetAt(wallMs)
    const second = offsetAt(wallMs - first * 60000)
    return second
  }
}

function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+'
  const a = Math.abs(minutes)
  return `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text)
}
