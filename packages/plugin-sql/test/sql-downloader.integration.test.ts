import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mysqlDb, postgresDb, sqliteDb, uniqueId, type TestDb } from './databases.js'
import { run, tableTasks, tempDir } from './helpers.js'

type Row = Record<string, unknown>

/** A value as comparable text: bytes as hex, timestamps as `YYYY-MM-DD HH:MM:SS.ffffff` UTC, JSON re-serialised. */
function canon(v: unknown, kind = ''): string | null {
  if (v === null || v === undefined) return null
  if (Buffer.isBuffer(v)) return v.toString('hex')
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v)
  if (kind === 'ts') {
    const m = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:\+00(?::00)?)?$/.exec(s)
    return m ? `${m[1]} ${m[2]}.${(m[3] ?? '').padEnd(6, '0')}` : s
  }
  if (kind === 'json') return JSON.stringify(JSON.parse(s))
  if (kind === 'hex') return s.toLowerCase()
  return s
}

const KINDS: Record<string, string> = { ts: 'ts', tsn: 'ts', j: 'json', b: 'hex' }

function canonRows(rows: Row[], cols: readonly string[]): (string | null)[][] {
  return rows
    .map((r) => cols.map((c) => canon(r[c], KINDS[c] ?? '')))
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])) || String(a[1]).localeCompare(String(b[1])))
}

const SOURCE_SQL = `
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('ok', 'sad');
CREATE DOMAIN shop.posint AS integer CHECK (VALUE > 0);
CREATE TABLE shop.orders (
  id bigint NOT NULL, region text NOT NULL, qty shop.posint, price numeric(50,30), f double precision, ok boolean,
  ts timestamptz, tsn timestamp, d date, t time, b bytea, j jsonb, tags text[], mood shop.mood, note varchar(20), u uuid,
  PRIMARY KEY (id, region));
CREATE VIEW shop.big_orders AS SELECT id, region, price FROM shop.orders WHERE price > 1;
CREATE TABLE shop.no_key (a int, b text);
INSERT INTO shop.orders VALUES
 (9223372036854775807, 'eu', 1, 12345678901234567890.123456789012345678901234567890, 1.5e-7, true, '2025-03-10 09:31:59.310028-03', '2025-03-10 09:24:53.123456', '2024-02-29', '13:45:30.123456', '\\x0001feff', '{"a": [1, 2.5, "x"], "n": null}', '{a,"b c"}', 'ok', 'tab\there', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
 (-9223372036854775808, 'üñí☃中文😀', NULL, -0.000000000000000000000000000001, NULL, false, '1999-12-31 23:59:59.999999+00', NULL, NULL, NULL, '\\x', '[]', NULL, 'sad', 'back\\slash', NULL),
 (2, 'us', 3, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'line
break', NULL);
INSERT INTO shop.no_key VALUES (1, 'x'), (1, 'x'), (2, NULL);
`

