import { describe, expect, it } from 'vitest'
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
})
