import { Command } from 'commander'
import { CORE_SETTINGS } from '../../config/settings.js'
import { startAnchovy } from '../../execution/start.js'
import { superviseStart, supervisionPlan, watchdogChild } from '../../execution/watchdog.js'
import { printResults } from '../human-output.js'
import { addSettingOptions } from '../options.js'
import { sourcesOf } from './common.js'

/** `anchovy start`: run an anchovy as a task (default) or a service (`-S`). */
export function startCommand(): Command {
  const cmd = new Command('start')
    .description(
      'run an anchovy: startup → (xopen → tables → xclose) once, or in a loop with -S, → shutdown; prints the results (JSON, or a summary on a terminal)',
    )
    .option('--prod', 'production: the user "prod", --strict, and --id required [env ACHVY_PROD]')
    .option('-c, --config <yaml>', 'inline YAML or JSON configuration document (tbls:, config:)')
    .option('--config-file <path>', 'configuration document (default ./config.yaml when present)')
    .option('--json', 'print the results JSON on stdout even on a terminal (piped output is always JSON)')
  addSettingOptions(cmd, CORE_SETTINGS)
  cmd.allowUnknownOption(true).argument('[operator-options...]', "options declared by the operator's plugin")
  cmd.action(async (extraArgs: string[]) => {
    const src = { ...sourcesOf(cmd, CORE_SETTINGS), extraArgs }
    const watchdog = watchdogChild()
    // With -t the run goes to a child process this one supervises: a busy main thread cannot time itself out.
    const plan = watchdog ? undefined : supervisionPlan(src)
    if (plan) {
      process.exitCode = await superviseStart(plan)
      return
    }
    let exitCode: number | undefined
    try {
      const run = await startAnchovy(src, { handleSignals: true, ...(watchdog ? { watchdog } : {}) })
      exitCode = run.exitCode
      printResults(run.results)
      process.exitCode = exitCode
    } finally {
      watchdog?.done(exitCode)
    }
  })
  return cmd
}
