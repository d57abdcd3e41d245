import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const TWO = ['-op', `${FIXTURE_OPS}:TwoTables`]
const UPLOAD = ['-op', `${FIXTURE_OPS}:FileUploader`]

interface Results {
  status: string
  warnings: { code: string; message: string }[]
}

const resultsOf = (home: string): Results =>
  JSON.parse(readFileSync(path.join(home, '$results', 'anchovy_run_results.json'), 'utf8')) as Results

/** The JSON log lines (stderr) with a warning code. */
const warnLines = (stderr: string): { level: number; warning_code: string; msg: string }[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; warning_code: string; msg: string })
    .filter((l) => l.warning_code)

/** Data files committed under an anchovy's home. */
const dataFiles = (home: string): string[] =>
  existsSync(path.join(home, 'data'))
    ? readdirSync(path.join(home, 'data'), { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.gz'))
    : []

describe('selection warnings and --strict', () => {
  it('an -e name matching no table is a warning in the log and the results; the run goes on', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'w', ...TWO, '-e', 'sales', '-e', 'slaes'])
    expect(r.code, r.stderr).toBe(0)
    const home = path.join(ds, 'dev', 'w')
    const warning = { code: 'ANCH_WARN_NO_MATCH', message: '-e slaes matches no table (known: contacts, sales)' }
    expect(resultsOf(home).warnings).toEqual([warning])
    expect(JSON.parse(r.stdout).warnings).toEqual([warning])
    expect(warnLines(r.stderr)).toEqual([
      expect.objectContaining({ level: 40, warning_code: warning.code, msg: warning.message }),
    ])
    expect(resultsOf(home).status).toBe('OK')
  }, 60_000)

  it('--strict makes an unmatched -e a configuration error: exit 2, no table runs', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'w', ...TWO, '-e', 'slaes', '--strict'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toContain('--strict: -e slaes matches no table')
    expect(dataFiles(path.join(ds, 'dev', 'w'))).toEqual([])
  }, 60_000)

  it('ACHVY_STRICT=true does the same for a -d glob that matches nothing', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'w', ...TWO, '-d', 'sale?x*'], {
      env: { ACHVY_STRICT: 'true' },
    })
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toContain('-d sale?x* matches no table')
    expect(dataFiles(path.join(ds, 'dev', 'w'))).toEqual([])
  }, 60_000)

  it('an -U anchovy that never committed is a warning; with --strict exit 2 before anything runs', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'up', ...UPLOAD, '-U', 'ghost'], {
      env: { OUT_FILE: out },
    })
    expect(r.code, r.stderr).toBe(0)
    expect(resultsOf(path.join(ds, 'dev', 'up')).warnings).toEqual([
      {
        code: 'ANCH_WARN_UPSTREAM_EMPTY',
        message: expect.stringContaining('upstream anchovy dev/ghost (-U ghost) has never committed'),
      },
    ])

    const strict = await runCli(
      ['start', '--datastore', ds, '-u', 'dev', '-i', 'up2', ...UPLOAD, '-U', 'ghost', '--strict'],
      { env: { OUT_FILE: out } },
    )
    expect(strict.code, strict.stderr).toBe(2)
    expect(strict.stderr).toContain('ANCH_ERR_CONFIG')
    expect(existsSync(path.join(ds, 'dev', 'up2', '$results'))).toBe(false)

    // Once the upstream has committed, the same strict run is fine.
    expect((await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'ghost', ...TWO])).code).toBe(0)
    const ok = await runCli(
      ['start', '--datastore', ds, '-u', 'dev', '-i', 'up2', ...UPLOAD, '-U', 'ghost', '--strict'],
      { env: { OUT_FILE: out } },
    )
    expect(ok.code, ok.stderr).toBe(0)
    expect(resultsOf(path.join(ds, 'dev', 'up2')).warnings).toEqual([])
  }, 60_000)
})

describe('--id and --prod', () => {
  it('without --id the run warns that the id is the host name', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', ...TWO])
    expect(r.code, r.stderr).toBe(0)
    const id = readdirSync(path.join(ds, 'dev'))[0]!
    expect(
      hostname().startsWith(id.replace(/_/g, '')) ||
        hostname()
          .replace(/[^A-Za-z0-9_.-]/g, '_')
          .startsWith(id),
    ).toBe(true)
    const [w] = resultsOf(path.join(ds, 'dev', id)).warnings
    expect(w).toEqual({
      code: 'ANCH_WARN_ID_DEFAULT',
      message: expect.stringContaining(`defaults to the host name "${id}"`),
    })
    expect(warnLines(r.stderr).map((l) => l.warning_code)).toEqual(['ANCH_WARN_ID_DEFAULT'])
  }, 60_000)

  it('--prod (or ACHVY_PROD) requires --id: exit 2 naming the flag, nothing written', async () => {
    const ds = tempDir()
    for (const [args, env] of [
      [['--prod'], {}],
      [[], { ACHVY_PROD: 'true' }],
    ] as const) {
      const r = await runCli(['start', '--datastore', ds, ...TWO, ...args], { env })
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain('--prod requires --id')
      expect(r.stderr).toContain('ANCH_ERR_CONFIG')
    }
    expect(readdirSync(ds)).toEqual([])
  }, 60_000)

  it('--prod implies --strict', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '--prod', '-i', 'p', ...TWO, '-e', 'slaes'])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr).toContain('--strict: -e slaes matches no table')
    const ok = await runCli(['start', '--datastore', ds, '--prod', '-i', 'p', ...TWO, '-e', 'sales'])
    expect(ok.code, ok.stderr).toBe(0)
    expect(existsSync(path.join(ds, 'prod', 'p', '$results'))).toBe(true)
  }, 60_000)
})
