import type { ColumnType, Table } from '@anchovies/core'
import type { CsvSyntax } from './csv-parser.js'
import { strptime, zoneOf, type ConvertOptions } from './convert.js'
import { compileGlob, DEFAULT_MAX_DEPTH } from './glob.js'

/** What happens to a source file once the batch holding its rows has committed. */
export type AfterAction =
  | { readonly kind: 'keep' }
  | { readonly kind: 'delete' }
  | { readonly kind: 'move'; readonly dir: string }

/** What to do with a malformed row or a value that does not convert. */
export type BadRowPolicy = 'fail' | 'skip' | 'quarantine'

/** The text encodings a file may use. */
export const ENCODINGS = { utf8: 'utf-8', latin1: 'latin1', utf16le: 'utf-16le', cp1252: 'windows-1252' } as const
/** An encoding name from ENCODINGS. */
export type Encoding = keyof typeof ENCODINGS

/** The sftp settings of one table, validated (from `tbls.<name>`). */
export interface CsvTableSettings extends CsvSyntax, ConvertOptions {
  /** The table name (for messages naming a setting: `tbls.<table>.<key>`). */
  readonly table: string
  /** Glob relative to the connection base, without a leading slash. */
  readonly path: string
  readonly header: boolean
  readonly columns: Readonly<Record<string, ColumnType>>
  readonly encoding: Encoding
  readonly compression: 'auto' | 'gzip' | 'none'
  /** Seconds a file must be unchanged (by mtime) before it is taken. */
  readonly minAge: number
  readonly after: AfterAction
  readonly onBadRow: BadRowPolicy
  /** With skip/quarantine: fail the table once a run meets more bad rows than this (0 = no limit). */
  readonly maxBadRows: number
  /** Add `_file` and `_line` to every row. */
  readonly lineage: boolean
  /** At most this many files per table and batch (0 = all); the rest waits for the next batch. */
  readonly maxFiles: number
  /** Most folders a `**` walk goes below the glob's literal folder. */
  readonly maxDepth: number
  /** Most bytes a compressed file may decompress to (0 = no limit). */
  readonly maxDecompressedBytes: number
  /** Most decompressed bytes per compressed byte, once past RATIO_FLOOR bytes (0 = no limit). */
  readonly maxCompressionRatio: number
}

/** Default `max_decompressed_size`: 64 GiB, far above any single delimited file a partner sends. */
export const DEFAULT_MAX_DECOMPRESSED = 64 * 1024 ** 3
/** Default `max_compression_ratio`: gzip tops out near 1030:1; real CSV reaches ~25:1, one short row repeated 350-700:1. */
export const DEFAULT_MAX_RATIO = 500
/** The ratio guard applies once this many bytes came out (a small file with a silly ratio is harmless). */
export const RATIO_FLOOR = 4 * 1024 * 1024

/** The columns `lineage: true` adds to every row. */
export const LINEAGE_COLUMNS = ['_file', '_line'] as const

/** Every `tbls.<name>` key the plugin reads (others are left to core and uploaders). */
export const TABLE_KEYS = [
  'path',
  'delimiter',
  'header',
  'quote',
  'escape',
  'comment',
  'encoding',
  'skip_rows',
  'compression',
  'min_age',
  'after',
  'on_bad_row',
  'max_bad_rows',
  'lineage',
  'datetime_format',
  'date_format',
  'timezone',
  'decimal_separator',
  'bytes_format',
  'null_values',
  'relax_quotes',
  'max_record_size',
  'max_files',
  'max_depth',
  'max_decompressed_size',
  'max_compression_ratio',
  // Read by core or uploaders, or reserved (the README's `autodiscover`).
  'autodiscover',
  'sql_table',
] as const

// Maps, not object literals: `delimiter: constructor` must not find Object.prototype.constructor.
const DELIMITERS = new Map<string, string>([
  ['tab', '\t'],
  ['/t', '\t'],
  ['\\t', '\t'],
  ['comma', ','],
  ['semicolon', ';'],
  ['pipe', '|'],
])
const ENCODING_ALIASES = new Map<string, Encoding>([
  ['utf8', 'utf8'],
  ['utf-8', 'utf8'],
  ['latin1', 'latin1'],
  ['iso-8859-1', 'latin1'],
  ['iso88591', 'latin1'],
  ['utf16le', 'utf16le'],
  ['utf-16le', 'utf16le'],
  ['utf-16', 'utf16le'],
  ['cp1252', 'cp1252'],
  ['windows-1252', 'cp1252'],
])
const BYTE_UNITS = new Map<string, number>([
  ['', 1],
  ['b', 1],
  ['k', 1024],
  ['kb', 1024],
  ['kib', 1024],
  ['m', 1024 ** 2],
  ['mb', 1024 ** 2],
  ['mib', 1024 ** 2],
  ['g', 1024 ** 3],
  ['gb', 1024 ** 3],
  ['gib', 1024 ** 3],
  ['t', 1024 ** 4],
  ['tb', 1024 ** 4],
  ['tib', 1024 ** 4],
])

