import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { anchovy, spawnAnchovy } from './cli.js'
import { FIXTURES, duck, readLake, tempDir } from './helpers.js'

const FULL = process.env.FULL === '1'
/** Upstream rows: 2M with FULL=1, 200k by default (4 upstream commits either way). */
const ROWS = FULL ? 2_000_000 : 200_000
const COMMITS = 4
const KILLS = FULL ? 12 : 6

/** Every file under `dir`, relative to it. */
function walk(dir: string, rel = ''): string[] {
  return readdirSync(nodePath.join(dir, rel)).flatMap((n) => {
    const p = rel ? `${rel}/${n}` : n
    return statSync(nodePath.join(dir, p)).isDirectory() ? walk(dir, p) : [p]
  })
}

describe('SIGKILL during an export', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it(
    `leaves every one of ${ROWS} rows exactly once after reruns, and readers never see a partial or duplicate file`,
    async () => {
      const env = {
        ACHVY_DATASTORE: `${t.dir}/ds`,
        ACHVY_USER: 'crash',
        ACHVY_LOG_LEVEL: 'warn',
        ACHVY_CNXN__LAKE__URL: `${t.dir}/lake`,
        ACHVY_LAKE_ROW_GROUP_ROWS: String(ROWS / 40),
        ACHVY_LAKE_FILE_MAX_ROWS: String(ROWS / 10),
        ACHVY_LAKE_COMPRESSION: 'zstd',
      }
      writeFileSync(`${t.dir}/config.yaml`, 'tbls:\n  items:\n    unique_by: id\n    partition_by: code\n')
      for (let i = 0; i < COMMITS; i++) {
        const dl = await anchovy(['start', '-op', `${FIXTURES}/operators.js:Generate`, '--id', 'gen'], t.dir, {
          ...env,
          ACHVY_TEST_ROWS: String(ROWS / COMMITS),
          ACHVY_TEST_START: String((i * ROWS) / COMMITS),
        })
        expect(dl.code, dl.stderr).toBe(0)
      }
      // Small batches: each uploader run reads about one upstream commit, so kills land in several loads.
      const up = ['start', '-op', 'lake.ParquetUploader', '--id', 'gen_lake', '-U', 'gen']
      const upEnv = { ...env, ACHVY_UPLOAD_BATCH_SIZE: '1' }
      const dataset = `${t.dir}/lake/gen/items`
      let seed = Number(process.env.SEED ?? Date.now() % 100_000)
      const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647
      console.log(`crash test seed ${seed}`)
      let kills = 0
      for (let i = 0; i < KILLS; i++) {
        const victim = spawnAnchovy(up, t.dir, upEnv)
        await new Promise((r) => setTimeout(r, 200 + random() * (FULL ? 6000 : 2500)))
        if (victim.proc.kill('SIGKILL')) kills++
        await victim.done
        // Whatever moment the kill hit, what a reader sees is whole files, each row at most once.
        if (walk(t.dir).some((p) => p.startsWith('lake/') && p.endsWith('.parquet'))) {
          const [seen] = await duck(`select count(*) as n, count(distinct id) as ids from ${readLake(dataset)}`)
          expect(seen!.n).toBe(seen!.ids)
        }
      }
      // What a kill in the middle of a streamed write leaves, whichever moment the kills above hit.
      const orphan = `${dataset}/_anchovies/staging/0000009999-0badc0de-000-0000`
      mkdirSync(orphan, { recursive: true })
      writeFileSync(`${orphan}/.00001.parquet.part.tmp-0123456789ab`, 'PAR1 cut short')
      // Rerun until caught up (each run takes about one upstream commit).
      for (let i = 0; i < COMMITS + 2; i++) {
        const r = await anchovy(up, t.dir, upEnv)
        expect(r.code, r.stderr).toBe(0)
      }
      const [all] = await duck(
        `select count(*) as n, count(distinct id) as ids, min(id) as lo, max(id) as hi, sum(id) as total from ${readLake(dataset)}`,
      )
      expect(all).toEqual({
        n: BigInt(ROWS),
        ids: BigInt(ROWS),
        lo: 0n,
        hi: BigInt(ROWS - 1),
        total: BigInt((ROWS * (ROWS - 1)) / 2),
      })
      // Every `_seq` once, with no gap.
      const [seqs] = await duck(
        `select count(distinct _seq) as n, min(_seq) as lo, max(_seq) as hi from ${readLake(dataset)}`,
      )
      expect(seqs).toEqual({ n: BigInt(ROWS), lo: 1n, hi: BigInt(ROWS) })
      // Nothing but published Parquet files outside the bookkeeping folder; nothing left in staging.
      const files = walk(dataset)
      const outside = files.filter((p) => !p.startsWith('_anchovies/'))
      expect(outside.filter((p) => !/^code=c\d+\/part-\d{10}-\d{5}\.parquet$/.test(p))).toEqual([])
      expect(files.filter((p) => p.startsWith('_anchovies/staging/'))).toEqual([])
      console.log(
        `${kills} kills; ${outside.length} files; ${files.filter((p) => p.startsWith('_anchovies/loads/')).length} loads`,
      )
    },
    FULL ? 3_000_000 : 600_000,
  )
})
