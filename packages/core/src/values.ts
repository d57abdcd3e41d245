import { AnchoviesError } from './errors.js'

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/
const DATETIME_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/

/** A calendar date without time or zone (the data file's `D` annotation). */
export class LocalDate {
  constructor(
    readonly year: number,
    readonly month: number,
    readonly day: number,
  ) {}

  /** Parses `YYYY-MM-DD`. */
  static parse(text: string): LocalDate {
    if (text.length === 10 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45) {
      const year = digitsAt(text, 0, 4)
      const month = digitsAt(text, 5, 2)
      const day = digitsAt(text, 8, 2)
      if ((year | month | day) >= 0) return new LocalDate(year, month, day)
    }
    const m = DATE_RE.exec(text)
    if (!m)
      throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `not a date (YYYY-MM-DD): ${JSON.stringify(text.slice(0, 40))}`)
    return new LocalDate(Number(m[1]), Number(m[2]), Number(m[3]))
  }

  /** The UTC calendar date of a JS Date. */
  static fromDate(d: Date): LocalDate {
    return new LocalDate(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate())
  }

  toString(): string {
    return `${String(this.year).padStart(4, '0')}-${pad2(this.month)}-${pad2(this.day)}`
  }

  toJSON(): string {
    return this.toString()
  }
}

/**
 * A date and time as written in a data file (the `DT` annotation): keeps the wall clock, microseconds and the
 * UTC offset exactly, or no offset at all for a naive value, so files round-trip between implementations.
 */
export class DateTime {
  private micros: bigint | undefined

  private constructor(
    readonly iso: string,
    /** Offset from UTC in minutes, or null for a naive (zone-less) value. */
    readonly offsetMinutes: number | null,
  ) {}

  /**
   * A DateTime from text the caller has already validated, without parsing it again (for fast converters):
   * `iso` must be what `parse` accepts and `offsetMinutes` its offset (null when the text has none).
   */
  static ofValidated(iso: string, offsetMinutes: number | null): DateTime {
    return new DateTime(iso, offsetMinutes)
  }

  /** Parses an ISO-8601 date-time, with or without offset (`Z` counts as `+00:00`). */
  static parse(text: string): DateTime {
    const quick = isoOffset(text)
    if (quick !== undefined) return new DateTime(text, quick)
    const m = DATETIME_RE.exec(text)
    if (!m)
      throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `not an ISO datetime: ${JSON.stringify(text.slice(0, 40))}`)
    const tz = m[8]
    let offset: number | null = null
    if (tz !== undefined) {
      if (tz === 'Z') offset = 0
      else {
        const digits = tz.slice(1).replace(':', '')
        offset = (tz.startsWith('-') ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4)))
      }
    }
    return new DateTime(text, offset)
  }

  /** Microseconds since the epoch, reading a naive value as UTC (computed on first use). */
  get epochMicros(): bigint {
    if (this.micros === undefined) {
      const [, y, mo, d, h, mi, s = '0', frac = ''] = DATETIME_RE.exec(this.iso)!
      const wallMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
      this.micros =
        BigInt(wallMs - (this.offsetMinutes ?? 0) * 60_000) * 1000n + BigInt(Number((frac + '000000').slice(0, 6)))
    }
    return this.micros
  }

  /** An aware UTC value from a JS Date, formatted like Python's `isoformat()`. */
  static fromDate(date: Date): DateTime {
    return DateTime.parse(formatDate(date))
  }

  /** True when the value carries no UTC offset. */
  get isNaive(): boolean {
    return this.offsetMinutes === null
  }

  /** The instant as a JS Date (millisecond precision; a naive value is read as UTC). */
  toDate(): Date {
    return new Date(Number(this.epochMicros / 1000n))
  }

  toString(): string {
    return this.iso
  }

  toJSON(): string {
    return this.iso
  }
}

/** Formats a JS Date like Python's aware `isoformat()`: `2025-01-01T00:00:00+00:00`, `.123000` when it has ms. */
export function formatDate(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', 'invalid Date value')
  const iso = date.toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}+00:00` : `${iso.slice(0, -1)}000+00:00`
}

/** The number written by the `count` ASCII digits of `t` at `at`, or -1 if one is not a digit. */
function digitsAt(t: string, at: number, count: number): number {
  let n = 0
  for (let k = at; k < at + count; k++) {
    const d = t.charCodeAt(k) - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/**
 * Matches DATETIME_RE with char codes (data files hold millions of datetimes): the offset in minutes, null for a
 * naive value, or undefined when `t` does not match.
 */
function isoOffset(t: string): number | null | undefined {
  const n = t.length
  if (n < 16 || t.charCodeAt(4) !== 45 || t.charCodeAt(7) !== 45 || t.charCodeAt(13) !== 58) return undefined
  const sep = t.charCodeAt(10)
  if (
    (sep !== 84 && sep !== 32) ||
    (digitsAt(t, 0, 4) | digitsAt(t, 5, 2) | digitsAt(t, 8, 2) | digitsAt(t, 11, 2) | digitsAt(t, 14, 2)) < 0
  )
    return undefined
  let i = 16
  if (i < n && t.charCodeAt(i) === 58) {
    if (digitsAt(t, i + 1, 2) < 0) return undefined
    i += 3
    if (i < n && t.charCodeAt(i) === 46) {
      let j = i + 1
      while (j < n && j <= i + 9 && t.charCodeAt(j) >= 48 && t.charCodeAt(j) <= 57) j++
      if (j === i + 1) return undefined
      i = j
    }
  }
  if (i === n) return null
  const c = t.charCodeAt(i)
  if (c === 90) return i + 1 === n ? 0 : undefined
  if (c !== 43 && c !== 45) return undefined
  const hours = digitsAt(t, i + 1, 2)
  const colon = t.charCodeAt(i + 3) === 58 ? 1 : 0
  const minutes = digitsAt(t, i + 3 + colon, 2)
  if (hours < 0 || minutes < 0 || i + 5 + colon !== n) return undefined
  return (c === 45 ? -1 : 1) * (hours * 60 + minutes)
}

function pad2(n: number): string {
  return String(n).padStart(2, '0')
}
