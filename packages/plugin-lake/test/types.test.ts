import { DateTime, LocalDate } from '@anchovies/core'
import { afterAll, describe, expect, it } from 'vitest'
import { FEED, duck, feed, readLake, run, tableTasks, tempDir } from './helpers.js'

const CONFIG = `tbls:
  things:
    columns: {big: int, dec: float, t: time}
    unique_by: id
    sort_by: -updated
`

/** Every kind of value the datastore carries, with NULLs in every column of the last row. */
const ROWS: Record<string, unknown>[] = [
  {
    id: 1,
    big: 9223372036854775807n,
    small: -9007199254740991,
    dbl: 1.5,
    dec: '12345678901234567890.123456789',
    name: 'plain',
    flag: true,
    aware: DateTime.parse('2025-03-04T08:07:41.123456+05:30'),
    naive: DateTime.parse('2025-03-05T21:07:41.654321'),
    day: new LocalDate(2024, 2, 29),
    t: '23:59:59.999999',
    raw: Buffer.from([0, 1, 2, 254, 255]),
    doc: { a: 1, b: [1, 'two', null, true], c: { d: 'é' } },
  },
  {
    id: 2,
    big: -9223372036854775808n,
    small: 0,
    dbl: 1e-7,
    dec: '-0.000000001',
    name: 'さくら 🐟 "quoted" \\ back\nline\ttab',
    flag: false,
    aware: DateTime.parse('1969-12-31T23:59:59.000001Z'),
    naive: DateTime.parse('0001-01-01T00:00:00'),
    day: new LocalDate(1, 1, 1),
    t: '00:00',
    raw: Buffer.alloc(0),
    doc: [],
  },
  {
    id: 3,
    big: null,
    small: null,
    dbl: null,
    dec: null,
    name: null,
    flag: null,
    aware: null,
    naive: null,
    day: null,
    t: null,
    raw: null,
    doc: null,
  },
]

describe('lake.ParquetUploader types', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it('writes every anchovies type as its Parquet logical type, and DuckDB reads back the upstream values exactly', async () => {
    feed('things', ROWS)
    expect((await run({ operator: FEED, id: 'src', datastore: `${t.dir}/ds`, config: CONFIG })).exitCode).toBe(0)
    const up = await run({
      operator: 'lake.ParquetUploader',
      id: 'src_lake',
      datastore: `${t.dir}/ds`,
      upstream: ['src'],
      config: CONFIG,
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake` },
    })
    expect(up.exitCode, JSON.stringify(up.results)).toBe(0)
    expect(tableTasks(up.results)[0]!.data.rows_written).toBe(3)
    const from = readLake(`${t.dir}/lake/src/things`)

    const types = Object.fromEntries(
      (await duck(`describe select * from ${from}`)).map((r) => [r.column_name, r.column_type]),
    )
    expect(types).toEqual({
      id: 'BIGINT',
      big: 'BIGINT',
      small: 'BIGINT',
      dbl: 'DOUBLE',
      dec: 'DECIMAL(38,9)',
      name: 'VARCHAR',
      flag: 'BOOLEAN',
      aware: 'TIMESTAMP WITH TIME ZONE',
      naive: 'TIMESTAMP',
      day: 'DATE',
      t: 'TIME',
      raw: 'BLOB',
      doc: 'JSON',
      _seq: 'BIGINT',
      _loaded_at: 'TIMESTAMP WITH TIME ZONE',
    })

    const got = await duck(
      `select id, big, small, dbl, dec::varchar as dec, name, flag, epoch_us(aware) as aware, epoch_us(naive) as naive, day::varchar as day, t::varchar as t, ` +
        `hex(raw) as raw, doc::varchar as doc, _seq from ${from} order by _seq`,
    )
    expect(got).toHaveLength(3)
    for (const [i, want] of ROWS.entries()) {
      const row = got[i]!
      expect(row.id).toBe(BigInt(want.id as number))
      expect(row.big).toBe(want.big === null ? null : BigInt(want.big as bigint))
      expect(row.small).toBe(want.small === null ? null : BigInt(want.small as number))
      expect(row.dbl).toBe(want.dbl)
      expect(row.dec === null ? null : trimZeros(row.dec as string)).toBe(
        want.dec === null ? null : trimZeros(want.dec as string),
      )
      expect(row.name).toBe(want.name)
      expect(row.flag).toBe(want.flag)
      expect(row.aware).toBe(want.aware === null ? null : (want.aware as DateTime).epochMicros)
      expect(row.naive).toBe(want.naive === null ? null : (want.naive as DateTime).epochMicros)
      expect(row.day).toBe(want.day === null ? null : String(want.day))
      expect(row.t === null ? null : (row.t as string)).toBe(
        want.t === null ? null : want.t === '00:00' ? '00:00:00' : want.t,
      )
      expect(row.raw).toBe(want.raw === null ? null : (want.raw as Buffer).toString('hex').toUpperCase())
      expect(row.doc === null ? null : JSON.parse(row.doc as string)).toEqual(want.doc)
      expect(row._seq).toBe(BigInt(i + 1))
    }
    // An aware value is stored as the instant in UTC; a naive one keeps its wall clock.
    const text = await duck(
      `set TimeZone='UTC'; select aware::varchar as aware, naive::varchar as naive from ${from} where id = 1`,
    )
    expect(text[0]).toEqual({ aware: '2025-03-04 02:37:41.123456+00', naive: '2025-03-05 21:07:41.654321' })
  })
})

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s
}