describe('sql.Downloader from PostgreSQL', () => {
  let src: TestDb
  const ds = tempDir()

  beforeAll(async () => {
    src = await postgresDb()
    await src.query(SOURCE_SQL)
  })
  afterAll(async () => {
    await src?.close()
    ds.remove()
  })

  it('discovers tables and views with their column types and the primary key as unique_by (composite keys too)', async () => {
    const id = uniqueId('d', 'disc')
    const r = await run({
      operator: 'sql.Downloader',
      id,
      datastore: ds.dir,
      env: { ACHVY_CNXN__DB__URL: src.url },
      enable: ['shop.*'],
    })
    expect(r.exitCode).toBe(0)
    const tasks = tableTasks(r.results)
    expect(tasks.map((t) => t.tbl).sort()).toEqual(['shop.big_orders', 'shop.no_key', 'shop.orders'])
    const meta = JSON.parse(readFileSync(`${ds.dir}/test/${id}/$tables/shop.orders.json`, 'utf8')) as Record<
      string,
      unknown
    >
    expect(meta.unique_by).toBe('id, region')
    expect(meta.cols).toBe(
      'id int, region str, qty int, price float, f float, ok bool, ts datetime, tsn datetime, d date, t time, b bytes, j object, tags object, mood str, note str, u str',
    )
    expect(meta.exact_decimals).toEqual(['price'])
    expect(meta.source_kind).toBe('table')
    const view = JSON.parse(readFileSync(`${ds.dir}/test/${id}/$tables/shop.big_orders.json`, 'utf8')) as Record<
      string,
      unknown
    >
    expect(view.source_kind).toBe('view')
    expect(view.unique_by).toBe('')
    expect(tasks.find((t) => t.tbl === 'shop.orders')!.data.rows).toBe(3)
    expect(tasks.find((t) => t.tbl === 'shop.no_key')!.data.rows).toBe(3)
  })

  const targets: [string, () => Promise<TestDb & { prefix?: string }>][] = [
    ['mysql', () => mysqlDb()],
    ['sqlite', () => sqliteDb()],
  ]
  it.each(targets)(
    'round-trips every value exactly through the datastore and sql.Uploader into %s (compared with SQL)',
    async (_name, open) => {
      const target = await open()
      try {
        const id = uniqueId(target.prefix ?? 'r', 'rt')
        expect(
          (
            await run({
              operator: 'sql.Downloader',
              id,
              datastore: ds.dir,
              env: { ACHVY_CNXN__DB__URL: src.url },
              enable: ['shop.orders'],
            })
          ).exitCode,
        ).toBe(0)
        const up = await run({
          operator: 'sql.Uploader',
          id: `${id}_up`,
          datastore: ds.dir,
          upstream: [id],
          env: { ACHVY_CNXN__DB__URL: target.url },
        })
        expect(up.exitCode).toBe(0)
        const cols = ['id', 'region', 'qty', 'price', 'f', 'ok', 'ts', 'tsn', 'd', 't', 'b', 'j', 'mood', 'note', 'u']
        const source = await src.query(
          `SELECT id::text, region, qty::text, price::text, f::text, (CASE WHEN ok THEN 1 WHEN NOT ok THEN 0 END)::text AS ok, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS ts,
         to_char(tsn, 'YYYY-MM-DD HH24:MI:SS.US') AS tsn, d::text, t::text, encode(b, 'hex') AS b, j::text AS j, mood::text, note, u::text FROM shop.orders`,
        )
        const t = target.target(id, 'shop.orders')
        const from = `${t.schema ? `${target.q(t.schema)}.` : ''}${target.q(t.table)}`
        const sel =
          target.name === 'mysql'
            ? `SELECT CAST(id AS CHAR) AS id, region, CAST(qty AS CHAR) AS qty, CAST(price AS CHAR) AS price, CAST(f AS CHAR) AS f, CAST(ok AS CHAR) AS ok, DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f') AS ts, DATE_FORMAT(tsn, '%Y-%m-%d %H:%i:%s.%f') AS tsn, CAST(d AS CHAR) AS d, CAST(t AS CHAR) AS t, LOWER(HEX(b)) AS b, j, mood, note, u FROM ${from} WHERE _del IS NULL`
            : `SELECT CAST(id AS TEXT) AS id, region, CAST(qty AS TEXT) AS qty, price, CAST(f AS TEXT) AS f, CAST(ok AS TEXT) AS ok, ts, tsn, d, t, CASE WHEN b IS NULL THEN NULL ELSE lower(hex(b)) END AS b, j, mood, note, u FROM ${from} WHERE _del IS NULL`
        const got = await target.query(sel)
        const want = canonRows(source, cols)
        const have = canonRows(got, cols)
        // Floats are compared as numbers (text forms differ: 1.5e-7 vs 1.5e-07); MySQL's TIME has no fraction past the column's
        for (const rows of [want, have]) for (const r of rows) r[4] = r[4] === null ? null : String(Number(r[4]))
        expect(have).toEqual(want)
      } finally {
        await target.close()
      }
    },
  )

  it('incremental: rows inserted later with the cursor equal to the previous maximum arrive exactly once; updates move; nothing arrives twice', async () => {
    const target = await sqliteDb()
    try {
      await src.query(`CREATE TABLE shop.events (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
        INSERT INTO shop.events VALUES (1, 'a', '2025-01-01 00:00:00+00'), (2, 'b', '2025-01-02 00:00:00+00'), (3, 'c', '2025-01-02 00:00:00+00')`)
      const id = uniqueId('i', 'inc')
      const config = 'tbls:\n  shop.events:\n    cursor: updated_at\n'
      const extract = async () => {
        const r = await run({
          operator: 'sql.Downloader',
          id,
          datastore: ds.dir,
          env: { ACHVY_CNXN__DB__URL: src.url },
          enable: ['shop.events'],
          config,
        })
        expect(r.exitCode).toBe(0)
        return tableTasks(r.results)[0]!.data
      }
      const upload = async () => {
        const r = await run({
          operator: 'sql.Uploader',
          id: `${id}_up`,
          datastore: ds.dir,
          upstream: [id],
          env: { ACHVY_CNXN__DB__URL: target.url },
        })
        expect(r.exitCode).toBe(0)
      }
      expect((await extract()).rows).toBe(3)
      // Committed later with the same cursor value as the last maximum: not lost.
      await src.query(`INSERT INTO shop.events VALUES (4, 'd', '2025-01-02 00:00:00+00')`)
      const second = await extract()
      expect(second.rows).toBe(1)
      expect(second.boundary_rows_skipped).toBe(2)
      // Nothing new: nothing arrives.
      expect((await extract()).rows).toBe(0)
      // An update moves the row forward.
      await src.query(`UPDATE shop.events SET v = 'a2', updated_at = '2025-01-03 00:00:00+00' WHERE id = 1`)
      expect((await extract()).rows).toBe(1)
      await upload()
      const t = target.target(id, 'shop.events')
      const all = await target.rows(null, t.table)
      expect(all.length).toBe(5)
      const cur = all
        .filter((r) => r._del === null)
        .map((r) => [Number(r.id), r.v])
        .sort()
      expect(cur).toEqual([
        [1, 'a2'],
        [2, 'b'],
        [3, 'c'],
        [4, 'd'],
      ])
      const ckpt = JSON.parse(readFileSync(`${ds.dir}/test/${id}/$checkpoints/shop.events`, 'utf8').trim()) as Record<
        string,
        unknown
      >
      expect(ckpt).toMatchObject({ mode: 'incremental', cursor_columns: ['updated_at'], keys: ['["1"]'] })
    } finally {
      await target.close()
    }
  })

  it('query, where, initial_value, lag and a two-column cursor do what the README says', async () => {
    await src.query(`CREATE TABLE shop.ticks (id int PRIMARY KEY, n bigint NOT NULL, kind text);
      INSERT INTO shop.ticks SELECT g, g / 2, CASE WHEN g % 3 = 0 THEN 'skip' ELSE 'keep' END FROM generate_series(1, 20) g`)
    const id = uniqueId('q', 'qry')
    const config = [
      'tbls:',
      '  shop.ticks:',
      '    cursor: n, id',
      "    where: kind = 'keep'",
      '    initial_value: 3',
      '  shop.lagged:',
      '    query: SELECT id, n FROM shop.ticks',
      '    unique_by: id',
      '    cursor: n',
      '    lag: 2',
      '',
    ].join('\n')
    const extract = async () => {
      const r = await run({
        operator: 'sql.Downloader',
        id,
        datastore: ds.dir,
        env: { ACHVY_CNXN__DB__URL: src.url },
        enable: ['shop.ticks', 'shop.lagged'],
        config,
      })
      expect(r.exitCode).toBe(0)
      return new Map(tableTasks(r.results).map((t) => [t.tbl, t.data]))
    }
    const first = await extract()
    // n >= 3 (ids 6..20) and kind keep: ids 7, 8, 10, 11, 13, 14, 16, 17, 19, 20.
    expect(first.get('shop.ticks')!.rows).toBe(10)
    expect(first.get('shop.lagged')!.rows).toBe(20)
    await src.query(`INSERT INTO shop.ticks VALUES (21, 10, 'keep'), (22, 11, 'keep')`)
    const second = await extract()
    // (n, id) >= (10, 20): only the new rows 21 (10, 21) and 22 (11, 22); (10, 20) was delivered.
    expect(second.get('shop.ticks')!.rows).toBe(2)
    expect(second.get('shop.ticks')!.boundary_rows_skipped).toBe(1)
    // lag 2 on n: n >= 10 - 2 re-reads n in 8..10 (ids 16..21) besides the new one; the boundary rows (n = 10) seen before are skipped.
    expect(second.get('shop.lagged')!.rows).toBeGreaterThanOrEqual(3)
    const meta = JSON.parse(readFileSync(`${ds.dir}/test/${id}/$tables/shop.lagged.json`, 'utf8')) as Record<
      string,
      unknown
    >
    expect(meta.cols).toBe('id int, n int')
  })

  it.each(targets)(
    'full mode into %s: rows deleted from the source become _del downstream; a failed snapshot removes nothing',
    async (_name, open) => {
      const target = await open()
      try {
        await src.query(`DROP TABLE IF EXISTS shop.items; DROP TABLE IF EXISTS shop.loose;
        CREATE TABLE shop.items (id int PRIMARY KEY, v text); INSERT INTO shop.items SELECT g, 'v' || g FROM generate_series(1, 50) g;
        CREATE TABLE shop.loose (a int, b text); INSERT INTO shop.loose VALUES (1, 'x'), (2, 'y')`)
        const id = uniqueId((target as { prefix?: string }).prefix ?? 'f', 'full')
        const cycle = async (expectCode = 0) => {
          const r = await run({
            operator: 'sql.Downloader',
            id,
            datastore: ds.dir,
            env: { ACHVY_CNXN__DB__URL: src.url },
            enable: ['shop.items', 'shop.loose'],
            config: 'tbls:\n  shop.items:\n    chunk_rows: 7\n',
          })
          expect(r.exitCode).toBe(expectCode)
          const u = await run({
            operator: 'sql.Uploader',
            id: `${id}_up`,
            datastore: ds.dir,
            upstream: [id],
            env: { ACHVY_CNXN__DB__URL: target.url },
          })
          expect(u.exitCode).toBe(0)
          return tableTasks(u.results)
        }
        await cycle()
        const items = target.target(id, 'shop.items').table
        const loose = target.target(id, 'shop.loose').table
        const schema = target.target(id, 'shop.items').schema
        const currentIds = async (t: string, col: string) =>
          (await target.rows(schema, t, '_del IS NULL')).map((r) => Number(r[col])).sort((a, b) => a - b)
        expect((await currentIds(items, 'id')).length).toBe(50)
        await src.query(
          `DELETE FROM shop.items WHERE id IN (3, 17, 50); UPDATE shop.items SET v = 'changed' WHERE id = 1; INSERT INTO shop.items VALUES (51, 'new'); DELETE FROM shop.loose WHERE a = 1`,
        )
        const tasks = await cycle()
        expect(tasks.find((t) => t.tbl.endsWith('shop.items'))!.data.snapshot_removed).toBe(3)
        const ids = await currentIds(items, 'id')
        expect(ids.length).toBe(48)
        expect(ids).not.toContain(3)
        expect(ids).toContain(51)
        expect((await target.rows(schema, items, '_del IS NULL AND id = 1'))[0]!.v).toBe('changed')
        // The deleted rows are still there as history, with their _del.
        expect((await target.rows(schema, items, '_del IS NOT NULL AND id = 17')).length).toBe(1)
        // Without a key the whole previous snapshot is superseded by the new one.
        expect(await currentIds(loose, 'a')).toEqual([2])
        // A snapshot that fails half-way (the table is gone) commits nothing that blanks the target.
        await src.query('ALTER TABLE shop.items RENAME TO items_gone')
        await cycle(1)
        expect((await currentIds(items, 'id')).length).toBe(48)
        await src.query('ALTER TABLE shop.items_gone RENAME TO items')
      } finally {
        await target.close()
      }
    },
  )
})

