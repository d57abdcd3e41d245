import { describe, expect, it } from 'vitest'
import { type DateTime, LocalDate } from '@anchovies/core'
import { CopyTextParser, unescapeCopy } from '../src/extract/copy-text.js'
import { converter, isoTimestamp, rawJson } from '../src/extract/source-values.js'

describe('values read from a source database', () => {
  it('turns database timestamps into ISO text with microseconds and zone, and refuses what ISO cannot hold', () => {
    expect(isoTimestamp('2025-01-02 09:00:00.123456+00', true)).toBe('2025-01-02T09:00:00.123456+00:00')
    expect(isoTimestamp('2025-01-02 09:00:00+00', true)).toBe('2025-01-02T09:00:00+00:00')
    expect(isoTimestamp('2025-01-02 09:00:00.1+05:30', true)).toBe('2025-01-02T09:00:00.100000+05:30')
    expect(isoTimestamp('2025-01-02 09:00:00.000000', false)).toBe('2025-01-02T09:00:00')
    expect(isoTimestamp('2025-01-02 09:00:00', true)).toBe('2025-01-02T09:00:00+00:00')
    expect(isoTimestamp('2025-01-02 09:00:00-0330', true)).toBe('2025-01-02T09:00:00-03:30')
    for (const bad of [
      'infinity',
      '2025-01-02 09:00:00 BC',
      '2025-01-02 09:00:00.1234567',
      '12025-01-02 09:00:00',
      '2025-01-02 09:00:00+1',
    ])
      expect(isoTimestamp(bad, true)).toBeUndefined()
  })

  it('keeps 64-bit integers, decimals, bytes and dates exact', () => {
    expect(converter('int64')('9223372036854775807')).toBe(9223372036854775807n)
    expect(converter('int64')('-42')).toBe(-42)
    expect(converter('int64')(9007199254740993n)).toBe(9007199254740993n)
    expect(converter('decimal')('-0.000000000000000000000000000001')).toBe('-0.000000000000000000000000000001')
    expect((converter('bytes')('\\x00ff') as Buffer).toString('hex')).toBe('00ff')
    expect(converter('date')('2024-02-29')).toEqual(LocalDate.parse('2024-02-29'))
    expect((converter('datetimetz')('1999-12-31 23:59:59.999999+00') as DateTime).iso).toBe(
      '1999-12-31T23:59:59.999999+00:00',
    )
    expect(converter('datetime')('infinity')).toBe('infinity')
    expect(converter('json')('{"a": [1, 2]}')).toEqual({ a: [1, 2] })
    expect(converter('array')('{1,"b c",NULL}')).toEqual(['1', 'b c', null])
    expect(rawJson(12345678901234567890n)).toBe('12345678901234567890')
  })

  it('parses COPY text whatever the byte slicing: escapes, NULLs, tabs and multi-byte characters', () => {
    const text = 'a\\tb\t\\N\t\\\\x\n☃ 中\t\\n\t\n'
    const bytes = Buffer.from(text)
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = new CopyTextParser()
      const rows = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))]
      p.end()
      expect(rows).toEqual([
        ['a\tb', null, '\\x'],
        ['☃ 中', '\n', ''],
      ])
    }
    expect(unescapeCopy('\\101\\x42\\q')).toBe('ABq')
  })
})
