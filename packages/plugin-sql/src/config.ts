import type { SettingSpec, Table } from '@anchovies/core'

/** The settings `sql.Uploader` adds to `anchovy start` (env, config.yaml `config:` or flags). */
export const SQL_SETTINGS: readonly SettingSpec[] = [
  {
    key: 'dataset_primary_length',
    env: ['DATASET_PRIMARY_LENGTH', 'ACHVY_DATASET_PRIMARY_LENGTH'],
    type: 'int',
    default: 40,
    min: 1,
    max: 768,
    description: 'sql: length of string key columns (unique_by/set_by) where the dialect needs one (MySQL/MariaDB)',
  },
  {
    key: 'dataset_default_length',
    env: ['DATASET_DEFAULT_LENGTH', 'ACHVY_DATASET_DEFAULT_LENGTH'],
    type: 'int',
    default: 255,
    min: 1,
    max: 16383,
    description:
      'sql: length of other string columns where the dialect needs one; longer values widen the column to a text type',
  },
  {
    key: 'dataset_chunksize',
    env: ['DATASET_CHUNKSIZE', 'ACHVY_DATASET_CHUNKSIZE'],
    flags: '--dataset-chunksize <rows>',
    type: 'int',
    default: 50_000,
    min: -1,
    description: 'sql: rows held in memory and bulk-loaded at a time (-1 = all rows at once)',
  },
  {
    key: 'dataset_data_retention_seconds',
    env: ['DATASET_DATA_RETENTION_SECONDS', 'ACHVY_DATASET_DATA_RETENTION_SECONDS'],
    type: 'number',
    default: -1,
    description:
      "sql: physically delete rows superseded (_del) longer ago than this; -1 = keep history forever (a table's deleted_ttl wins)",
  },
  {
    key: 'sql_no_schema_name',
    env: ['ACHVY_SQL_NO_SCHEMA_NAME'],
    type: 'bool',
    default: false,
    description: "sql: put every table in the connection's default schema, named like its upstream table",
  },
  {
    key: 'sql_schema_prefix',
    env: ['ACHVY_SQL_SCHEMA_PREFIX'],
    type: 'bool',
    default: false,
    description: 'sql: do not create schemas; prefix table names with <schema>__ instead (always on for SQLite)',
  },
  {
    key: 'sql_mysql_local_infile',
    env: ['ACHVY_SQL_MYSQL_LOCAL_INFILE'],
    type: 'bool',
    default: true,
    description:
      'sql: stage MySQL/MariaDB rows with LOAD DATA LOCAL INFILE when the server allows it (false: multi-row INSERTs)',
  },
  {
    key: 'sql_fast_path',
    env: ['ACHVY_SQL_FAST_PATH'],
    type: 'string',
    default: 'off',
    choices: ['auto', 'on', 'off'],
    description:
      'sql: byte fast path (data-file members converted in worker threads to the bulk format, no row objects: COPY text for PostgreSQL tables without set_by, LOAD DATA text for MySQL/MariaDB with local infile, JSON arrays for SQLite): off = never (the general path; the default until the chaos suite has run with it), auto = tables with at least 4 MiB to load, on = always',
  },
  {
    key: 'sql_prod_user',
    env: ['ACHVY_SQL_PROD_USER'],
    type: 'string',
    default: 'prod',
    description: 'sql: the user whose schemas have no __<user> suffix',
  },
]

/** The sql settings, resolved. */
export interface SqlSettings {
  readonly primaryLength: number
  readonly defaultLength: number
  readonly chunkSize: number
  readonly retentionSeconds: number
  readonly noSchemaName: boolean
  readonly schemaPrefix: boolean
  readonly prodUser: string
  readonly mysqlLocalInfile: boolean
  readonly fastPath: 'auto' | 'on' | 'off'
}

/** Reads the sql settings from the resolved run settings. */
export function sqlSettings(s: Readonly<Record<string, unknown>>): SqlSettings {
  const chunk = Number(s.dataset_chunksize ?? 50_000)
  return {
    primaryLength: Number(s.dataset_primary_length ?? 40),
    defaultLength: Number(s.dataset_default_length ?? 255),
    chunkSize: chunk <= 0 ? Number.MAX_SAFE_INTEGER : chunk,
    retentionSeconds: Number(s.dataset_data_retention_seconds ?? -1),
    noSchemaName: Boolean(s.sql_no_schema_name),
    schemaPrefix: Boolean(s.sql_schema_prefix),
    prodUser: String(s.sql_prod_user ?? 'prod'),
    mysqlLocalInfile: s.sql_mysql_local_infile !== false,
    fastPath: s.sql_fast_path === 'on' || s.sql_fast_path === 'auto' ? s.sql_fast_path : 'off',
  }
}

/** Where one upstream table lands. */
export interface Target {
  /** Schema (PostgreSQL schema, MySQL database), or null for the connection's default. */
  readonly schema: string | null
  readonly table: string
}

/**
 * The target of an upstream table: schema = `ACHVY_CNXN__SCHEMAS__<ANCHOVY_ID>` (ids matched case-insensitively)
 * or the anchovy id, suffixed `__<user>` unless the user is the prod user. A table property `sql_table`
 * renames the target table.
 */
export function targetOf(
  table: Table,
  opts: {
    user: string
    anchovyId: string
    settings: SqlSettings
    schemaMap: ReadonlyMap<string, string>
    schemas: boolean
  },
): Target {
  const rename = Object.hasOwn(table.properties, 'sql_table') ? table.properties.sql_table : undefined
  const name = typeof rename === 'string' && rename ? rename : table.name
  if (opts.settings.noSchemaName) return { schema: null, table: name }
  const id = table.namespace ?? opts.anchovyId
  const base = opts.schemaMap.get(envKey(id)) ?? id
  const schema = opts.user === opts.settings.prodUser ? base : `${base}__${opts.user}`
  if (!opts.schemas || opts.settings.schemaPrefix) return { schema: null, table: `${schema}__${name}` }
  return { schema, table: name }
}

/**
 * The `ACHVY_CNXN__SCHEMAS__<ID>=<schema>` map (the `schemas` connection's attributes), keyed like `envKey`:
 * ids match case-insensitively, and `-`/`.` in an id may be written `_` (env names cannot hold them).
 */
export function schemaMap(attrs: Readonly<Record<string, unknown>> | undefined): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of Object.entries(attrs ?? {})) if (typeof v === 'string' && v) out.set(envKey(k), v)
  return out
}

/** An anchovy id as it can appear in an env var name: lower-cased, `-` and `.` as `_`. */
function envKey(id: string): string {
  return id.toLowerCase().replace(/[^a-z0-9_]/g, '_')
}