/** A source database of another dialect with the same small schema, and its URL. */
async function otherSource(name: 'mysql' | 'sqlite'): Promise<{ db: TestDb; url: string; schema: string }> {
  if (name === 'mysql') {
    const db = await mysqlDb()
    const schema = `${db.prefix}src`
    await db.query(`CREATE DATABASE ${schema}`)
    await db.query(
      `CREATE TABLE ${schema}.orders (id BIGINT NOT NULL, region VARCHAR(20) NOT NULL, price DECIMAL(40,30), ok TINYINT(1), ts TIMESTAMP(6) NULL, tsn DATETIME(6), d DATE, b VARBINARY(10), j JSON, note TEXT, updated_at DATETIME(6) NOT NULL, PRIMARY KEY (id, region))`,
    )
    await db.query(`CREATE VIEW ${schema}.eu AS SELECT id, note FROM ${schema}.orders WHERE region = 'eu'`)
    await db.query(`INSERT INTO ${schema}.orders VALUES (9223372036854775807, 'eu', 1.000000000000000000000000000001, 1, '2025-01-02 03:04:05.123456', '2025-01-02 03:04:05.654321', '2024-02-29', X'00FF', '{"a": [1, 2]}', 'héllo ☃', '2025-01-01 00:00:00'),
      (2, 'us', NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, '2025-01-02 00:00:00')`)
    return { db, url: `mysql://root@127.0.0.1:3306/${schema}`, schema }
  }
  const db = await sqliteDb()
  await db.query(
    `CREATE TABLE orders (id INTEGER NOT NULL, region TEXT NOT NULL, price DECIMAL(40,30), ok BOOLEAN, ts TIMESTAMPTZ, tsn DATETIME, d DATE, b BLOB, j JSON, note TEXT, updated_at DATETIME NOT NULL, PRIMARY KEY (id, region))`,
  )
  await db.query(`CREATE VIEW eu AS SELECT id, note FROM orders WHERE region = 'eu'`)
  await db.query(`INSERT INTO orders VALUES (9223372036854775807, 'eu', '1.000000000000000000000000000001', 1, '2025-01-02T03:04:05.123456+00:00', '2025-01-02 03:04:05.654321', '2024-02-29', X'00FF', '{"a": [1, 2]}', 'héllo ☃', '2025-01-01 00:00:00'),
      (2, 'us', NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, '2025-01-02 00:00:00')`)
  return { db, url: db.url, schema: 'main' }
}

