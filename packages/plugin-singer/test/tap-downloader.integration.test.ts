import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseLossless } from '../src/messages.js'
import { tableName } from '../src/tap-downloader.js'
import {
  FIXTURES,
  PG_URL,
  canonical,
  cleanup,
  committedRows,
  expectedRecords,
  runCli,
  tableTask,
  tapEnv,
  tempDir,
} from './helpers/cli.js'

const VALID = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.singer') && !['invalid_schema.singer', 'record_before_schema.singer'].includes(f))
  .sort()

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

/** The JSON Schema type of each property of a stream's last SCHEMA in a fixture (for comparing values by type). */
function schemaOf(file: string, stream: string): Record<string, unknown> {
  let props: Record<string, unknown> = {}
  for (const l of readFileSync(nodePath.join(FIXTURES, file), 'utf8').split('\n')) {
    if (!l.trim()) continue
    const m = JSON.parse(l) as { type: string; stream: string; schema: { properties: Record<string, unknown> } }
    if (m.type === 'SCHEMA' && m.stream === stream) props = { ...props, ...m.schema.properties }
  }
  return props
}

/** A value as PostgreSQL's row_to_json and the fixture would both say it, by the property's schema. */
function comparable(v: unknown, schema: unknown): unknown {
  if (v === null || v === undefined) return null
  const s = JSON.stringify(schema)
  if (s.includes('"date-time"') && typeof v === 'string')
    return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`).getTime()
  if (typeof v === 'number' || typeof v === 'bigint') return String(v)
  if (typeof v === 'object') return canonical(v)
  return v
}

describe('singer.TapDownloader over recorded Singer streams', () => {
  it.concurrent.each(VALID)(
    '%s: the datastore, and PostgreSQL after sql.Uploader, hold exactly its records',
    async (file) => {
      const dir = tempDir('tap')
      const ds = nodePath.join(dir, 'ds')
      const id = `t${randomBytes(3).toString('hex')}`
      const env = tapEnv(dir, ds, { file: nodePath.join(FIXTURES, file) })
      const run = await runCli(['start', '-op', 'singer.TapDownloader', '--id', id], env, dir)
      expect(run.code, run.stdout + run.stderr).toBe(0)
      const expected = expectedRecords(file)
      for (const [stream, records] of expected) {
        const rows = await committedRows(ds, id, tableName(stream))
        expect(rows.map(canonical), `${file} ${stream}`).toEqual(records.map(canonical))
      }
      const up = await runCli(
        ['start', '-op', 'sql.Uploader', '--id', `${id}_pg`, '-U', id],
        { ACHVY_DATASTORE: ds, ACHVY_CNXN__DB__URL: `postgres://postgres@127.0.0.1:5432/${db}` },
        dir,
      )
      expect(up.code, up.stdout + up.stderr).toBe(0)
      for (const [stream, records] of expected) {
        const res = await client.query(
          `SELECT row_to_json(t)::text AS j FROM "${id}__tester"."${tableName(stream)}" t ORDER BY "_seq"`,
        )
        const rows = res.rows.map((r: { j: string }) => parseLossless(r.j) as Record<string, unknown>)
        const props = schemaOf(file, stream)
        const cols = Object.keys(props)
        const pick = (r: Record<string, unknown>): unknown[] => cols.map((c) => comparable(r[c], props[c]))
        expect(rows.map(pick), `${file} ${stream} in PostgreSQL`).toEqual(records.map(pick))
      }
    },
  )
})

