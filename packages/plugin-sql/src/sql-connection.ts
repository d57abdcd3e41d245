import { createRequire } from 'node:module'
import * as nodePath from 'node:path'
import { Connection } from '@anchovies/core'
import knexFactory, { type Knex } from 'knex'
import { describeUrl, normalizedDbUrl, splitDbUrl } from './db-url.js'
import { sqlError, type Dialect, type Session } from './dialects/dialect.js'
import { MysqlDialect } from './dialects/mysql.js'
import { PostgresDialect } from './dialects/postgres.js'
import { SqliteDialect } from './dialects/sqlite.js'

const require = createRequire(import.meta.url)

/** How a URL scheme maps to a knex client and its driver package. */
const SCHEMES = new Map<string, { client: string; driver: string; dialect: () => Dialect }>([
  ['postgres', { client: 'pg', driver: 'pg', dialect: () => new PostgresDialect() }],
  ['postgresql', { client: 'pg', driver: 'pg', dialect: () => new PostgresDialect() }],
  ['mysql', { client: 'mysql2', driver: 'mysql2', dialect: () => new MysqlDialect() }],
  ['mariadb', { client: 'mysql2', driver: 'mysql2', dialect: () => new MysqlDialect() }],
  ['sqlite', { client: 'better-sqlite3', driver: 'better-sqlite3', dialect: () => new SqliteDialect() }],
])

/**
 * The URL with its credentials percent-encoded exactly once (see `splitDbUrl`), checked by the WHATWG parser the
 * drivers use; a URL that still does not parse fails naming where it points, never its password.
 */
function checkedUrl(url: string): { text: string; parsed: URL } {
  const split = splitDbUrl(url)
  if (split) {
    const text = normalizedDbUrl(split)
    try {
      // An empty host is allowed (pg then reads `?host=`), which the WHATWG parser refuses next to credentials.
      return { text, parsed: new URL(split.host === '' ? normalizedDbUrl({ ...split, host: '127.0.0.1' }) : text) }
    } catch {
      // reported below
    }
  }
  throw sqlError(
    'ANCH_ERR_SQL_URL',
    `database URL ${describeUrl(url)} cannot be parsed: write it as scheme://user:password@host:port/database (a password may hold any character; an @ in the query string must be written %40)`,
  )
}

/** Builds the knex configuration of a connection URL plus extra options (`knex`, `pool`, `connection` from JSONDATA). */
export function knexConfig(
  url: string,
  extra: Readonly<Record<string, unknown>> = {},
  cwd = process.cwd(),
): { config: Knex.Config; dialect: Dialect } {
  const colon = url.indexOf(':')
  const scheme = (colon > 0 ? url.slice(0, colon) : '').toLowerCase().split('+')[0] ?? ''
  if (scheme === 'mssql' || scheme === 'sqlserver') {
    throw sqlError(
      'ANCH_ERR_SQL_UNSUPPORTED',
      'mssql:// is not supported yet by sql.Uploader (PostgreSQL, MySQL/MariaDB and SQLite are); load into one of those',
    )
  }
  const entry = SCHEMES.get(scheme)
  if (!entry)
    throw sqlError(
      'ANCH_ERR_SQL_URL',
      `unsupported database URL ${describeUrl(url)}: use postgres://, mysql://, mariadb:// or sqlite:///path`,
    )
  try {
    require.resolve(entry.driver)
  } catch (cause) {
    throw sqlError('ANCH_ERR_SQL_DRIVER', `${scheme} needs the ${entry.driver} package: npm install ${entry.driver}`, {
      cause,
    })
  }
  const userConnection = (extra.connection && typeof extra.connection === 'object' ? extra.connection : {}) as Record<
    string,
    unknown
  >
  let connection: Record<string, unknown>
  let pool: Knex.PoolConfig
  const dialect = entry.dialect()
  if (entry.client === 'pg') {
    connection = { connectionString: checkedUrl(url).text }
    pool = {
      min: 0,
      max: 10,
      afterCreate: (
        conn: { query: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, conn: unknown) => void,
      ) => conn.query("SET TIME ZONE 'UTC'; SET temp_buffers = '256MB'", (err) => done(err, conn)),
    }
  } else if (entry.client === 'mysql2') {
    const u = checkedUrl(url).parsed
    connection = {
      host: u.hostname || '127.0.0.1',
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      ...(u.pathname.length > 1 ? { database: decodeURIComponent(u.pathname.slice(1)) } : {}),
      charset: 'utf8mb4',
      timezone: 'Z',
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      ...Object.fromEntries(u.searchParams),
    }
    pool = {
      min: 0,
      max: 10,
      afterCreate: (
        conn: { query: (sql: string, cb: (err: Error | null) => void) => void },
        done: (err: Error | null, conn: unknown) => void,
      ) =>
        conn.query(
          "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'",
          (err) => done(err, conn),
        ),
    }
  } else {
    connection = { filename: sqlitePath(url, cwd) }
    pool = { min: 1, max: 1 }
  }
  const knexExtra = (extra.knex && typeof extra.knex === 'object' ? extra.knex : {}) as Knex.Config
  const config: Knex.Config = {
    client: entry.client,
    connection: { ...connection, ...userConnection },
    pool: { ...pool, ...((extra.pool && typeof extra.pool === 'object' ? extra.pool : {}) as Knex.PoolConfig) },
    useNullAsDefault: true,
    ...knexExtra,
  }
  return { config, dialect }
}

