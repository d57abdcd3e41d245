/** Every error code anchovies raises, with what it means and how to fix it (rendered into docs/errors.md). */
export const ERROR_CODES = {
  ANCH_ERR_CONFIG: [
    'The configuration is invalid (file, key or env var named in the message).',
    'Fix the named setting; `anchovy start --help` lists every flag.',
  ],
  ANCH_ERR_USAGE: ['The command line could not be understood.', 'Check the flags with `anchovy <command> --help`.'],
  ANCH_ERR_NAME: [
    'An id, user, table name or checkpoint key is not allowed (path separators, `..`, control characters).',
    'Use letters, digits, `_`, `-` and (for keys) `.`.',
  ],
  ANCH_ERR_PLUGIN_LOAD: [
    'A plugin or module named by `-op`/`--*-cls` could not be loaded.',
    'Install the package, or check the module path and the exported class name.',
  ],
  ANCH_ERR_CORE_COPIES: [
    'Two copies of `@anchovies/core` from different folders were loaded in one process (a plugin brought its own); the message names both.',
    'Install one copy: align the `@anchovies/core` versions the plugins ask for (a peer dependency) and run `npm dedupe`; `npm ls @anchovies/core` shows where the second came from.',
  ],
  ANCH_ERR_CONNECTION_MISSING: [
    'A connection the operator needs is not configured.',
    'Set the `ACHVY_CNXN__<ID>__<ATTR>` variables named in the message.',
  ],
  ANCH_ERR_CONNECTION_CLASS: [
    "`@connection('id')` names a connection whose class cannot be found: the operator's module has no `definePlugin` default export providing it (a CommonJS build loses it), and the decorator names no class.",
    "Pass the class, `@connection('id', MyConnection)`, or default-export `definePlugin({ name, operators, connections: { id: MyConnection } })` from the operator's ES module.",
  ],
  ANCH_ERR_CONNECTION: [
    'Opening, checking or closing a connection failed.',
    'Check the connection settings and that the system is reachable.',
  ],
  ANCH_ERR_LOCKED: [
    'Another run of the same anchovy (user + id) holds the lock.',
    'Wait for it to finish; a dead holder is taken over once its heartbeat is stale.',
  ],
  ANCH_ERR_TIMEOUT: [
    'The batch ran longer than the execution timeout (`-t`, `ACHVY_EXECUTION_TIMEOUT`).',
    'Raise the timeout or make batches smaller.',
  ],
  ANCH_ERR_TIMEOUT_KILLED: [
    'With `-t`, a phase (startup, a batch, shutdown) kept the process busy past the timeout plus twice `abort_grace` (CPU-bound or blocking code that never yields), so the supervisor killed it; exit 124.',
    "Make the named phase's code yield (await) and honour its AbortSignal, or raise `-t`. Nothing to clean up: the next run removes the batch's uncommitted files.",
  ],
  ANCH_ERR_RUN_DIED: [
    "With `-t`, the anchovy's process ended without finishing its run (a second SIGTERM/SIGINT, a crash, an out-of-memory kill); the supervisor wrote the results.",
    'See the log above the message; the next run recovers (the lock was released, uncommitted files are removed).',
  ],
  ANCH_ERR_STALLED: [
    'The run stalled: a hook, source or sink awaits a promise that can never settle (nothing was left for it to wait on).',
    'Fix the operator code named in the task log; the run stopped cleanly, committed what completed and released its lock.',
  ],
  ANCH_ERR_ABORTED: [
    'The batch was aborted by SIGTERM/SIGINT.',
    'Nothing to fix: completed tables were committed, the rest runs next time.',
  ],
  ANCH_ERR_DATASTORE: [
    'Reading or writing the datastore failed.',
    'Check the datastore path or URL, permissions and free space.',
  ],
  ANCH_ERR_DATASTORE_CORRUPT: [
    'A file in the datastore cannot be trusted: a commit record, checkpoint, table metadata or in-flight marker does not parse; a commit record is missing (a gap in the sequence, or a reader position past the newest commit); a data file does not hold the rows and bytes its commit record says; a checkpoint file does not hold the value its commit wrote.',
    'Inspect the named file; restore it from backup, or repair it deliberately (`anchovy checkpoint set/delete` for a checkpoint). anchovies never silently skips, re-reads or restarts from zero.',
  ],
  ANCH_ERR_DATA_FORMAT: [
    'A data file or row cannot be encoded or decoded.',
    'Check the named file and line; values must be JSON-serialisable.',
  ],
  ANCH_ERR_NO_SOURCE: [
    'A selected table has no matching `@source` or no sink.',
    'Add a `@source`/`@sink` for the table or disable it with `-d`.',
  ],
  ANCH_ERR_CONTEXT: [
    '`context()`, `session()` or `batch()` was called outside a run.',
    'Call them only from operator methods while anchovies runs them.',
  ],
  ANCH_ERR_TABLE: ['A table task failed.', 'See the cause in the task log; the table is retried on the next run.'],
  ANCH_ERR_PHASE: ['An `@onTask` hook failed.', 'See the cause in the task log.'],
} as const satisfies Record<string, readonly [meaning: string, fix: string]>

