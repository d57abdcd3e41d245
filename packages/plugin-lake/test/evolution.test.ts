import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { FEED, duck, feed, readLake, run, tempDir } from './helpers.js'

describe('lake.ParquetUploader schema evolution', () => {
  const t = tempDir()
  afterAll(() => t.remove())
  const config = 'tbls:\n  items:\n    row_group_rows: 2\n'
  const batch = async (rows: Record<string, unknown>[]) => {
    feed('items', rows)
    expect((await run({ operator: FEED, id: 'shop', datastore: `${t.dir}/ds`, config })).exitCode).toBe(0)
  }
  const upload = () =>
    run({
      operator: 'lake.ParquetUploader',
      id: 'shop_lake',
      datastore: `${t.dir}/ds`,
      upstream: ['shop'],
      config,
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake` },
    })

  it('puts a new column in new files only, records widened types, and union_by_name reads every row with every column', async () => {
    await batch([
      { id: 1, qty: 1, label: 'a' },
      { id: 2, qty: 2, label: 'b' },
    ])
    expect((await upload()).exitCode).toBe(0)
    // Mid-stream (a later row group of the same load): a new column appears and qty widens int -> float.
    await batch([
      { id: 3, qty: 3, label: 'c' },
      { id: 4, qty: 4, label: 'd' },
      { id: 5, qty: 5.5, label: 'e', color: 'red' },
      { id: 6, qty: 6, label: 7 },
    ])
    const up = await upload()
    expect(up.exitCode, JSON.stringify(up.results)).toBe(0)
    const dataset = `${t.dir}/lake/shop/items`
    const rows = await duck(`select id, qty, label, color from ${readLake(dataset)} order by _seq`)
    expect(rows).toEqual([
      { id: 1n, qty: 1, label: 'a', color: null },
      { id: 2n, qty: 2, label: 'b', color: null },
      { id: 3n, qty: 3, label: 'c', color: null },
      { id: 4n, qty: 4, label: 'd', color: null },
      { id: 5n, qty: 5.5, label: 'e', color: 'red' },
      { id: 6n, qty: 6, label: '7', color: null },
    ])
    // Old files keep their schema: the first load's file has no color column and qty as BIGINT.
    const firstFile = await duck(
      `select name, type, logical_type::varchar as logical from parquet_schema('${dataset}/part-0000000001-00001.parquet') where name in ('qty', 'color')`,
    )
    expect(firstFile).toEqual([{ name: 'qty', type: 'INT64', logical: null }])
    const manifest = JSON.parse(readFileSync(`${dataset}/_anchovies/manifest.json`, 'utf8'))
    expect(manifest.columns.map((c: { name: string; type: string }) => `${c.name}:${c.type}`)).toEqual([
      'id:int',
      'qty:float',
      'label:str',
      'color:str',
    ])
    expect(manifest.changes).toEqual([
      { load: 1, column: 'id', from: null, to: 'int' },
      { load: 1, column: 'qty', from: null, to: 'int' },
      { load: 1, column: 'label', from: null, to: 'str' },
      { load: 2, column: 'qty', from: 'int', to: 'float' },
      { load: 2, column: 'color', from: null, to: 'str' },
    ])
    // A widened type stays wide: a later integer is written as a double, no new change.
    await batch([{ id: 7, qty: 7, label: 'g', color: 'blue' }])
    expect((await upload()).exitCode).toBe(0)
    const last = await duck(`select qty from ${readLake(dataset)} where id = 7`)
    expect(last).toEqual([{ qty: 7 }])
    expect(JSON.parse(readFileSync(`${dataset}/_anchovies/manifest.json`, 'utf8')).changes).toHaveLength(5)
  })
})
