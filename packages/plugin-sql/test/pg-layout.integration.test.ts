import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postgresDb, uniqueId, type TestDb } from './databases.js'
import { FEED, feed, run, tableTasks, tempDir } from './helpers.js'

describe('sql.Uploader table layout on PostgreSQL', () => {
  let db: TestDb
  const ds = tempDir()
  const id = (base: string): string => uniqueId('t', base)

  beforeAll(async () => {
    db = await postgresDb()
  })
  afterAll(async () => {
    await db?.close()
    ds.remove()
  })

  async function load(dl: string, config: string, rows: Record<string, unknown>[]): Promise<Record<string, unknown>> {
    feed('people', rows)
    expect((await run({ operator: FEED, id: dl, datastore: ds.dir, config })).exitCode).toBe(0)
    const r = await run({
      operator: 'sql.Uploader',
      id: `${dl}_up`,
      datastore: ds.dir,
      upstream: [dl],
      env: { ACHVY_CNXN__DB__URL: db.url },
    })
    expect(r.exitCode).toBe(0)
    return tableTasks(r.results)[0]!.data
  }

  /** `indexdef` of every index of the table, without the index names (they are hashes). */
  async function indexes(schema: string): Promise<string[]> {
    const rows = await db.query(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = '${schema}' AND tablename = 'people' ORDER BY indexdef`,
    )
    return rows
      .map((r) =>
        String(r.indexdef)
          .replace(/INDEX \S+ ON/, 'INDEX ON')
          .replace(`"${schema}".`, '')
          .replace(`${schema}.`, ''),
      )
      .sort()
  }

  async function reloptions(schema: string): Promise<unknown> {
    const rows = await db.query(
      `SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '${schema}' AND c.relname = 'people'`,
    )
    return rows[0]?.reloptions
  }

  const config = 'tbls:\n  people:\n    unique_by: id\n'

  it('creates new tables with a BRIN index on _seq (no B-tree primary key) and a partial key index on current rows', async () => {
    const dl = id('layout')
    await load(dl, config, [
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
    ])
    const data = await load(dl, config, [
      { id: 1, v: 'c' },
      { id: 3, v: 'd' },
    ])
    expect(data).toMatchObject({ inserted: 2, superseded: 1 })
    const schema = `${dl}__test`
    expect(await indexes(schema)).toEqual([
      "CREATE INDEX ON people USING brin (_seq) WITH (autosummarize='on')",
      'CREATE INDEX ON people USING btree (id) WHERE (_del IS NULL)',
    ])
    expect(
      await db.query(`SELECT 1 FROM pg_constraint WHERE conrelid = '"${schema}".people'::regclass AND contype = 'p'`),
    ).toEqual([])
    expect(await reloptions(schema)).toBeNull()
    const rows = await db.rows(schema, 'people')
    expect(
      rows.map((r) => `${String(r._seq)}:${String(r.id)}=${String(r.v)}${r._del === null ? '' : ' (superseded)'}`),
    ).toEqual(['1:1=a (superseded)', '2:2=b', '3:1=c', '4:3=d'])
  })

  it('keeps loading a table created with the old layout (B-tree primary key on _seq) without changing it', async () => {
    const dl = id('oldlayout')
    const schema = `${dl}__test`
    // What earlier versions created: `_seq` as the primary key, then the partial key index.
    await db.query(`CREATE SCHEMA "${schema}"`)
    await db.query(
      `CREATE TABLE "${schema}".people ("_seq" BIGINT NOT NULL PRIMARY KEY, id bigint, v text, "_del" timestamptz)`,
    )
    await db.query(`CREATE INDEX old_key ON "${schema}".people (id) WHERE "_del" IS NULL`)
    await load(dl, config, [
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
    ])
    expect(
      await load(dl, config, [
        { id: 1, v: 'c' },
        { id: 3, v: 'd' },
      ]),
    ).toMatchObject({ inserted: 2, superseded: 1 })
    const defs = await indexes(schema)
    expect(defs).toContain('CREATE UNIQUE INDEX ON people USING btree (_seq)')
    expect(defs.some((d) => d.includes('brin'))).toBe(false)
    const rows = await db.rows(schema, 'people')
    expect(
      rows.map((r) => `${String(r._seq)}:${String(r.id)}=${String(r.v)}${r._del === null ? '' : ' (superseded)'}`),
    ).toEqual(['1:1=a (superseded)', '2:2=b', '3:1=c', '4:3=d'])
  })
})
