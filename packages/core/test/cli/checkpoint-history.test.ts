import { afterAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

interface Change {
  seq: number
  committed_at: string
  batch_id: string | null
  session_id: string
  value?: unknown
  deleted?: true
}

describe('anchovy checkpoint history and restore', () => {
  it('lists every committed value of a key with its commit, and restores one as a new commit that a run continues from', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
    const start = ['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl']
    for (let i = 0; i < 3; i++) expect((await runCli(start, { env })).code).toBe(0)
    expect((await runCli(['checkpoint', 'delete', 'contacts.last', '--id', 'dl'], { env })).code).toBe(0)

    const json = await runCli(['checkpoint', 'history', 'sales.last', '--id', 'dl', '--json'], { env })
    expect(json.code).toBe(0)
    const changes = JSON.parse(json.stdout) as Change[]
    expect(changes.map((c) => [c.seq, c.value, c.batch_id])).toEqual([
      [1, 2, '000'],
      [2, 4, '000'],
      [3, 6, '000'],
    ])
    for (const c of changes) expect(Date.parse(c.committed_at)).toBeGreaterThan(Date.now() - 600_000)

    const text = await runCli(['checkpoint', 'history', 'contacts.last', '--id', 'dl'], { env })
    const lines = text.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'))
    expect(lines.map((l) => [l[0], l[3]])).toEqual([
      ['1', '2'],
      ['2', '4'],
      ['3', '6'],
      ['4', '(deleted)'],
    ])
    expect(lines[3]![2]).toBe('cli') // the CLI's own commit has no batch: its session is shown

    // back to the value of commit 1: a new commit (5), recorded in the history like any other
    const restored = await runCli(['checkpoint', 'restore', 'sales.last', '--at', '1', '--id', 'dl'], { env })
    expect(restored.code).toBe(0)
    expect(restored.stdout).toBe('restored sales.last to its value of commit 1: 2\n')
    expect(readFileSync(path.join(ds, 'dev/dl/$checkpoints/sales.last'), 'utf8')).toBe('2')
    const after = JSON.parse(
      (await runCli(['checkpoint', 'history', 'sales.last', '--id', 'dl', '--json'], { env })).stdout,
    ) as Change[]
    expect(after.map((c) => [c.seq, c.value])).toEqual([
      [1, 2],
      [2, 4],
      [3, 6],
      [5, 2],
    ])
    // the commit in effect at 2 is commit 2's value
    expect(
      (await runCli(['checkpoint', 'restore', 'sales.last', '--at', '2', '--id', 'dl'], { env })).stdout,
    ).toContain('value of commit 2: 4')
    // the run continues from the restored value
    expect((await runCli(start, { env })).code).toBe(0)
    expect((await runCli(['checkpoint', 'get', 'sales.last', '--id', 'dl'], { env })).stdout).toBe('6\n')
  })

  it('refuses to restore a value a key did not have, a commit that does not exist and a malformed --at, changing nothing', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
    expect((await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })).code).toBe(0)
    expect((await runCli(['checkpoint', 'delete', 'sales.last', '--id', 'dl'], { env })).code).toBe(0)
    const gone = await runCli(['checkpoint', 'restore', 'sales.last', '--at', '2', '--id', 'dl'], { env })
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('sales.last had no value at commit 2 (commit 2 deleted it)')
    const never = await runCli(['checkpoint', 'restore', 'nothing.here', '--at', '1', '--id', 'dl'], { env })
    expect(never.code).toBe(1)
    const past = await runCli(['checkpoint', 'restore', 'sales.last', '--at', '9', '--id', 'dl'], { env })
    expect(past.code).not.toBe(0)
    expect(past.stderr).toContain('has 2 commit(s)')
    for (const bad of ['0', '-1', 'abc', '1.5']) {
      const r = await runCli(['checkpoint', 'restore', 'sales.last', '--at', bad, '--id', 'dl'], { env })
      expect(r.code, bad).not.toBe(0)
    }
    const history = JSON.parse(
      (await runCli(['checkpoint', 'history', 'sales.last', '--id', 'dl', '--json'], { env })).stdout,
    ) as Change[]
    expect(history.map((c) => [c.seq, c.value ?? 'deleted'])).toEqual([
      [1, 2],
      [2, 'deleted'],
    ])
    const none = await runCli(['checkpoint', 'history', 'nothing.here', '--id', 'dl'], { env })
    expect(none.code).toBe(0)
    expect(none.stderr).toBe('no commit changed nothing.here\n')
  })

  it('after commit retention removed old records, history says so and restore refuses a removed commit', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
    const start = ['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl']
    for (let i = 0; i < 2; i++) expect((await runCli(start, { env })).code).toBe(0)
    await new Promise((r) => setTimeout(r, 200))
    expect((await runCli(start, { env: { ...env, ACHVY_COMMIT_RETENTION_DAYS: '0.000001' } })).code).toBe(0)
    const base = Number(readFileSync(path.join(ds, 'dev/dl/$commits/BASE'), 'utf8'))
    expect(base).toBeGreaterThan(1)
    const history = await runCli(['checkpoint', 'history', 'sales.last', '--id', 'dl', '--json'], { env })
    expect(history.code).toBe(0)
    expect(history.stderr).toContain(`commits before ${base} were removed by commit_retention_days`)
    expect((JSON.parse(history.stdout) as Change[]).every((c) => c.seq >= base)).toBe(true)
    const restore = await runCli(['checkpoint', 'restore', 'sales.last', '--at', '1', '--id', 'dl'], { env })
    expect(restore.code).not.toBe(0)
    expect(restore.stderr).toContain(`commits before ${base} were removed by commit_retention_days`)
  })
})
