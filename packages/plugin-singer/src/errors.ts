/** Error codes the singer plugin raises, with what they mean and how to fix them (for docs/errors.md). */
export const SINGER_ERROR_CODES = {
  ANCH_ERR_SINGER_PROTOCOL: [
    "A tap wrote something that is not a valid Singer message: a line that is not JSON, a message without a known `type`, a RECORD before its stream's SCHEMA, a SCHEMA that declares no properties, a record missing a required property or holding a value its schema does not allow.",
    'Fix the tap (the message names the stream and the stdout line); nothing after the last STATE was committed, so the next run starts from there.',
  ],
  ANCH_ERR_SINGER_PROCESS: [
    'A tap or target process could not be started (missing executable, not executable), exited non-zero, was killed, or kept running past the execution timeout (`-t`).',
    "Check the `COMMAND` of the connection and the process's own log lines (its stderr is in the anchovy's log); nothing after the last STATE (tap) or the last echoed STATE (target) was committed.",
  ],
  ANCH_ERR_SINGER_CONFIG: [
    'A singer connection attribute or table setting is invalid (a CONFIG or CATALOG file that cannot be read or parsed, an unknown `flush_on`).',
    'Fix the attribute named in the message; see the plugin README.',
  ],
} as const satisfies Record<string, readonly [meaning: string, fix: string]>

/** A machine-readable error code of the singer plugin. */
export type SingerErrorCode = keyof typeof SINGER_ERROR_CODES

/** An error of the singer plugin; `code` is one of SINGER_ERROR_CODES. */
export class SingerError extends Error {
  override name = 'SingerError'
  constructor(
    readonly code: SingerErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}
