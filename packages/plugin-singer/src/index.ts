import { definePlugin } from '@anchovies/core'
import { SINGER_ERROR_CODES } from './errors.js'
import { TapConnection, TapDownloader } from './tap-downloader.js'
import { TargetConnection, TargetUploader } from './target-uploader.js'

export { TapDownloader, TapConnection, TAP_TABLE, STATE_KEY, CATALOG_KEY, tableName } from './tap-downloader.js'
export { TargetUploader, TargetConnection } from './target-uploader.js'
export { SingerError, SINGER_ERROR_CODES } from './errors.js'
export type { SingerErrorCode } from './errors.js'
export { streamShape, propertyKind, convertRecord, columnSchema } from './json-schema.js'
export { catalogStreams, selectStreams } from './catalog.js'
export { parseLossless, stringifyMessage } from './messages.js'

/** The singer plugin: `anchovy start -op singer.TapDownloader` and `-op singer.TargetUploader`. */
export default definePlugin({
  name: 'singer',
  operators: { TapDownloader, TargetUploader },
  connections: { tap: TapConnection, target: TargetConnection },
  errors: SINGER_ERROR_CODES,
})
