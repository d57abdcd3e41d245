/** The type of a setting's value. */
export type SettingType = 'string' | 'int' | 'number' | 'bool' | 'list'

/** One setting, declared once: it renders `--help`, the docs table, and is validated at startup. */
export interface SettingSpec {
  /** Key in the `config:` map of config.yaml (and the resolved settings object). */
  readonly key: string
  /** Environment variable(s), first one documented. */
  readonly env: readonly string[]
  /** commander flags, e.g. `-t, --execution-timeout <seconds>`; absent = no CLI flag. */
  readonly flags?: string
  readonly type: SettingType
  readonly description: string
  readonly default?: unknown
  readonly min?: number
  readonly max?: number
  /** For a bool read from env/config under an inverted name (`ACHVY_IS_TASK_EXECUTOR` = not service). */
  readonly invertedEnv?: readonly string[]
  readonly invertedKeys?: readonly string[]
  /** Accepted values (string settings). */
  readonly choices?: readonly string[]
  /** Why `min` is what it is (appended to the error message). */
  readonly minReason?: string
  /** Why `max` is what it is (appended to the error message). */
  readonly maxReason?: string
}

/** The longest Node timer, in whole seconds: a longer delay fires after 1 ms instead (TimeoutOverflowWarning). */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000)

/**
 * The shortest run lock TTL: the runtime renews the lock every `max(1 s, lock_ttl / 3)`, so below 3 s the
 * renewal interval reaches the TTL and a live holder's lock looks stale between two heartbeats.
 */
export const MIN_LOCK_TTL_SECONDS = 3

const TIMER_REASON = `seconds: a longer delay overflows Node's timers, about 24 days`

