import { DateTime, LocalDate, type ColumnType } from '@anchovies/core'

/** A JSON Schema object as a Singer SCHEMA message carries it (read as untrusted data). */
export type JsonSchema = Record<string, unknown>

/** How one property's values are checked and converted on the way into the datastore. */
type Kind = 'int' | 'float' | 'bool' | 'str' | 'datetime' | 'date' | 'time' | 'hex' | 'base64' | 'any'

/** What a stream's SCHEMA means for its table: column types and the record checks. */
export interface StreamShape {
  /** Column name -> anchovies type (a null-prototype map: names are data). */
  readonly columns: Record<string, ColumnType>
  /** Properties every record must have (`required`). */
  readonly required: readonly string[]
  /** Properties whose values are checked or converted, with how. */
  readonly typed: readonly (readonly [string, Kind])[]
}

/** Why a record does not fit its schema (the caller names the stream and line). */
export class SchemaViolation extends Error {
  override name = 'SchemaViolation'
}

/** Thrown by `convertRecord` for an integer beyond ±2^53 parsed as a float: the line must be parsed losslessly. */
export class UnsafeInteger extends Error {
  override name = 'UnsafeInteger'
}

const KIND_COLUMN: Record<Kind, ColumnType> = {
  int: 'int',
  float: 'float',
  bool: 'bool',
  str: 'str',
  datetime: 'datetime',
  date: 'date',
  time: 'time',
  hex: 'bytes',
  base64: 'bytes',
  any: 'object',
}

/** The JSON types a schema allows, without "null" (`type` as a string or a list; `anyOf`/`oneOf` members merged). */
function typesOf(schema: unknown): { types: Set<string>; members: JsonSchema[] } {
  const types = new Set<string>()
  const members: JsonSchema[] = []
  const visit = (s: unknown, depth: number): void => {
    if (!s || typeof s !== 'object' || Array.isArray(s) || depth > 20) return
    const o = s as JsonSchema
    const t = Object.hasOwn(o, 'type') ? o.type : undefined
    const alts = (Object.hasOwn(o, 'anyOf') ? o.anyOf : undefined) ?? (Object.hasOwn(o, 'oneOf') ? o.oneOf : undefined)
    if (Array.isArray(alts)) {
      for (const a of alts) visit(a, depth + 1)
      if (t === undefined) return
    }
    const list =
      typeof t === 'string' ? [t] : Array.isArray(t) ? t.filter((x): x is string => typeof x === 'string') : []
    if (list.length === 0 && !Array.isArray(alts)) types.add('any')
    for (const x of list) if (x !== 'null') types.add(x)
    if (list.some((x) => x !== 'null')) members.push(o)
  }
  visit(schema, 0)
  return { types, members }
}

/** The kind of one property from its JSON Schema (see the README's type table). */
export function propertyKind(schema: unknown): Kind {
  const { types, members } = typesOf(schema)
  if (types.has('any') || types.size === 0) return 'any'
  if (types.size === 1) {
    const t = [...types][0]!
    if (t === 'integer') return 'int'
    if (t === 'number') return 'float'
    if (t === 'boolean') return 'bool'
    if (t === 'object' || t === 'array') return 'any'
    if (t === 'string') {
      // Every string member must agree on the format, else the values are plain strings.
      const formats = new Set(members.map((m) => (Object.hasOwn(m, 'format') ? m.format : undefined)))
      const encodings = new Set(
        members.map((m) => (Object.hasOwn(m, 'contentEncoding') ? String(m.contentEncoding).toLowerCase() : undefined)),
      )
      if (formats.size === 1) {
        const f = [...formats][0]
        if (f === 'date-time') return 'datetime'
        if (f === 'date') return 'date'
        if (f === 'time') return 'time'
      }
      if (encodings.size === 1) {
        const e = [...encodings][0]
        if (e === 'base16') return 'hex'
        if (e === 'base64') return 'base64'
      }
      return 'str'
    }
    return 'any'
  }
  // integer and number together are numbers; any other mix keeps the values as they are (JSON).
  if (types.size === 2 && types.has('integer') && types.has('number')) return 'float'
  return 'any'
}

/**
 * Reads a SCHEMA message's JSON Schema. A schema that is not an object with `properties` cannot describe a table
 * and is refused (the caller names the stream and line).
 */
