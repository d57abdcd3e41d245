import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { anchovy } from './cli.js'
import { FIXTURES, duck, readLake, tempDir } from './helpers.js'

function walk(dir: string, rel = ''): string[] {
  return readdirSync(nodePath.join(dir, rel)).flatMap((n) => {
    const p = rel ? `${rel}/${n}` : n
    return statSync(nodePath.join(dir, p)).isDirectory() ? walk(dir, p) : [p]
  })
}

describe('exactly once across the lake and the datastore', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it('a run killed right after its load record committed (files still staged, position not committed) is published by the next run, which loads nothing twice', async () => {
    const dir = `${t.dir}/commit`
    mkdirSync(dir)
    writeFileSync(`${dir}/config.yaml`, 'tbls:\n  items:\n    unique_by: id\n    file_max_rows: 300\n')
    const env = {
      ACHVY_DATASTORE: `${dir}/ds`,
      ACHVY_USER: 'eo',
      ACHVY_LOG_LEVEL: 'warn',
      ACHVY_CNXN__LAKE__URL: `${dir}/lake`,
    }
    expect(
      (
        await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], dir, {
          ...env,
          ACHVY_TEST_ROWS: '1000',
        })
      ).code,
    ).toBe(0)
    const up = ['start', '-op', `${FIXTURES}/operators.js:DyingUploader`, '--id', 'gen_lake', '-U', 'gen']
    const killed = await anchovy(up, dir, { ...env, LAKE_DIE_AFTER_COMMIT: '1' })
    expect(killed.signal).toBe('SIGKILL')
    const dataset = `${dir}/lake/gen/items`
    // Committed but not yet published: readers see nothing of it yet, the staged files are out of their glob.
    expect(walk(dataset).filter((p) => p.endsWith('.parquet'))).toEqual([])
    expect(walk(dataset).filter((p) => p.startsWith('_anchovies/staging/'))).toHaveLength(4)
    expect(walk(dataset)).toContain('_anchovies/loads/0000000001.json')

    const rerun = await anchovy(up, dir, env)
    expect(rerun.code, rerun.stderr).toBe(0)
    const [all] = await duck(`select count(*) as n, count(distinct id) as ids from ${readLake(dataset)}`)
    expect(all).toEqual({ n: 1000n, ids: 1000n })
    expect(walk(dataset).filter((p) => p.startsWith('_anchovies/loads/'))).toEqual(['_anchovies/loads/0000000001.json'])
    expect(walk(dataset).filter((p) => p.startsWith('_anchovies/staging/'))).toEqual([])
    // And the position moved on: one more run loads nothing.
    expect((await anchovy(up, dir, env)).code).toBe(0)
    expect(walk(dataset).filter((p) => p.startsWith('_anchovies/loads/'))).toHaveLength(1)
  })

  it('staged files of a run killed before its commit are deleted by the next run and never become visible', async () => {
    const dir = `${t.dir}/staged`
    mkdirSync(dir)
    writeFileSync(`${dir}/config.yaml`, 'tbls:\n  items:\n    unique_by: id\n')
    const env = {
      ACHVY_DATASTORE: `${dir}/ds`,
      ACHVY_USER: 'eo',
      ACHVY_LOG_LEVEL: 'warn',
      ACHVY_CNXN__LAKE__URL: `${dir}/lake`,
    }
    expect(
      (
        await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], dir, {
          ...env,
          ACHVY_TEST_ROWS: '10',
        })
      ).code,
    ).toBe(0)
    // What a run killed mid-write leaves: a staged file of load 1 and no load record.
    const orphan = `${dir}/lake/gen/items/_anchovies/staging/0000000001-dead/00001.parquet.part`
    mkdirSync(nodePath.dirname(orphan), { recursive: true })
    writeFileSync(orphan, 'PAR1 half a file')
    const r = await anchovy(['start', '-op', 'lake.ParquetUploader', '--id', 'gen_lake', '-U', 'gen'], dir, env)
    expect(r.code, r.stderr).toBe(0)
    const files = walk(`${dir}/lake/gen/items`)
    expect(files.filter((p) => p.includes('staging'))).toEqual([])
    const [all] = await duck(`select count(*) as n from ${readLake(`${dir}/lake/gen/items`)}`)
    expect(all).toEqual({ n: 10n })
  })

  it('refuses a dataset another uploader id already writes, naming both', async () => {
    const dir = `${t.dir}/owner`
    mkdirSync(dir)
    writeFileSync(`${dir}/config.yaml`, 'tbls:\n  items: {}\n')
    const env = {
      ACHVY_DATASTORE: `${dir}/ds`,
      ACHVY_USER: 'eo',
      ACHVY_LOG_LEVEL: 'warn',
      ACHVY_CNXN__LAKE__URL: `${dir}/lake`,
    }
    expect(
      (
        await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], dir, {
          ...env,
          ACHVY_TEST_ROWS: '10',
        })
      ).code,
    ).toBe(0)
    expect((await anchovy(['start', '-op', 'lake.ParquetUploader', '--id', 'first', '-U', 'gen'], dir, env)).code).toBe(
      0,
    )
    const second = await anchovy(['start', '-op', 'lake.ParquetUploader', '--id', 'second', '-U', 'gen'], dir, env)
    expect(second.code).not.toBe(0)
    expect(second.stderr + second.stdout).toMatch(/ANCH_ERR_LAKE_CONFLICT|belongs to uploader "first", not "second"/)
    const [all] = await duck(`select count(*) as n from ${readLake(`${dir}/lake/gen/items`)}`)
    expect(all).toEqual({ n: 10n })
  })
})
