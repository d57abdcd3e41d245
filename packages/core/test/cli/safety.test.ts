import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, readTree, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const op = (name: string): string[] => ['-op', `${FIXTURE_OPS}:${name}`]

describe('hostile names', () => {
  for (const [flag, value] of [
    ['--id', '../../escape'],
    ['--id', '/etc'],
    ['--user', 'a/b'],
    ['--id', 'evil\u0007'],
    ['--id', '..'],
    ['-U', '../up'],
  ] as const) {
    it(`rejects ${flag} ${JSON.stringify(value)} with exit 2 and writes nothing`, async () => {
      const ds = tempDir()
      const r = await runCli(['start', ...op('TwoTables'), flag, value, ...(flag === '--id' ? [] : ['--id', 'ok'])], {
        env: { ACHVY_DATASTORE: path.join(ds, 'root'), ACHVY_USER: 'dev' },
      })
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/invalid (anchovy id|user|upstream id)/)
      expect(readdirSync(ds)).toEqual([])
    })
  }

  it('rejects hostile table names from config.yaml, naming the file and key, before anything runs', async () => {
    const ds = tempDir()
    const cwd = tempDir()
    writeFileSync(path.join(cwd, 'config.yaml'), 'tbls:\n  "../../x": {}\n  "ok": {columns: {a: varchar}}\n')
    const r = await runCli(['start', ...op('TwoTables'), '--id', 'dl'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
      cwd,
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/config\.yaml: tbls\.\.\.\/\.\.\/x: invalid table name/)
    expect(r.stderr).toMatch(/config\.yaml: tbls\.ok\.columns\.a: unknown type "varchar"/)
    expect(readdirSync(ds)).toEqual([])
  })

  it('rejects hostile checkpoint keys', async () => {
    const ds = tempDir()
    for (const key of ['../x', 'a/b', '.hidden']) {
      const r = await runCli(['checkpoint', 'set', key, '1', '--id', 'dl'], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
      })
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/invalid checkpoint key/)
    }
    expect(existsSync(path.join(ds, 'dev/dl/$checkpoints'))).toBe(false)
  })
})

describe('configuration', () => {
  it('reports every problem at once with exit 2, naming env vars, keys and flags', async () => {
    const cwd = tempDir()
    writeFileSync(
      path.join(cwd, 'config.yaml'),
      'config:\n  concurrency: many\n  colour: blue\ntbls:\n  sales: {unique_by: 3}\n',
    )
    const r = await runCli(['start', ...op('TwoTables'), '--interval', 'soon'], {
      env: { ACHVY_DATASTORE: cwd, ACHVY_EXECUTION_TIMEOUT: 'ten' },
      cwd,
    })
    expect(r.code).toBe(2)
    for (const m of [
      /ACHVY_EXECUTION_TIMEOUT: must be a number/,
      /option for interval: must be a number/,
      /config\.yaml: config\.concurrency: must be a number/,
      /unknown setting config\.colour/,
      /tbls\.sales\.unique_by/,
    ]) {
      expect(r.stderr).toMatch(m)
    }
  })

  it('names the line of a YAML syntax error', async () => {
    const cwd = tempDir()
    writeFileSync(path.join(cwd, 'broken.yaml'), 'tbls:\n  sales: {a: 1\n')
    const r = await runCli(['start', ...op('TwoTables'), '--config-file', 'broken.yaml'], {
      env: { ACHVY_DATASTORE: cwd },
      cwd,
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/broken\.yaml line \d+/)
  })

  it('fails at startup naming the env vars of a missing connection', async () => {
    const ds = tempDir()
    const r = await runCli(['start', ...op('NeedsWeb'), '--id', 'w'], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/connection 'web' is not configured: set ACHVY_CNXN__WEB__URL/)
  })

  it('gives an unknown operator a clear error', async () => {
    const r = await runCli(['start', '-op', 'sftp.NoSuchThing'], { env: { ACHVY_DATASTORE: tempDir() } })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/has no operator NoSuchThing/)
  })
})

describe('secrets', () => {
  it('never appear in logs, task logs, results or error messages', async () => {
    const ds = tempDir()
    const secret = 'S3cr3t-Pa55w0rd!'
    const env = {
      ACHVY_DATASTORE: ds,
      ACHVY_USER: 'dev',
      ACHVY_LOG_LEVEL: 'debug',
      ACHVY_CNXN__WEB__URL: `https://bob:${encodeURIComponent(secret)}@api.example.com/v1`,
      ACHVY_CNXN__WEB__PASSWORD: secret,
      ACHVY_CNXN__WEB__JSONDATA: JSON.stringify({ token: `${secret}-token` }),
      FAIL_PAGES: '1',
    }
    const r = await runCli(['start', ...op('NeedsWeb'), '--id', 'w'], { env })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/web connection ready/)
    expect(r.stderr).toMatch(/cannot fetch https:\/\/bob:\*\*\*@api\.example\.com/)
    const everything = [r.stdout, r.stderr, ...[...readTree(ds).values()].map((b) => b.toString('utf8'))].join('\n')
    for (const needle of [secret, encodeURIComponent(secret), `${secret}-token`])
      expect(everything).not.toContain(needle)
  })
})
