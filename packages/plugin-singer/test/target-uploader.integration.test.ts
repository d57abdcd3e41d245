import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tableName } from '../src/tap-downloader.js'
import {
  FIXTURES,
  TARGET,
  canonical,
  checkpoint,
  cleanup,
  expectedRecords,
  runCli,
  tableTask,
  tapEnv,
  tempDir,
} from './helpers/cli.js'

afterAll(cleanup)

interface Received {
  type: string
  stream?: string
  record?: Record<string, unknown>
  value?: { bookmarks: Record<string, { seq: number }> }
  schema?: { properties: Record<string, unknown> }
  key_properties?: string[]
}

/** What the test target wrote: every message it received, in order. */
function received(file: string): Received[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Received)
    : []
}

function targetEnv(
  dir: string,
  ds: string,
  config: Record<string, unknown>,
  extra: Record<string, string> = {},
): Record<string, string> {
  const file = nodePath.join(dir, `target-${randomBytes(3).toString('hex')}.json`)
  writeFileSync(file, JSON.stringify(config))
  return { ACHVY_DATASTORE: ds, ACHVY_CNXN__TARGET__COMMAND: TARGET, ACHVY_CNXN__TARGET__CONFIG: file, ...extra }
}

/** Downloads fixture files, each into its own anchovy (`<prefix><n>`, one tap each); returns their ids. */
async function download(dir: string, ds: string, prefix: string, files: string[]): Promise<string[]> {
  const ids: string[] = []
  for (const [n, f] of files.entries()) {
    const id = files.length === 1 ? prefix : `${prefix}${n}`
    const run = await runCli(
      ['start', '-op', 'singer.TapDownloader', '--id', id],
      tapEnv(dir, ds, { file: nodePath.join(FIXTURES, f) }),
      dir,
    )
    expect(run.code, run.stdout + run.stderr).toBe(0)
    ids.push(id)
  }
  return ids
}

