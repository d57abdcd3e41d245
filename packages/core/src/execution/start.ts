import type { Logger } from 'pino'
import {
  loadDocument,
  parseExtraFlags,
  resolveSettings,
  throwProblems,
  type ConfigSources,
  type Settings,
} from '../config/load-config.js'
import { CORE_SETTINGS } from '../config/settings.js'
import { addProblem } from '../config/problems.js'
import { registerConnectionSecrets } from '../connections/connection.js'
import { isAnchoviesError } from '../errors.js'
import { openDatastore } from '../datastore/open.js'
import { CheckpointStore, DataBuffer, HiveTaskStore, TableStore, TaskStore } from '../datastore/stores.js'
import { createLogger } from '../logging/logger.js'
import { Operator } from '../operators/operator.js'
import { resolveClass } from '../plugins/registry.js'
import type { StoreClasses } from '../datastore/stores.js'
import type { Prepared, RunResult } from './run-options.js'
import { AnchovyRun } from './runtime.js'

export type { Prepared } from './run-options.js'
import type { WatchdogReporter } from './watchdog.js'

/** Built-in names accepted by the `--*-cls` options. */
export const BUILTIN_COMPONENTS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  checkpoint_cls: { default: CheckpointStore },
  task_store_cls: { default: TaskStore, hive: HiveTaskStore },
  tbl_store_cls: { default: TableStore },
  data_buffer_cls: { default: DataBuffer },
}

/** Reads config, env and flags, loads the operator and the store classes; throws one error listing every problem. */
export async function prepareRun(
  src: ConfigSources,
  operatorRequired = true,
  given?: OperatorGiven,
): Promise<Prepared> {
  registerConnectionSecrets(src.env)
  const problems: string[] = []
  const doc = loadDocument(src, problems)
  let settings = resolveSettings(src, doc, [], CORE_SETTINGS)
  let operatorClass: (new () => Operator) | undefined = given?.operator
  let connectionClasses: Prepared['connectionClasses'] = given?.connections ?? {}
  if (operatorClass) {
    // given directly (programmatic use)
  } else if (settings.operator_cls) {
    try {
      const r = await resolveClass<new () => Operator>(settings.operator_cls, 'operators', src.cwd)
      if (!(r.value.prototype instanceof Operator)) {
        problems.push(`operator ${settings.operator_cls} is not a Downloader, Uploader or Operator subclass`)
      } else {
        operatorClass = r.value
        connectionClasses = r.plugin?.connections ?? {}
      }
    } catch (err) {
      addProblem(problems, (err as Error).message, isAnchoviesError(err) ? err.code : 'ANCH_ERR_PLUGIN_LOAD')
    }
  } else if (operatorRequired) {
    problems.push('no operator: pass -op <plugin.Class> (e.g. -op sftp.CsvDownloader) or set ACHVY_OPERATOR_CLS')
  }
  const extra = (operatorClass as unknown as typeof Operator | undefined)?.settings ?? []
  const extraFlags = src.extraArgs?.length ? parseExtraFlags(src.extraArgs, extra, problems) : {}
  settings = resolveSettings({ ...src, flags: { ...src.flags, ...extraFlags } }, doc, problems, [
    ...CORE_SETTINGS,
    ...extra,
  ])
  const stores: Record<string, unknown> = {}
  for (const [key, builtins] of Object.entries(BUILTIN_COMPONENTS)) {
    const ref = settings[key] as string | undefined
    if (!ref || Object.hasOwn(builtins, ref)) {
      stores[key] = builtins[ref ?? 'default']
      continue
    }
    try {
      stores[key] = (await resolveClass(ref, 'components', src.cwd)).value
    } catch (err) {
      addProblem(
        problems,
        `${key}: ${(err as Error).message}`,
        isAnchoviesError(err) ? err.code : 'ANCH_ERR_PLUGIN_LOAD',
      )
    }
  }
  if (settings.prod && settings.id_defaulted) {
    problems.push(
      "--prod requires --id (or ACHVY_ID, config.id): without it the id defaults to the host name, which changes when a pod is recreated and resets the anchovy's progress",
    )
  }
  throwProblems(problems)
  return {
    settings,
    tables: doc.tables,
    operatorClass: operatorClass ?? Operator,
    connectionClasses,
    stores: {
      checkpoint: stores.checkpoint_cls as StoreClasses['checkpoint'],
      task: stores.task_store_cls as StoreClasses['task'],
      table: stores.tbl_store_cls as StoreClasses['table'],
      dataBuffer: stores.data_buffer_cls as StoreClasses['dataBuffer'],
    },
  }
}

/** An operator class handed over directly instead of through `-op`. */
export interface OperatorGiven {
  readonly operator: new () => Operator
  readonly connections?: Prepared['connectionClasses']
}

/** Options of startAnchovy. */
export interface StartOptions {
  readonly logger?: Logger
  readonly handleSignals?: boolean
  /** Run this class instead of resolving `operator_cls`. */
  readonly operator?: OperatorGiven
  /** The supervisor this process runs under (`anchovy start -t`): told the session and each timed phase. */
  readonly watchdog?: WatchdogReporter
}

/** Runs an anchovy the way `anchovy start` does and returns its exit code and results. */
export async function startAnchovy(src: ConfigSources, options: StartOptions = {}): Promise<RunResult> {
  const prepared = await prepareRun(src, true, options.operator)
  const logger = options.logger ?? createLogger(prepared.settings.log_level as 'info')
  const datastore = await openDatastore(prepared.settings.datastore)
  const watchdog = options.watchdog
  try {
    const run = new AnchovyRun({
      ...prepared,
      datastore,
      logger,
      env: src.env,
      handleSignals: options.handleSignals ?? false,
      ...(watchdog
        ? { onPhase: (phase: 'startup' | 'batch' | 'shutdown') => watchdog.phase(phase), supervisorPid: process.ppid }
        : {}),
    })
    if (watchdog) reportSession(watchdog, run, prepared.settings)
    return await run.run()
  } finally {
    await datastore.close().catch(() => undefined)
  }
}

/** Tells the supervisor the session (before the run takes its lock), so it can write the results if it must kill the run. */
function reportSession(watchdog: WatchdogReporter, run: AnchovyRun, s: Settings): void {
  const session = run.sessionInfo
  watchdog.session({
    sessionId: session.sessionId,
    anchovyId: session.anchovyId,
    user: session.user,
    operator: session.operator,
    startedAt: session.startedAt.toISOString(),
    datastore: s.datastore,
    lockTtl: s.lock_ttl,
    settings: { workers: s.workers, worker_num: s.worker_num },
    timing: { timeout: s.execution_timeout ?? 0, grace: s.abort_grace, service: s.service, interval: s.interval },
  })
}
