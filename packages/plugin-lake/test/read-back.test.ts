import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { FEED, feed, run, tempDir } from './helpers.js'

describe('lake files read back are untrusted', () => {
  const t = tempDir()
  afterAll(() => t.remove())
  const load = async (rows: Record<string, unknown>[]) => {
    feed('items', rows)
    expect(
      (await run({ operator: FEED, id: 'src', datastore: `${t.dir}/ds`, config: 'tbls:\n  items: {}\n' })).exitCode,
    ).toBe(0)
    return run({
      operator: 'lake.ParquetUploader',
      id: 'src_lake',
      datastore: `${t.dir}/ds`,
      upstream: ['src'],
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake` },
    })
  }

  it('a load record naming a path outside its dataset fails with ANCH_ERR_LAKE_CORRUPT naming the record, and nothing is loaded', async () => {
    expect((await load([{ id: 1 }])).exitCode).toBe(0)
    const dataset = `${t.dir}/lake/src/items/_anchovies`
    const record = JSON.parse(readFileSync(`${dataset}/loads/0000000001.json`, 'utf8'))
    record.files[0].path = 'src/items/../../../outside.parquet'
    // The manifest is derived: without it the records are read again, and checked.
    rmSync(`${dataset}/manifest.json`)
    writeFileSync(`${dataset}/loads/0000000001.json`, JSON.stringify(record))
    const r = await load([{ id: 2 }])
    expect(r.exitCode).not.toBe(0)
    const text = JSON.stringify(r.results)
    expect(text).toContain('ANCH_ERR_LAKE_CORRUPT')
    expect(text).toContain('src/items/_anchovies/loads/0000000001.json')
    expect(text).toContain('is not a Parquet file of src/items')
  })

  it('a manifest that is not JSON fails naming it and how to rebuild it', async () => {
    const dataset = `${t.dir}/lake/src/items/_anchovies`
    writeFileSync(`${dataset}/manifest.json`, '{not json')
    const r = await load([{ id: 3 }])
    expect(r.exitCode).not.toBe(0)
    expect(JSON.stringify(r.results)).toContain('manifest.json cannot be trusted: not JSON')
  })
})
