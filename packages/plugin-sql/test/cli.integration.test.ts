import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { postgresDb } from './databases.js'
import { tempDir } from './helpers.js'

const ROOT = nodePath.resolve(import.meta.dirname, '../../..')
const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')

function anchovy(args: string[], env: Record<string, string>, cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'start', ...args], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function allFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = nodePath.join(dir, n)
    return statSync(p).isDirectory() ? allFiles(p) : [p]
  })
}

describe('anchovy start -op sql.Uploader (CLI)', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it('loads a local CSV into a SQLite file with nothing but npm install (the README walk-through)', () => {
    const dir = nodePath.join(t.dir, 'readme')
    mkdirSync(`${dir}/files`, { recursive: true })
    writeFileSync(
      `${dir}/files/orders.csv`,
      'order_id,customer,amount,updated_at\n1,Ada,10.50,2025-01-01T10:00:00+00:00\n2,"Lovelace, Ada",7.25,2025-01-01T11:00:00+00:00\n1,Ada,12.00,2025-01-02T09:00:00+00:00\n',
    )
    writeFileSync(
      `${dir}/config.yaml`,
      'tbls:\n  orders:\n    path: /orders.csv\n    columns: {order_id: int, customer: str, amount: float, updated_at: datetime}\n    unique_by: order_id\n    sort_by: -updated_at\n',
    )
    const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'readme', ACHVY_LOG_LEVEL: 'warn' }
    const dl = anchovy(['-op', 'sftp.CsvDownloader', '--id', 'shop_files'], { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href }, dir)
    expect(dl.status, dl.stderr).toBe(0)
    const up = anchovy(['-op', 'sql.Uploader', '--id', 'shop_db', '-U', 'shop_files'], { ...env, ACHVY_CNXN__DB__URL: 'sqlite:///shop.db' }, dir)
    expect(up.status, up.stderr + up.stdout).toBe(0)
    const db = new Database(`${dir}/shop.db`, { readonly: true })
    const rows = db.prepare('SELECT order_id, customer, amount, updated_at FROM "shop_files__readme__orders" WHERE _del IS NULL ORDER BY order_id').all()
    expect(rows).toEqual([
      { order_id: 1, customer: 'Ada', amount: 12, updated_at: '2025-01-02T09:00:00+00:00' },
      { order_id: 2, customer: 'Lovelace, Ada', amount: 7.25, updated_at: '2025-01-01T11:00:00+00:00' },
    ])
    expect(db.prepare('SELECT COUNT(*) AS n FROM "shop_files__readme__orders"').get()).toEqual({ n: 3 })
    db.close()
    // Running the uploader again loads nothing twice.
    const again = anchovy(['-op', 'sql.Uploader', '--id', 'shop_db', '-U', 'shop_files'], { ...env, ACHVY_CNXN__DB__URL: 'sqlite:///shop.db' }, dir)
    expect(again.status).toBe(0)
    const db2 = new Database(`${dir}/shop.db`, { readonly: true })
    expect(db2.prepare('SELECT COUNT(*) AS n FROM "shop_files__readme__orders"').get()).toEqual({ n: 3 })
    db2.close()
  })

  it('never shows the database password: not in stdout, stderr, task logs or results, on success or failure', async () => {
    const password = 'Sup3r-s3cret!pw'
    const pg = await postgresDb(encodeURIComponent(password))
    try {
      const dir = nodePath.join(t.dir, 'secret')
      mkdirSync(`${dir}/files`, { recursive: true })
      writeFileSync(`${dir}/files/a.csv`, 'id,name\n1,x\n2,y\n')
      writeFileSync(`${dir}/config.yaml`, 'tbls:\n  a:\n    path: /a.csv\n    columns: {id: int, name: str}\n    unique_by: id\n')
      const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'sec', ACHVY_LOG_LEVEL: 'debug' }
      const dl = anchovy(['-op', 'sftp.CsvDownloader', '--id', 'sec_files'], { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href }, dir)
      expect(dl.status, dl.stderr).toBe(0)
      const ok = anchovy(['-op', 'sql.Uploader', '--id', 'sec_db', '-U', 'sec_files'], { ...env, ACHVY_CNXN__DB__URL: pg.url }, dir)
      expect(ok.status, ok.stderr).toBe(0)
      expect(await pg.rows('sec_files__sec', 'a')).toHaveLength(2)
      // A connection that fails (nothing listens on port 1), with the password also in JSONDATA.
      const bad = anchovy(['-op', 'sql.Uploader', '--id', 'sec_db2', '-U', 'sec_files'], {
        ...env,
        ACHVY_CNXN__DB__URL: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:1/nowhere`,
        ACHVY_CNXN__DB__JSONDATA: JSON.stringify({ connection: { password } }),
      }, dir)
      expect(bad.status).not.toBe(0)
      expect(bad.stdout + bad.stderr).toMatch(/ANCH_ERR_|connection/i)
      const outputs = [ok.stdout, ok.stderr, bad.stdout, bad.stderr, ...allFiles(`${dir}/datastore`).map((f) => readFileSync(f).toString('latin1'))]
      for (const text of outputs) {
        expect(text).not.toContain(password)
        expect(text).not.toContain(encodeURIComponent(password))
      }
    } finally {
      await pg.close()
    }
  })
})
