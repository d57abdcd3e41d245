import { definePlugin } from '@anchovies/core'
import { SqlConnection } from './sql-connection.js'
import { SqlUploader } from './sql-uploader.js'

export { SqlConnection, knexConfig, sqlitePath } from './sql-connection.js'
export { SqlUploader } from './sql-uploader.js'
export { SQL_SETTINGS, targetOf } from './config.js'
export type { Target, SqlSettings } from './config.js'
export { LEDGER_TABLE, META_TABLE } from './ledger.js'

/** The sql plugin: `-op sql.Uploader`, connection `db` (`ACHVY_CNXN__DB__URL`). */
export default definePlugin({ name: 'sql', operators: { Uploader: SqlUploader }, connections: { db: SqlConnection } })