/**
 * The file of a SQLite URL, as SQLAlchemy reads it (so Python-era settings keep working):
 * `sqlite:///relative/file.db`, `sqlite:////absolute/file.db`, `sqlite://` or `sqlite:///:memory:` in memory.
 */
export function sqlitePath(url: string, cwd = process.cwd()): string {
  const rest = url.replace(/^sqlite:\/\//i, '')
  if (rest === '' || rest === '/' || rest === '/:memory:') return ':memory:'
  const path = decodeURIComponent(rest.startsWith('/') ? rest.slice(1) : rest).replace(/\?.*$/, '')
  return nodePath.isAbsolute(path) ? path : nodePath.resolve(cwd, path)
}

/**
 * Connection `db` of sql.Uploader: `ACHVY_CNXN__DB__URL` (`postgres://…`, `mysql://…`, `sqlite:///file.db`) and
 * optional knex options in `ACHVY_CNXN__DB__JSONDATA` (`{"pool": {"max": 4}, "connection": {...}, "knex": {...}}`).
 */
export class SqlConnection extends Connection {
  static override requiredAttributes = ['url']
  private instance: Knex | undefined
  private dialectInstance: Dialect | undefined

  /**
   * Checks the URL and that its driver is installed as soon as the connection is configured, so that a bad address
   * (`ANCH_ERR_SQL_URL`) or a missing driver (`ANCH_ERR_SQL_DRIVER`) stops the run at startup under its own code.
   */
  constructor(attrs: ConstructorParameters<typeof Connection>[0]) {
    super(attrs)
    if (typeof attrs.url === 'string' && attrs.url !== '') this.dialectInstance = knexConfig(attrs.url, attrs).dialect
  }

  /** The knex instance (after connect). */
  get knex(): Knex {
    if (!this.instance) throw sqlError('ANCH_ERR_SQL_CONNECTION', 'the database connection is not open')
    return this.instance
  }

  /** The SQL dialect of the URL. */
  get dialect(): Dialect {
    if (!this.dialectInstance) this.dialectInstance = knexConfig(String(this.attrs.url), this.attrs).dialect
    return this.dialectInstance
  }

  override async connect(): Promise<void> {
    const { config, dialect } = knexConfig(String(this.attrs.url), this.attrs)
    this.dialectInstance = dialect
    this.instance = knexFactory(config)
    await this.check()
  }

  override async close(): Promise<void> {
    const k = this.instance
    this.instance = undefined
    await k?.destroy()
  }

  override async check(): Promise<void> {
    try {
      await this.knex.raw('SELECT 1')
    } catch (cause) {
      throw sqlError(
        'ANCH_ERR_SQL_CONNECTION',
        `database connection db (ACHVY_CNXN__DB__URL=${describeUrl(String(this.attrs.url))}) failed: ${(cause as Error).message}`,
        { cause },
      )
    }
  }

  /** Runs `fn` on one pinned connection and releases it afterwards. */
  async withSession<T>(fn: (session: Session, raw: unknown) => Promise<T>): Promise<T> {
    const client = this.knex.client as {
      acquireConnection(): Promise<unknown>
      releaseConnection(c: unknown): Promise<unknown>
    }
    const raw = await client.acquireConnection()
    try {
      return await fn(this.dialect.session(raw), raw)
    } finally {
      await client.releaseConnection(raw)
    }
  }
}
