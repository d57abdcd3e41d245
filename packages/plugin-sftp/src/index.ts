import { definePlugin } from '@anchovies/core'
import { CsvDownloader } from './csv-downloader.js'
import { SFTP_ERROR_CODES } from './errors.js'
import { SftpConnection } from './sftp-connection.js'

export { CsvDownloader } from './csv-downloader.js'
export { SftpConnection, readSftpSettings, isTransient } from './sftp-connection.js'
export type { SftpSettings } from './sftp-connection.js'
export { SftpError, BadRowError, SFTP_ERROR_CODES } from './errors.js'
/** The plugin's error codes (code → [meaning, how to fix]); also given to definePlugin, which renders them in docs/errors.md. */
export { SFTP_ERROR_CODES as ERROR_CODES } from './errors.js'
export type { SftpErrorCode } from './errors.js'
export { TABLE_KEYS } from './config.js'
export type { CsvTableSettings } from './config.js'
export { CsvParser } from './csv-parser.js'
export type { CsvSyntax, CsvHandler } from './csv-parser.js'
export { fingerprint } from './host-key.js'

/** The sftp plugin: `anchovy start -op sftp.CsvDownloader`. */
export default definePlugin({
  name: 'sftp',
  operators: { CsvDownloader },
  connections: { sftp: SftpConnection, default: SftpConnection },
  errors: SFTP_ERROR_CODES,
})