describe('singer.TargetUploader', () => {
  it('round trip tap -> datastore -> target reproduces the records; the final state the target echoed equals the uploader position', async () => {
    const dir = tempDir('round')
    const ds = nodePath.join(dir, 'ds')
    await download(dir, ds, 'src', ['tap_countries.singer'])
    const out = nodePath.join(dir, 'out.jsonl')
    const password = `pw-${randomBytes(6).toString('hex')}`
    const env = targetEnv(dir, ds, { out, password })
    const run = await runCli(['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src'], env, dir)
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.stderr).toContain('logging in with password=***')
    expect(run.stdout + run.stderr).not.toContain(password)
    const messages = received(out)
    for (const [stream, records] of expectedRecords('tap_countries.singer')) {
      const got = messages.filter((m) => m.type === 'RECORD' && m.stream === stream).map((m) => m.record)
      expect(got.map(canonical), stream).toEqual(records.map(canonical))
      const schema = messages.find((m) => m.type === 'SCHEMA' && m.stream === stream)!
      expect(schema.key_properties).toEqual(['code'])
    }
    expect(messages.some((m) => m.type === 'RECORD' && m.stream === '_singer_tap')).toBe(false)
    const states = messages.filter((m) => m.type === 'STATE')
    const final = states.at(-1)!.value!.bookmarks
    for (const stream of ['continents', 'countries']) {
      expect(checkpoint(ds, 'tgt', `$upstream.src.${stream}`)).toEqual(final[`src.${stream}`])
    }
    // nothing new upstream: nothing sent again
    const again = await runCli(['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src'], env, dir)
    expect(again.code).toBe(0)
    expect(received(out).length).toBe(messages.length)
    // a new upstream's commits arrive once; the old one's are not sent again
    await download(dir, ds, 'more', ['user_location_data.singer'])
    expect(
      (await runCli(['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src', '-U', 'more'], env, dir))
        .code,
    ).toBe(0)
    const users = received(out).filter((m) => m.type === 'RECORD' && m.stream === 'test_users')
    expect(users.map((m) => m.record!.id)).toEqual([1, 2, 3, 4, 5])
    expect(received(out).filter((m) => m.type === 'RECORD' && m.stream === 'continents')).toHaveLength(7)
  })

  it('values keep their types through the round trip: datetimes, big integers, nested objects and arrays, unicode', async () => {
    const dir = tempDir('types')
    const ds = nodePath.join(dir, 'ds')
    const files = [
      'commits.singer',
      'large_int.singer',
      'encoded_strings.singer',
      'array_data.singer',
      'schema_updates.singer',
    ]
    const ids = await download(dir, ds, 'src', files)
    const out = nodePath.join(dir, 'out.jsonl')
    const run = await runCli(
      ['start', '-op', 'singer.TargetUploader', '--id', 'tgt', ...ids.flatMap((id) => ['-U', id])],
      targetEnv(dir, ds, { out }),
      dir,
    )
    expect(run.code, run.stdout + run.stderr).toBe(0)
    const text = readFileSync(out, 'utf8')
    expect(text).toContain('"id":99999999999999999') // exact, as a JSON integer
    const messages = received(out)
    for (const f of files) {
      for (const [stream, records] of expectedRecords(f)) {
        const got = messages.filter((m) => m.type === 'RECORD' && m.stream === stream).map((m) => m.record!)
        const norm = (r: Record<string, unknown>): string =>
          canonical(
            Object.fromEntries(
              Object.entries(r).map(([k, v]) => [
                k,
                typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)
                  ? new Date(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`).getTime()
                  : v,
              ]),
            ),
          )
        if (stream === 'test_large_int') expect(got.map((r) => r.name)).toEqual(records.map((r) => r.name))
        else expect(got.map(norm), `${f} ${stream}`).toEqual(records.map(norm))
      }
    }
    const commitsSchema = messages.find((m) => m.type === 'SCHEMA' && m.stream === 'commits')!
    expect(commitsSchema.schema!.properties.authored_date).toEqual({ type: ['null', 'string'], format: 'date-time' })
  })

  it('a target that dies mid-way leaves each position at what it echoed; the next run sends the rest', async () => {
    const dir = tempDir('dies')
    const ds = nodePath.join(dir, 'ds')
    // one upstream commit per STATE: stream b's rows are in four of them
    await download(dir, ds, 'src', ['multiple_state_messages.singer'])
    const out = nodePath.join(dir, 'out.jsonl')
    const failing = await runCli(
      ['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src', '-e', 'test_multiple_state_messages_b'],
      targetEnv(dir, ds, { out, fail_after_records: 3 }),
      dir,
    )
    expect(failing.code).toBe(1)
    expect(String(failing.stdout)).toContain('ANCH_ERR_SINGER_PROCESS')
    const echoed = received(out)
      .filter((m) => m.type === 'STATE')
      .at(-1)?.value?.bookmarks['src.test_multiple_state_messages_b']
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_multiple_state_messages_b')).toEqual(echoed)
    const ok = await runCli(
      ['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src', '-e', 'test_multiple_state_messages_b'],
      targetEnv(dir, ds, { out }),
      dir,
    )
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    const ids = received(out)
      .filter((m) => m.type === 'RECORD')
      .map((m) => m.record!.id)
    // every record arrived; those after the last echoed state may arrive twice (at least once, as Singer targets are)
    expect(new Set(ids)).toEqual(new Set([1, 2, 3, 4, 5, 6]))
    const finalState = received(out)
      .filter((m) => m.type === 'STATE')
      .at(-1)!.value!.bookmarks['src.test_multiple_state_messages_b']
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_multiple_state_messages_b')).toEqual(finalState)
    expect(finalState!.seq).toBeGreaterThan(echoed?.seq ?? 0)
  })

  it('FLUSH_ON=exit: a target that never echoes moves the position only when it exits 0', async () => {
    const dir = tempDir('exit')
    const ds = nodePath.join(dir, 'ds')
    await download(dir, ds, 'src', ['user_location_data.singer'])
    const out = nodePath.join(dir, 'out.jsonl')
    const args = ['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src', '-e', 'test_users']
    const silent = await runCli(args, targetEnv(dir, ds, { out, echo: 'never' }), dir)
    expect(silent.code).toBe(0)
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_users')).toBeUndefined() // never confirmed: not moved
    const onExit = await runCli(
      args,
      targetEnv(dir, ds, { out, echo: 'never' }, { ACHVY_CNXN__TARGET__FLUSH_ON: 'exit' }),
      dir,
    )
    expect(onExit.code).toBe(0)
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_users')).toEqual({ seq: 1 })
    expect(tableTask(onExit.results, 'src.test_users')).toMatchObject({ status: 'OK', records_sent: 5 })
  })

  it('a missing target executable fails naming the command, and moves nothing', async () => {
    const dir = tempDir('notarget')
    const ds = nodePath.join(dir, 'ds')
    await download(dir, ds, 'src', ['array_data.singer'])
    const run = await runCli(
      ['start', '-op', 'singer.TargetUploader', '--id', 'tgt', '-U', 'src'],
      { ACHVY_DATASTORE: ds, ACHVY_CNXN__TARGET__COMMAND: 'target-nowhere' },
      dir,
    )
    expect(run.code).toBe(1)
    expect(tableTask(run.results, `src.${tableName('test_carts')}`)).toMatchObject({
      status: 'ERR',
      err_code: 'ANCH_ERR_SINGER_PROCESS',
      err_msg: expect.stringContaining('"target-nowhere" was not found'),
    })
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_carts')).toBeUndefined()
  })

  it('a target that stops reading and hangs is killed at -t; positions stay at what it echoed', async () => {
    const dir = tempDir('hang')
    const ds = nodePath.join(dir, 'ds')
    await download(dir, ds, 'src', ['multiple_state_messages.singer'])
    const out = nodePath.join(dir, 'out.jsonl')
    const started = Date.now()
    const run = await runCli(
      [
        'start',
        '-op',
        'singer.TargetUploader',
        '--id',
        'tgt',
        '-U',
        'src',
        '-e',
        'test_multiple_state_messages_b',
        '-t',
        '4',
        '--abort-grace',
        '1',
      ],
      targetEnv(dir, ds, { out, hang_after_records: 3 }),
      dir,
    )
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(run.code).toBe(124)
    const echoed = received(out)
      .filter((m) => m.type === 'STATE')
      .at(-1)?.value?.bookmarks['src.test_multiple_state_messages_b']
    expect(echoed?.seq).toBeGreaterThan(0)
    expect(checkpoint(ds, 'tgt', '$upstream.src.test_multiple_state_messages_b')).toEqual(echoed)
  })
})
