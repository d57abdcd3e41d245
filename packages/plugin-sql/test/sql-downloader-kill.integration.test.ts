import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postgresDb, type TestDb } from './databases.js'
import { tempDir } from './helpers.js'

const ROOT = nodePath.resolve(import.meta.dirname, '../../..')
const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')
/** Rows of the killed extract: 2,000,000 with FULL=1. */
const ROWS = process.env.FULL === '1' ? 2_000_000 : 200_000

function start(
  args: string[],
  env: Record<string, string>,
  cwd: string,
): { done: Promise<number | null>; kill: () => void } {
  const child = spawn(process.execPath, [BIN, 'start', ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: 'ignore',
  })
  return {
    done: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    kill: () => child.kill('SIGKILL'),
  }
}

/** Rows the commits after the first `after` of the commit log made visible. */
function rowsIn(dir: string, after: number): number {
  let n = 0
  for (const name of readdirSync(dir)
    .filter((x) => x.endsWith('.json'))
    .sort()
    .slice(after)) {
    const rec = JSON.parse(readFileSync(`${dir}/${name}`, 'utf8')) as { files: { rows: number }[] }
    n += rec.files.reduce((s, f) => s + f.rows, 0)
  }
  return n
}

function commits(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.json')).length : 0
}

describe.each(['incremental', 'full'] as const)(
  'sql.Downloader killed with SIGKILL in the middle of a %s extract',
  (mode) => {
    let src: TestDb
    let dst: TestDb
    const t = tempDir()
    beforeAll(async () => {
      src = await postgresDb()
      dst = await postgresDb()
      await src.query(
        `CREATE TABLE big (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, a text, b numeric(20,6), c double precision, d date, e boolean, f jsonb)`,
      )
      await src.query(`INSERT INTO big SELECT g, '2025-01-01'::timestamptz + (g / 7) * interval '1 second', 'row ' || g, g / 3.0, g * 0.5, '2025-01-01'::date + (g % 365), g % 2 = 0, jsonb_build_object('g', g)
      FROM generate_series(1, ${ROWS}) g`)
    })
    afterAll(async () => {
      await src?.close()
      await dst?.close()
      t.remove()
    })

    it('loses and duplicates nothing downstream after a rerun', async () => {
      const config =
        mode === 'incremental'
          ? 'tbls:\n  public.big:\n    cursor: updated_at\n    chunk_rows: 5000\n'
          : 'tbls:\n  public.big:\n    chunk_rows: 5000\n'
      writeFileSync(`${t.dir}/config.yaml`, config)
      const env = {
        ACHVY_DATASTORE: `${t.dir}/ds`,
        ACHVY_USER: 'k',
        ACHVY_LOG_LEVEL: 'warn',
        ACHVY_CNXN__DB__URL: src.url,
        ACHVY_BATCH_MAX_ROWS: String(Math.floor(ROWS / 8)),
      }
      const commitDir = `${t.dir}/ds/k/big/$commits`
      const first = start(['-op', 'sql.Downloader', '--id', 'big', '-e', 'public.big'], env, t.dir)
      // Kill it once it has committed part of the table (intermediate commits every ROWS / 8 rows).
      const began = Date.now()
      while (Date.now() - began < 120_000 && commits(commitDir) < 2) await new Promise((r) => setTimeout(r, 20))
      first.kill()
      await first.done
      const committedBefore = commits(commitDir)
      if (mode === 'full') {
        // The half snapshot the killed run committed loads as it is, and supersedes nothing (it is not complete).
        const partial = start(
          ['-op', 'sql.Uploader', '--id', 'big_up', '-U', 'big'],
          { ...env, ACHVY_CNXN__DB__URL: dst.url },
          t.dir,
        )
        expect(await partial.done).toBe(0)
        const [open] = await dst.query(
          `SELECT COUNT(*) AS n FROM big__k._anchovies_snapshots WHERE completed_at IS NULL`,
        )
        expect(open).toEqual({ n: '1' })
        const [loaded] = await dst.query(
          `SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE _del IS NULL) AS cur FROM big__k."public.big"`,
        )
        expect(loaded!.n).toBe(loaded!.cur)
        expect(Number(loaded!.n)).toBeGreaterThan(0)
      }
      const second = start(['-op', 'sql.Downloader', '--id', 'big', '-e', 'public.big'], env, t.dir)
      expect(await second.done).toBe(0)
      const rerunRows = rowsIn(`${t.dir}/ds/k/big/$commits`, committedBefore)
      const up = start(
        ['-op', 'sql.Uploader', '--id', 'big_up', '-U', 'big'],
        { ...env, ACHVY_CNXN__DB__URL: dst.url },
        t.dir,
      )
      expect(await up.done).toBe(0)
      const [counts] = await dst.query(
        `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids, COUNT(*) FILTER (WHERE _del IS NULL) AS cur FROM big__k."public.big"`,
      )
      // Every row arrived, none twice, all current.
      expect(counts).toEqual({ n: String(ROWS), ids: String(ROWS), cur: String(ROWS) })
      const [diff] = await dst.query(
        `SELECT COUNT(*) AS n FROM big__k."public.big" WHERE a <> 'row ' || id OR f <> jsonb_build_object('g', id)`,
      )
      expect(diff).toEqual({ n: '0' })
      if (mode === 'full')
        expect(
          await dst.query(`SELECT COUNT(*) AS n FROM big__k._anchovies_snapshots WHERE completed_at IS NULL`),
        ).toEqual([{ n: '0' }])
      // The rerun went on from the last commit instead of starting over.
      expect(committedBefore).toBeGreaterThanOrEqual(2)
      expect(committedBefore).toBeLessThan(8)
      expect(rerunRows).toBeLessThan(ROWS)
    }, 600_000)
  },
)