/** A machine-readable error code, `ANCH_ERR_<AREA>_<WHAT>`: core's, or a plugin's own. */
export type ErrorCode = keyof typeof ERROR_CODES | `ANCH_ERR_${string}`

/** The base class of every error anchovies raises on purpose. */
export class AnchoviesError extends Error {
  override name = 'AnchoviesError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** Raised (and recorded in the task log) when a batch exceeds the execution timeout. */
export class AnchovyExecutionTimeout extends AnchoviesError {
  override name = 'AnchovyExecutionTimeout'
  constructor(readonly seconds: number) {
    super('ANCH_ERR_TIMEOUT', `the batch exceeded the execution timeout of ${seconds}s`)
  }
}

/** Raised when a second run of the same anchovy finds the lock held; the CLI exits 75. */
export class AnchovyLocked extends AnchoviesError {
  override name = 'AnchovyLocked'
  constructor(
    readonly holder: { host: string; pid: number; since: string; supervisor_pid?: number },
    where: string,
  ) {
    // With a supervisor (`anchovy start -t`) its pid is the one to signal; the run's own process follows.
    const run = holder.supervisor_pid ? `; run process ${holder.pid}` : ''
    super(
      'ANCH_ERR_LOCKED',
      `${where} is already running on host ${holder.host} (pid ${holder.supervisor_pid ?? holder.pid}, since ${holder.since}${run})`,
    )
  }
}

/** Core codes that mean "fix the configuration or installation": nothing ran, the CLI exits 2. */
const CONFIG_CODES: ReadonlySet<string> = new Set([
  'ANCH_ERR_CONFIG',
  'ANCH_ERR_USAGE',
  'ANCH_ERR_NAME',
  'ANCH_ERR_PLUGIN_LOAD',
  'ANCH_ERR_CONNECTION_MISSING',
  'ANCH_ERR_CONNECTION_CLASS',
])

/**
 * True for a configuration error (exit 2): a core code above, or a plugin's `ANCH_ERR_<PLUGIN>_CONFIG`,
 * `…_URL` (a connection URL) or `…_DRIVER` (a driver package that is not installed).
 */
export function isConfigError(err: unknown): boolean {
  return (
    err instanceof AnchoviesError &&
    (CONFIG_CODES.has(err.code) || /^ANCH_ERR_[A-Z0-9]+_(?:CONFIG|URL|DRIVER)$/.test(err.code))
  )
}

/** True when `err` is an AnchoviesError, optionally with the given code. */
export function isAnchoviesError(err: unknown, code?: ErrorCode): err is AnchoviesError {
  return err instanceof AnchoviesError && (code === undefined || err.code === code)
}

/** Process exit codes of the `anchovy` CLI (DEGRADED: `anchovy healthcheck` of a run that ended DEGRADED). */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, DEGRADED: 3, LOCKED: 75, TIMEOUT: 124 } as const
