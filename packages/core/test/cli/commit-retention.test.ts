import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, commitRecords, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const PAGED = ['-op', `${path.join(REPO, 'test/fixtures/dist/progress.js')}:PagedSource`]
const UPLOAD = ['-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:FileUploader`]
const start = (ds: string, id: string): string[] => ['start', '--datastore', ds, '-u', 'dev', '-i', id]
const ids = (out: string): number[] =>
  existsSync(out)
    ? readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: number }).id)
        .sort((a, b) => a - b)
    : []
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

describe('commit retention (ACHVY_COMMIT_RETENTION_DAYS)', () => {
  it('removes only commit records every registered reader has read; readers go on exactly once; a new reader starts at what was kept', async () => {
    const ds = tempDir()
    const commits = path.join(ds, 'dev/src/$commits')
    const out = path.join(ds, 'dst.jsonl')
    const page = { PAGE: '20', ACHVY_BATCH_MAX_ROWS: '20' }
    expect((await runCli([...start(ds, 'src'), ...PAGED], { env: { ...page, TOTAL: '100' } })).code).toBe(0)
    const up = await runCli([...start(ds, 'dst'), '-U', 'src', ...UPLOAD], { env: { OUT_FILE: out } })
    expect(up.code, up.stderr).toBe(0)
    const read = (
      JSON.parse(readFileSync(path.join(ds, 'dev/src/$readers/dst/events.json'), 'utf8')) as { seq: number }
    ).seq
    const before = commitRecords(commits).length
    expect(read).toBe(before)
    await new Promise((r) => setTimeout(r, 200))
    // A second run with retention: the records dst has read go (but the newest one stays), the new ones stay.
    const again = await runCli([...start(ds, 'src'), ...PAGED], {
      env: { ...page, TOTAL: '140', ACHVY_COMMIT_RETENTION_DAYS: '0.000001' },
    })
    expect(again.code, again.stderr).toBe(0)
    expect(readFileSync(path.join(commits, 'BASE'), 'utf8')).toBe(String(read + 1))
    const kept = commitRecords(commits).map((f) => Number(f.slice(0, 12)))
    expect(kept[0]).toBe(read + 1)
    expect(kept.length).toBeGreaterThan(0)
    const up2 = await runCli([...start(ds, 'dst'), '-U', 'src', ...UPLOAD], { env: { OUT_FILE: out } })
    expect(up2.code, up2.stderr).toBe(0)
    expect(ids(out)).toEqual(range(0, 140))
    // An uploader that never read src starts with the commits retention kept.
    const late = path.join(ds, 'late.jsonl')
    const up3 = await runCli([...start(ds, 'late'), '-U', 'src', ...UPLOAD], { env: { OUT_FILE: late } })
    expect(up3.code, up3.stderr).toBe(0)
    expect(ids(late)).toEqual(range(100, 140))
    // A reader whose position is older than what was kept fails clearly instead of skipping commits.
    const reset = await runCli([
      'checkpoint',
      'set',
      '$upstream.src.events',
      '{"seq": 1}',
      '--datastore',
      ds,
      '-u',
      'dev',
      '-i',
      'dst',
    ])
    expect(reset.code, reset.stderr).toBe(0)
    const behind = await runCli([...start(ds, 'dst'), '-U', 'src', ...UPLOAD], { env: { OUT_FILE: out } })
    expect(behind.code).toBe(1)
    expect(behind.stdout).toContain(`starts at commit ${read + 1} (older ones were removed by commit_retention_days)`)
  }, 120_000)

  it('keeps every commit record while a reader has not read them, or when a reader file is damaged', async () => {
    const ds = tempDir()
    const commits = path.join(ds, 'dev/src/$commits')
    const page = { PAGE: '20', ACHVY_BATCH_MAX_ROWS: '20' }
    expect((await runCli([...start(ds, 'src'), ...PAGED], { env: { ...page, TOTAL: '40' } })).code).toBe(0)
    expect(
      (await runCli([...start(ds, 'dst'), '-U', 'src', ...UPLOAD], { env: { OUT_FILE: path.join(ds, 'o') } })).code,
    ).toBe(0)
    writeFileSync(path.join(ds, 'dev/src/$readers/dst/events.json'), '{"seq": "lots"}')
    const n = commitRecords(commits).length
    await new Promise((r) => setTimeout(r, 200))
    const r = await runCli([...start(ds, 'src'), ...PAGED], {
      env: { ...page, TOTAL: '80', ACHVY_COMMIT_RETENTION_DAYS: '0.000001' },
    })
    expect(r.code).toBe(0)
    expect(r.stderr).toContain('a reader file is not {\\"seq\\": <commit>}')
    expect(existsSync(path.join(commits, 'BASE'))).toBe(false)
    expect(commitRecords(commits).length).toBeGreaterThan(n)
    expect(commitRecords(commits)[0]).toBe('000000000001.json')
  }, 120_000)
})
