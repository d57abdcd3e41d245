import { Command } from 'commander'
import { CORE_SETTINGS } from '../../config/settings.js'
import { startAnchovy } from '../../execution/start.js'
import { redact } from '../../logging/secrets.js'
import { addSettingOptions } from '../options.js'
import { sourcesOf } from './common.js'

/** `anchovy start`: run an anchovy as a task (default) or a service (`-S`). */
export function startCommand(): Command {
  const cmd = new Command('start')
    .description('run an anchovy: startup → (xopen → tables → xclose) once, or in a loop with -S, → shutdown; prints the results JSON')
    .option('--prod', 'use the user "prod" (production)')
    .option('-c, --config <yaml>', 'inline YAML or JSON configuration document (tbls:, config:)')
    .option('--config-file <path>', 'configuration document (default ./config.yaml when present)')
  addSettingOptions(cmd, CORE_SETTINGS)
  cmd.allowUnknownOption(true).argument('[operator-options...]', "options declared by the operator's plugin")
  cmd.action(async (extraArgs: string[]) => {
    const { exitCode, results } = await startAnchovy({ ...sourcesOf(cmd, CORE_SETTINGS), extraArgs }, { handleSignals: true })
    process.stdout.write(redact(JSON.stringify(results, null, 2)) + '\n')
    process.exitCode = exitCode
  })
  return cmd
}
