import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs'
import * as path from 'node:path'
import { MAX_STATUS_FILE_BYTES } from '../../src/cli/commands/healthcheck.js'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

let ds = ''
let results = ''
let heartbeat = ''
let good = ''
const env = (): Record<string, string> => ({ ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' })
const healthcheck = (...args: string[]) => runCli(['healthcheck', '--id', 'dl', ...args], { env: env() })
const iso = (offsetMs: number): string => new Date(Date.now() + offsetMs).toISOString()
const withResults = (fields: Record<string, unknown>): string =>
  JSON.stringify({ ...(JSON.parse(good) as object), ...fields })

beforeAll(async () => {
  ds = tempDir()
  const r = await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env: env() })
  expect(r.code, r.stderr).toBe(0)
  results = path.join(ds, 'dev/dl/$results/anchovy_run_results.json')
  heartbeat = path.join(ds, 'dev/dl/$results/heartbeat.json')
  good = readFileSync(results, 'utf8')
})

describe('healthcheck: timestamps from the future', () => {
  it('reports a last run dated in the future (clock skew) as unhealthy instead of forever healthy', async () => {
    writeFileSync(results, withResults({ shutdown_at: iso(3_600_000) }))
    for (const args of [[], ['--max-age', '60']]) {
      const r = await healthcheck(...args)
      expect(r.code).toBe(1)
      const m =
        /^unhealthy: last run is dated \S+, (\d+)s in the future \(more than --max-skew 60s\): the clock of this host or of the anchovy's host is wrong\n$/.exec(
          r.stdout,
        )
      expect(m, r.stdout).not.toBeNull()
      expect(Number(m![1])).toBeGreaterThan(3500)
    }
  })

  it('allows a small skew (default 60 s, --max-skew) and counts such a run as just finished', async () => {
    writeFileSync(results, withResults({ shutdown_at: iso(20_000) }))
    const ok = await healthcheck('--max-age', '5')
    expect(ok.code, ok.stdout).toBe(0)
    expect(ok.stdout).toBe('healthy: last run OK 0s ago\n')
    const strict = await healthcheck('--max-skew', '5')
    expect(strict.code).toBe(1)
    expect(strict.stdout).toMatch(/last run is dated \S+, (1\d|20)s in the future \(more than --max-skew 5s\)/)
    const bad = await healthcheck('--max-skew', 'soon')
    expect(bad.code).toBe(1)
    expect(bad.stdout).toMatch(/--max-skew must be a number of seconds/)
  })

  it('reports a service heartbeat dated in the future as unhealthy, even next to a good last run', async () => {
    writeFileSync(results, good)
    writeFileSync(
      heartbeat,
      JSON.stringify({ anchovy_id: 'dl', anchovy_user: 'dev', status: 'OK', at: iso(86_400_000 * 365) }),
    )
    try {
      const r = await healthcheck()
      expect(r.code).toBe(1)
      expect(r.stdout).toMatch(/^unhealthy: last service heartbeat is dated \S+, \d+s in the future/)
    } finally {
      rmSync(heartbeat)
    }
  })
})

