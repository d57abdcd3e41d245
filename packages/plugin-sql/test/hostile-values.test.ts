import { describe, expect, it } from 'vitest'
import { COLUMN_TYPES } from '@anchovies/core'
import { DecimalText, coerceDeclared, fits, isDecimalText, textLength, typeFor } from '../src/column-types.js'
import { describeUrl, splitDbUrl } from '../src/db-url.js'
import { MysqlDialect, decimalTextFits } from '../src/dialects/mysql.js'
import { PostgresDialect } from '../src/dialects/postgres.js'
import { SqliteDialect } from '../src/dialects/sqlite.js'
import { rng } from '../../../test/support/rng.mjs'

// Cells and names are untrusted and may be huge. Every check on them must take time linear in their length:
// a 200 KB cell used to block the event loop for tens of seconds in a backtracking regular expression.

const BIG = 200_000
/** Far above what linear work on 200 KB takes even on a loaded machine, far below what the old quadratic code took. */
const BOUND_MS = 3_000

function timed<T>(what: string, fn: () => T): T {
  const started = performance.now()
  const out = fn()
  const ms = performance.now() - started
  expect(ms, `${what} took ${ms.toFixed(0)} ms`).toBeLessThan(BOUND_MS)
  return out
}

const ones = '1'.repeat(BIG)
const zeros = '0'.repeat(BIG)

/** Inputs built to make a backtracking matcher try every split of a long run, and whether each is a decimal. */
const HOSTILE: readonly (readonly [string, boolean])[] = [
  [`${ones}x`, false],
  [`${ones}.${ones}x`, false],
  [`.${ones}x`, false],
  [`+${ones}.`, true],
  [`-${ones}e`, false],
  [`1e${ones}x`, false],
  [`1${zeros}1`, true],
  [`1.${zeros}1`, true],
  [`0.${zeros}`, true],
  [`${zeros}1${zeros}`, true],
  [`${ones}e+${ones}`, true],
  [`1${'.1'.repeat(BIG / 2)}`, false],
  ['e'.repeat(BIG), false],
  ['1e'.repeat(BIG / 2), false],
  [` ${ones} `, true],
]
const HOSTILE_NUMBERS = HOSTILE.map(([s]) => s)

/** The regular expression the uploader used (the readable grammar; quadratic on long digit runs). */
const OLD_DECIMAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
function oldExactAsDouble(s: string): boolean {
  return (
    s
      .replace(/^[+-]/, '')
      .replace(/[eE].*$/, '')
      .replace('.', '')
      .replace(/^0+/, '')
      .replace(/0+$/, '').length <= 15
  )
}
function oldDecimalFits(text: string): boolean {
  const t = text.replace(/^[+-]/, '')
  if (/e/i.test(t)) return false
  const [int = '', frac = ''] = t.split('.')
  return int.replace(/^0+/, '').length <= 35 && frac.replace(/0+$/, '').length <= 30
}

