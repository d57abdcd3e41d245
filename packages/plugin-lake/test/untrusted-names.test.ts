import { afterAll, describe, expect, it } from 'vitest'
import { FEED, duck, feed, readLake, run, tempDir } from './helpers.js'

describe('untrusted column names and values', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it('writes columns named __proto__, constructor, with spaces, dots, quotes and unicode as they are', async () => {
    const row = JSON.parse(
      '{"__proto__": 1, "constructor": "c", "a b": 2, "a.b": 3, "say \\"hi\\"": 4, "Größe": 5.5, "toString": true}',
    ) as Record<string, unknown>
    feed('odd', [row, { ...row }])
    expect(
      (await run({ operator: FEED, id: 'src', datastore: `${t.dir}/ds`, config: 'tbls:\n  odd: {}\n' })).exitCode,
    ).toBe(0)
    const up = await run({
      operator: 'lake.ParquetUploader',
      id: 'src_lake',
      datastore: `${t.dir}/ds`,
      upstream: ['src'],
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake` },
    })
    expect(up.exitCode, JSON.stringify(up.results)).toBe(0)
    const got = await duck(
      `select "__proto__" as p, "constructor" as c, "a b" as ab, "a.b" as adb, "say ""hi""" as q, "Größe" as g, "toString" as s from ${readLake(`${t.dir}/lake/src/odd`)}`,
    )
    expect(got).toEqual([
      { p: 1n, c: 'c', ab: 2n, adb: 3n, q: 4n, g: 5.5, s: true },
      { p: 1n, c: 'c', ab: 2n, adb: 3n, q: 4n, g: 5.5, s: true },
    ])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
