/** Error codes the sql plugin raises, with what they mean and how to fix them (rendered into docs/errors.md). */
export const SQL_ERROR_CODES = {
  ANCH_ERR_SQL_URL: [
    'A database URL (`ACHVY_CNXN__DB__URL`) cannot be parsed or names an unknown scheme; the message shows the scheme but no credentials.',
    'Write it as `postgres://`, `mysql://`, `mariadb://` or `sqlite:///path`; an `@` in the query string must be written `%40`.',
  ],
  ANCH_ERR_SQL_UNSUPPORTED: [
    'The database is not supported yet (`mssql://`).',
    'Load into PostgreSQL, MySQL/MariaDB or SQLite.',
  ],
  ANCH_ERR_SQL_DRIVER: [
    'The driver package for the database is not installed (`pg`, `pg-copy-streams`, `mysql2`, `better-sqlite3`); raised at startup.',
    'Run the `npm install` the message names.',
  ],
  ANCH_ERR_SQL_CONNECTION: [
    'Connecting to the database failed, or the connection was used while closed.',
    'Check the URL, the credentials and that the database is reachable.',
  ],
  ANCH_ERR_SQL_NAME: [
    'A table or column name cannot be used in the target database: reserved by `sql.Uploader`, too long, or equal to another name but for case.',
    'Rename the table or column upstream (the message says which and why).',
  ],
  ANCH_ERR_SQL_NULL_KEY: [
    'A `unique_by`/`set_by` key column is empty in a row (the message names the file and row).',
    "Fix the upstream data or the table's `unique_by`.",
  ],
  ANCH_ERR_SQL_KEY_TOO_LONG: [
    'A key value is longer than the database allows in a key (MySQL: 768 characters).',
    'Shorten the key upstream or choose another `unique_by`.',
  ],
  ANCH_ERR_SQL_VALUE: [
    'The database could not store a value exactly (MySQL warnings while staging).',
    'Check the column type against the values named in the message.',
  ],
  ANCH_ERR_SQL_LEDGER: [
    "The uploader's bookkeeping in the target database disagrees with the datastore: another run loaded some of the same upstream files meanwhile, or a ledger/meta row does not parse.",
    'Rerun to load the rest; for a damaged meta row, fix or delete it as the message says.',
  ],
} as const satisfies Record<`ANCH_ERR_SQL_${string}`, readonly [meaning: string, fix: string]>