/** Splits a path setting into its folder names (no empty or `.` parts), without a regular expression. */
export function pathParts(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.')
}

/** The table keys that are set, own keys only (a `__proto__` key that became the prototype is reported as one). */
export function tableKeys(properties: object): string[] {
  const keys = Object.keys(properties)
  const proto: unknown = Object.getPrototypeOf(properties)
  if (proto !== Object.prototype && proto !== null && !keys.includes('__proto__')) keys.push('__proto__')
  return keys
}

/** Reads and validates a table's sftp settings; every problem is pushed to `problems` (prefixed with `tbls.<name>`). */
export function readTableSettings(table: Table, problems: string[]): CsvTableSettings {
  const props = table.properties
  // Own keys only: a `__proto__` key in the config may have become the object's prototype.
  const p = (key: string): unknown => (Object.hasOwn(props, key) ? props[key] : undefined)
  const at = `tbls.${table.name}`
  const problem = (key: string, msg: string): void => void problems.push(`${at}.${key}: ${msg}`)
  const str = (key: string, fallback: string): string => {
    const v = p(key)
    if (v == null) return fallback
    if (typeof v !== 'string' && typeof v !== 'number') {
      problem(key, 'must be a string')
      return fallback
    }
    return String(v)
  }
  const optChar = (key: string, fallback: string | null): string | null => {
    const v = p(key)
    if (v === null || v === false || v === '' || v === 'none') return v === undefined ? fallback : null
    if (v === undefined) return fallback
    if (typeof v !== 'string') {
      problem(key, 'must be a string (or none)')
      return fallback
    }
    return v
  }
  const num = (key: string, fallback: number, min = 0, integer = false): number => {
    const v = p(key)
    if (v == null || v === '') return fallback
    const n = Number(v)
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      problem(key, `must be ${integer ? 'an integer' : 'a number'} ≥ ${min} (got ${JSON.stringify(v)})`)
      return fallback
    }
    return n
  }
  const byteSize = (key: string, fallback: number): number => {
    const v = p(key)
    if (v == null || v === '') return fallback
    const text = String(v).trim().toLowerCase()
    let split = 0
    while (split < text.length && ((text[split]! >= '0' && text[split]! <= '9') || text[split] === '.')) split++
    const n = Number(text.slice(0, split))
    const unit = BYTE_UNITS.get(text.slice(split).trim())
    if (split === 0 || !Number.isFinite(n) || unit === undefined) {
      problem(
        key,
        `must be a number of bytes, optionally with KiB, MiB, GiB or TiB (got ${JSON.stringify(v)}); 0 = no limit`,
      )
      return fallback
    }
    return Math.floor(n * unit)
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = p(key)
    if (v == null || v === '') return fallback
    if (typeof v === 'boolean') return v
    const s = String(v).toLowerCase()
    if (['true', 'yes', '1', 'on'].includes(s)) return true
    if (['false', 'no', '0', 'off'].includes(s)) return false
    problem(key, `must be true or false (got ${JSON.stringify(v)})`)
    return fallback
  }

  let path = str('path', '')
  if (!path) problem('path', 'is required: a glob relative to the connection base, e.g. /sales/*.tsv')
  if (path.length > 4096) problem('path', 'is longer than 4096 characters')
  path = pathParts(path).join('/')
  if (path.split('/').includes('..')) problem('path', 'must not contain ".."')

  const rawDelimiter = str('delimiter', ',')
  const delimiter = DELIMITERS.get(rawDelimiter.toLowerCase()) ?? rawDelimiter
  if (!delimiter || /[\r\n]/.test(delimiter))
    problem('delimiter', 'must be a non-empty string without line breaks (",", "tab", "/t", "|", ";")')

  const quote = optChar('quote', '"')
  const escape = optChar('escape', quote)
  const comment = optChar('comment', null)
  for (const [key, v] of [
    ['quote', quote],
    ['escape', escape],
  ] as const) {
    if (v !== null && v.length !== 1) problem(key, 'must be one character (or none)')
  }
  if (quote !== null && delimiter.includes(quote)) problem('quote', 'must differ from the delimiter')

  const rawEncoding = str('encoding', 'utf8').toLowerCase()
  const encoding = ENCODING_ALIASES.get(rawEncoding)
  if (!encoding) problem('encoding', `unsupported ${JSON.stringify(rawEncoding)} (use utf8, latin1, utf16le or cp1252)`)

  const compression = str('compression', 'auto').toLowerCase()
  if (!['auto', 'gzip', 'gz', 'none'].includes(compression))
    problem('compression', 'must be auto (by the .gz suffix), gzip or none')

  const rawAfter = str('after', 'keep').trim()
  let after: AfterAction = { kind: 'keep' }
  if (rawAfter === 'delete') after = { kind: 'delete' }
  else if (rawAfter.startsWith('move:')) {
    const dir = pathParts(rawAfter.slice(5).trim()).join('/')
    if (!dir || dir.split('/').includes('..'))
      problem('after', 'move:<dir> needs a folder relative to the connection base, without ".."')
    else if (path) {
      // A move folder that is the glob's own folder (or holds it) would be excluded from the walk with every file
      // in it: nothing would ever be taken. Below the glob's folder it is fine (excluded from the walk).
      const root = compileGlob(path).root
      if (root === dir || root.startsWith(`${dir}/`)) {
        problem(
          'after',
          `move:/${dir} is the folder the path /${path} lists (or holds it), so moved files would stay in view and nothing could be taken; move them to a sub-folder (move:/${root ? `${root}/` : ''}done) or a folder outside /${root}`,
        )
      }
    }
    after = { kind: 'move', dir }
  } else if (rawAfter !== 'keep')
    problem('after', `must be keep, delete or move:<dir> (got ${JSON.stringify(rawAfter)})`)

  const onBadRow = str('on_bad_row', 'fail') as BadRowPolicy
  if (!['fail', 'skip', 'quarantine'].includes(onBadRow)) problem('on_bad_row', 'must be fail, skip or quarantine')

  const datetimeFormat = str('datetime_format', 'iso')
  const dateFormat = str('date_format', 'iso')
  for (const [key, f] of [
    ['datetime_format', datetimeFormat],
    ['date_format', dateFormat],
  ] as const) {
    if (f === 'iso' || (key === 'datetime_format' && (f === 'epoch' || f === 'epoch_ms'))) continue
    try {
      strptime(f)
    } catch (err) {
      problem(key, (err as Error).message)
    }
  }
  const timezoneRaw = p('timezone')
  const timezone = typeof timezoneRaw === 'string' && timezoneRaw ? timezoneRaw : null
  if (timezone) {
    try {
      zoneOf(timezone)
    } catch {
      problem(
        'timezone',
        `unknown time zone ${JSON.stringify(timezone)} (use UTC, +02:00 or an IANA name such as Europe/Paris)`,
      )
    }
  }
  const decimalSeparator = str('decimal_separator', '.')
  if (decimalSeparator !== '.' && decimalSeparator !== ',') problem('decimal_separator', 'must be "." or ","')
  const bytesFormat = str('bytes_format', 'hex') as 'hex' | 'base64'
  if (bytesFormat !== 'hex' && bytesFormat !== 'base64') problem('bytes_format', 'must be hex or base64')
  const nullRaw = p('null_values')
  let nullValues: string[] = []
  if (typeof nullRaw === 'string') nullValues = [nullRaw]
  else if (Array.isArray(nullRaw)) nullValues = nullRaw.map(String)
  else if (nullRaw != null) problem('null_values', 'must be a string or a list of strings')

  const header = bool('header', true)
  const lineage = bool('lineage', false)
  if (lineage) {
    for (const name of LINEAGE_COLUMNS) {
      if (Object.hasOwn(table.columns, name))
        problem(
          'lineage',
          `columns declares ${name}, which lineage: true also writes; rename the column or set lineage: false`,
        )
    }
  }
  return {
    table: table.name,
    path,
    delimiter,
    quote,
    escape,
    comment,
    skipRows: num('skip_rows', 0, 0, true),
    maxRecordChars: num('max_record_size', 16 * 1024 * 1024, 1024, true),
    relaxQuotes: bool('relax_quotes', false),
    header,
    columns: table.columns,
    encoding: encoding ?? 'utf8',
    compression: compression === 'gz' ? 'gzip' : (compression as CsvTableSettings['compression']),
    minAge: num('min_age', 0),
    after,
    onBadRow,
    maxBadRows: num('max_bad_rows', 0, 0, true),
    lineage,
    maxFiles: num('max_files', 0, 0, true),
    maxDepth: num('max_depth', DEFAULT_MAX_DEPTH, 1, true),
    maxDecompressedBytes: byteSize('max_decompressed_size', DEFAULT_MAX_DECOMPRESSED),
    maxCompressionRatio: num('max_compression_ratio', DEFAULT_MAX_RATIO, 0),
    datetimeFormat,
    dateFormat,
    timezone,
    decimalSeparator,
    bytesFormat,
    nullValues,
  }
}
