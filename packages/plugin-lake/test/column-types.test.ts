import { DateTime, LocalDate } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { coerceDeclared, parseDecimal, stateFor, widenFor } from '../src/column-types.js'

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
})
