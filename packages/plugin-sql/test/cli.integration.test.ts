import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import * as nodePath from 'node:path'
import { pathToFileURL } from 'node:url'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { postgresDb } from './databases.js'
import { tempDir } from './helpers.js'

const ROOT = nodePath.resolve(import.meta.dirname, '../../..')
const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')

function anchovy(
  args: string[],
  env: Record<string, string>,
  cwd: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'start', ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Every piece of `secret` of at least 3 characters. */
function fragments(secret: string): string[] {
  const out = new Set<string>()
  for (let i = 0; i < secret.length; i++) for (let j = i + 3; j <= secret.length; j++) out.add(secret.slice(i, j))
  return [...out]
}

/** The text of every file under `dir`, gzip files decompressed. */
function allTexts(dir: string): { file: string; text: string }[] {
  return allFiles(dir).map((file) => {
    const bytes = readFileSync(file)
    return { file, text: (file.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8') }
  })
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
    const dl = anchovy(
      ['-op', 'sftp.CsvDownloader', '--id', 'shop_files'],
      { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href },
      dir,
    )
    expect(dl.status, dl.stderr).toBe(0)
    const up = anchovy(
      ['-op', 'sql.Uploader', '--id', 'shop_db', '-U', 'shop_files'],
      { ...env, ACHVY_CNXN__DB__URL: 'sqlite:///shop.db' },
      dir,
    )
    expect(up.status, up.stderr + up.stdout).toBe(0)
    const db = new Database(`${dir}/shop.db`, { readonly: true })
    const rows = db
      .prepare(
        'SELECT order_id, customer, amount, updated_at FROM "shop_files__readme__orders" WHERE _del IS NULL ORDER BY order_id',
      )
      .all()
    expect(rows).toEqual([
      { order_id: 1, customer: 'Ada', amount: 12, updated_at: '2025-01-02T09:00:00+00:00' },
      { order_id: 2, customer: 'Lovelace, Ada', amount: 7.25, updated_at: '2025-01-01T11:00:00+00:00' },
    ])
    expect(db.prepare('SELECT COUNT(*) AS n FROM "shop_files__readme__orders"').get()).toEqual({ n: 3 })
    db.close()
    // Running the uploader again loads nothing twice.
    const again = anchovy(
      ['-op', 'sql.Uploader', '--id', 'shop_db', '-U', 'shop_files'],
      { ...env, ACHVY_CNXN__DB__URL: 'sqlite:///shop.db' },
      dir,
    )
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
      writeFileSync(
        `${dir}/config.yaml`,
        'tbls:\n  a:\n    path: /a.csv\n    columns: {id: int, name: str}\n    unique_by: id\n',
      )
      const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'sec', ACHVY_LOG_LEVEL: 'debug' }
      const dl = anchovy(
        ['-op', 'sftp.CsvDownloader', '--id', 'sec_files'],
        { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href },
        dir,
      )
      expect(dl.status, dl.stderr).toBe(0)
      const ok = anchovy(
        ['-op', 'sql.Uploader', '--id', 'sec_db', '-U', 'sec_files'],
        { ...env, ACHVY_CNXN__DB__URL: pg.url },
        dir,
      )
      expect(ok.status, ok.stderr).toBe(0)
      expect(await pg.rows('sec_files__sec', 'a')).toHaveLength(2)
      // A connection that fails (nothing listens on port 1), with the password also in JSONDATA.
      const bad = anchovy(
        ['-op', 'sql.Uploader', '--id', 'sec_db2', '-U', 'sec_files'],
        {
          ...env,
          ACHVY_CNXN__DB__URL: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:1/nowhere`,
          ACHVY_CNXN__DB__JSONDATA: JSON.stringify({ connection: { password } }),
        },
        dir,
      )
      expect(bad.status).not.toBe(0)
      expect(bad.stdout + bad.stderr).toMatch(/ANCH_ERR_|connection/i)
      const outputs = [
        ok.stdout,
        ok.stderr,
        bad.stdout,
        bad.stderr,
        ...allFiles(`${dir}/datastore`).map((f) => readFileSync(f).toString('latin1')),
      ]
      for (const text of outputs) {
        expect(text).not.toContain(password)
        expect(text).not.toContain(encodeURIComponent(password))
      }
    } finally {
      await pg.close()
    }
  })

  it('never shows any piece of a password that is not percent-encoded (p@ss:w/rd%?#), and still connects with it (issue 10, defect 13)', async () => {
    const passwords = ['p@ss:w/rd%?#', 'Zq@x:7/ yW%?#é', 'ü@ñí/cödé:ß#?%20']
    const pg = await postgresDb()
    try {
      const dir = nodePath.join(t.dir, 'unenc')
      mkdirSync(`${dir}/files`, { recursive: true })
      writeFileSync(`${dir}/files/a.csv`, 'id,name\n1,x\n2,y\n')
      writeFileSync(
        `${dir}/config.yaml`,
        'tbls:\n  a:\n    path: /a.csv\n    columns: {id: int, name: str}\n    unique_by: id\n',
      )
      const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'sec', ACHVY_LOG_LEVEL: 'debug' }
      const dl = anchovy(
        ['-op', 'sftp.CsvDownloader', '--id', 'enc_files'],
        { ...env, ACHVY_CNXN__URI: pathToFileURL(`${dir}/files`).href },
        dir,
      )
      expect(dl.status, dl.stderr).toBe(0)
      const db = new URL(pg.url).pathname.slice(1)
      const [pw1, pw2, pw3] = passwords as [string, string, string]
      const runs = [
        // Works: the URL is read whole (PostgreSQL here trusts loopback, so host, port, user and database must be right).
        {
          expectOk: true,
          env: {
            ACHVY_CNXN__DB__URL: `postgres://postgres:${pw1}@127.0.0.1:5432/${db}`,
            ACHVY_CNXN__DB__REPLICA: `postgresql://ro:${pw2}@replica.invalid/${db}`,
          },
        },
        // Fails: nothing listens on port 1; the URL comes from JSONDATA, another URL sits in a non-secret attribute.
        {
          expectOk: false,
          env: {
            ACHVY_CNXN__DB__JSONDATA: JSON.stringify({
              url: `postgres://postgres:${pw2}@127.0.0.1:1/${db}`,
              pool: { max: 1 },
              note: `mysql://x:${pw3}@h`,
            }),
          },
        },
        // Fails: a database that does not exist.
        { expectOk: false, env: { ACHVY_CNXN__DB__URL: `postgres://postgres:${pw3}@127.0.0.1:5432/${db}_nope` } },
        // Fails: an address that cannot be read.
        { expectOk: false, env: { ACHVY_CNXN__DB__URL: `postgres://postgres:${pw1}@bad host:5432/${db}` } },
      ]
      const outputs: { file: string; text: string }[] = []
      for (const [i, r] of runs.entries()) {
        const up = anchovy(['-op', 'sql.Uploader', '--id', `enc_db${i}`, '-U', 'enc_files'], { ...env, ...r.env }, dir)
        if (r.expectOk) expect(up.status, up.stderr).toBe(0)
        else {
          expect(up.status, up.stderr).not.toBe(0)
          expect(up.stdout + up.stderr).toMatch(/ANCH_ERR_SQL_(CONNECTION|URL)|ANCH_ERR_CONNECTION/)
        }
        outputs.push({ file: `run ${i} stdout`, text: up.stdout }, { file: `run ${i} stderr`, text: up.stderr })
      }
      expect(await pg.rows('enc_files__sec', 'a')).toHaveLength(2)
      outputs.push(...allTexts(`${dir}/datastore`))
      for (const pw of passwords) {
        const pieces = fragments(pw)
        for (const { file, text } of outputs) {
          const found = pieces.filter((f) => text.includes(f))
          expect(found, `${file}:\n${text.slice(0, 2000)}`).toEqual([])
        }
      }
    } finally {
      await pg.close()
    }
  })
})

