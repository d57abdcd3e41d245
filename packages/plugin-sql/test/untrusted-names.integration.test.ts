import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mysqlDb, postgresDb, sqliteDb, uniqueId, type TestDb } from './databases.js'
import { FEED, feed, run, tempDir } from './helpers.js'

// Column names come from CSV headers and JSON keys. Each test here uses names a plain JS object already "has"
// (Object.prototype members) or names that would break generated code, and checks that every value arrives.

const ROOT = nodePath.resolve(import.meta.dirname, '../../..')
const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')

/** Every Object.prototype member: constructor, __proto__, toString, valueOf, hasOwnProperty, __defineGetter__, … */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype)

/** Names that would end a string literal, a comment or a template in generated code, or shadow its variables. */
const HOSTILE_NAMES = [
  'q"uote',
  "s'ingle",
  'back\\slash',
  'new\nline',
  'tab\tcol',
  '${globalThis.__anchPwned=1}',
  '`tick`',
  'x"];globalThis.__anchPwned=2;//',
  "');globalThis.__anchPwned=3;('",
  '*/globalThis.__anchPwned=4/*',
  '\u2028ls\u2029ps',
  '\\u0022esc',
  'ünïcödé 中文',
  'v',
  'v0',
  'row',
  'n',
  'H',
  'E',
]

/**
 * The hostile names that can be declared in `columns:`. The core writes an upstream table's declared columns into
 * its `$tables` record as one `name type, name type` string, so names with whitespace or commas cannot be declared.
 */
const DECLARABLE = HOSTILE_NAMES.filter((n) => !/[\s,]/.test(n))

const DIALECTS: [string, () => Promise<TestDb & { prefix?: string }>][] = [
  ['postgres', () => postgresDb()],
  ['mysql', () => mysqlDb()],
  ['sqlite', () => sqliteDb()],
]