/** Every core setting of `anchovy start`. Plugins add theirs through the operator's `static settings`. */
export const CORE_SETTINGS: readonly SettingSpec[] = [
  {
    key: 'id',
    env: ['ACHVY_ID'],
    flags: '-i, --id <id>',
    type: 'string',
    description: 'the anchovy id (heavily recommended); default: the host name',
  },
  {
    key: 'user',
    env: ['ACHVY_USER'],
    flags: '-u, --user <user>',
    type: 'string',
    description:
      'the anchovy user (development name, or prod); default: the OS user ($USER, $LOGNAME, the password database, else the numeric uid)',
  },
  {
    key: 'operator_cls',
    env: ['ACHVY_OPERATOR_CLS'],
    flags: '-o, --operator-cls <operator>',
    type: 'string',
    description:
      'operator to run: plugin.Class (e.g. sftp.CsvDownloader), package.Class or ./module.js:Class (alias -op)',
  },
  {
    key: 'service',
    env: [],
    invertedEnv: ['ACHVY_IS_TASK_EXECUTOR'],
    invertedKeys: ['is_task_executor'],
    flags: '-S, --service',
    type: 'bool',
    default: false,
    description: 'run as a service: batches in a loop until SIGTERM/SIGINT (--no-service overrides the env)',
  },
  {
    key: 'interval',
    env: ['ACHVY_INTERVAL'],
    flags: '--interval <seconds>',
    type: 'number',
    default: 60,
    min: 0,
    max: MAX_TIMER_SECONDS,
    maxReason: TIMER_REASON,
    description: 'service mode: pause between batches',
  },
  {
    key: 'follow',
    env: ['ACHVY_FOLLOW'],
    flags: '--follow',
    type: 'bool',
    default: false,
    description:
      'service mode, uploaders: start the next batch as soon as an upstream anchovy commits (checked 4 times a second), at the latest after --interval',
  },
  {
    key: 'max_batches',
    env: ['ACHVY_MAX_BATCHES'],
    flags: '--max-batches <n>',
    type: 'int',
    default: 0,
    min: 0,
    description: 'service mode: stop after this many batches (0 = until signalled)',
  },
  {
    key: 'execution_timeout',
    env: ['ACHVY_EXECUTION_TIMEOUT'],
    flags: '-t, --execution-timeout <seconds>',
    type: 'number',
    min: 0,
    max: MAX_TIMER_SECONDS,
    maxReason: TIMER_REASON,
    description: 'abort a batch that runs longer than this (exit 124); default: none',
  },
  {
    key: 'abort_grace',
    env: ['ACHVY_ABORT_GRACE'],
    flags: '--abort-grace <seconds>',
    type: 'number',
    default: 5,
    min: 0,
    max: MAX_TIMER_SECONDS,
    maxReason: TIMER_REASON,
    description: 'after a timeout or signal, how long user code may take to stop before it is abandoned',
  },
  {
    key: 'upstream',
    env: ['ACHVY_UPSTREAM'],
    flags: '-U, --upstream <id>',
    type: 'list',
    default: [],
    description: 'upstream anchovy ids whose data and tables an uploader reads (repeatable)',
  },
  {
    key: 'enabled',
    env: ['ACHVY_ENABLED'],
    flags: '-e, --enable <table>',
    type: 'list',
    default: [],
    description: 'run only these tables (repeatable; bare or upstream.table names)',
  },
  {
    key: 'disabled',
    env: ['ACHVY_DISABLED'],
    flags: '-d, --disable <table>',
    type: 'list',
    default: [],
    description: 'skip these tables; wins over --enable (repeatable)',
  },
  {
    key: 'concurrency',
    env: ['ACHVY_CONCURRENCY'],
    flags: '--concurrency <n>',
    type: 'int',
    default: 1,
    min: 1,
    description: 'tables run at the same time',
  },
  {
    key: 'workers',
    env: ['ACHVY_WORKERS'],
    flags: '--workers <n>',
    type: 'int',
    default: 1,
    min: 1,
    description:
      'run as one of this many workers of the anchovy, each with a stable, disjoint share of the tables (by a hash of the table name)',
  },
  {
    key: 'worker_num',
    env: ['ACHVY_WORKER_NUM', 'JOB_COMPLETION_INDEX'],
    flags: '--worker-num <i>',
    type: 'int',
    default: 0,
    min: 0,
    description: "which worker this is, 0 to workers-1 (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX when unset)",
  },
  {
    key: 'batch_max_rows',
    env: ['ACHVY_BATCH_MAX_ROWS'],
    type: 'int',
    default: 1_000_000,
    min: 0,
    description:
      "a source's commit point commits once a table staged this many rows since its last commit (0 = no row limit)",
  },
  {
    key: 'batch_max_bytes',
    env: ['ACHVY_BATCH_MAX_BYTES'],
    type: 'int',
    default: 256 * 1024 * 1024,
    min: 0,
    description:
      "a source's commit point commits once a table staged this many uncompressed bytes since its last commit (0 = no byte limit)",
  },
  {
    key: 'commit_interval',
    env: ['ACHVY_COMMIT_INTERVAL'],
    type: 'number',
    default: 0,
    min: 0,
    max: MAX_TIMER_SECONDS,
    maxReason: TIMER_REASON,
    description:
      "a source's commit point commits once this many seconds passed since the table's last commit (0 = no time limit)",
  },
  {
    key: 'commit_retention_days',
    env: ['ACHVY_COMMIT_RETENTION_DAYS'],
    type: 'number',
    default: 0,
    min: 0,
    description:
      'after a clean run, remove commit records older than this many days that every registered reader (uploader) has read; the newest is always kept (0 = keep all)',
  },
  {
    key: 'strict',
    env: ['ACHVY_STRICT'],
    flags: '--strict',
    type: 'bool',
    default: false,
    description:
      'a warning about the selection (an -e/-d name or glob matching no table, an -U anchovy that never committed) is a configuration error: exit 2 before any table runs',
  },
  {
    key: 'prod',
    env: ['ACHVY_PROD'],
    type: 'bool',
    default: false,
    description: 'production (--prod): the user "prod", --strict, and --id (or ACHVY_ID, config.id) is required',
  },
  {
    key: 'allow_failures',
    env: ['ACHVY_ALLOW_FAILURES'],
    flags: '--allow-failures',
    type: 'bool',
    default: false,
    description:
      'a run whose only failures are tables exits 0 with status DEGRADED (failures recorded in the task log and results; per table: allow_failure: true in tbls)',
  },
  {
    key: 'log_retention_days',
    env: ['ACHVY_LOG_RETENTION_DAYS'],
    type: 'number',
    default: 0,
    min: 0,
    description:
      "at the end of a run that was not stopped, delete this anchovy's task logs and per-session results last written more than this many days ago; never those of the run itself or of the latest run of any worker (0 = keep forever)",
  },
  {
    key: 'fail_fast',
    env: ['ACHVY_FAIL_FAST'],
    flags: '--fail-fast',
    type: 'bool',
    default: false,
    description: 'stop the batch at the first failing table (--no-fail-fast overrides the env)',
  },
  {
    key: 'datastore',
    env: ['ACHVY_DATASTORE'],
    flags: '--datastore <path-or-url>',
    type: 'string',
    description:
      "datastore root: a folder or a URL a plugin handles (az://…); default: ACHVY_HOME, else ~/.anchovies (~ is $HOME, else the password database's home)",
  },
  {
    key: 'checkpoint_cls',
    env: ['ACHVY_CHECKPOINT_CLS'],
    flags: '--checkpoint-cls <class>',
    type: 'string',
    description: 'checkpoint store class (plugin.Class or ./module.js:Class)',
  },
  {
    key: 'task_store_cls',
    env: ['ACHVY_TASK_STORE_CLS'],
    flags: '--task-store-cls <class>',
    type: 'string',
    description: 'task log store class; built in: default, hive',
  },
  {
    key: 'tbl_store_cls',
    env: ['ACHVY_TBL_STORE_CLS'],
    flags: '--tbl-store-cls <class>',
    type: 'string',
    description: 'table metadata store class',
  },
  {
    key: 'data_buffer_cls',
    env: ['ACHVY_DATA_BUFFER_CLS'],
    flags: '--data-buffer-cls <class>',
    type: 'string',
    description: 'data buffer class (the data file format)',
  },
  {
    key: 'log_level',
    env: ['ACHVY_LOG_LEVEL'],
    flags: '--log-level <level>',
    type: 'string',
    default: 'info',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    description: 'log level',
  },
  {
    key: 'lock_ttl',
    env: ['ACHVY_LOCK_TTL'],
    flags: '--lock-ttl <seconds>',
    type: 'number',
    default: 60,
    min: MIN_LOCK_TTL_SECONDS,
    max: MAX_TIMER_SECONDS,
    minReason: `seconds: the lock is renewed every lock_ttl/3 seconds but at most once a second, so a shorter TTL lets a live holder's lock be taken over`,
    maxReason: TIMER_REASON,
    description: `a run lock whose heartbeat is older than this is taken over (at least ${MIN_LOCK_TTL_SECONDS}: the lock is renewed every lock_ttl/3 seconds)`,
  },
  {
    key: 'stream_queue_size',
    env: ['ACHVY_STREAM_QUEUE_SIZE'],
    type: 'int',
    default: 1000,
    min: 1,
    description: 'rows buffered between a source and each of its sinks',
  },
  {
    key: 'data_file_max_bytes',
    env: ['ACHVY_DATA_FILE_MAX_BYTES'],
    type: 'int',
    default: 64 * 1024 * 1024,
    min: 1024,
    description: 'data files roll over after this many uncompressed bytes',
  },
  {
    key: 'data_compression_level',
    env: ['ACHVY_DATA_COMPRESSION_LEVEL'],
    type: 'int',
    default: 1,
    min: 1,
    max: 9,
    description: 'gzip level of data files',
  },
  {
    key: 'upload_batch_size',
    env: ['ACHVY_UPLOAD_BATCH_SIZE'],
    type: 'int',
    default: 0,
    min: 0,
    description: 'uploaders: read at most this many uncompressed bytes of upstream data per table and batch (0 = all)',
  },
  {
    key: 'progress_interval',
    env: ['ACHVY_PROGRESS_INTERVAL'],
    type: 'number',
    default: 10,
    min: 0,
    max: MAX_TIMER_SECONDS,
    maxReason: TIMER_REASON,
    description: 'seconds between progress log lines of a long table (0 = off)',
  },
]
