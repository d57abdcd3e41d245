import { parseTable } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { readTableSettings } from '../src/config.js'
import { readRows } from '../src/csv-rows.js'
import type { BadRowError } from '../src/errors.js'

async function rows(text: string, table: Record<string, unknown>): Promise<{ rows: Record<string, unknown>[]; bad: BadRowError[] }> {
  const problems: string[] = []
  const s = readTableSettings(parseTable('t', { path: 'x/*.csv', ...table }, 'test', problems), problems)
  expect(problems).toEqual([])
  const bad: BadRowError[] = []
  const out: Record<string, unknown>[] = []
  async function* bytes(): AsyncGenerator<Buffer> {
    yield Buffer.from(text)
  }
  for await (const batch of readRows(bytes(), { path: 'x/a.csv', size: text.length, mtime: 0 }, s, (b) => void bad.push(b))) out.push(...batch)
  return { rows: out, bad }
}

describe('row building', () => {
  it('builds rows in header order with converted values and lineage, the same shape for every row', async () => {
    const r = await rows('b,a\n1,x\n2,\n', { columns: { b: 'int' }, lineage: true })
    expect(r.rows).toEqual([{ b: 1, a: 'x', _file: 'x/a.csv', _line: 2 }, { b: 2, a: '', _file: 'x/a.csv', _line: 3 }])
    expect(r.rows.map((row) => Object.keys(row))).toEqual([['b', 'a', '_file', '_line'], ['b', 'a', '_file', '_line']])
  })

  it('names the first column that does not convert, and keeps building after a bad row', async () => {
    const r = await rows('n,m,d\n1,x,2025-01-01\n2,3,2025-02-30\nq,z,nope\n4,5,2025-01-02\n', { columns: { n: 'int', m: 'int', d: 'date' }, on_bad_row: 'skip' })
    expect(r.bad.map((b) => [b.line, b.column])).toEqual([[2, 'm'], [3, 'd'], [4, 'n']])
    expect(r.rows).toEqual([{ n: 4, m: 5, d: expect.anything() }])
    expect(String(r.rows[0]!.d)).toBe('2025-01-02')
  })

  it('handles a column named __proto__ like the generic path (no prototype change)', async () => {
    const r = await rows('__proto__,b\n1,2\n', {})
    expect(r.bad.map((b) => b.message)).toEqual([])
    expect(r.rows).toHaveLength(1)
    expect(Object.getPrototypeOf(r.rows[0])).toBe(Object.prototype)
    expect(r.rows[0]!.b).toBe('2')
    expect(Object.keys(r.rows[0]!)).toEqual(['__proto__', 'b'])
  })
})
