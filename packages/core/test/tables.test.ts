import { describe, expect, it } from 'vitest'
import { DateTime, LocalDate, decodeRow, encodeRow, parseTable, tableRecord } from '../src/index.js'
import type { ColumnType, Row, Table } from '../src/index.js'

const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype)
const HOSTILE = [' ', ',', '@', '"', "'", '\\', '-', '+', '名', 'é', '\t', 'DT', 'a', '_', '.', ':', '{', '}']

/** Seeded names made of the characters that broke the old formats, plus every Object.prototype member name. */
function hostileNames(n: number, seed = 7): string[] {
  let s = seed
  const rnd = (k: number): number => {
    s = (s * 48271) % 2147483647
    return s % k
  }
  const names = new Set<string>(PROTO_NAMES)
  while (names.size < PROTO_NAMES.length + n) {
    let name = ''
    for (let len = 1 + rnd(8); len > 0; len--) name += HOSTILE[rnd(HOSTILE.length)]
    names.add(name)
  }
  return [...names]
}

const TYPES: ColumnType[] = ['int', 'float', 'str', 'bool', 'datetime', 'date', 'bytes', 'object']

describe('table metadata and _types with any column name', () => {
  it('every column name a source can produce round-trips through $tables records', () => {
    const names = hostileNames(300)
    const columns = Object.create(null) as Record<string, ColumnType>
    names.forEach((n, i) => (columns[n] = TYPES[i % TYPES.length]!))
    const problems: string[] = []
    const table: Table = parseTable(
      't',
      {
        columns,
        unique_by: names.slice(0, 20),
        set_by: names.slice(20, 25),
        sort_by: names.slice(25, 40).map((n, i) => (i % 2 ? `-${n}` : `+${n}`)),
      },
      'test',
      problems,
    )
    expect(problems).toEqual([])
    const back = parseTable('t', JSON.parse(JSON.stringify(tableRecord(table))), 'test', problems)
    expect(problems).toEqual([])
    expect(Object.entries(back.columns)).toEqual(Object.entries(table.columns))
    expect(Object.keys(back.columns)).toHaveLength(names.length)
    expect(back.uniqueBy).toEqual(names.slice(0, 20))
    expect(back.setBy).toEqual(names.slice(20, 25))
    expect(back.sortBy).toEqual(names.slice(25, 40).map((column, i) => ({ column, descending: i % 2 === 1 })))
  })

  it('plain names keep the Python string forms byte for byte, and Python strings with spaces in names read', () => {
    const problems: string[] = []
    const t = parseTable(
      'sales',
      { cols: 'id int, Order Date datetime, amount float', unique_by: 'id', sort_by: '-amount, id' },
      'x',
      problems,
    )
    expect(problems).toEqual([])
    expect(Object.entries(t.columns)).toEqual([
      ['id', 'int'],
      ['Order Date', 'datetime'],
      ['amount', 'float'],
    ])
    const simple = parseTable(
      'sales',
      { cols: 'id int, amount float', unique_by: 'id', sort_by: '-amount, id' },
      'x',
      problems,
    )
    const rec = tableRecord(simple)
    expect(rec.cols).toBe('id int, amount float')
    expect(rec.unique_by).toBe('id')
    expect(rec.sort_by).toBe('-amount, id')
  })

  it('a __proto__ key in columns or table settings is an ordinary name, never a prototype', () => {
    const problems: string[] = []
    const raw = JSON.parse(
      '{"columns": {"__proto__": "int", "constructor": "str"}, "__proto__": {"path": "/x"}}',
    ) as Record<string, unknown>
    const t = parseTable('sales', raw, 'x', problems)
    expect(problems).toEqual([])
    expect(Object.hasOwn(t.columns, '__proto__')).toBe(true)
    expect(t.columns.constructor).toBe('str')
    expect((t.properties as Record<string, unknown>).path).toBeUndefined()
    expect(Object.hasOwn(t.properties, '__proto__')).toBe(true)
  })

  it('annotated values under any column name come back typed, and no other column is converted', () => {
    const names = hostileNames(200, 11)
    const row = Object.create(null) as Row
    names.forEach((n, i) => {
      const v = [
        DateTime.parse('2025-01-02T03:04:05+00:00'),
        new LocalDate(2025, 1, 2),
        Buffer.from([i % 256]),
        '2025-01-02',
        i,
      ][i % 5]
      Object.defineProperty(row, n, { value: v, enumerable: true, writable: true, configurable: true })
    })
    const back = decodeRow(JSON.parse(encodeRow(row)) as Row)
    expect(Object.keys(back).sort()).toEqual([...names].sort())
    names.forEach((n, i) => {
      const v = Object.getOwnPropertyDescriptor(back, n)!.value as unknown
      const want = ['DateTime', 'LocalDate', 'Buffer', 'String', 'Number'][i % 5]
      expect(
        v === null
          ? 'null'
          : typeof v === 'object'
            ? (v as object).constructor.name
            : typeof v === 'string'
              ? 'String'
              : 'Number',
        n,
      ).toBe(want)
    })
  })

  it('names that fit the Python annotation string keep it; others use the object form', () => {
    expect(encodeRow({ d: new LocalDate(2025, 1, 2) })).toBe('{"d":"2025-01-02","_types":"d@D"}')
    expect(encodeRow({ d: new LocalDate(2025, 1, 2), 'Flight Date': new LocalDate(2025, 1, 3) })).toBe(
      '{"d":"2025-01-02","Flight Date":"2025-01-03","_types":{"d":"D","Flight Date":"D"}}',
    )
    const back = decodeRow(
      JSON.parse('{"Flight Date":"2025-01-03","Date":"2025-01-04","_types":{"Flight Date":"D"}}') as Row,
    )
    expect(back['Flight Date']).toBeInstanceOf(LocalDate)
    expect(back.Date).toBe('2025-01-04')
  })
})