describe.each(['mysql', 'sqlite'] as const)('sql.Downloader from %s', (name) => {
  let source: { db: TestDb; url: string; schema: string }
  let target: TestDb
  const ds = tempDir()
  beforeAll(async () => {
    source = await otherSource(name)
    target = await sqliteDb()
  })
  afterAll(async () => {
    await source?.db.close()
    await target?.close()
    ds.remove()
  })

  it('discovers the table (composite key) and the view, and extracts exact values into the datastore and on to SQLite', async () => {
    const id = uniqueId('o', name)
    const orders = `${source.schema}.orders`
    const r = await run({
      operator: 'sql.Downloader',
      id,
      datastore: ds.dir,
      env: { ACHVY_CNXN__DB__URL: source.url },
      enable: [`${source.schema}.*`],
    })
    expect(r.exitCode).toBe(0)
    expect(
      tableTasks(r.results)
        .map((t) => t.tbl)
        .sort(),
    ).toEqual([`${source.schema}.eu`, orders])
    const meta = JSON.parse(readFileSync(`${ds.dir}/test/${id}/$tables/${orders}.json`, 'utf8')) as Record<
      string,
      unknown
    >
    expect(meta.unique_by).toBe('id, region')
    expect(meta.cols).toBe(
      'id int, region str, price float, ok bool, ts datetime, tsn datetime, d date, b bytes, j object, note str, updated_at datetime',
    )
    expect(meta.exact_decimals).toEqual(['price'])
    expect(
      (
        await run({
          operator: 'sql.Uploader',
          id: `${id}_up`,
          datastore: ds.dir,
          upstream: [id],
          env: { ACHVY_CNXN__DB__URL: target.url },
        })
      ).exitCode,
    ).toBe(0)
    const rows = await target.rows(null, target.target(id, orders).table, '_del IS NULL')
    const big = rows.find((x) => x.region === 'eu')!
    expect(String(big.id)).toBe('9223372036854775807')
    // SQLite itself stores a DECIMAL column's text as REAL (NUMERIC affinity): its 1.0 arrives as it is held.
    expect(String(big.price)).toBe(name === 'sqlite' ? '1' : '1.000000000000000000000000000001')
    expect(big.ts).toBe('2025-01-02T03:04:05.123456+00:00')
    expect(big.tsn).toBe('2025-01-02T03:04:05.654321')
    expect(big.d).toBe('2024-02-29')
    expect((big.b as Buffer).toString('hex')).toBe('00ff')
    expect(JSON.parse(String(big.j))).toEqual({ a: [1, 2] })
    expect(big.note).toBe('héllo ☃')
    expect(Number(big.ok)).toBe(1)
    const small = rows.find((x) => x.region === 'us')!
    expect([small.price, small.ts, small.b, small.j, small.note]).toEqual([null, null, null, null, null])
  })

  it('incremental on a DATETIME cursor: a row committed later at the last cursor value arrives once, the others never twice', async () => {
    const id = uniqueId('n', name)
    const orders = `${source.schema}.orders`
    const config = `tbls:\n  ${orders}:\n    cursor: updated_at\n`
    const extract = async () => {
      const r = await run({
        operator: 'sql.Downloader',
        id,
        datastore: ds.dir,
        env: { ACHVY_CNXN__DB__URL: source.url },
        enable: [orders],
        config,
      })
      expect(r.exitCode).toBe(0)
      return tableTasks(r.results)[0]!.data
    }
    expect((await extract()).rows).toBe(2)
    const q = source.schema === 'main' ? 'orders' : `${source.schema}.orders`
    await source.db.query(`INSERT INTO ${q} (id, region, updated_at) VALUES (3, 'us', '2025-01-02 00:00:00')`)
    const second = await extract()
    expect([second.rows, second.boundary_rows_skipped]).toEqual([1, 1])
    expect((await extract()).rows).toBe(0)
  })
})
