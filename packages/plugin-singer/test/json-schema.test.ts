import { describe, expect, it } from 'vitest'
import { DateTime, LocalDate } from '@anchovies/core'
import { SchemaViolation, UnsafeInteger, convertRecord, propertyKind, streamShape } from '../src/json-schema.js'
import { parseLossless, stringifyMessage } from '../src/messages.js'
import { catalogStreams, selectStreams } from '../src/catalog.js'
import { tableName } from '../src/tap-downloader.js'

describe('JSON Schema to column types', () => {
  it.each([
    [{ type: 'integer' }, 'int'],
    [{ type: ['null', 'integer'] }, 'int'],
    [{ type: 'number' }, 'float'],
    [{ type: 'number', multipleOf: 0.01 }, 'float'],
    [{ type: ['integer', 'number'] }, 'float'],
    [{ type: 'boolean' }, 'bool'],
    [{ type: 'string' }, 'str'],
    [{ type: 'string', format: 'date-time' }, 'datetime'],
    [{ anyOf: [{ type: 'string', format: 'date-time' }, { type: 'null' }] }, 'datetime'],
    [{ type: 'string', format: 'date' }, 'date'],
    [{ type: 'string', format: 'time' }, 'time'],
    [{ type: 'string', contentEncoding: 'base64' }, 'base64'],
    [{ type: 'string', contentEncoding: 'base16' }, 'hex'],
    [{ type: 'object', properties: { a: { type: 'integer' } } }, 'any'],
    [{ type: ['array', 'null'], items: { type: 'string' } }, 'any'],
    [{ anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'null' }] }, 'any'],
    [{}, 'any'],
  ])('%j is %s', (schema, kind) => {
    expect(propertyKind(schema)).toBe(kind)
  })

  it('maps a stream schema to columns (names are data, even __proto__), required properties and checks', () => {
    const shape = streamShape(
      JSON.parse(
        '{"type":"object","required":["id"],"properties":{"id":{"type":"integer"},"__proto__":{"type":"string"},"at":{"type":"string","format":"date-time"},"b":{"type":"string","contentEncoding":"base64"}}}',
      ),
    )
    expect(Object.entries(shape.columns)).toEqual([
      ['id', 'int'],
      ['__proto__', 'str'],
      ['at', 'datetime'],
      ['b', 'bytes'],
    ])
    expect(Object.getPrototypeOf(shape.columns)).toBe(null)
    expect(shape.required).toEqual(['id'])
  })

  it('refuses a schema with no properties', () => {
    expect(() => streamShape({ type: 'object' })).toThrow(SchemaViolation)
    expect(() => streamShape({ type: 'object', properties: {} })).toThrow(/declares no properties/)
    expect(() => streamShape('nope')).toThrow(/not a JSON object/)
  })
})

describe('records checked and converted', () => {
  const shape = streamShape({
    type: 'object',
    required: ['id'],
    properties: {
      id: { type: 'integer' },
      at: { type: 'string', format: 'date-time' },
      d: { type: 'string', format: 'date' },
      b: { type: 'string', contentEncoding: 'base64' },
      h: { type: 'string', contentEncoding: 'base16' },
      n: { type: 'number' },
      ok: { type: 'boolean' },
    },
  })

  it('converts datetimes, dates and bytes; null is allowed anywhere', () => {
    const r: Record<string, unknown> = {
      id: 1,
      at: '2024-01-02T03:04:05.123456Z',
      d: '2024-01-02T00:00:00Z',
      b: 'AQID',
      h: '0a0b',
      n: null,
      ok: true,
    }
    convertRecord(r, shape)
    expect(r.at).toBeInstanceOf(DateTime)
    expect((r.at as DateTime).iso).toBe('2024-01-02T03:04:05.123456Z')
    expect(r.d).toEqual(LocalDate.parse('2024-01-02'))
    expect(r.b).toEqual(Buffer.from([1, 2, 3]))
    expect(r.h).toEqual(Buffer.from([10, 11]))
  })

  it.each([
    [{ at: '2024-01-01T00:00:00Z' }, /required property "id" is missing/],
    [{ id: '1' }, /property "id" holds the string "1"/],
    [{ id: 1.5 }, /property "id" holds number 1.5/],
    [{ id: 1, at: 'yesterday' }, /not the date or datetime/],
    [{ id: 1, h: 'xyz' }, /property "h"/],
    [{ id: 1, ok: 'true' }, /property "ok"/],
  ])('refuses %j', (record, message) => {
    expect(() => convertRecord(record as Record<string, unknown>, shape)).toThrow(message)
  })

  it('an inherited name does not count as a present required property', () => {
    const s = streamShape({
      type: 'object',
      required: ['constructor'],
      properties: { constructor: { type: 'string' } },
    })
    expect(() => convertRecord({}, s)).toThrow(/required property "constructor"/)
  })

  it('an integer beyond 2^53 asks for a lossless parse, which keeps it exact', () => {
    const line =
      '{"type":"RECORD","stream":"s","record":{"id":99999999999999999,"x":"12345678901234567890","f":1.5e300}}'
    const rec = (JSON.parse(line) as { record: Record<string, unknown> }).record
    expect(() => convertRecord(rec, shape)).toThrow(UnsafeInteger)
    const exact = (parseLossless(line) as { record: Record<string, unknown> }).record
    expect(exact.id).toBe(99999999999999999n)
    expect(exact.x).toBe('12345678901234567890')
    expect(exact.f).toBe(1.5e300)
    convertRecord(exact, shape)
    expect(stringifyMessage({ record: exact })).toBe(
      '{"record":{"id":99999999999999999,"x":"12345678901234567890","f":1.5e+300}}',
    )
  })

  it('a data string cannot pose as a big integer', () => {
    const text = stringifyMessage({ a: '\u0000anything:123', b: 5n, c: Buffer.from('hi') })
    expect(JSON.parse(text)).toEqual({ a: '\u0000anything:123', b: 5, c: 'aGk=' })
  })
})

describe('catalogs and names', () => {
  const catalog = {
    streams: [
      {
        tap_stream_id: 'a',
        stream: 'a',
        schema: { type: 'object', properties: { id: { type: 'integer' } } },
        metadata: [{ breadcrumb: [], metadata: { 'table-key-properties': ['id'], 'replication-key': 'id' } }],
      },
      { tap_stream_id: 'b-x', schema: { properties: {} } },
    ],
  }

  it('reads streams with their keys and replication key', () => {
    expect(catalogStreams(catalog).map((s) => [s.name, s.keyProperties, s.bookmarkProperties])).toEqual([
      ['a', ['id'], ['id']],
      ['b-x', [], []],
    ])
  })

  it('selects streams in a copy, leaving the base catalog as it was', () => {
    const selected = selectStreams(catalog, (s) => s === 'a') as typeof catalog
    expect(selected.streams.map((s) => s.metadata?.[0]?.metadata)).toEqual([
      expect.objectContaining({ selected: true }),
      { selected: false },
    ])
    expect(JSON.stringify(catalog)).not.toContain('selected')
  })

  it('turns stream names into table names a datastore path can hold', () => {
    expect(tableName('public-users')).toBe('public-users')
    expect(tableName('schema.table')).toBe('schema.table')
    expect(tableName('a/b\\c d')).toBe('a_b_c_d')
    expect(tableName('..')).toBe('_')
    expect(tableName('-x')).toBe('_-x')
  })
})
