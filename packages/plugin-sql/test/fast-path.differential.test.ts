import { mkdirSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DateTime, LocalDate, encodeRow } from '@anchovies/core'
import { mysqlDb, postgresDb, sqliteDb, type TestDb } from './databases.js'
import { FEED, feed, run, tableTasks, tempDir } from './helpers.js'

/**
 * The byte fast path (sql_fast_path=on) against the general path (off): the same datastore loaded twice into the
 * same database, compared row by row (every column, `_seq`, whether `_del` is set), column types, and errors; on
 * each dialect (PostgreSQL COPY text, MariaDB LOAD DATA text, SQLite JSON arrays).
 */
const DIALECTS = [
  ['PostgreSQL', postgresDb],
  ['MariaDB', mysqlDb],
  ['SQLite', sqliteDb],
] as const
let db: TestDb & { prefix?: string }

/** The schema each mode's load of upstream `up` goes to (MariaDB: under the test database's prefix, dropped after). */
function schemaOf(up: string, mode: string): string {
  return db.name === 'mysql' ? `${db.prefix}_${up}_${mode}` : `${up}_${mode}`
}

/** Column names and types of `table` as the database describes them. */
async function columnTypes(schema: string, table: string): Promise<unknown[]> {
  if (db.name === 'postgres')
    return db.query(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '${schema}' AND table_name = '${table}' ORDER BY ordinal_position`,
    )
  if (db.name === 'mysql')
    return db.query(
      `SELECT column_name, column_type FROM information_schema.columns WHERE table_schema = '${schema}' AND table_name = '${table}' ORDER BY ordinal_position`,
    )
  return db.query(`SELECT name, type FROM pragma_table_info('${schema}__${table}')`)
}

/** Rows of `table` in `schema` (ordered by _seq). */
async function targetRows(schema: string, table: string): Promise<Record<string, unknown>[]> {
  return db.name === 'sqlite' ? db.rows(null, `${schema}__${table}`) : db.rows(schema, table)
}

describe.each(DIALECTS)('%s', (_name, open) => {
  beforeAll(async () => {
    db = await open()
  })
  afterAll(async () => {
    await db?.close()
  })

  type Task = { tbl: string; status: string; data: Record<string, unknown> }

  /** Loads upstream `up` of `datastore` with the fast path on and off; returns both runs' table tasks. */
  async function loadBoth(datastore: string, up: string, user = 'test'): Promise<{ on: Task[]; off: Task[] }> {
    const out: Record<string, Task[]> = {}
    for (const mode of ['on', 'off']) {
      const r = await run({
        operator: 'sql.Uploader',
        id: `up_${mode}`,
        user,
        datastore,
        upstream: [up],
        env: {
          ACHVY_CNXN__DB__URL: db.url,
          ACHVY_SQL_FAST_PATH: mode,
          [`ACHVY_CNXN__SCHEMAS__${up.toUpperCase()}`]: schemaOf(up, mode),
        },
      })
      out[mode] = tableTasks(r.results)
    }
    return { on: out.on!, off: out.off! }
  }

  /** Asserts both loads of `table` left the same rows and column types, and returns how many rows there are. */
  async function sameTarget(up: string, table: string, user = 'test'): Promise<number> {
    const types = async (mode: string): Promise<unknown[]> => columnTypes(`${schemaOf(up, mode)}__${user}`, table)
    expect(await types('on')).toEqual(await types('off'))
    const rows = async (mode: string): Promise<unknown[]> =>
      (await targetRows(`${schemaOf(up, mode)}__${user}`, table)).map((r) => ({
        ...r,
        _del: r._del === null ? null : 'set',
      }))
    const on = await rows('on')
    expect(on).toEqual(await rows('off'))
    return on.length
  }

  /**
   * Same outcome per table task: status, error code and message (file and line included), rows loaded. (A failed
   * task's `rows` counts what the source yielded before the error: none on the fast path, whose source yields none.)
   */
  function sameTasks(both: { on: Task[]; off: Task[] }): void {
    const pick = (t: Task): unknown => ({
      tbl: t.tbl,
      status: t.status,
      code: t.data.err_code,
      msg: t.data.err_msg,
      rows: t.status === 'OK' ? t.data.rows : undefined,
      inserted: t.data.inserted,
      superseded: t.data.superseded,
    })
    expect(both.on.map(pick)).toEqual(both.off.map(pick))
  }

  const HOSTILE = [
    '',
    'plain',
    'quote " and \'',
    'back\\slash \\N \\\\',
    'tab\there',
    'cr\rlf\ncrlf\r\n',
    '\uFEFFbom',
    'ünïcödé ✓ 𝄞 日本',
    '\u0001\u001f\u007f',
    'lone \ud800 surrogate',
    'x'.repeat(70_000),
    '{"json": "looking"}',
    '\\x00',
    'null',
    'NULL',
    '\t\n',
  ]

  /** Row `i` of a generated table: every anchovies type, hostile strings, nulls. */
  function generated(i: number, variant: number): Record<string, unknown> {
    const s = HOSTILE[i % HOSTILE.length]!
    return {
      id: i,
      s: i % 997 === 0 ? null : `${s}${variant}`,
      f: [0.1, -0, 2, 1e300, -1.5e-300, Number.NaN, Infinity, 123456789.125, 2 ** 53 + 2][i % 9]! + variant,
      n: i % 3 === 0 ? null : i * 1_000_003,
      big: i % 5 === 0 ? 2n ** 62n + BigInt(i) : i,
      b: i % 2 === 0,
      dt: DateTime.parse(
        `2025-0${1 + (i % 9)}-1${i % 10}T${String(i % 24).padStart(2, '0')}:00:0${i % 10}.${String(i).padStart(6, '0').slice(-6)}+0${i % 10}:30`,
      ),
      naive: DateTime.parse(`2024-02-29T12:34:5${i % 10}`),
      d: new LocalDate(1999 + (i % 30), 1 + (i % 12), 1 + (i % 28)),
      t: `${String(i % 24).padStart(2, '0')}:15:30.25`,
      by: Buffer.from([i & 255, 0, 92, 10, 13, 9, 255]),
      o:
        i % 4 === 0
          ? { a: [1, 'two', null, { '3': true, b: 'x\ty' }], z: 1.0 }
          : i % 4 === 1
            ? [`a\\b\n${i}`, 'ü']
            : i % 4 === 2
              ? 'just a string'
              : 42,
      dec: i % 7 === 0 ? null : `${i}.${'0123456789'.repeat(3)}`,
      empty: null,
    }
  }

  describe('sql.Uploader byte fast path against the general path', () => {
    it('loads generated rows of every type, then half the keys updated, into identical tables', async () => {
      const ds = tempDir()
      try {
        const config = 'tbls:\n  all_types:\n    unique_by: id\n    sort_by: -dt\n    exact_decimals: dec\n'
        const N = 12_000
        feed(
          'all_types',
          Array.from({ length: N }, (_, i) => generated(i, 0)),
        )
        expect((await run({ operator: FEED, id: 'gen', datastore: ds.dir, config })).exitCode).toBe(0)
        let both = await loadBoth(ds.dir, 'gen')
        sameTasks(both)
        expect(both.on[0]!.status, String(both.on[0]!.data.err_msg)).toBe('OK')
        expect(Number(both.on[0]!.data.fast_rows)).toBeGreaterThan(N / 2)
        expect(await sameTarget('gen', 'all_types')).toBe(N)

        // Second load: half the keys again, then a column that widens (int → float) in the middle of the load.
        feed(
          'all_types',
          Array.from({ length: N }, (_, i) => ({ ...generated(i + N / 2, 1), ...(i === N / 2 ? { n: 0.5 } : {}) })),
        )
        expect((await run({ operator: FEED, id: 'gen', datastore: ds.dir, config })).exitCode).toBe(0)
        both = await loadBoth(ds.dir, 'gen')
        sameTasks(both)
        expect(both.on[0]!.status, String(both.on[0]!.data.err_msg)).toBe('OK')
        expect(Number(both.on[0]!.data.fast_rows)).toBeGreaterThan(0)
        expect(await sameTarget('gen', 'all_types')).toBe(2 * N)
      } finally {
        ds.remove()
      }
    })

    it('loads string keys outgrowing the key length, set_by, and numbers and booleans in a text column the same way', async () => {
      const ds = tempDir()
      try {
        const config = 'tbls:\n  keyed:\n    unique_by: k\n    set_by: g\n'
        const rows = (variant: number) =>
          Array.from({ length: 12_000 }, (_, i) => ({
            // Keys grow past 40 characters (MariaDB's default key length) in later members.
            k: `${'k'.repeat(1 + Math.floor(i / 200))}${i}`,
            g: `g${i % 7}`,
            txt: i % 3 === 0 ? i * 1.5 : i % 3 === 1 ? i % 2 === 0 : `ü${'x'.repeat(i % 300)}𝄞`,
            f: i % 5 === 0 ? 2 ** 53 + 2 * i : i / 7,
            v: variant,
          }))
        feed('keyed', rows(0))
        expect((await run({ operator: FEED, id: 'keyed', datastore: ds.dir, config })).exitCode).toBe(0)
        let both = await loadBoth(ds.dir, 'keyed')
        sameTasks(both)
        expect(both.on[0]!.status, String(both.on[0]!.data.err_msg)).toBe('OK')
        expect(await sameTarget('keyed', 'keyed')).toBe(12_000)
        feed('keyed', rows(1).slice(6000))
        expect((await run({ operator: FEED, id: 'keyed', datastore: ds.dir, config })).exitCode).toBe(0)
        both = await loadBoth(ds.dir, 'keyed')
        sameTasks(both)
        // The target's columns are known from the start: members go the byte way (PostgreSQL stages set_by
        // loads through the general path).
        if (db.name !== 'postgres') expect(Number(both.on[0]!.data.fast_rows)).toBeGreaterThan(0)
        expect(await sameTarget('keyed', 'keyed')).toBe(18_000)
      } finally {
        ds.remove()
      }
    })

    it('loads declared columns (CSV-like strings in typed columns) the same way', async () => {
      const ds = tempDir()
      try {
        const config =
          'tbls:\n  typed:\n    unique_by: k\n    columns: {k: str, i: int, f: float, b: bool, d: date, t: time}\n'
        feed(
          'typed',
          Array.from({ length: 9000 }, (_, i) => ({
            k: `k${i}`,
            i: i % 10 === 0 ? '' : String(i),
            f: i % 3 === 0 ? ' 1.5 ' : i,
            b: i % 2 ? 'yes' : true,
            d: i % 4 === 0 ? '2024-01-02' : null,
            t: i % 5 === 0 ? '10:00' : null,
          })),
        )
        expect((await run({ operator: FEED, id: 'typed', datastore: ds.dir, config })).exitCode).toBe(0)
        const both = await loadBoth(ds.dir, 'typed')
        sameTasks(both)
        expect(await sameTarget('typed', 'typed')).toBe(9000)
      } finally {
        ds.remove()
      }
    })
  })

  /** A gzip member recording its own length (the `AN` extra field core's writer adds). */
  function member(text: string | Buffer): Buffer {
    const plain = gzipSync(typeof text === 'string' ? Buffer.from(text) : text)
    const head = Buffer.alloc(20)
    plain.copy(head, 0, 0, 10)
    head[3] = 0x04
    head.writeUInt16LE(8, 10)
    head[12] = 0x41
    head[13] = 0x4e
    head.writeUInt16LE(4, 14)
    head.writeUInt32LE(plain.length + 10, 16)
    return Buffer.concat([head, plain.subarray(10)])
  }

  /** Lines of `count` plain rows starting at id `from`. */
  function lines(from: number, count: number): string {
    let out = ''
    for (let i = from; i < from + count; i++)
      out += `${encodeRow({ id: i, name: `n${i}`, v: i * 0.5, at: DateTime.parse('2025-01-01T00:00:00+00:00') })}\n`
    return out
  }

  /**
   * A datastore as the Python implementation lays it out (no commit records): files are read by name, so a test can
   * write any bytes. `files`: name → content.
   */
  function rawDatastore(dir: string, up: string, table: string, files: Record<string, Buffer>): void {
    const base = `${dir}/test/${up}`
    mkdirSync(`${base}/data/${table}`, { recursive: true })
    mkdirSync(`${base}/$tables`, { recursive: true })
    writeFileSync(
      `${base}/$tables/${table}.json`,
      JSON.stringify({
        name: table,
        namespace: null,
        cols: '',
        unique_by: 'id',
        set_by: '',
        sort_by: '',
        deleted_ttl: null,
      }),
    )
    for (const [name, content] of Object.entries(files)) writeFileSync(`${base}/data/${table}/${name}`, content)
  }

  describe('hostile data files: the fast path falls back and reports exactly what the general path reports', () => {
    const cases: [string, Record<string, Buffer>][] = [
      [
        'members, empty lines and an empty file',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 4000)),
            member(`\n${lines(4000, 4000)}\n`),
            member(lines(8000, 10)),
          ]),
          '2.json.gz': Buffer.alloc(0),
        },
      ],
      [
        'a plain single-member gzip (Python)',
        {
          '1.json.gz': Buffer.concat([member(lines(0, 3000)), member(lines(3000, 3000))]),
          '2.json.gz': gzipSync(lines(6000, 5000)),
        },
      ],
      [
        'a byte order mark, CRLF line ends and an object-form _types',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            member(`\uFEFF${lines(3000, 10)}`),
            member(lines(3010, 50).replace(/\n/g, '\r\n')),
            member(lines(4000, 100).replace(/"_types":"at@DT"/g, '"_types":{"at":"DT"}')),
          ]),
        },
      ],
      [
        'an unknown annotation code, a key escape, duplicate keys, spaces',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            member(lines(3000, 30).replace(/"at@DT"/g, '"at@XX"')),
            member('{"id":9000,"n\\u0061me":"esc"}\n{"id":9001,"id":9002}\n{ "id" : 9003 }\n'),
            member(lines(5000, 3000)),
          ]),
        },
      ],
      [
        'a bad JSON line in the second member (file:line)',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            member(`${lines(3000, 20)}{"id":3020,"name":}\n${lines(3021, 20)}`),
            member(lines(5000, 3000)),
          ]),
        },
      ],
      [
        'a null key in a later member (row and file named)',
        {
          '1.json.gz': Buffer.concat([member(lines(0, 3000)), member(lines(3000, 3000))]),
          '2.json.gz': Buffer.concat([member(lines(6000, 3000)), member(`${lines(9000, 7)}{"id":null,"name":"x"}\n`)]),
        },
      ],
      [
        'an invalid datetime and a line spanning two members',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            member(lines(3000, 10).slice(0, -40)),
            member(`${lines(3000, 10).slice(-40)}${lines(3010, 10)}`),
            member(lines(4000, 3).replace('2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+0x:00')),
          ]),
        },
      ],
      [
        'a file cut inside a member',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            member(lines(3000, 3000)),
            member(lines(6000, 3000)),
          ]).subarray(0, -20),
        },
      ],
      [
        'invalid UTF-8 and a NUL escape',
        {
          '1.json.gz': Buffer.concat([
            member(lines(0, 3000)),
            Buffer.concat([member(lines(3000, 5)), member('{"id":3005,"name":"\\u0000"}\n')]),
            member(
              Buffer.concat([
                Buffer.from(lines(6000, 5)),
                Buffer.from('{"id":6100,"name":"'),
                Buffer.from([0xff, 0xfe]),
                Buffer.from('"}\n'),
              ]),
            ),
          ]),
        },
      ],
    ]
    it.each(cases)('%s', async (name, files) => {
      const ds = tempDir()
      const up = `raw${cases.findIndex((c) => c[0] === name)}`
      try {
        rawDatastore(ds.dir, up, 'rows', files)
        const both = await loadBoth(ds.dir, up)
        sameTasks(both)
        if (both.on[0]!.status === 'OK') await sameTarget(up, 'rows')
      } finally {
        ds.remove()
      }
    })
  })
})
