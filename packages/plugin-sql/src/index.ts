import { definePlugin } from '@anchovies/core'
import { SQL_ERROR_CODES } from './errors.js'
import { SqlConnection } from './sql-connection.js'
import { SqlDownloader } from './sql-downloader.js'
import { SqlUploader } from './sql-uploader.js'

export { SqlConnection, knexConfig, sqlitePath } from './sql-connection.js'
export { SqlUploader } from './sql-uploader.js'
export { SQL_ERROR_CODES } from './errors.js'
export { SqlDownloader, DOWNLOADER_SETTINGS } from './sql-downloader.js'
export { SQL_SETTINGS, targetOf } from './config.js'
export type { Target, SqlSettings } from './config.js'
export { LEDGER_TABLE, META_TABLE } from './ledger.js'

/** The sql plugin: `-op sql.Uploader` and `-op sql.Downloader`, connection `db` (`ACHVY_CNXN__DB__URL`). */
export default definePlugin({
  name: 'sql',
  operators: { Uploader: SqlUploader, Downloader: SqlDownloader },
  connections: { db: SqlConnection },
  errors: SQL_ERROR_CODES,
})