function cli(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, cmd, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('anchovy start -op sql.Downloader (CLI)', () => {
  const t = tempDir()
  afterAll(() => t.remove())

  it('copies PostgreSQL tables into a SQLite file (the README example), and healthcheck --connections checks the database', async () => {
    const pg = await postgresDb()
    try {
      await pg.query(`CREATE SCHEMA erp; CREATE TABLE erp.orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), updated_at timestamptz NOT NULL);
        INSERT INTO erp.orders VALUES (1, 'Ada', 10.50, '2025-01-01 10:00:00+00'), (2, 'Grace', 7.25, '2025-01-01 11:00:00+00');
        CREATE TABLE erp.customers (id int PRIMARY KEY, name text); INSERT INTO erp.customers VALUES (1, 'Ada'), (2, 'Grace')`)
      const dir = nodePath.join(t.dir, 'pg2sqlite')
      mkdirSync(dir, { recursive: true })
      writeFileSync(`${dir}/config.yaml`, 'tbls:\n  erp.orders:\n    cursor: updated_at\n')
      const env = { ACHVY_DATASTORE: `${dir}/datastore`, ACHVY_USER: 'readme', ACHVY_LOG_LEVEL: 'warn' }
      const extract = (): void => {
        const dl = cli(
          'start',
          ['-op', 'sql.Downloader', '--id', 'erp', '-e', 'erp.*'],
          { ...env, ACHVY_CNXN__DB__URL: pg.url },
          dir,
        )
        expect(dl.status, dl.stderr + dl.stdout).toBe(0)
        const up = cli(
          'start',
          ['-op', 'sql.Uploader', '--id', 'erp_lite', '-U', 'erp'],
          { ...env, ACHVY_CNXN__DB__URL: 'sqlite:///erp.db' },
          dir,
        )
        expect(up.status, up.stderr + up.stdout).toBe(0)
      }
      extract()
      await pg.query(
        `INSERT INTO erp.orders VALUES (3, 'Ada', 1.00, '2025-01-01 11:00:00+00'); UPDATE erp.orders SET amount = 11, updated_at = '2025-01-02 00:00:00+00' WHERE id = 1; DELETE FROM erp.customers WHERE id = 2`,
      )
      extract()
      const db = new Database(`${dir}/erp.db`, { readonly: true })
      expect(
        db.prepare('SELECT id, customer, amount FROM "erp__readme__erp.orders" WHERE _del IS NULL ORDER BY id').all(),
      ).toEqual([
        { id: 1, customer: 'Ada', amount: '11.00' },
        { id: 2, customer: 'Grace', amount: '7.25' },
        { id: 3, customer: 'Ada', amount: '1.00' },
      ])
      expect(db.prepare('SELECT id, name FROM "erp__readme__erp.customers" WHERE _del IS NULL').all()).toEqual([
        { id: 1, name: 'Ada' },
      ])
      db.close()
      const hc = cli(
        'healthcheck',
        ['--id', 'erp', '--connections', '-op', 'sql.Downloader'],
        { ...env, ACHVY_CNXN__DB__URL: pg.url },
        dir,
      )
      expect(hc.status, hc.stderr + hc.stdout).toBe(0)
    } finally {
      await pg.close()
    }
  })

  it('a missing driver stops the run at startup with ANCH_ERR_SQL_DRIVER naming the package to install', () => {
    const dir = nodePath.join(t.dir, 'nodriver')
    mkdirSync(dir, { recursive: true })
    const env = {
      ACHVY_DATASTORE: `${dir}/datastore`,
      ACHVY_USER: 'nd',
      ACHVY_CNXN__DB__URL: 'mysql://root@127.0.0.1:3306/test',
      NODE_OPTIONS: `--require ${nodePath.join(import.meta.dirname, 'fixtures/hide-mysql2.cjs')}`,
    }
    for (const op of ['sql.Downloader', 'sql.Uploader']) {
      const r = cli(
        'start',
        ['-op', op, '--id', 'nd', '-e', 'test.*', ...(op === 'sql.Uploader' ? ['-U', 'nd'] : [])],
        env,
        dir,
      )
      expect(r.status, r.stdout + r.stderr).not.toBe(0)
      expect(r.stdout + r.stderr).toContain('ANCH_ERR_SQL_DRIVER')
      expect(r.stdout + r.stderr).toContain('npm install mysql2')
      expect(r.stdout).toContain('"STARTUP"')
    }
  })

  it('a wrong password fails at startup naming the connection, with no piece of the password anywhere', () => {
    const password = 'Wr0ng-s3cret-pw'
    const dir = nodePath.join(t.dir, 'wrongpw')
    mkdirSync(dir, { recursive: true })
    const env = {
      ACHVY_DATASTORE: `${dir}/datastore`,
      ACHVY_USER: 'sec',
      ACHVY_LOG_LEVEL: 'debug',
      ACHVY_CNXN__DB__URL: `mysql://root:${password}@127.0.0.1:3306/test`,
    }
    const r = cli('start', ['-op', 'sql.Downloader', '--id', 'wrong', '-e', 'test.*'], env, dir)
    expect(r.status).not.toBe(0)
    expect(r.stdout + r.stderr).toContain(
      'database connection db (ACHVY_CNXN__DB__URL=mysql://root:***@127.0.0.1:3306/test)',
    )
    expect(r.stdout + r.stderr).toContain('Access denied')
    expect(r.stdout).toContain('"STARTUP"')
    const hc = cli('healthcheck', ['--id', 'wrong', '--connections', '-op', 'sql.Downloader'], env, dir)
    expect(hc.status).not.toBe(0)
    const texts = [r.stdout, r.stderr, hc.stdout, hc.stderr, ...allTexts(`${dir}/datastore`).map((x) => x.text)]
    for (const text of texts)
      for (const piece of fragments(password).filter((p) => p.length >= 5)) expect(text).not.toContain(piece)
  })
})
