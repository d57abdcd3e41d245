import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { EXIT, isAnchoviesError } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { normalizeArgv } from './options.js'
import { startCommand } from './commands/start.js'
import { healthcheckCommand } from './commands/healthcheck.js'
import { checkpointCommand } from './commands/checkpoint.js'
import { pluginCommand } from './commands/plugin.js'
import { initCommand } from './commands/init.js'

const CONFIG_ERRORS = new Set(['ANCH_ERR_CONFIG', 'ANCH_ERR_USAGE', 'ANCH_ERR_NAME', 'ANCH_ERR_PLUGIN_LOAD', 'ANCH_ERR_CONNECTION_MISSING'])

/** The exit code for an error that escaped a command. */
export function exitCodeFor(err: unknown): number {
  if (isAnchoviesError(err, 'ANCH_ERR_LOCKED')) return EXIT.LOCKED
  if (isAnchoviesError(err) && CONFIG_ERRORS.has(err.code)) return EXIT.USAGE
  return EXIT.FAILED
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Builds the `anchovy` program. */
export function buildProgram(): Command {
  const program = new Command('anchovy')
    .description('anchovies: lightweight ETL workers. Exit codes: 0 ok, 1 a table or phase failed, 2 usage/config error, 75 already running, 124 timeout.')
    .version(version())
    .exitOverride()
    .showHelpAfterError()
  program.addCommand(startCommand())
  program.addCommand(healthcheckCommand())
  program.addCommand(checkpointCommand())
  program.addCommand(pluginCommand())
  program.addCommand(initCommand())
  const inherit = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride().showHelpAfterError()
      inherit(sub)
    }
  }
  inherit(program)
  return program
}

/** Runs the CLI and returns the exit code (never throws). */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
  try {
    await program.parseAsync(normalizeArgv(argv), { from: 'user' })
    return (process.exitCode as number | undefined) ?? 0
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK
      return EXIT.USAGE
    }
    const code = exitCodeFor(err)
    const e = err as Error
    process.stderr.write(`anchovy: ${redact(isAnchoviesError(err) ? `${e.message} [${err.code}]` : (e.stack ?? String(err)))}\n`)
    return code
  }
}
