import { describe, expect, it } from 'vitest'
import { DateTime, LocalDate } from '@anchovies/core'
import { DecimalText, coerceDeclared, fits, naturalType, typeFor, widenType } from '../src/column-types.js'
import { schemaMap, sqlSettings, targetOf } from '../src/config.js'
import { knexConfig, sqlitePath } from '../src/sql-connection.js'

describe('column types', () => {
  it("takes a value's own type and never guesses from string content", () => {
    expect(naturalType('2025-01-02')).toBe('str')
    expect(naturalType('int')).toBe('str')
    expect(naturalType('deadbeef')).toBe('str')
    expect(naturalType(3)).toBe('int')
    expect(naturalType(3.5)).toBe('float')
    expect(naturalType(2n ** 63n)).toBe('decimal')
    expect(naturalType(DateTime.parse('2025-01-01T00:00:00'))).toBe('datetime')
    expect(naturalType(DateTime.parse('2025-01-01T00:00:00+02:00'))).toBe('datetimetz')
    expect(naturalType(LocalDate.parse('2025-01-01'))).toBe('date')
    expect(naturalType(Buffer.from([1]))).toBe('bytes')
    expect(naturalType({ a: 1 })).toBe('json')
    expect(naturalType(null)).toBeNull()
  })

  it('widens along bool → int → float/decimal → text and naive → aware datetimes', () => {
    expect(widenType('bool', 'int')).toBe('int')
    expect(widenType('int', 'float')).toBe('float')
    expect(widenType('float', 'decimal')).toBe('decimal')
    expect(widenType('int', 'str')).toBe('str')
    expect(widenType('datetime', 'datetimetz')).toBe('datetimetz')
    expect(widenType('date', 'datetime')).toBe('str')
    expect(widenType('json', 'int')).toBe('json')
    expect(typeFor('int', 2n ** 63n)).toBe('decimal')
    expect(typeFor('float', 2n ** 60n)).toBe('decimal')
    expect(typeFor('int', 1.5)).toBe('float')
    expect(typeFor(undefined, null)).toBeUndefined()
    expect(fits('datetimetz', DateTime.parse('2025-01-01T00:00:00'))).toBe(true)
    expect(fits('datetime', DateTime.parse('2025-01-01T00:00:00Z'))).toBe(false)
  })

  it('converts strings of declared columns exactly, and leaves values that do not parse alone', () => {
    expect(coerceDeclared('int', '9223372036854775807')).toBe(9223372036854775807n)
    expect(coerceDeclared('int', '42')).toBe(42)
    expect(coerceDeclared('int', '')).toBeNull()
    expect(coerceDeclared('int', 'n/a')).toBe('n/a')
    expect(coerceDeclared('float', '1.25')).toBe(1.25)
    expect(coerceDeclared('float', '12345678901234567890.5')).toEqual(new DecimalText('12345678901234567890.5'))
    expect(coerceDeclared('bool', 'Yes')).toBe(true)
    expect(coerceDeclared('datetime', '2025-01-01T00:00:00+01:00')).toBeInstanceOf(DateTime)
    expect(coerceDeclared('date', '2025-01-01')).toBeInstanceOf(LocalDate)
    expect(coerceDeclared('time', '10:11:12.5')).toBe('10:11:12.5')
    expect(coerceDeclared('bytes', '00ff')).toEqual(Buffer.from([0, 255]))
    expect(coerceDeclared('object', '{"a":1}')).toEqual({ a: 1 })
    expect(coerceDeclared('str', '')).toBe('')
  })
})

describe('target naming', () => {
  const table = {
    name: 'orders',
    namespace: 'Sales_SFTP',
    columns: {},
    uniqueBy: [],
    setBy: [],
    sortBy: [],
    deletedTtl: null,
    dataChangeTimestampField: null,
    properties: {},
  }
  const base = {
    user: 'ana',
    anchovyId: 'sales_db',
    settings: sqlSettings({}),
    schemaMap: new Map<string, string>(),
    schemas: true,
  }

  it('uses one schema per upstream anchovy, suffixed with the user unless the user is prod', () => {
    expect(targetOf(table, base)).toEqual({ schema: 'Sales_SFTP__ana', table: 'orders' })
    expect(targetOf(table, { ...base, user: 'prod' })).toEqual({ schema: 'Sales_SFTP', table: 'orders' })
  })

  it('maps anchovy ids to schema names case-insensitively, with - and . written as _', () => {
    expect(targetOf(table, { ...base, schemaMap: schemaMap({ SALES_SFTP: 'sales' }) })).toEqual({
      schema: 'sales__ana',
      table: 'orders',
    })
    expect(
      targetOf({ ...table, namespace: 'shop-files.v2' }, { ...base, schemaMap: schemaMap({ shop_files_v2: 'shop' }) }),
    ).toEqual({ schema: 'shop__ana', table: 'orders' })
  })

  it('prefixes table names where there are no schemas, and uses the default schema when asked', () => {
    expect(targetOf(table, { ...base, schemas: false })).toEqual({ schema: null, table: 'Sales_SFTP__ana__orders' })
    expect(targetOf(table, { ...base, settings: sqlSettings({ sql_schema_prefix: true }) })).toEqual({
      schema: null,
      table: 'Sales_SFTP__ana__orders',
    })
    expect(targetOf(table, { ...base, settings: sqlSettings({ sql_no_schema_name: true }) })).toEqual({
      schema: null,
      table: 'orders',
    })
    expect(targetOf({ ...table, properties: { sql_table: 'order_lines' } }, base)).toEqual({
      schema: 'Sales_SFTP__ana',
      table: 'order_lines',
    })
  })
})

describe('connection URLs', () => {
  it('reads SQLite URLs as SQLAlchemy does', () => {
    expect(sqlitePath('sqlite:///data/x.db', '/work')).toBe('/work/data/x.db')
    expect(sqlitePath('sqlite:////abs/x.db', '/work')).toBe('/abs/x.db')
    expect(sqlitePath('sqlite://', '/work')).toBe(':memory:')
  })

  it('rejects unsupported schemes with a coded error and never echoes the password', () => {
    expect(() => knexConfig('mssql://sa:hunter2pw@host/db')).toThrow(
      expect.objectContaining({ code: 'ANCH_ERR_SQL_UNSUPPORTED' }),
    )
    try {
      knexConfig('oracle://sa:hunter2pw@host/db')
      expect.unreachable()
    } catch (err) {
      expect((err as { code: string }).code).toBe('ANCH_ERR_SQL_URL')
      expect((err as Error).message).not.toContain('hunter2pw')
    }
  })

  it('passes extra knex options from JSONDATA', () => {
    const { config } = knexConfig('postgres://u@h/db', { pool: { max: 3 }, knex: { acquireConnectionTimeout: 1234 } })
    expect(config.pool).toMatchObject({ max: 3, min: 0 })
    expect(config.acquireConnectionTimeout).toBe(1234)
  })
})