describe('huge hostile cells', () => {
  it('tells a 200 KB numeric cell from a decimal in linear time (DECIMAL_RE backtracked for tens of seconds)', () => {
    for (const [s, valid] of HOSTILE) {
      const label = `${JSON.stringify(s.slice(0, 12))}… (${s.length} chars)`
      const v = timed(`coerceDeclared('float', ${label})`, () => coerceDeclared('float', s))
      // Only the well-formed ones become numbers; those with more digits than a double holds stay exact.
      if (valid) expect(v instanceof DecimalText || typeof v === 'number', label).toBe(true)
      else expect(v, label).toBe(s)
    }
    expect(coerceDeclared('float', ones)).toEqual(new DecimalText(ones))
    expect(coerceDeclared('float', `1${zeros}1`)).toEqual(new DecimalText(`1${zeros}1`))
    expect(coerceDeclared('float', `1${zeros}`)).toBe(Number(`1${zeros}`))
    expect(coerceDeclared('float', `${ones}x`)).toBe(`${ones}x`)
  })

  it('types every declared column type on 200 KB hostile cells in linear time', () => {
    const cells = [
      ...HOSTILE_NUMBERS,
      `${'ab'.repeat(BIG / 2)}g`,
      `${'ab'.repeat(BIG / 2)}a`,
      '['.repeat(BIG),
      `${'12:'.repeat(BIG / 3)}`,
      `${'2025-'.repeat(BIG / 5)}`,
      'T'.repeat(BIG),
      `${' '.repeat(BIG)}x`,
    ]
    for (const t of COLUMN_TYPES) {
      for (const s of cells) {
        const label = `${t} ${JSON.stringify(s.slice(0, 12))}… (${s.length} chars)`
        const v = timed(`coerceDeclared(${label})`, () => coerceDeclared(t, s))
        const type = timed(`typeFor(${label})`, () => typeFor(undefined, v))
        timed(`fits(${label})`, () => fits(type!, v))
        timed(`textLength(${label})`, () => textLength('str', v))
      }
    }
  })

  it('checks a 200 KB decimal against MySQL DECIMAL(65,30) in linear time (its trailing-zero pattern was quadratic)', () => {
    const mysql = new MysqlDialect()
    for (const s of [...HOSTILE_NUMBERS, `0.${zeros}1`, `${zeros}1.0`, `1.${'0'.repeat(29)}1${zeros}`]) {
      timed(`decimalFits(${s.length} chars)`, () => mysql.decimalFits(new DecimalText(s)))
    }
    expect(mysql.decimalFits(new DecimalText(`1.${zeros}`))).toBe(true)
    expect(mysql.decimalFits(new DecimalText(`${zeros}${'9'.repeat(35)}.5`))).toBe(true)
    expect(mysql.decimalFits(new DecimalText(`${'9'.repeat(36)}`))).toBe(false)
    expect(mysql.decimalFits(new DecimalText(`0.${'0'.repeat(29)}1${zeros}`))).toBe(true)
    expect(mysql.decimalFits(new DecimalText(`0.${'0'.repeat(30)}1`))).toBe(false)
  })

  it('accepts exactly what the old patterns accepted (differential, 50,000 random short strings)', () => {
    const rand = rng(9)
    const alphabet = '0123456789.+-eE x'
    for (let n = 0; n < 50_000; n++) {
      let s = ''
      const len = Math.floor(rand() * 12)
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * alphabet.length)]
      expect(isDecimalText(s), JSON.stringify(s)).toBe(OLD_DECIMAL_RE.test(s))
      if (OLD_DECIMAL_RE.test(s)) {
        const v = coerceDeclared('float', s)
        expect(v instanceof DecimalText, JSON.stringify(s)).toBe(!oldExactAsDouble(s.trim()))
        expect(decimalTextFits(s), JSON.stringify(s)).toBe(oldDecimalFits(s))
      }
    }
    for (const s of [
      '1234567890.12345',
      '1234567890.123456',
      '0.000000000000000123456789012345',
      '100000000000000000000',
      '1.0000000000000010',
      '-0.0e5',
      '+.5E-3',
    ]) {
      expect(coerceDeclared('float', s) instanceof DecimalText, s).toBe(!oldExactAsDouble(s))
      expect(decimalTextFits(s), s).toBe(oldDecimalFits(s))
    }
  })

  it('checks and quotes 200 KB column names in linear time on every dialect', () => {
    const names = [
      'a'.repeat(BIG),
      `${'a '.repeat(BIG / 2)}`,
      `${' '.repeat(BIG)}x`,
      '😀'.repeat(BIG / 2),
      '"'.repeat(BIG),
      '`'.repeat(BIG),
    ]
    for (const d of [new PostgresDialect(), new MysqlDialect(), new SqliteDialect()]) {
      for (const n of names) {
        timed(`${d.name} quote(${n.length} chars)`, () => {
          try {
            d.quote(n, 'column name')
          } catch (err) {
            expect((err as { code?: string }).code).toBe('ANCH_ERR_SQL_NAME')
          }
        })
      }
    }
  })

  it('reads 200 KB hostile connection URLs in linear time', () => {
    const urls = [
      `postgres://${'@'.repeat(BIG)}`,
      `postgres://u:${':'.repeat(BIG)}@h/db`,
      `${'a'.repeat(BIG)}://x`,
      `postgres://${'//'.repeat(BIG / 2)}`,
      `${'a:'.repeat(BIG / 2)}`,
      `mysql://u:${'%'.repeat(BIG)}@h`,
    ]
    for (const u of urls) {
      timed(`splitDbUrl(${u.length} chars)`, () => splitDbUrl(u))
      const shown = timed(`describeUrl(${u.length} chars)`, () => describeUrl(u))
      expect(shown).not.toContain(':'.repeat(10))
      expect(shown).not.toContain('%'.repeat(10))
    }
  })
})
