import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../chaos/harness.js'
import { Pipeline, until } from './pipeline.js'
import { PrivatePostgres } from './private-postgres.js'

let server: PrivatePostgres | undefined
beforeAll(async () => {
  server = await PrivatePostgres.start()
})
afterAll(() => server?.dispose())

/** The first active statement of the database that matches `pattern`, if any (a failed poll is "none"). */
async function activeStatement(port: number, db: string, pattern: RegExp): Promise<boolean> {
  const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` })
  try {
    await c.connect()
    const r = await c.query<{ query: string }>(
      "SELECT query FROM pg_stat_activity WHERE datname = $1 AND state = 'active'",
      [db],
    )
    return r.rows.some((x) => pattern.test(x.query))
  } catch {
    return false
  } finally {
    await c.end().catch(() => undefined)
  }
}

describe('PostgreSQL crashed and restarted in the middle of an upload', () => {
  for (const [phase, pattern] of [
    ['while rows are copied in (COPY, inside the load transaction)', /^\s*COPY/i],
    ['while older versions are superseded (UPDATE, inside the load transaction)', /^\s*(INSERT INTO|UPDATE)\b/i],
  ] as const) {
    it(`${phase}: the upload fails, nothing is half-loaded, the rerun converges`, async () => {
      const ds = tempDir('anch-fault-ds-')
      const p = await Pipeline.start({ datastore: ds.dir, seed: 21, pgPort: server!.port })
      try {
        p.source.addFile(20)
        p.source.addFile(20)
        await p.cleanRound()
        p.source.addFile(150_000)
        p.source.rewriteFile(1000)
        const d = await p.outcome('downloader', p.downloader())
        expect(d.code, d.stderr).toBe(0)
        const up = p.uploader()
        let exited = false
        void up.done.then(() => (exited = true))
        await until(
          async () => exited || (await activeStatement(server!.port, p.db.name, pattern)),
          60_000,
          `the uploader to run ${pattern}`,
        )
        expect(exited, 'the uploader finished before the restart').toBe(false)
        server!.crashRestart()
        const o = await p.outcome('uploader across the crash', up)
        expect(o.code, o.stderr).toBe(1)
        await p.expectConverged()
      } finally {
        await p.stop()
        ds.remove()
      }
    }, 180_000)
  }
})