describe('singer.TapDownloader on bad input fails cleanly, naming the stream and line', () => {
  it.each([
    [
      'invalid_schema.singer',
      'tap stdout line 1 (stream "test_invalid_schema"): SCHEMA refused: the schema declares no properties',
    ],
    [
      'record_before_schema.singer',
      'tap stdout line 1 (stream "test_record_before_schema"): a RECORD arrives before its stream\'s SCHEMA',
    ],
  ])('%s fails with nothing committed', async (file, message) => {
    const dir = tempDir('bad')
    const ds = nodePath.join(dir, 'ds')
    const run = await runCli(
      ['start', '-op', 'singer.TapDownloader', '--id', 'bad'],
      tapEnv(dir, ds, { file: nodePath.join(FIXTURES, file) }),
      dir,
    )
    expect(run.code).toBe(1)
    const task = tableTask(run.results, '_singer_tap')
    expect(task).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SINGER_PROTOCOL' })
    expect(String(task!.err_msg)).toContain(message)
    expect(readdirSync(nodePath.join(ds, 'tester/bad')).filter((f) => f === '$commits')).toEqual([])
  })

  it('malformed JSON, a missing required property and a non-zero exit keep every STATE committed before them and nothing after', async () => {
    const dir = tempDir('mid')
    const src = nodePath.join(dir, 'stream.singer')
    const schema = JSON.stringify({
      type: 'SCHEMA',
      stream: 'users',
      key_properties: ['id'],
      schema: {
        type: 'object',
        required: ['id', 'name'],
        properties: { id: { type: 'integer' }, name: { type: 'string' } },
      },
    })
    const rec = (i: number, extra = ''): string => `{"type":"RECORD","stream":"users","record":{"id":${i}${extra}}}`
    const state = (i: number): string => JSON.stringify({ type: 'STATE', value: { users: i } })
    const cases: [string, string[], Record<string, unknown>, string, string][] = [
      [
        'garbage',
        [
          schema,
          rec(1, ',"name":"a"'),
          state(1),
          rec(2, ',"name":"b"'),
          '{"type":"RECORD","stream":"users","record":{"id":3,',
        ],
        {},
        'ANCH_ERR_SINGER_PROTOCOL',
        'tap stdout line 5 (stream "users"): not a JSON message',
      ],
      [
        'required',
        [schema, rec(1, ',"name":"a"'), state(1), rec(2, ',"name":"b"'), rec(3)],
        {},
        'ANCH_ERR_SINGER_PROTOCOL',
        'tap stdout line 5 (stream "users"): the required property "name" is missing',
      ],
      [
        'type',
        [
          schema,
          rec(1, ',"name":"a"'),
          state(1),
          rec(2, ',"name":"b"'),
          '{"type":"RECORD","stream":"users","record":{"id":"x","name":"c"}}',
        ],
        {},
        'ANCH_ERR_SINGER_PROTOCOL',
        'tap stdout line 5 (stream "users"): property "id" holds the string "x"',
      ],
      [
        'exit',
        [schema, rec(1, ',"name":"a"'), state(1), rec(2, ',"name":"b"')],
        { exit_code: 7 },
        'ANCH_ERR_SINGER_PROCESS',
        'tap exited with code 7 after tap stdout line 4 (stream "users")',
      ],
    ]
    for (const [name, lines, knobs, code, message] of cases) {
      const file = `${src}.${name}`
      await import('node:fs').then((fs) => fs.writeFileSync(file, lines.join('\n') + '\n'))
      const ds = nodePath.join(dir, `ds-${name}`)
      const run = await runCli(
        ['start', '-op', 'singer.TapDownloader', '--id', 'mid'],
        tapEnv(dir, ds, { file, ...knobs }),
        dir,
      )
      expect(run.code, name).toBe(1)
      const task = tableTask(run.results, '_singer_tap')
      expect(task, name).toMatchObject({ status: 'ERR', err_code: code })
      expect(String(task!.err_msg), name).toContain(message)
      // the rows and state before the STATE are committed; nothing after it
      expect(
        (await committedRows(ds, 'mid', 'users')).map((r) => r.id),
        name,
      ).toEqual([1])
      expect(JSON.parse(readFileSync(nodePath.join(ds, 'tester/mid/$checkpoints/singer.state'), 'utf8')), name).toEqual(
        { users: 1 },
      )
    }
  })

  it('a missing executable fails the table naming the command', async () => {
    const dir = tempDir('noexe')
    const run = await runCli(
      ['start', '-op', 'singer.TapDownloader', '--id', 'x'],
      { ACHVY_DATASTORE: nodePath.join(dir, 'ds'), ACHVY_CNXN__TAP__COMMAND: 'tap-that-does-not-exist --flag' },
      dir,
    )
    expect(run.code).toBe(1)
    expect(tableTask(run.results, '_singer_tap')).toMatchObject({
      status: 'ERR',
      err_code: 'ANCH_ERR_SINGER_PROCESS',
      err_msg: expect.stringContaining('command "tap-that-does-not-exist --flag" was not found'),
    })
  })

  it('a tap that hangs past -t is killed; the table fails naming its last line and stream, and what came before its last STATE stays committed', async () => {
    const dir = tempDir('hang')
    const ds = nodePath.join(dir, 'ds')
    const env = tapEnv(dir, ds, { file: nodePath.join(FIXTURES, 'multiple_state_messages.singer'), hang_after_line: 8 })
    const started = Date.now()
    const run = await runCli(
      ['start', '-op', 'singer.TapDownloader', '--id', 'hang', '-t', '3', '--abort-grace', '1'],
      env,
      dir,
    )
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(run.code).toBe(124)
    const task = tableTask(run.results, '_singer_tap')
    expect(task).toMatchObject({ status: 'ERR' })
    expect(String(task!.err_msg)).toMatch(/tap stdout line 8 \(stream "test_multiple_state_messages_a"\)/)
    // lines 1-8 hold two STATEs: the second (line 7) covers a:1,2 and b:1
    expect(JSON.parse(readFileSync(nodePath.join(ds, 'tester/hang/$checkpoints/singer.state'), 'utf8'))).toEqual({
      test_multiple_state_messages_a: 2,
      test_multiple_state_messages_b: 1,
    })
    expect((await committedRows(ds, 'hang', 'test_multiple_state_messages_a')).map((r) => r.id)).toEqual([1, 2])
  })

  it('secrets of the tap config never reach the log, the task logs or the results', async () => {
    const dir = tempDir('secret')
    const ds = nodePath.join(dir, 'ds')
    const secret = `tok-${randomBytes(8).toString('hex')}`
    const run = await runCli(
      ['start', '-op', 'singer.TapDownloader', '--id', 's'],
      tapEnv(dir, ds, { file: nodePath.join(FIXTURES, 'array_data.singer'), api_token: secret }),
      dir,
    )
    expect(run.code).toBe(0)
    expect(run.stderr).toContain('connecting with api_token=***')
    expect(run.stdout + run.stderr).not.toContain(secret)
    const { spawnSync } = await import('node:child_process')
    const grep = spawnSync('grep', ['-rl', secret, ds], { encoding: 'utf8' })
    expect(grep.status).toBe(1) // no file of the datastore holds it
    expect(grep.stdout).toBe('')
  }, 30_000)
})

