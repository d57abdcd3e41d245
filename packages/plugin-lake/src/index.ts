import { definePlugin } from '@anchovies/core'
import { LAKE_ERROR_CODES } from './errors.js'
import { LakeConnection } from './lake-connection.js'
import { ParquetUploader } from './parquet-uploader.js'

export { ParquetUploader } from './parquet-uploader.js'
export { LakeConnection } from './lake-connection.js'
export { LAKE_ERROR_CODES } from './errors.js'
export { LAKE_SETTINGS } from './config.js'
export { LAKE_TYPES } from './column-types.js'
export type { LakeType, ColumnState } from './column-types.js'
export type { LoadRecord, LoadFile, SchemaChange } from './load-log.js'

/** The lake plugin: `-op lake.ParquetUploader`, connection `lake` (`ACHVY_CNXN__LAKE__URL`). */
export default definePlugin({
  name: 'lake',
  operators: { ParquetUploader },
  connections: { lake: LakeConnection },
  errors: LAKE_ERROR_CODES,
})
