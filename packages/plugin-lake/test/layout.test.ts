import { readFileSync, readdirSync, statSync } from 'node:fs'
import * as nodePath from 'node:path'
import { DateTime, LocalDate } from '@anchovies/core'
import { afterAll, describe, expect, it } from 'vitest'
import { FEED, duck, feed, readLake, run, tableTasks, tempDir } from './helpers.js'

function walk(dir: string, rel = ''): string[] {
  return readdirSync(nodePath.join(dir, rel)).flatMap((n) => {
    const p = rel ? `${rel}/${n}` : n
    return statSync(nodePath.join(dir, p)).isDirectory() ? walk(dir, p) : [p]
  })
}

function events(n: number, from: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k
    return {
      id: i % 40,
      version: i,
      updated_at: DateTime.parse(`2026-12-0${1 + (i % 3)}T23:30:00.000001-02:00`),
      region: i % 2 ? 'eu/west' : null,
      day: new LocalDate(2026, 1, 1 + (i % 2)),
    }
  })
}

describe('lake.ParquetUploader layout', () => {
  const t = tempDir()
  afterAll(() => t.remove())
  const uploader = (config: string, env: Record<string, string> = {}) =>
    run({
      operator: 'lake.ParquetUploader',
      id: 'ev_lake',
      datastore: `${t.dir}/ds`,
      upstream: ['ev'],
      config,
      env: { ACHVY_CNXN__LAKE__URL: `${t.dir}/lake`, ...env },
    })

  it('partitions by a date part of a datetime (UTC day of aware values) into dt= folders, names files part-<load>-<n>, rolls files and row groups, and records the loads', async () => {
    const config = `tbls:\n  events:\n    compression: zstd\n    unique_by: id\n    sort_by: -version\n    partition_by: {column: updated_at, by: day}\n    row_group_rows: 10\n    file_max_rows: 25\n`
    feed('events', events(100, 0))
    expect((await run({ operator: FEED, id: 'ev', datastore: `${t.dir}/ds`, config })).exitCode).toBe(0)
    const up = await uploader(config)
    expect(up.exitCode, JSON.stringify(up.results)).toBe(0)
    const dataset = `${t.dir}/lake/ev/events`
    const files = walk(dataset).filter((p) => !p.startsWith('_anchovies/'))
    // 23:30 at -02:00 is 01:30 the next day in UTC.
    expect(new Set(files.map((p) => p.split('/')[0]))).toEqual(
      new Set(['dt=2026-12-02', 'dt=2026-12-03', 'dt=2026-12-04']),
    )
    for (const p of files) expect(p).toMatch(/^dt=2026-12-0\d\/part-0000000001-\d{5}\.parquet$/)
    const meta = await duck(
      `select file_name, count(distinct row_group_id) as groups, max(row_group_num_rows) as most, any_value(compression) as codec from parquet_metadata('${dataset}/**/*.parquet') group by file_name`,
    )
    expect(meta.every((m) => m.codec === 'ZSTD' && Number(m.most) <= 10)).toBe(true)
    const perFile = await duck(
      `select filename, count(*) as n from read_parquet('${dataset}/**/*.parquet', filename=true) group by filename`,
    )
    expect(perFile.every((f) => Number(f.n) <= 25)).toBe(true)
    const [count] = await duck(
      `select count(*) as n, count(distinct _seq) as seqs, count(distinct dt) as days from ${readLake(dataset)}`,
    )
    expect(count).toEqual({ n: 100n, seqs: 100n, days: 3n })

    const manifest = JSON.parse(readFileSync(`${dataset}/_anchovies/manifest.json`, 'utf8'))
    expect(manifest).toMatchObject({
      format: 1,
      published_through: 1,
      next_seq: 101,
      rows: 100,
      uploader: 'ev_lake',
      table: { unique_by: ['id'], sort_by: ['-version'], partition_by: { column: 'updated_at', by: 'day' } },
    })
    expect(manifest.files.map((f: { path: string }) => f.path).sort()).toEqual(
      files.map((p) => `ev/events/${p}`).sort(),
    )
    const dayFile = manifest.files.find((f: { partition: string }) => f.partition === 'dt=2026-12-02')
    expect(dayFile.min).toBe('2026-12-01T23:30:00.000001-02:00')
    const load1 = JSON.parse(readFileSync(`${dataset}/_anchovies/loads/0000000001.json`, 'utf8'))
    expect(load1).toMatchObject({ seq: 1, first_seq: 1, rows: 100, uploader: 'ev_lake' })
    expect(load1.upstream_files).toHaveLength(1)

    // A second batch is a second load: _seq goes on, the old files stay as they were.
    const before = new Map(files.map((p) => [p, statSync(`${dataset}/${p}`).mtimeMs]))
    feed('events', events(30, 100))
    expect((await run({ operator: FEED, id: 'ev', datastore: `${t.dir}/ds`, config })).exitCode).toBe(0)
    expect((await uploader(config)).exitCode).toBe(0)
    for (const [p, mtime] of before) expect(statSync(`${dataset}/${p}`).mtimeMs).toBe(mtime)
    const [after] = await duck(
      `select count(*) as n, max(_seq) as hi, count(distinct _loaded_at) as loads from ${readLake(dataset)}`,
    )
    expect(after).toEqual({ n: 130n, hi: 130n, loads: 2n })
    // Nothing new upstream: no new load.
    const idle = await uploader(config)
    expect(tableTasks(idle.results)[0]!.data.rows_written ?? 0).toBe(0)
    expect(walk(dataset).filter((p) => p.startsWith('_anchovies/loads/'))).toHaveLength(2)

    // The README's "current rows" recipe: the newest version per unique_by key, by sort_by then _seq.
    const current = await duck(
      `select id, version from ${readLake(dataset)} qualify row_number() over (partition by id order by version desc, _seq desc) = 1 order by id`,
    )
    expect(current).toHaveLength(40)
    expect(current[0]).toEqual({ id: 0n, version: 120n })
  })

  it('partitions by a column value, NULL in the hive default partition and unusual characters escaped', async () => {
    const config = `tbls:\n  regions:\n    partition_by: region\n`
    feed('regions', [
      { id: 1, region: 'eu/west' },
      { id: 2, region: null },
      { id: 3, region: 'ü ö' },
      { id: 4, region: 'eu/west' },
    ])
    expect((await run({ operator: FEED, id: 'ev', datastore: `${t.dir}/ds`, config })).exitCode).toBe(0)
    expect((await uploader(config)).exitCode).toBe(0)
    const dataset = `${t.dir}/lake/ev/regions`
    const folders = new Set(
      walk(dataset)
        .filter((p) => !p.startsWith('_anchovies/'))
        .map((p) => p.split('/')[0]),
    )
    expect(folders).toEqual(
      new Set(['region=eu%2Fwest', 'region=__HIVE_DEFAULT_PARTITION__', 'region=%C3%BC ö'.replace(' ö', ' %C3%B6')]),
    )
    // The column stays in the files too, so readers get the exact value whatever they make of folder names.
    const rows = await duck(
      `select id, region from read_parquet('${dataset}/**/*.parquet', union_by_name=true) order by id`,
    )
    expect(rows).toEqual([
      { id: 1n, region: 'eu/west' },
      { id: 2n, region: null },
      { id: 3n, region: 'ü ö' },
      { id: 4n, region: 'eu/west' },
    ])
  })

  it('refuses a malformed partition_by with a coded error naming the table and key, writing nothing', async () => {
    const config = `tbls:\n  bad:\n    partition_by: {column: updated_at, by: fortnight}\n`
    feed('bad', [{ id: 1, updated_at: DateTime.parse('2026-01-01T00:00:00Z') }])
    expect((await run({ operator: FEED, id: 'ev', datastore: `${t.dir}/ds`, config })).exitCode).toBe(0)
    const up = await uploader(config)
    expect(up.exitCode).not.toBe(0)
    expect(JSON.stringify(up.results)).toContain('tbls.bad.partition_by: by must be one of year, month, day')
    expect(() => statSync(`${t.dir}/lake/ev/bad`)).toThrow()
  })
})
