import { cpSync, readFileSync } from 'node:fs'
import { DateTime } from '@anchovies/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FIXTURES, duck, readLake, run, tempDir } from './helpers.js'

type Row = Record<string, unknown>
// Shared with core, plugin-sql and plugin-azblob: test/fixtures/py-anchovies-datastore at the repository root.
const PY = `${FIXTURES}/../../../../test/fixtures/py-anchovies-datastore`
const EXPECTED = JSON.parse(readFileSync(`${PY}/EXPECTED.json`, 'utf8')) as { tables: Record<string, { rows: Row[] }> }

describe('the Python-written datastore exported to a lake', () => {
  const t = tempDir()
  beforeAll(async () => {
    cpSync(`${PY}/fixture`, `${t.dir}/ds/fixture`, { recursive: true })
    const r = await run({
      operator: 'lake.ParquetUploader',
      id: 'py_lake',
      user: 'fixture',
      datastore: `${t.dir}/ds`,
      upstream: ['py_sales'],
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake` },
    })
    expect(r.exitCode, JSON.stringify(r.results)).toBe(0)
  })
  afterAll(() => t.remove())

  it.each(['sales', 'contacts'])(
    '%s: DuckDB reads every row in file order with every value as the Python implementation wrote it',
    async (table) => {
      const from = readLake(`${t.dir}/lake/py_sales/${table}`)
      const types = new Map(
        (await duck(`describe select * from ${from}`)).map((r) => [r.column_name as string, r.column_type as string]),
      )
      const select = [...types]
        .filter(([c]) => !c.startsWith('_'))
        .map(([c, ty]) => {
          const q = `"${c}"`
          if (ty.startsWith('TIMESTAMP')) return `epoch_us(${q}) as ${q}`
          if (ty === 'BLOB') return `lower(hex(${q})) as ${q}`
          if (ty === 'DATE' || ty === 'JSON') return `${q}::varchar as ${q}`
          return q
        })
      const got = await duck(`select ${select.join(', ')} from ${from} order by _seq`)
      const want = EXPECTED.tables[table]!.rows
      expect(got).toHaveLength(want.length)
      for (const [i, w] of want.entries()) {
        for (const [c, ty] of types) {
          if (c.startsWith('_')) continue
          const g = got[i]![c]
          const e = Object.hasOwn(w, c) ? w[c] : null
          const where = `${table} row ${i} column ${c} (${ty})`
          if (e === null) expect(g, where).toBeNull()
          else if (ty.startsWith('TIMESTAMP')) expect(g, where).toBe(DateTime.parse(e as string).epochMicros)
          else if (ty === 'JSON') expect(JSON.parse(g as string), where).toEqual(e)
          else if (ty === 'BIGINT') expect(g, where).toBe(BigInt(e as number))
          else expect(g, where).toBe(e)
        }
      }
      // upd_datetime carries offsets: stored UTC-adjusted; shipped_at / last_login_local are naive: wall clock kept.
      if (table === 'sales')
        expect([
          types.get('upd_datetime'),
          types.get('shipped_at'),
          types.get('order_date'),
          types.get('payload'),
          types.get('meta'),
        ]).toEqual(['TIMESTAMP WITH TIME ZONE', 'TIMESTAMP', 'DATE', 'BLOB', 'JSON'])
      else
        expect([types.get('last_login_local'), types.get('dob'), types.get('prefs')]).toEqual([
          'TIMESTAMP',
          'DATE',
          'JSON',
        ])
    },
  )
})
