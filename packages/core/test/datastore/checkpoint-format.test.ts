import { describe, expect, it } from 'vitest'
import { decodeCheckpoint, encodeCheckpoint } from '../../src/index.js'

describe('checkpoint file format', () => {
  it('round-trips every JSON value, writing plain strings raw like the Python implementation', () => {
    for (const v of [
      'hello',
      '2025-04-16T11:23:13+00:00',
      '',
      '1020',
      '{abc',
      '"q"',
      ' lead',
      'true',
      1020,
      1.5,
      true,
      null,
      [1, 'a'],
      { a: { b: [] } },
    ]) {
      expect(decodeCheckpoint(encodeCheckpoint(v))).toEqual(v)
    }
    expect(encodeCheckpoint('hello')).toBe('hello')
    expect(encodeCheckpoint('1020')).toBe('"1020"')
    expect(decodeCheckpoint('1020')).toBe(1020)
  })

  it('reports text that cannot have been written whole as corrupt', () => {
    for (const bad of ['', '{"a":', '[1,', '"unterminated', 'a\u0000b']) {
      expect(() => decodeCheckpoint(bad, '$checkpoints/k')).toThrow(/\$checkpoints\/k is corrupt/)
    }
  })
})