describe('healthcheck: corrupt status files', () => {
  const now = (): string => iso(0)
  const cases: [string, () => string | Buffer, RegExp][] = [
    ['not JSON', () => '{"status": "OK", "shutdown_at": ', /not JSON \(/],
    ['an empty file', () => '', /not JSON \(/],
    ['a NUL-filled file', () => Buffer.alloc(4096), /not JSON \(/],
    ['a JSON array', () => '[]', /not a JSON object \(got an array\)/],
    ['JSON null', () => 'null', /not a JSON object \(got null\)/],
    ['a JSON string', () => '"OK"', /not a JSON object \(got string "OK"\)/],
    ['no status', () => JSON.stringify({ shutdown_at: now() }), /no "status" field/],
    [
      'a status inherited through __proto__',
      () => `{"__proto__": {"status": "OK"}, "shutdown_at": "${now()}"}`,
      /no "status" field/,
    ],
    [
      'a numeric status',
      () => JSON.stringify({ status: 1, shutdown_at: now() }),
      /"status" must be a string \(got number 1\)/,
    ],
    [
      'an object status',
      () => JSON.stringify({ status: { ok: true }, shutdown_at: now() }),
      /"status" must be a string \(got an object\)/,
    ],
    [
      'a status with terminal escapes',
      () => JSON.stringify({ status: 'OK\u001b[2J\u001b[H', shutdown_at: now() }),
      /"status" must be a word like OK or ERR \(got "OK\\u001b\[2J\\u001b\[H"\)/,
    ],
    ['no time', () => JSON.stringify({ status: 'OK' }), /no "shutdown_at" field/],
    [
      'a numeric time',
      () => JSON.stringify({ status: 'OK', shutdown_at: Date.now() }),
      /"shutdown_at" must be an ISO 8601 time string \(got number \d+\)/,
    ],
    [
      'a time that is not ISO 8601',
      () => JSON.stringify({ status: 'OK', shutdown_at: 'yesterday' }),
      /"shutdown_at" must be an ISO 8601 time like .* \(got "yesterday"\)/,
    ],
    [
      'an impossible date',
      () => JSON.stringify({ status: 'OK', shutdown_at: '2025-13-45T99:00:00Z' }),
      /"shutdown_at" must be an ISO 8601 time/,
    ],
    [
      'a huge but well-formed file',
      () => withResults({ pad: 'x'.repeat(MAX_STATUS_FILE_BYTES) }),
      new RegExp(`larger than ${MAX_STATUS_FILE_BYTES} bytes`),
    ],
  ]

  for (const [what, content, reason] of cases) {
    it(`names the results file and says it is corrupt for ${what}, not that the datastore is unreachable`, async () => {
      writeFileSync(results, content())
      const r = await healthcheck()
      expect(r.code).toBe(1)
      expect(r.stdout).toContain(`unhealthy: last run file ${results} is corrupt: `)
      expect(r.stdout).toMatch(reason)
      expect(r.stdout).not.toMatch(/not reachable/)
      expect(r.stdout).not.toContain('\u001b')
      expect(r.stdout.split('\n')).toHaveLength(2)
    })
  }

  it('reads no more than the limit of a huge sparse results file', async () => {
    const fd = openSync(results, 'w')
    ftruncateSync(fd, 4 * 1024 ** 3)
    closeSync(fd)
    const started = Date.now()
    const r = await healthcheck()
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(
      `unhealthy: last run file ${results} is corrupt: larger than ${MAX_STATUS_FILE_BYTES} bytes`,
    )
    expect(Date.now() - started).toBeLessThan(20_000)
  })

  it('checks the service heartbeat file the same way (missing fields, wrong types, not JSON)', async () => {
    writeFileSync(results, good)
    try {
      for (const [content, reason] of [
        ['{', /not JSON/],
        [JSON.stringify({ status: 'OK' }), /no "at" field/],
        [JSON.stringify({ status: 'OK', at: 17 }), /"at" must be an ISO 8601 time string \(got number 17\)/],
        [JSON.stringify({ status: ['OK'], at: iso(0) }), /"status" must be a string \(got an array\)/],
      ] as const) {
        writeFileSync(heartbeat, content)
        const r = await healthcheck()
        expect(r.code).toBe(1)
        expect(r.stdout).toContain(`unhealthy: last service heartbeat file ${heartbeat} is corrupt: `)
        expect(r.stdout).toMatch(reason)
      }
      writeFileSync(heartbeat, JSON.stringify({ status: 'OK', at: iso(0) }))
      const ok = await healthcheck()
      expect(ok.stdout).toMatch(/^healthy: last service heartbeat OK \d+s ago\n$/)
    } finally {
      rmSync(heartbeat, { force: true })
    }
  })

  it('still says "not reachable" when the datastore cannot be read', async () => {
    const file = path.join(tempDir(), 'not-a-folder')
    writeFileSync(file, 'x')
    const r = await runCli(['healthcheck', '--id', 'dl'], { env: { ACHVY_DATASTORE: file, ACHVY_USER: 'dev' } })
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^unhealthy: datastore .* is not reachable: .*ENOTDIR/)
  })
})
