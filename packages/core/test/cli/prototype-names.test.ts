import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { FIXTURE_OPS, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

/** Every member name of Object.prototype: `constructor`, `toString`, `__proto__`, `hasOwnProperty`, … */
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype)
const op = ['-op', `${FIXTURE_OPS}:TwoTables`]

describe('anchovy start with names of Object.prototype members', () => {
  it('reports config: {__proto__: {id: …}} as an unknown setting (exit 2) instead of running under the smuggled id', async () => {
    for (const text of ['config: {__proto__: {id: sneaky}}', '{"config": {"__proto__": {"id": "sneaky"}}}']) {
      const ds = tempDir()
      const r = await runCli(['start', ...op, '-c', text], { env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' } })
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain('--config: unknown setting config.__proto__')
      expect(readdirSync(ds)).toEqual([])
    }
  })

  it('names every Object.prototype member used as a config: key of a YAML or JSON --config-file, exit 2', async () => {
    const cwd = tempDir()
    writeFileSync(
      path.join(cwd, 'c.yaml'),
      `config:\n${PROTO_NAMES.map((n) => `  "${n}": {interval: 1}\n`).join('')}  interval: 1\n`,
    )
    writeFileSync(
      path.join(cwd, 'c.json'),
      JSON.stringify({ config: { ...Object.fromEntries(PROTO_NAMES.map((n) => [n, 1])), interval: 1 } }),
    )
    for (const file of ['c.yaml', 'c.json']) {
      const ds = tempDir()
      const r = await runCli(['start', ...op, '--id', 'dl', '--config-file', file], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
        cwd,
      })
      expect(r.code, r.stderr).toBe(2)
      const reported = r.stderr.split('\n').map((l) => l.replace(/^ {2}- /, '').replace(/ \[ANCH_ERR_CONFIG\]$/, ''))
      for (const n of PROTO_NAMES) expect(reported).toContain(`${file}: unknown setting config.${n}`)
      expect(r.stderr).not.toContain('config.interval')
      expect(readdirSync(ds)).toEqual([])
    }
  })

  it('runs normally with ACHVY_* variables named after Object.prototype members set', async () => {
    const ds = tempDir()
    const env: Record<string, string> = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ACHVY_ID: 'envid' }
    for (const n of PROTO_NAMES) {
      env[`ACHVY_${n}`] = '1'
      env[`ACHVY_${n.toUpperCase()}`] = '1'
    }
    const r = await runCli(['start', ...op], { env })
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(path.join(ds, 'dev'))).toEqual(['envid'])
  })

  it('reports --constructor, --__proto__ and --toString as unknown options', async () => {
    for (const n of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const ds = tempDir()
      const r = await runCli(['start', ...op, '--id', 'dl', `--${n}`, '1'], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
      })
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toContain(`unknown option or argument "--${n}"`)
      expect(readdirSync(ds)).toEqual([])
    }
  })

  it('reports a constructor:// datastore as a scheme no plugin handles', async () => {
    const r = await runCli(['start', ...op, '--id', 'dl', '--datastore', 'constructor://x/y'], {
      env: { ACHVY_USER: 'dev' },
    })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(
      'datastore "constructor://x/y": no installed plugin handles constructor:// URLs [ANCH_ERR_CONFIG]',
    )
  })
})

describe('anchovy checkpoint with keys named after Object.prototype members', () => {
  it('keeps the command-line word as the key (it used to be replaced by the text of Object.prototype.constructor)', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    for (const n of PROTO_NAMES) {
      const set = await runCli(['checkpoint', 'set', n, `v-${n}`, '--id', 'dl'], { env })
      expect(set.code, `${n}: ${set.stderr}`).toBe(0)
    }
    const list = await runCli(['checkpoint', 'list', '--id', 'dl'], { env })
    expect(list.stdout).toBe(
      [...PROTO_NAMES]
        .sort()
        .map((n) => `${n}\tv-${n}\n`)
        .join(''),
    )
    for (const n of ['constructor', '__proto__', 'toString']) {
      expect((await runCli(['checkpoint', 'get', n, '--id', 'dl'], { env })).stdout).toBe(`v-${n}\n`)
    }
    expect(existsSync(path.join(ds, 'dev/dl/$checkpoints/constructor'))).toBe(true)
  })
})
