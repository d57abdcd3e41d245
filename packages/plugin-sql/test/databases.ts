import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { tempDir } from './helpers.js'

/** A real database for one test file: created fresh, dropped afterwards; reads back raw text values. */
export interface TestDb {
  readonly name: 'postgres' | 'mysql' | 'sqlite'
  /** ACHVY_CNXN__DB__URL. */
  readonly url: string
  /** Rows of a table (ordered by _seq), values as the driver returns them without conversion. */
  rows(schema: string | null, table: string, where?: string): Promise<Record<string, unknown>[]>
  /** Runs SQL (setup, assertions). */
  query(sql: string): Promise<Record<string, unknown>[]>
  /** Quotes an identifier. */
  q(name: string): string
  /** The schema/table pair the uploader uses for anchovy `id` (user test) and `table`. */
  target(id: string, table: string): { schema: string | null; table: string }
  close(): Promise<void>
}

const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres'

/** A fresh PostgreSQL database (URL carries a password, which trust auth ignores, to prove it is masked). */
export async function postgresDb(password = 'pg-s3cret-pw'): Promise<TestDb> {
  const name = `anch_sql_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: PG_ADMIN })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const client = new pg.Client({
    connectionString: `postgres://postgres@127.0.0.1:5432/${name}`,
    types: { getTypeParser: () => (v: string) => v },
  })
  await client.connect()
  await client.query("SET TIME ZONE 'UTC'")
  const q = (n: string): string => `"${n.replace(/"/g, '""')}"`
  return {
    name: 'postgres',
    url: `postgres://postgres:${password}@127.0.0.1:5432/${name}`,
    q,
    target: (id, table) => ({ schema: `${id}__test`, table }),
    async rows(schema, table, where = 'TRUE') {
      return (
        await client.query(`SELECT * FROM ${schema ? `${q(schema)}.` : ''}${q(table)} WHERE ${where} ORDER BY "_seq"`)
      ).rows
    },
    async query(sql) {
      return (await client.query(sql)).rows
    },
    async close() {
      await client.end()
      const a = new pg.Client({ connectionString: PG_ADMIN })
      await a.connect()
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await a.end()
    },
  }
}

/** MariaDB/MySQL: the uploader creates one database per schema; every schema of this run shares a unique prefix. */
export async function mysqlDb(): Promise<TestDb & { prefix: string }> {
  const prefix = `anch${randomBytes(3).toString('hex')}`
  const conn = await mysql.createConnection({
    host: '127.0.0.1',
    port: 3306,
    user: 'root',
    database: 'test',
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
  })
  await conn.query("SET time_zone = '+00:00'")
  const q = (n: string): string => `\`${n.replace(/`/g, '``')}\``
  return {
    name: 'mysql',
    prefix,
    url: 'mysql://root@127.0.0.1:3306/test',
    q,
    target: (id, table) => ({ schema: `${id}__test`, table }),
    async rows(schema, table, where = 'TRUE') {
      const [rows] = await conn.query(
        `SELECT * FROM ${schema ? `${q(schema)}.` : ''}${q(table)} WHERE ${where} ORDER BY \`_seq\``,
      )
      return rows as Record<string, unknown>[]
    },
    async query(sql) {
      const [rows] = await conn.query(sql)
      return rows as Record<string, unknown>[]
    },
    async close() {
      const [dbs] = await conn.query(`SHOW DATABASES LIKE '${prefix}%'`)
      for (const row of dbs as Record<string, string>[]) await conn.query(`DROP DATABASE ${q(Object.values(row)[0]!)}`)
      await conn.end()
    },
  }
}

/** A SQLite file in a temporary folder. */
export async function sqliteDb(): Promise<TestDb> {
  const t = tempDir('anch-sqlite-')
  const file = `${t.dir}/target.db`
  let db: Database.Database | undefined
  const open = (): Database.Database => (db ??= new Database(file))
  const q = (n: string): string => `"${n.replace(/"/g, '""')}"`
  return {
    name: 'sqlite',
    url: `sqlite:///${file}`,
    q,
    target: (id, table) => ({ schema: null, table: `${id}__test__${table}` }),
    async rows(_schema, table, where = '1') {
      return open()
        .prepare(`SELECT * FROM ${q(table)} WHERE ${where} ORDER BY "_seq"`)
        .safeIntegers(true)
        .all() as Record<string, unknown>[]
    },
    async query(sql) {
      const stmt = open().prepare(sql)
      return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), [])
    },
    async close() {
      db?.close()
      t.remove()
    },
  }
}

/** Unique anchovy ids per test (schemas derive from them). */
export function uniqueId(prefix: string, base: string): string {
  return `${prefix}${base}${randomBytes(2).toString('hex')}`
}
