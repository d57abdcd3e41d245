import { DateTime, LocalDate } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { coerceDeclared, dateTimeMicros, parseDecimal, stateFor, widenFor } from '../src/column-types.js'
import { columnValues } from '../src/parquet-file.js'

describe('column types', () => {
  it('parses decimal text exactly, exponents included, and refuses what is not a number', () => {
    expect(String(parseDecimal('12345678901234567890.123456789'))).toBe('12345678901234567890.123456789')
    expect(String(parseDecimal('-1.50'))).toBe('-1.5')
    expect(String(parseDecimal('1e-7'))).toBe('0.0000001')
    expect(String(parseDecimal('2.5E+3'))).toBe('2500')
    for (const bad of ['', '-', '.', '1e', '1.2.3', 'abc', '1e9999', '9'.repeat(101)])
      expect(parseDecimal(bad), bad).toBeUndefined()
  })

  it('widens along bool → int → float → decimal → text and naive → aware datetimes, never narrowing', () => {
    let c = stateFor('x', true)
    expect(c.type).toBe('bool')
    c = widenFor(c, 5)
    expect(c.type).toBe('int')
    c = widenFor(c, 2.5)
    expect(c.type).toBe('float')
    expect(widenFor(c, 7)).toBe(c)
    c = widenFor(c, coerceDeclared('float', '0.123456789012345678'))
    expect(c).toEqual({ name: 'x', type: 'decimal', scale: 18 })
    c = widenFor(c, 'text')
    expect(c.type).toBe('str')
    const t = widenFor(
      stateFor('t', DateTime.parse('2026-01-01T00:00:00')),
      DateTime.parse('2026-01-01T00:00:00+01:00'),
    )
    expect(t.type).toBe('timestamptz')
    expect(widenFor(stateFor('d', new LocalDate(2026, 1, 1)), 'soon').type).toBe('str')
    // More than 38 digits do not fit a Parquet DECIMAL: text.
    expect(stateFor('big', coerceDeclared('float', `1${'0'.repeat(40)}.5`)).type).toBe('str')
    // 64-bit integers stay integers; past 64 bits a declared float column takes them as decimals.
    expect(stateFor('i', coerceDeclared('int', '-9223372036854775808')).type).toBe('int')
    expect(stateFor('f', coerceDeclared('float', 2n ** 70n)).type).toBe('decimal')
  })

  it('reads DateTime micros from the ISO digits exactly as core does, falling back for what it does not cover', () => {
    const texts = [
      '2026-03-01T12:34:56.123456+05:30',
      '2026-03-01 12:34:56.1-08:00',
      '1969-12-31T23:59:59.999999Z',
      '2026-03-01T12:34',
      '2026-03-01T12:34:56',
      '2026-03-01T12:34:56.123456789',
      '0001-01-01T00:00:00Z',
      '0099-12-31T23:59:59.5+01:00',
      '9999-12-31T23:59:59.999999-23:59',
      '2024-02-29T00:00:00+0100',
    ]
    for (const t of texts) {
      const fresh = DateTime.parse(t)
      expect(dateTimeMicros(fresh), t).toBe(DateTime.parse(t).epochMicros)
    }
  })

  it('hands text columns over as strings when they repeat and as UTF-8 bytes when they do not, NULLs kept', () => {
    const repeated = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? null : `c${i % 13}`))
    const out = columnValues({ name: 'c', type: 'str', scale: 0 }, repeated, 5001)
    expect(out.slice(0, 5000)).toEqual(repeated.map((v) => v ?? null))
    expect(out[5000]).toBeNull()
    const unique = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? undefined : `note ${i} é`))
    const bytes = columnValues({ name: 'n', type: 'str', scale: 0 }, unique, 5000)
    expect(bytes[1]).toBeInstanceOf(Uint8Array)
    expect(bytes.map((b) => (b === null ? null : Buffer.from(b as Uint8Array).toString('utf8')))).toEqual(
      unique.map((v) => v ?? null),
    )
    const ascii = Array.from({ length: 3000 }, (_, i) => (i % 5 === 0 ? null : i % 3 === 0 ? i : `n${i}`))
    const asciiBytes = columnValues({ name: 'a', type: 'str', scale: 0 }, ascii, 3001)
    expect(asciiBytes.map((b) => (b === null ? null : Buffer.from(b as Uint8Array).toString('utf8')))).toEqual([
      ...ascii.map((v) => (v === null ? null : String(v))),
      null,
    ])
    expect(columnValues({ name: 'i', type: 'int', scale: 0 }, [1, 2000, null, 2n ** 62n, true], 6)).toEqual([
      1n,
      2000n,
      null,
      2n ** 62n,
      1n,
      null,
    ])
  })
})
