import { describe, expect, it } from 'vitest'
import { DateTime, LocalDate } from '@anchovies/core'
import { converterFor, type ConvertOptions } from '../src/convert.js'

const O: ConvertOptions = { datetimeFormat: 'iso', dateFormat: 'iso', timezone: null, decimalSeparator: '.', bytesFormat: 'hex', nullValues: [] }
const conv = (type: Parameters<typeof converterFor>[0], o: Partial<ConvertOptions> = {}) => converterFor(type, { ...O, ...o })

describe('value conversion', () => {
  it('converts int, float, bool, bytes, object and keeps empty typed values as null', () => {
    expect(conv('int')(' 42 ')).toBe(42)
    expect(conv('int')('123456789012345678901')).toBe(123456789012345678901n)
    expect(conv('int')('')).toBeNull()
    expect(() => conv('int')('4.2')).toThrow('"4.2" is not an integer')
    expect(conv('float')('-1.5e3')).toBe(-1500)
    expect(conv('float', { decimalSeparator: ',' })('1234,5')).toBe(1234.5)
    expect(() => conv('float')('abc')).toThrow('not a number')
    expect(conv('bool')('Yes')).toBe(true)
    expect(conv('bool')('0')).toBe(false)
    expect(() => conv('bool')('maybe')).toThrow('not a boolean')
    expect(conv('bytes')('0x0aff')).toEqual(Buffer.from([10, 255]))
    expect(conv('bytes', { bytesFormat: 'base64' })('AQI=')).toEqual(Buffer.from([1, 2]))
    expect(conv('object')('{"a":[1]}')).toEqual({ a: [1] })
    expect(conv('str')('')).toBe('')
    expect(conv('str', { nullValues: ['NULL'] })('NULL')).toBeNull()
    expect(conv('time')('23:59:01')).toBe('23:59:01')
  })

  it('reads ISO datetimes with or without offset, strftime patterns, epochs and a time zone for naive values', () => {
    expect(String(conv('datetime')('2025-03-01 10:20:30.5'))).toBe('2025-03-01T10:20:30.5')
    expect(String(conv('datetime')('2025-03-01T10:20:30Z'))).toBe('2025-03-01T10:20:30+00:00')
    expect(String(conv('datetime', { datetimeFormat: '%d/%m/%Y %I:%M %p' })('05/04/2025 01:02 PM'))).toBe('2025-04-05T13:02:00')
    expect(String(conv('datetime', { timezone: 'Europe/Paris' })('2025-07-01 12:00:00'))).toBe('2025-07-01T12:00:00+02:00')
    expect(String(conv('datetime', { timezone: 'Europe/Paris' })('2025-01-01 12:00:00'))).toBe('2025-01-01T12:00:00+01:00')
    expect(String(conv('datetime', { timezone: '-05:00' })('2025-01-01 12:00'))).toBe('2025-01-01T12:00:00-05:00')
    expect(String(conv('datetime', { datetimeFormat: 'epoch' })('0'))).toBe('1970-01-01T00:00:00+00:00')
    expect(() => conv('datetime')('2025-02-30 00:00:00')).toThrow('not a valid calendar date')
    expect(String(conv('date', { dateFormat: '%d.%m.%Y' })('31.12.2024'))).toBe('2024-12-31')
    expect(String(conv('date')('2024-12-31'))).toBe('2024-12-31')
    expect(() => conv('date')('2024-13-01')).toThrow()
  })

  it('gives the same values on the fast paths (plain digits, YYYY-MM-DD[ T]HH:MM:SS) as on the general ones', () => {
    expect(conv('int')('-007')).toBe(-7)
    expect(conv('int')('+15')).toBe(15)
    expect(conv('int')('999999999999999')).toBe(999999999999999)
    expect(conv('int')('9007199254740993')).toBe(9007199254740993n)
    expect(() => conv('int')('-')).toThrow('not an integer')
    expect(() => conv('int')('1a')).toThrow('not an integer')
    expect(conv('float')('-12.50')).toBe(-12.5)
    expect(conv('float')('.5')).toBe(0.5)
    expect(conv('float')('5.')).toBe(5)
    expect(conv('float', { decimalSeparator: ',' })('-3,25')).toBe(-3.25)
    expect(() => conv('float')('.')).toThrow('not a number')
    expect(() => conv('float')('1.2.3')).toThrow('not a number')
    const dt = conv('datetime')('2025-03-01 10:20:30') as DateTime
    expect(dt).toBeInstanceOf(DateTime)
    expect([dt.iso, dt.offsetMinutes, dt.epochMicros]).toEqual(['2025-03-01T10:20:30', null, DateTime.parse('2025-03-01T10:20:30').epochMicros])
    expect(JSON.stringify(conv('datetime', { timezone: 'UTC' })('2025-03-01T10:20:30'))).toBe('"2025-03-01T10:20:30+00:00"')
    expect((conv('datetime', { timezone: '+05:30' })('2025-03-01T10:20:30') as DateTime).offsetMinutes).toBe(330)
    expect(String(conv('datetime')('2024-02-29 23:59:60'))).toBe('2024-02-29T23:59:60')
    expect(() => conv('datetime')('2023-02-29 00:00:00')).toThrow('not a valid calendar date')
    expect(() => conv('datetime')('1900-02-29 00:00:00')).toThrow('not a valid calendar date')
    expect(() => conv('datetime')('2025-01-01 24:00:00')).toThrow('not a valid time of day')
    expect(() => conv('datetime')('2025-01-01 1a:00:00')).toThrow('not an ISO datetime')
    expect(conv('date')('2000-02-29')).toEqual(new LocalDate(2000, 2, 29))
    expect(() => conv('date')('2100-02-29')).toThrow('not a valid calendar date')
  })

  it('reads fractions and offsets on the fast path exactly as the general parser does', () => {
    const cases: [string, string, Partial<ConvertOptions>?][] = [
      ['2024-05-03T12:34:56.000Z', '2024-05-03T12:34:56.000+00:00'],
      ['2024-05-03T12:34:56z', '2024-05-03T12:34:56+00:00'],
      ['2024-05-03 12:34:56.1234567+05:30', '2024-05-03T12:34:56.123456+05:30'],
      ['2024-05-03T12:34:56.5-08:00', '2024-05-03T12:34:56.5-08:00'],
      ['2024-05-03T12:34:56-00:30', '2024-05-03T12:34:56-00:30'],
      ['2024-05-03T12:34:56.25', '2024-05-03T12:34:56.25+00:00', { timezone: 'UTC' }],
      ['2024-05-03T12:34:56+02:00', '2024-05-03T12:34:56+02:00', { timezone: 'UTC' }],
      // Other shapes go to the general parser.
      ['2024-05-03T12:34:56+0530', '2024-05-03T12:34:56+05:30'],
      [' 2024-05-03T12:34:56Z ', '2024-05-03T12:34:56+00:00'],
      ['2024-05-03T12:34:56 +01:00', '2024-05-03T12:34:56+01:00'],
    ]
    for (const [text, iso, options] of cases) {
      const value = conv('datetime', options)(text) as DateTime
      expect(value, text).toEqual(DateTime.parse(iso))
      expect(value.epochMicros, text).toBe(DateTime.parse(iso).epochMicros)
    }
    for (const bad of ['2024-05-03T12:34:56.Z', '2024-05-03T12:34:56+05:3', '2024-05-03T12:34:56.1234567890', '2024-02-30T00:00:00Z', '2024-05-03T25:00:00Z']) {
      expect(() => conv('datetime')(bad), bad).toThrow()
    }
  })
})