function anchovy(
  args: string[],
  env: Record<string, string>,
  cwd: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'start', ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Text of a value as the test databases return it (numbers, bigints, strings). */
const text = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

describe.each(DIALECTS)('column names from data and config on %s', (_dialect, open) => {
  let db: TestDb & { prefix?: string }
  const t = tempDir()
  const id = (base: string): string => uniqueId(db.prefix ?? 't', base)

  beforeAll(async () => {
    db = await open()
  })
  afterAll(async () => {
    await db?.close()
    t.remove()
  })

  /** The current rows of `table` with `names` read through aliases (drivers build row objects by name too). */
  async function valuesOf(
    schema: string | null,
    table: string,
    names: readonly string[],
  ): Promise<(string | null)[][]> {
    const from = `${schema ? `${db.q(schema)}.` : ''}${db.q(table)}`
    const list = names.map((n, j) => `${db.q(n)} AS c${j}`).join(', ')
    const rows = await db.query(`SELECT ${list} FROM ${from} WHERE ${db.q('_del')} IS NULL ORDER BY ${db.q('_seq')}`)
    return rows.map((r) => names.map((_n, j) => text(r[`c${j}`])))
  }

  it('keeps CSV columns named after Object.prototype members (constructor, __proto__, toString, …), declared and undeclared (anchovy CLI)', async () => {
    const dir = nodePath.join(t.dir, 'proto')
    mkdirSync(`${dir}/files`, { recursive: true })
    const header = ['id', ...PROTO_NAMES]
    const cell = (i: number, j: number): string => String(i * 1000 + j)
    const lines = [
      header.join(','),
      ...[1, 2, 3].map((i) => [String(i), ...PROTO_NAMES.map((_n, j) => cell(i, j))].join(',')),
    ]
    writeFileSync(`${dir}/files/p.csv`, `${lines.join('\n')}\n`)
    // "undeclared": only id has a type (any declared type used to make the uploader drop these columns);
    // "declared": every column has one.
    const declared = Object.fromEntries(PROTO_NAMES.map((n) => [n, 'int']))
    const config = {
      tbls: {
        undeclared: { path: '/p.csv', columns: { id: 'int' }, unique_by: 'id' },
        declared: { path: '/p.csv', columns: { id: 'int', ...declared }, unique_by: 'id' },
      },
    }
    writeFileSync(`${dir}/config.yaml`, JSON.stringify(config))
    const dl = id('protof')
    const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'test', ACHVY_LOG_LEVEL: 'warn' }
    const down = anchovy(
      ['-op', 'sftp.CsvDownloader', '--id', dl],
      { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href },
      dir,
    )
    expect(down.status, down.stderr).toBe(0)
    const up = anchovy(
      ['-op', 'sql.Uploader', '--id', `${dl}_up`, '-U', dl],
      { ...env, ACHVY_CNXN__DB__URL: db.url },
      dir,
    )
    expect(up.status, up.stderr + up.stdout).toBe(0)
    for (const table of ['undeclared', 'declared']) {
      const target = db.target(dl, table)
      const got = await valuesOf(target.schema, target.table, header)
      expect(got, table).toEqual([1, 2, 3].map((i) => [String(i), ...PROTO_NAMES.map((_n, j) => cell(i, j))]))
    }
  })

  it('stores NULL, not an Object.prototype member, for rows that lack such a column, and keys named like one still must have a value', async () => {
    const dl = id('protom')
    const full = (i: number): Record<string, unknown> =>
      JSON.parse(
        JSON.stringify(Object.fromEntries([['id', i], ...PROTO_NAMES.map((n, j) => [n, `${n}=${i}.${j}`])])),
      ) as Record<string, unknown>
    // JSON.parse makes `__proto__` an own property, as reading the datastore does.
    feed('m', [full(1), { id: 2 }, full(3)])
    feed('typed', [full(1), { id: 2 }, full(3)])
    const config = JSON.stringify({
      tbls: {
        m: { unique_by: 'id' },
        typed: { unique_by: 'id', columns: { id: 'int', toString: 'str', valueOf: 'str' } },
      },
    })
    expect((await run({ operator: FEED, id: dl, datastore: t.dir, config })).exitCode).toBe(0)
    const r = await run({
      operator: 'sql.Uploader',
      id: `${dl}_up`,
      datastore: t.dir,
      upstream: [dl],
      env: { ACHVY_CNXN__DB__URL: db.url },
    })
    expect(r.exitCode, JSON.stringify(r.results)).toBe(0)
    for (const table of ['m', 'typed']) {
      const target = db.target(dl, table)
      const got = await valuesOf(target.schema, target.table, ['id', ...PROTO_NAMES])
      expect(got, table).toEqual([
        ['1', ...PROTO_NAMES.map((n, j) => `${n}=1.${j}`)],
        ['2', ...PROTO_NAMES.map(() => null)],
        ['3', ...PROTO_NAMES.map((n, j) => `${n}=3.${j}`)],
      ])
    }
    // A key column named like a prototype member that a row lacks is an empty key, not `Object`.
    const dk = id('protok')
    feed('k', [{ constructor: 'a', v: 1 }, { v: 2 }])
    expect(
      (await run({ operator: FEED, id: dk, datastore: t.dir, config: 'tbls:\n  k:\n    unique_by: constructor\n' }))
        .exitCode,
    ).toBe(0)
    const bad = await run({
      operator: 'sql.Uploader',
      id: `${dk}_up`,
      datastore: t.dir,
      upstream: [dk],
      env: { ACHVY_CNXN__DB__URL: db.url },
    })
    expect(bad.exitCode).not.toBe(0)
    expect(JSON.stringify(bad.results)).toContain('ANCH_ERR_SQL_NULL_KEY')
  })

  it('loads columns whose names hold quotes, backslashes, newlines, ${, comment ends and unicode, without running any of them as code', async () => {
    const dl = id('hostile')
    globalThis.__anchPwned = undefined
    // Declarable columns carry numbers as strings (declared int in "hd"), the others text.
    const value = (i: number, n: string, j: number): string =>
      DECLARABLE.includes(n) ? String(i * 100 + j) : `${n}|${i}`
    const row = (i: number): Record<string, unknown> =>
      Object.fromEntries([['id', i], ...HOSTILE_NAMES.map((n, j) => [n, value(i, n, j)])])
    feed('h', [row(1), row(2)])
    feed('hd', [row(1), row(2)])
    // "hd" declares them int: their string cells go through the coercing code of the compiled row check.
    const declared = Object.fromEntries(DECLARABLE.map((n) => [n, 'int']))
    const config = JSON.stringify({
      tbls: { h: { unique_by: 'id' }, hd: { unique_by: 'id', columns: { id: 'int', ...declared } } },
    })
    expect((await run({ operator: FEED, id: dl, datastore: t.dir, config })).exitCode).toBe(0)
    const r = await run({
      operator: 'sql.Uploader',
      id: `${dl}_up`,
      datastore: t.dir,
      upstream: [dl],
      env: { ACHVY_CNXN__DB__URL: db.url },
    })
    expect(r.exitCode, JSON.stringify(r.results)).toBe(0)
    expect(globalThis.__anchPwned).toBeUndefined()
    for (const table of ['h', 'hd']) {
      const target = db.target(dl, table)
      const got = await valuesOf(target.schema, target.table, ['id', ...HOSTILE_NAMES])
      expect(got, table).toEqual([1, 2].map((i) => [String(i), ...HOSTILE_NAMES.map((n, j) => value(i, n, j))]))
    }
    // The declared columns really were typed (coerced from the strings), not left as text.
    const hd = db.target(dl, 'hd')
    const from = `${hd.schema ? `${db.q(hd.schema)}.` : ''}${db.q(hd.table)}`
    for (const n of DECLARABLE) {
      const j = HOSTILE_NAMES.indexOf(n)
      const [sum] = await db.query(`SELECT SUM(${db.q(n)}) AS s, MAX(${db.q(n)}) + 0 AS m FROM ${from}`)
      expect([Number(sum!.s), Number(sum!.m)], n).toEqual([100 + j + 200 + j, 200 + j])
    }
    expect(DECLARABLE.length).toBeGreaterThan(10)
  })
})

declare global {
  // eslint-disable-next-line no-var
  var __anchPwned: unknown
}
