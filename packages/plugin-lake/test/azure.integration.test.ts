import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { BlobDatastore } from '@anchovies/plugin-azblob'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Azurite } from './azurite.js'
import { anchovy } from './cli.js'
import { FIXTURES, duck, readLake, tempDir } from './helpers.js'

function walk(dir: string, rel = ''): string[] {
  return readdirSync(nodePath.join(dir, rel)).flatMap((n) => {
    const p = rel ? `${rel}/${n}` : n
    return statSync(nodePath.join(dir, p)).isDirectory() ? walk(dir, p) : [p]
  })
}

/** Copies every blob under `prefix` of the lake to a local folder (DuckDB's azure extension is not installed here). */
async function download(lake: BlobDatastore, prefix: string, to: string): Promise<string[]> {
  const names: string[] = []
  for (const e of await lake.list(prefix)) {
    const local = nodePath.join(to, e.path)
    mkdirSync(nodePath.dirname(local), { recursive: true })
    writeFileSync(local, (await lake.read(e.path))!)
    names.push(e.path)
  }
  return names
}

describe('an Azure Blob lake (Azurite, through plugin-azblob)', () => {
  let az: Azurite
  const t = tempDir()
  beforeAll(async () => {
    az = await Azurite.start()
  })
  afterAll(async () => {
    await az?.dispose()
    t.remove()
  })

  it('writes the same dataset as on a folder, with the credential rules of plugin-azblob, and never shows the account key', async () => {
    writeFileSync(
      `${t.dir}/config.yaml`,
      'tbls:\n  items:\n    unique_by: id\n    partition_by: code\n    file_max_rows: 700\n',
    )
    const env = { ACHVY_DATASTORE: `${t.dir}/ds`, ACHVY_USER: 'az', ACHVY_LOG_LEVEL: 'debug' }
    expect(
      (
        await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], t.dir, {
          ...env,
          ACHVY_TEST_ROWS: '3000',
        })
      ).code,
    ).toBe(0)
    const lakeUrl = az.url('lake', 'raw')
    const upEnv = { ...env, ACHVY_CNXN__LAKE__URL: lakeUrl, AZURE_STORAGE_KEY: az.key }
    const up = await anchovy(['start', '-op', 'lake.ParquetUploader', '--id', 'gen_lake', '-U', 'gen'], t.dir, upEnv)
    expect(up.code, up.stderr).toBe(0)
    // A rerun with nothing new adds nothing.
    const again = await anchovy(['start', '-op', 'lake.ParquetUploader', '--id', 'gen_lake', '-U', 'gen'], t.dir, upEnv)
    expect(again.code, again.stderr).toBe(0)

    const lake = await BlobDatastore.open(lakeUrl, { env: { AZURE_STORAGE_KEY: az.key } })
    const names = await download(lake, 'gen/items', `${t.dir}/copy`)
    expect(names.filter((n) => n.includes('/staging/'))).toEqual([])
    expect(names.filter((n) => n.startsWith('gen/items/_anchovies/loads/'))).toEqual([
      'gen/items/_anchovies/loads/0000000001.json',
    ])
    for (const n of names.filter((p) => !p.includes('/_anchovies/')))
      expect(n).toMatch(/^gen\/items\/code=c\d+\/part-0000000001-\d{5}\.parquet$/)
    const dataset = `${t.dir}/copy/gen/items`
    const [all] = await duck(
      `select count(*) as n, count(distinct id) as ids, sum(id) as total, count(distinct code) as codes from ${readLake(dataset)}`,
    )
    expect(all).toEqual({ n: 3000n, ids: 3000n, total: BigInt((3000 * 2999) / 2), codes: 13n })
    const sample = await duck(
      `select id, name, amount, flag, note from ${readLake(dataset)} where id in (0, 2999) order by id`,
    )
    expect(sample).toEqual([
      { id: 0n, name: 'name 0', amount: 0, flag: true, note: 'note 0' },
      { id: 2999n, name: 'name 999', amount: 749.75, flag: false, note: 'note 2999' },
    ])

    // The key is nowhere: not in output, not in the datastore, not in the lake's bookkeeping.
    const texts = [
      up.stdout,
      up.stderr,
      again.stdout,
      again.stderr,
      ...walk(`${t.dir}/ds`).map((p) => readFileSync(`${t.dir}/ds/${p}`).toString('latin1')),
    ]
    for (const n of names.filter((p) => p.endsWith('.json'))) texts.push((await lake.read(n))!.toString('utf8'))
    for (const text of texts) expect(text.includes(az.key)).toBe(false)
  })

  it('a run killed right after its load committed is published on the blob lake by the next run, without duplicates', async () => {
    const dir = `${t.dir}/killed`
    mkdirSync(dir)
    writeFileSync(`${dir}/config.yaml`, 'tbls:\n  items:\n    file_max_rows: 400\n')
    const env = { ACHVY_DATASTORE: `${dir}/ds`, ACHVY_USER: 'az', ACHVY_LOG_LEVEL: 'warn' }
    expect(
      (
        await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], dir, {
          ...env,
          ACHVY_TEST_ROWS: '1000',
        })
      ).code,
    ).toBe(0)
    const lakeUrl = az.url('lake', 'killed')
    const upEnv = { ...env, ACHVY_CNXN__LAKE__URL: lakeUrl, AZURE_STORAGE_KEY: az.key }
    const up = ['start', '-op', `${FIXTURES}/operators.js:DyingUploader`, '--id', 'gen_lake', '-U', 'gen']
    expect((await anchovy(up, dir, { ...upEnv, LAKE_DIE_AFTER_COMMIT: '1' })).signal).toBe('SIGKILL')
    const lake = await BlobDatastore.open(lakeUrl, { env: { AZURE_STORAGE_KEY: az.key } })
    expect((await lake.list('gen/items')).filter((e) => e.path.endsWith('.parquet'))).toEqual([])
    const r = await anchovy(up, dir, upEnv)
    expect(r.code, r.stderr).toBe(0)
    const names = await download(lake, 'gen/items', `${dir}/copy`)
    expect(names.filter((n) => n.includes('/staging/'))).toEqual([])
    expect(names.filter((n) => n.endsWith('.parquet'))).toHaveLength(3)
    const [all] = await duck(
      `select count(*) as n, count(distinct id) as ids from ${readLake(`${dir}/copy/gen/items`)}`,
    )
    expect(all).toEqual({ n: 1000n, ids: 1000n })
  })
})
