import { afterAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

describe('anchovy checkpoint', () => {
  it('lists, gets, sets and deletes committed checkpoints; a run continues from the change', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
    await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })
    const list = await runCli(['checkpoint', 'list', '--id', 'dl'], { env })
    expect(list.code).toBe(0)
    expect(list.stdout).toBe('contacts.last\t2\nsales.last\t2\n')
    expect((await runCli(['checkpoint', 'get', 'sales.last', '--id', 'dl'], { env })).stdout).toBe('2\n')
    expect((await runCli(['checkpoint', 'get', 'nope', '--id', 'dl'], { env })).code).toBe(1)
    expect((await runCli(['checkpoint', 'set', 'sales.last', '100', '--id', 'dl'], { env })).code).toBe(0)
    expect((await runCli(['checkpoint', 'set', 'note', 'hello world', '--id', 'dl'], { env })).code).toBe(0)
    expect(readFileSync(path.join(ds, 'dev/dl/$checkpoints/note'), 'utf8')).toBe('hello world')
    expect((await runCli(['checkpoint', 'list', 'sales.*', '--id', 'dl'], { env })).stdout).toBe('sales.last\t100\n')
    await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })
    expect((await runCli(['checkpoint', 'get', 'sales.last', '--id', 'dl'], { env })).stdout).toBe('102\n')
    const del = await runCli(['checkpoint', 'delete', '--all', '--id', 'dl'], { env })
    expect(del.stdout).toBe('deleted 3 checkpoint(s)\n')
    expect((await runCli(['checkpoint', 'list', '--id', 'dl'], { env })).stdout).toBe('')
  })
})

describe('anchovy healthcheck', () => {
  it('passes after a good run, fails with a one-line reason otherwise', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    const none = await runCli(['healthcheck', '--id', 'dl'], { env })
    expect(none.code).toBe(1)
    expect(none.stdout).toMatch(/^unhealthy: no run of dev\/dl is recorded/)
    await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })
    const ok = await runCli(['healthcheck', '--id', 'dl', '--max-age', '60'], { env })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/^healthy: last run OK/)
    await new Promise((r) => setTimeout(r, 1100))
    const stale = await runCli(['healthcheck', '--id', 'dl', '--max-age', '1'], { env })
    expect(stale.code).toBe(1)
    expect(stale.stdout).toMatch(/last run was \d+s ago \(max 1s\)/)
    await runCli(['start', '-op', `${FIXTURE_OPS}:FileUploader`, '--id', 'up', '-U', 'dl'], {
      env: { ...env, OUT_FILE: path.join(ds, 'o'), FAIL_UPLOAD: 'sales' },
    })
    const failed = await runCli(['healthcheck', '--id', 'up'], { env })
    expect(failed.code).toBe(1)
    expect(failed.stdout).toMatch(/ended with status ERR/)
  })

  it('checks connections with --connections', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_CNXN__WEB__URL: 'https://example.com' }
    await runCli(['start', '-op', `${FIXTURE_OPS}:NeedsWeb`, '--id', 'w'], { env })
    expect(
      (await runCli(['healthcheck', '--id', 'w', '--connections', '-o', `${FIXTURE_OPS}:NeedsWeb`], { env })).code,
    ).toBe(0)
    const missing = await runCli(['healthcheck', '--id', 'w', '--connections', '-o', `${FIXTURE_OPS}:NeedsWeb`], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    expect(missing.code).toBe(1)
    expect(missing.stdout).toMatch(/connection check failed: .*ACHVY_CNXN__WEB__URL/)
  })
})

describe('other commands', () => {
  it('prints the version and help, and lists plugins', async () => {
    expect((await runCli(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/)
    for (const cmd of ['start', 'healthcheck', 'checkpoint', 'plugin', 'init']) {
      const r = await runCli([cmd, '--help'])
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/Usage: anchovy/)
    }
    const plugins = await runCli(['plugin', 'list', FIXTURE_OPS])
    expect(plugins.code).toBe(0)
    expect(plugins.stdout).toMatch(/^sftp \(@anchovies\/plugin-sftp\)/m)
    expect(plugins.stdout).toMatch(/fixtures .*\n {2}operators: fixtures\.TwoTables, /)
    expect(plugins.stdout).toMatch(/connections: web/)
  })

  it('writes a starter config.yaml with init, and refuses to overwrite it', async () => {
    const cwd = tempDir()
    expect((await runCli(['init'], { cwd })).code).toBe(0)
    expect(existsSync(path.join(cwd, 'config.yaml'))).toBe(true)
    const again = await runCli(['init'], { cwd })
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/exists already/)
    writeFileSync(path.join(cwd, 'config.yaml'), 'tbls: {}\n')
  })

  it('exits 2 on an unknown command or flag', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2)
    expect((await runCli(['checkpoint', 'list', '--bogus'])).code).toBe(2)
  })
})
