import { describe, expect, it } from 'vitest'
import { DateTime, LocalDate, type ColumnType } from '@anchovies/core'
import { converterFor, isDecimal, isInteger, type ConvertOptions } from '../src/convert.js'

const O: ConvertOptions = {
  datetimeFormat: 'iso',
  dateFormat: 'iso',
  timezone: null,
  decimalSeparator: '.',
  bytesFormat: 'hex',
  nullValues: [],
}
const conv = (type: Parameters<typeof converterFor>[0], o: Partial<ConvertOptions> = {}) =>
  converterFor(type, { ...O, ...o })

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
    expect(String(conv('datetime', { datetimeFormat: '%d/%m/%Y %I:%M %p' })('05/04/2025 01:02 PM'))).toBe(
      '2025-04-05T13:02:00',
    )
    expect(String(conv('datetime', { timezone: 'Europe/Paris' })('2025-07-01 12:00:00'))).toBe(
      '2025-07-01T12:00:00+02:00',
    )
    expect(String(conv('datetime', { timezone: 'Europe/Paris' })('2025-01-01 12:00:00'))).toBe(
      '2025-01-01T12:00:00+01:00',
    )
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
    expect([dt.iso, dt.offsetMinutes, dt.epochMicros]).toEqual([
      '2025-03-01T10:20:30',
      null,
      DateTime.parse('2025-03-01T10:20:30').epochMicros,
    ])
    expect(JSON.stringify(conv('datetime', { timezone: 'UTC' })('2025-03-01T10:20:30'))).toBe(
      '"2025-03-01T10:20:30+00:00"',
    )
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
    for (const bad of [
      '2024-05-03T12:34:56.Z',
      '2024-05-03T12:34:56+05:3',
      '2024-05-03T12:34:56.1234567890',
      '2024-02-30T00:00:00Z',
      '2024-05-03T25:00:00Z',
    ]) {
      expect(() => conv('datetime')(bad), bad).toThrow()
    }
  })
})

describe('hostile cells', () => {
  const K200 = 200 * 1024
  const hostile = (): string[] => [
    '1'.repeat(K200) + 'x', // the FLOAT pattern backtracked quadratically on this (~50 s)
    '1'.repeat(K200),
    `${'1'.repeat(K200)}.${'1'.repeat(K200)}x`,
    `-${'9'.repeat(K200)}e`,
    `1e${'1'.repeat(K200)}x`,
    '.'.repeat(K200),
    ' '.repeat(K200) + 'x',
    `2025-01-01${' '.repeat(K200)}x`,
    `2025-01-01T10:00:00${'0'.repeat(K200)}`,
    `2025-01-01 10:00:00.${'1'.repeat(K200)}`,
    `12:00:${'0'.repeat(K200)}`,
    '='.repeat(K200) + 'a',
    'A'.repeat(K200) + '=',
    `0x${'f'.repeat(K200)}g`,
    `\\x${'ab'.repeat(K200 / 2)}`,
    '['.repeat(K200),
    `{"a":${'['.repeat(1000)}`,
    'true'.repeat(K200 / 4),
    `${'1 '.repeat(K200 / 2)}x`,
    `${'1/'.repeat(K200 / 2)}x`,
  ]
  const options = (o: Partial<ConvertOptions> = {}): ConvertOptions => ({ ...O, ...o })
  const cases: [string, ColumnType, ConvertOptions][] = [
    ['int', 'int', options()],
    ['float', 'float', options()],
    ['float with decimal comma', 'float', options({ decimalSeparator: ',' })],
    ['bool', 'bool', options()],
    ['date iso', 'date', options()],
    ['date strftime', 'date', options({ dateFormat: '%d  %m %Y' })],
    ['datetime iso', 'datetime', options()],
    ['datetime iso in a zone', 'datetime', options({ timezone: 'Europe/Paris' })],
    ['datetime epoch', 'datetime', options({ datetimeFormat: 'epoch' })],
    ['datetime epoch_ms', 'datetime', options({ datetimeFormat: 'epoch_ms' })],
    ['datetime strftime with blanks', 'datetime', options({ datetimeFormat: '%Y-%m-%d   %H:%M:%S %z' })],
    ['time', 'time', options()],
    ['bytes hex', 'bytes', options()],
    ['bytes base64', 'bytes', options({ bytesFormat: 'base64' })],
    ['object', 'object', options()],
    ['str with null values', 'str', options({ nullValues: ['NULL', 'n/a'] })],
  ]
  for (const [name, type, o] of cases) {
    it(`converts or rejects a 200 KB hostile ${name} cell in well under 2 s (no super-linear pattern)`, () => {
      const convert = converterFor(type, o)
      for (const cell of hostile()) {
        const started = performance.now()
        try {
          convert(cell)
        } catch (err) {
          expect((err as Error).message.length).toBeLessThan(300)
        }
        expect(performance.now() - started, `${name}: ${JSON.stringify(cell.slice(0, 30))}…`).toBeLessThan(2000)
      }
    })
  }

  it('checks numbers exactly as the patterns they replace did', () => {
    const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/
    const INT = /^[+-]?\d+$/
    const alphabet = ['1', '0', '.', '-', '+', 'e', 'E', 'x', ' ', ',']
    let seed = 11
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
    for (let k = 0; k < 20_000; k++) {
      const s = Array.from({ length: rand(8) }, () => alphabet[rand(alphabet.length)]!).join('')
      expect(isDecimal(s), s).toBe(FLOAT.test(s))
      expect(isInteger(s), s).toBe(INT.test(s))
    }
  })
})
