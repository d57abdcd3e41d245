import { AnchoviesError } from '@anchovies/core'

/** Error codes the sftp plugin raises, with what they mean and how to fix them (for docs/errors.md). */
export const SFTP_ERROR_CODES = {
  ANCH_ERR_SFTP_CONFIG: [
    'A `tbls.<name>` setting or connection attribute of the sftp plugin is invalid.',
    'Fix the setting named in the message; see the plugin README settings table.',
  ],
  ANCH_ERR_SFTP_CONNECT: [
    'The SFTP server could not be reached or the session dropped, after every retry.',
    'Check host, port and network; raise `retries` for flaky links.',
  ],
  ANCH_ERR_SFTP_AUTH: [
    'The SFTP server rejected the credentials (password or key).',
    'Check the user, password, `PPK_PATH` and `PASSPHRASE`.',
  ],
  ANCH_ERR_SFTP_HOST_KEY: [
    'The server host key does not match `HOST_KEY`/`KNOWN_HOSTS`.',
    'Verify the server fingerprint out of band (`ssh-keygen -lf`) and update the setting.',
  ],
  ANCH_ERR_SFTP_KEY: [
    'The private key file cannot be read or decrypted.',
    'Check `PPK_PATH` and `PASSPHRASE`; PuTTY v3 keys must be converted (`puttygen key.ppk -O private-openssh`).',
  ],
  ANCH_ERR_SFTP_PATH: [
    'A folder named by a table `path` (or `after: move:`) does not exist or cannot be read.',
    'Check the path relative to the connection base and the server permissions.',
  ],
  ANCH_ERR_SFTP_FILE_CHANGED: [
    'A file changed while it was being read (still being uploaded?).',
    'Set `min_age` so files are taken only once they stopped changing; the file is read again next run.',
  ],
  ANCH_ERR_SFTP_LIMIT: [
    'A limit that guards against hostile files was reached: a gzip file decompresses past `max_decompressed_size` or `max_compression_ratio`, or a `**` walk goes deeper than `max_depth`.',
    'If the file or tree is genuine, raise the setting named in the message; otherwise remove the file from the server.',
  ],
  ANCH_ERR_SFTP_RESUME: [
    'The resume checkpoint `sftp.<table>.resume` (where a partly read file goes on) does not hold a valid position.',
    'Inspect it with `anchovy checkpoint get`; `anchovy checkpoint delete sftp.<table>.resume` reads the file again from the start (rows already committed from it are then delivered twice).',
  ],
  ANCH_ERR_CSV_PARSE: [
    'A row of a delimited file is malformed (ragged row, bad quote, invalid encoding, oversized record).',
    'Fix the file, or set `on_bad_row: skip` or `quarantine`.',
  ],
  ANCH_ERR_CSV_VALUE: [
    'A value does not convert to the type declared in `columns`.',
    'Fix the value or the column type/format, or set `on_bad_row: skip` or `quarantine`.',
  ],
} as const satisfies Record<string, readonly [meaning: string, fix: string]>

/** A machine-readable error code of the sftp plugin. */
export type SftpErrorCode = keyof typeof SFTP_ERROR_CODES

/** An error of the sftp plugin: an AnchoviesError whose `code` is one of SFTP_ERROR_CODES. */
export class SftpError extends AnchoviesError {
  override name = 'SftpError'
  declare readonly code: SftpErrorCode
  constructor(code: SftpErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options)
  }
}

/** A malformed row or value: where it is and why (used for skip/quarantine and for the failing error). */
export class BadRowError extends SftpError {
  override name = 'BadRowError'
  constructor(
    code: 'ANCH_ERR_CSV_PARSE' | 'ANCH_ERR_CSV_VALUE',
    readonly file: string,
    readonly line: number,
    readonly column: string | undefined,
    readonly reason: string,
    readonly raw: string,
  ) {
    super(code, `${file} line ${line}${column !== undefined ? `, column ${column}` : ''}: ${reason}`)
  }
}
