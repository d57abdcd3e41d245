import type { Logger } from 'pino'
import type { Settings } from '../config/load-config.js'
import type { Datastore } from '../datastore/datastore.js'
import type { StoreClasses } from '../datastore/stores.js'
import type { Operator } from '../operators/operator.js'
import type { Table } from '../types.js'

/** Everything `anchovy start` resolved before running (settings, config tables, classes). */
export interface Prepared {
  readonly settings: Settings
  readonly tables: readonly Table[]
  readonly operatorClass: new () => Operator
  /** Connection classes of the operator's plugin, by connection id. */
  readonly connectionClasses: Readonly<Record<string, new (attrs: Record<string, unknown>) => unknown>>
  readonly stores: StoreClasses
}

/** What a run needs. */
export interface RunOptions extends Prepared {
  readonly datastore: Datastore
  readonly logger: Logger
  readonly env: NodeJS.ProcessEnv
  /** Listen to SIGTERM/SIGINT and to a stalled event loop (the CLI does; tests driving a run in-process may not). */
  readonly handleSignals?: boolean
  /** The pid of the `anchovy start -t` process supervising this run (recorded in the lock). */
  readonly supervisorPid?: number
  /** Called as each timed phase begins (a supervising watchdog re-arms its deadline there). */
  readonly onPhase?: (phase: 'startup' | 'batch' | 'shutdown') => void
}

/** What a finished run reports. */
export interface RunResult {
  readonly exitCode: number
  readonly results: Record<string, unknown>
}
