import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, spawnSync } from 'node:child_process'
import { chownSync, existsSync, readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { BIN, FIXTURE_OPS, cleanupTempDirs, tempDir, type CliResult } from '../helpers.js'

afterAll(cleanupTempDirs)

// Containers often run under a uid the image has no passwd entry for (OpenShift, Kubernetes runAsUser); these
// tests drop to such a uid for real with setpriv, which needs root.
let uid = 0
let gid = 0

/** The first id from `from` on that `getent <db>` does not know. */
function unusedId(db: 'passwd' | 'group', from: number): number {
  for (let id = from; id < from + 1000; id++) if (spawnSync('getent', [db, String(id)]).status === 2) return id
  throw new Error(`no unused ${db} id from ${from}`)
}

/** A temporary folder owned by the unprivileged uid. */
function ownedDir(): string {
  const d = tempDir('anchovies-nopasswd-')
  chownSync(d, uid, gid)
  return d
}

/** Runs the built CLI as `uid` with exactly `env` (plus PATH). */
function runAs(args: string[], env: Record<string, string>, cwd: string): Promise<CliResult> {
  const child = spawn(
    'setpriv',
    [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', process.execPath, BIN, ...args],
    {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ACHVY_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
}

const op = ['-op', `${FIXTURE_OPS}:TwoTables`]
const NO_CRASH = /uv_os_get_passwd|SystemError|\n\s+at /

beforeAll(() => {
  expect(process.getuid?.(), 'these tests switch to a uid without a passwd entry with setpriv, which needs root').toBe(
    0,
  )
  uid = unusedId('passwd', 1_000_680_000)
  gid = unusedId('group', 1_000_680_000)
})

describe('a uid with no passwd entry', () => {
  it('anchovy start uses $HOME instead of crashing in uv_os_get_passwd, and the uid as the default user', async () => {
    const home = ownedDir()
    const r = await runAs(['start', ...op, '--id', 'dl'], { HOME: home }, home)
    expect(r.stderr).not.toMatch(NO_CRASH)
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(path.join(home, '.anchovies')).sort()).toEqual(['$school', String(uid)])
    expect(existsSync(path.join(home, '.anchovies', String(uid), 'dl/$commits/000000000001.json'))).toBe(true)
  })

  it('runs healthcheck, checkpoint list and init the same way', async () => {
    const home = ownedDir()
    expect((await runAs(['start', ...op, '--id', 'dl'], { HOME: home }, home)).code).toBe(0)
    const health = await runAs(['healthcheck', '--id', 'dl'], { HOME: home }, home)
    expect(health.stdout).toMatch(/^healthy: last run OK/)
    expect(health.code).toBe(0)
    const list = await runAs(['checkpoint', 'list', '--id', 'dl'], { HOME: home }, home)
    expect(list.stderr).not.toMatch(NO_CRASH)
    expect(list.stdout).toBe('contacts.last\t3\nsales.last\t3\n')
    const init = await runAs(['init'], { HOME: home }, home)
    expect(init.code, init.stderr).toBe(0)
    expect(readFileSync(path.join(home, 'config.yaml'), 'utf8')).toContain('tbls:')
  })

  it('takes the default user from $USER, else $LOGNAME', async () => {
    const home = ownedDir()
    expect(
      (await runAs(['start', ...op, '--id', 'dl'], { HOME: home, USER: 'alice', LOGNAME: 'bob' }, home)).code,
    ).toBe(0)
    expect((await runAs(['start', ...op, '--id', 'dl'], { HOME: home, LOGNAME: 'bob' }, home)).code).toBe(0)
    expect(readdirSync(path.join(home, '.anchovies')).sort()).toEqual(['$school', 'alice', 'bob'])
    const list = await runAs(['checkpoint', 'list', '--id', 'dl'], { HOME: home, LOGNAME: 'bob' }, home)
    expect(list.stdout).toBe('contacts.last\t3\nsales.last\t3\n')
  })

  it('with HOME unset, every command that needs the datastore stops with exit 2 naming what to set; init still works', async () => {
    const cwd = ownedDir()
    for (const args of [
      ['start', ...op, '--id', 'dl'],
      ['healthcheck', '--id', 'dl'],
      ['checkpoint', 'list', '--id', 'dl'],
    ]) {
      const r = await runAs(args, {}, cwd)
      expect(r.stderr).not.toMatch(NO_CRASH)
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toContain(
        `no home folder for the default ~/.anchovies (HOME is not set and uid ${uid} has no home directory in the password database); pass --datastore, or set ACHVY_DATASTORE or ACHVY_HOME [ANCH_ERR_CONFIG]`,
      )
    }
    const init = await runAs(['init'], {}, cwd)
    expect(init.code, init.stderr).toBe(0)
    expect(readdirSync(cwd)).toEqual(['config.yaml'])
  })

  it('with HOME unset, ACHVY_HOME or --datastore is enough for every command', async () => {
    const root = ownedDir()
    const viaEnv = { ACHVY_HOME: root }
    expect((await runAs(['start', ...op, '--id', 'dl'], viaEnv, root)).code).toBe(0)
    expect(existsSync(path.join(root, String(uid), 'dl/$commits/000000000001.json'))).toBe(true)
    expect((await runAs(['healthcheck', '--id', 'dl'], viaEnv, root)).code).toBe(0)
    expect((await runAs(['checkpoint', 'list', '--id', 'dl'], viaEnv, root)).stdout).toBe(
      'contacts.last\t3\nsales.last\t3\n',
    )
    const flag = await runAs(['checkpoint', 'list', '--id', 'dl', '--datastore', root], {}, root)
    expect(flag.stdout).toBe('contacts.last\t3\nsales.last\t3\n')
  })

  it('expands ~ in a datastore location from $HOME, and refuses it clearly when there is no home', async () => {
    const home = ownedDir()
    const r = await runAs(['start', ...op, '--id', 'dl', '--datastore', '~/store'], { HOME: home }, home)
    expect(r.code, r.stderr).toBe(0)
    expect(existsSync(path.join(home, 'store', String(uid), 'dl/$commits/000000000001.json'))).toBe(true)
    const none = await runAs(['start', ...op, '--id', 'dl', '--datastore', '~/store'], {}, home)
    expect(none.stderr).not.toMatch(NO_CRASH)
    expect(none.code).toBe(2)
    expect(none.stderr).toContain(
      `datastore "~/store": cannot expand "~" (HOME is not set and uid ${uid} has no home directory in the password database); give an absolute path`,
    )
  })
})