describe('discovery and stream selection', () => {
  it('--discover stores the base catalog as a checkpoint; -e then runs only the selected streams, which the tap gets selected in its catalog', async () => {
    const dir = tempDir('disc')
    const ds = nodePath.join(dir, 'ds')
    const env = tapEnv(dir, ds, { file: nodePath.join(FIXTURES, 'user_location_data.singer'), args_out: true })
    const disc = await runCli(['start', '-op', 'singer.TapDownloader', '--id', 'd', '--discover'], env, dir)
    expect(disc.code, disc.stdout + disc.stderr).toBe(0)
    const catalog = JSON.parse(readFileSync(nodePath.join(ds, 'tester/d/$checkpoints/singer.catalog'), 'utf8')) as {
      streams: { stream: string }[]
    }
    expect(catalog.streams.map((s) => s.stream)).toEqual(['test_users', 'test_locations', 'test_user_in_location'])
    const run = await runCli(['start', '-op', 'singer.TapDownloader', '--id', 'd', '-e', 'test_users'], env, dir)
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.stderr).toMatch(/args: .*--catalog/)
    expect((await committedRows(ds, 'd', 'test_users')).map((r) => r.id)).toEqual([1, 2, 3, 4, 5])
    expect(await committedRows(ds, 'd', 'test_locations')).toEqual([])
    expect(tableTask(run.results, 'test_users')).toMatchObject({ status: 'OK', data: { rows: 5 } })
    expect(tableTask(run.results, 'test_locations')).toBeUndefined()
    // the base catalog is kept as the tap described it (nothing selected)
    expect(readFileSync(nodePath.join(ds, 'tester/d/$checkpoints/singer.catalog'), 'utf8')).toContain(
      '"selected":false',
    )
    // state history: every STATE committed is listed
    const history = await runCli(
      ['checkpoint', 'history', 'singer.state', '--id', 'd', '--json'],
      { ACHVY_DATASTORE: ds },
      dir,
    )
    expect((JSON.parse(history.stdout) as { value: unknown }[]).map((c) => c.value)).toEqual([
      { test_users: 5, test_locations: 3, test_user_in_location: 3 },
    ])
  })

  it('a SCHEMA change mid-stream adds columns to the table record and rows keep every value', async () => {
    const dir = tempDir('evolve')
    const ds = nodePath.join(dir, 'ds')
    const env = tapEnv(dir, ds, { file: nodePath.join(FIXTURES, 'schema_updates.singer') })
    // second run: the stream is a planned table, fed through its own chain
    for (let i = 0; i < 2; i++)
      expect((await runCli(['start', '-op', 'singer.TapDownloader', '--id', 'ev'], env, dir)).code).toBe(0)
    const record = JSON.parse(
      readFileSync(nodePath.join(ds, 'tester/ev/$tables/test_schema_updates.json'), 'utf8'),
    ) as { cols: string; unique_by: string }
    expect(record.cols).toBe('id int, a1 float, a2 str, a3 bool, a4 object, a5 object, a6 int')
    expect(record.unique_by).toBe('id')
  })

  it("BATCH messages: gzip JSON Lines files named by file:// URIs are read as the stream's records", async () => {
    const dir = tempDir('batch')
    const ds = nodePath.join(dir, 'ds')
    const { gzipSync } = await import('node:zlib')
    const { writeFileSync } = await import('node:fs')
    const { pathToFileURL } = await import('node:url')
    const part = nodePath.join(dir, 'part-1.jsonl.gz')
    writeFileSync(part, gzipSync('{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n'))
    const file = nodePath.join(dir, 'batch.singer')
    writeFileSync(
      file,
      [
        JSON.stringify({
          type: 'SCHEMA',
          stream: 'users',
          key_properties: ['id'],
          schema: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } } },
        }),
        JSON.stringify({
          type: 'BATCH',
          stream: 'users',
          encoding: { format: 'jsonl', compression: 'gzip' },
          manifest: [pathToFileURL(part).href],
        }),
        '{"type":"RECORD","stream":"users","record":{"id":3,"name":"c"}}',
        JSON.stringify({ type: 'STATE', value: { users: 3 } }),
      ].join('\n') + '\n',
    )
    const run = await runCli(['start', '-op', 'singer.TapDownloader', '--id', 'b'], tapEnv(dir, ds, { file }), dir)
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect((await committedRows(ds, 'b', 'users')).map((r) => [r.id, r.name])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
    ])
    writeFileSync(
      file,
      [
        JSON.stringify({
          type: 'SCHEMA',
          stream: 'users',
          schema: { type: 'object', properties: { id: { type: 'integer' } } },
        }),
        JSON.stringify({
          type: 'BATCH',
          stream: 'users',
          encoding: { format: 'parquet' },
          manifest: ['s3://bucket/x.parquet'],
        }),
      ].join('\n') + '\n',
    )
    const bad = await runCli(['start', '-op', 'singer.TapDownloader', '--id', 'b2'], tapEnv(dir, ds, { file }), dir)
    expect(bad.code).toBe(1)
    expect(tableTask(bad.results, '_singer_tap')).toMatchObject({
      err_code: 'ANCH_ERR_SINGER_PROTOCOL',
      err_msg: expect.stringContaining('tap stdout line 2 (stream "users"): a BATCH in format "parquet"'),
    })
  })
})
