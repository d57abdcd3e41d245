import { randomBytes } from 'node:crypto'

/** One Singer message as read from a tap's stdout (fields are checked by the reader, not trusted). */
export interface SingerMessage {
  readonly type?: unknown
  readonly stream?: unknown
  readonly record?: unknown
  readonly schema?: unknown
  readonly key_properties?: unknown
  readonly bookmark_properties?: unknown
  readonly value?: unknown
  readonly version?: unknown
  readonly time_extracted?: unknown
  readonly manifest?: unknown
  readonly encoding?: unknown
}

// Random per process: no data string can hold it by accident or on purpose.
const BIG = `\u0000${randomBytes(12).toString('hex')}:`
/** BIG as it is written inside a JSON string. */
const BIG_TEXT = JSON.stringify(BIG).slice(1, -1)

/**
 * Parses one JSON text keeping integers beyond ±2^53 exact (as `bigint`): integer tokens of 16 digits or more
 * outside strings are quoted with a marker first and revived afterwards. Used only for lines whose plain parse
 * lost an integer, so the common path stays `JSON.parse`.
 */
export function parseLossless(text: string): unknown {
  let out = ''
  let from = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // backslash: skip the escaped character
      else if (c === 34) inString = false
      continue
    }
    if (c === 34) {
      inString = true
      continue
    }
    if ((c >= 48 && c <= 57) || c === 45) {
      let j = i + 1
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++
      const next = text.charCodeAt(j)
      const integer = next !== 46 && next !== 101 && next !== 69 // no fraction, no exponent
      if (integer && j - i >= 16) {
        out += `${text.slice(from, i)}"${BIG_TEXT}${text.slice(i, j)}"`
        from = j
      }
      i = j - 1
    }
  }
  if (from === 0) return JSON.parse(text)
  out += text.slice(from)
  return JSON.parse(out, (_key, v: unknown) => {
    if (typeof v !== 'string' || !v.startsWith(BIG)) return v
    const n = BigInt(v.slice(BIG.length))
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
  })
}

/**
 * Encodes a Singer message as one line: bigints as exact JSON integers, bytes as base64 (the `contentEncoding` the
 * SCHEMA declares), datetimes and dates as their ISO text.
 */
export function stringifyMessage(message: unknown): string {
  let big = false
  const text = JSON.stringify(message, function (this: Record<string, unknown>, key: string, v: unknown) {
    if (typeof v === 'bigint') {
      big = true
      return `${BIG}${v}`
    }
    // Buffers turn into {type, data} before the replacer sees them: look at the value itself.
    const raw = key === '' ? v : this[key]
    if (ArrayBuffer.isView(raw)) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
    return v
  })
  return big
    ? text
        .split(`"${BIG_TEXT}`)
        .map((part, i) => (i === 0 ? part : part.replace('"', '')))
        .join('')
    : text
}