export function streamShape(schema: unknown): StreamShape {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema))
    throw new SchemaViolation('the schema is not a JSON object')
  const o = schema as JsonSchema
  const props = Object.hasOwn(o, 'properties') ? o.properties : undefined
  if (!props || typeof props !== 'object' || Array.isArray(props) || Object.keys(props).length === 0) {
    throw new SchemaViolation('the schema declares no properties (a table needs at least one column)')
  }
  const columns = Object.create(null) as Record<string, ColumnType>
  const typed: [string, Kind][] = []
  for (const [name, p] of Object.entries(props as JsonSchema)) {
    const kind = propertyKind(p)
    columns[name] = KIND_COLUMN[kind]
    if (kind !== 'any') typed.push([name, kind])
  }
  const req = Object.hasOwn(o, 'required') ? o.required : undefined
  const required = Array.isArray(req) ? req.filter((r): r is string => typeof r === 'string') : []
  return { columns, required, typed }
}

const describe = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'string'
        ? `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`
        : `${typeof v} ${String(v).slice(0, 40)}`

/**
 * Checks a record against its stream's shape and converts typed values in place (datetimes, dates, bytes). Null
 * is accepted for every property (anchovies columns are nullable); a missing required property or a value of the
 * wrong type is a SchemaViolation.
 */
export function convertRecord(record: Record<string, unknown>, shape: StreamShape): void {
  for (const key of shape.required)
    if (!Object.hasOwn(record, key))
      throw new SchemaViolation(`the required property ${JSON.stringify(key)} is missing`)
  for (const [key, kind] of shape.typed) {
    if (!Object.hasOwn(record, key)) continue
    const v = record[key]
    if (v === null) continue
    switch (kind) {
      case 'int':
        if (typeof v === 'number') {
          if (Number.isSafeInteger(v)) continue
          if (Number.isInteger(v)) throw new UnsafeInteger(key)
        } else if (typeof v === 'bigint') continue
        break
      case 'float':
        if (typeof v === 'number' || typeof v === 'bigint') continue
        break
      case 'bool':
        if (typeof v === 'boolean') continue
        break
      case 'str':
      case 'time':
        if (typeof v === 'string') continue
        break
      case 'datetime':
        if (typeof v === 'string') {
          record[key] = parseOr(() => DateTime.parse(v), key, v)
          continue
        }
        break
      case 'date':
        if (typeof v === 'string') {
          // Some taps write dates as midnight datetimes: the date part is the value.
          record[key] = parseOr(
            () => LocalDate.parse(v.length > 10 && v.charCodeAt(10) === 84 ? v.slice(0, 10) : v),
            key,
            v,
          )
          continue
        }
        break
      case 'hex':
        if (typeof v === 'string' && /^(?:[0-9a-fA-F]{2})*$/.test(v)) {
          record[key] = Buffer.from(v, 'hex')
          continue
        }
        break
      case 'base64':
        if (typeof v === 'string') {
          record[key] = Buffer.from(v, 'base64')
          continue
        }
        break
      case 'any':
        continue
    }
    throw new SchemaViolation(
      `property ${JSON.stringify(key)} holds ${describe(v)}, which its schema (${KIND_COLUMN[kind]}${kind === 'hex' || kind === 'base64' ? `, ${kind}` : ''}) does not allow`,
    )
  }
}

function parseOr<T>(parse: () => T, key: string, v: string): T {
  try {
    return parse()
  } catch {
    throw new SchemaViolation(
      `property ${JSON.stringify(key)} holds ${describe(v)}, which is not the date or datetime its schema's format says`,
    )
  }
}

/** The JSON Schema of an anchovies column type (for SCHEMA messages a target receives). */
export function columnSchema(type: ColumnType | undefined): JsonSchema {
  switch (type) {
    case 'int':
      return { type: ['null', 'integer'] }
    case 'float':
      return { type: ['null', 'number'] }
    case 'bool':
      return { type: ['null', 'boolean'] }
    case 'str':
      return { type: ['null', 'string'] }
    case 'datetime':
      return { type: ['null', 'string'], format: 'date-time' }
    case 'date':
      return { type: ['null', 'string'], format: 'date' }
    case 'time':
      return { type: ['null', 'string'], format: 'time' }
    case 'bytes':
      return { type: ['null', 'string'], contentEncoding: 'base64' }
    default:
      return {}
  }
}
