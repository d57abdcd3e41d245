import { randomBytes } from 'node:crypto'
import * as nodePath from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PG_URL, cleanup, committedRows, spawnCli, runCli, tapEnv, tempDir } from './helpers/cli.js'

// CI size by default; FULL=1 for the full size. SINGER_SEED replays a run's kill points.
const FULL = process.env.FULL === '1'
const ROWS = FULL ? 200_000 : 20_000
const KILLS = FULL ? 30 : 6
const SEED = Number(process.env.SINGER_SEED ?? Math.floor(Math.random() * 1e6))

/** A small seeded generator (mulberry32), so a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

let db: string
let client: pg.Client
beforeAll(async () => {
  db = `anch_singer_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${db}`)
  await admin.end()
  client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:5432/${db}` })
  await client.connect()
})
afterAll(async () => {
  await client?.end()
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`)
  await admin.end()
  cleanup()
})

describe('exactly once across SIGKILLs', () => {
  it(
    `a tap run killed with SIGKILL at random points and rerun with its state delivers every record exactly once downstream (seed ${SEED})`,
    async () => {
      const rand = random(SEED)
      const dir = tempDir('kill')
      const ds = nodePath.join(dir, 'ds')
      // about 2 s per uninterrupted run: a STATE every 250 records, a pause every 100 lines
      const env = tapEnv(dir, ds, { generate: { rows: ROWS, state_every: 250 }, pace: { every: 100, ms: 10 } })
      const upEnv = { ACHVY_DATASTORE: ds, ACHVY_CNXN__DB__URL: `postgres://postgres@127.0.0.1:5432/${db}` }
      const tap = ['start', '-op', 'singer.TapDownloader', '--id', 'gen']
      const up = ['start', '-op', 'sql.Uploader', '--id', 'gen_pg', '-U', 'gen']
      let kills = 0
      for (let i = 0; i < KILLS; i++) {
        const run = spawnCli(tap, env, dir)
        const delay = 300 + Math.floor(rand() * 2500)
        const timer = setTimeout(() => run.child.kill('SIGKILL'), delay)
        const done = await run.done
        clearTimeout(timer)
        if (done.signal === 'SIGKILL') kills++
        else expect(done.code, done.stdout + done.stderr).toBe(0)
        // the uploader consumes what the killed runs committed, as it would while the tap still runs
        if (i % 2 === 1) expect((await runCli(up, upEnv, dir)).code).toBe(0)
      }
      expect(kills).toBeGreaterThan(0)
      console.info(`singer exactly-once: ${ROWS} records, ${kills} of ${KILLS} runs SIGKILLed, seed ${SEED}`)
      const last = await runCli(tap, env, dir, 120_000)
      expect(last.code, last.stdout + last.stderr).toBe(0)
      expect((await runCli(up, upEnv, dir)).code).toBe(0)

      const ids = (await committedRows(ds, 'gen', 'items')).map((r) => r.id as number)
      expect(ids.length).toBe(ROWS)
      expect(new Set(ids).size).toBe(ROWS)
      const [counts] = (
        await client.query(
          'SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, count(_del)::int AS superseded, min(id)::int AS lo, max(id)::int AS hi FROM "gen__tester"."items"',
        )
      ).rows
      expect(counts).toEqual({ n: ROWS, ids: ROWS, superseded: 0, lo: 0, hi: ROWS - 1 })
    },
    FULL ? 1_800_000 : 170_000,
  )
})
