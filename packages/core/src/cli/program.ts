import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { EXIT, isAnchoviesError, isConfigError } from '../errors.js'
import { redact } from '../logging/secrets.js'
import { formatError, isHumanOutput, requestedLogLevel } from './human-output.js'
import { normalizeArgv } from './options.js'

/** A command of the CLI: listed by name and summary, its module loaded only when it runs. */
interface CommandEntry {
  readonly name: string
  readonly summary: string
  load(): Promise<Command>
}

/**
 * Every command. A module is imported only for the command that runs, so `anchovy --help` or a healthcheck probe
 * does not load the runtime, the datastore or the plugins (hundreds of milliseconds on a small container).
 */
const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'start',
    summary: 'run an anchovy once, or as a service with -S',
    load: async () => (await import('./commands/start.js')).startCommand(),
  },
  {
    name: 'healthcheck',
    summary: 'exit 0 when the last run or heartbeat succeeded recently',
    load: async () => (await import('./commands/healthcheck.js')).healthcheckCommand(),
  },
  {
    name: 'checkpoint',
    summary: "read and change an anchovy's committed checkpoints",
    load: async () => (await import('./commands/checkpoint.js')).checkpointCommand(),
  },
  {
    name: 'plugin',
    summary: 'inspect plugins',
    load: async () => (await import('./commands/plugin.js')).pluginCommand(),
  },
  {
    name: 'school',
    summary: 'see, run and watch every anchovy of a datastore',
    load: async () => (await import('./commands/school.js')).schoolCommand(),
  },
  {
    name: 'init',
    summary: 'write a starter config.yaml into the current folder',
    load: async () => (await import('./commands/init.js')).initCommand(),
  },
]

/** The exit code for an error that escaped a command. */
export function exitCodeFor(err: unknown): number {
  if (isAnchoviesError(err, 'ANCH_ERR_LOCKED')) return EXIT.LOCKED
  if (isConfigError(err)) return EXIT.USAGE
  return EXIT.FAILED
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Builds the `anchovy` program with every command loaded (documentation, tests). */
export async function buildProgram(): Promise<Command> {
  return assemble(await Promise.all(COMMANDS.map((c) => c.load())))
}

/**
 * The program for `argv`: the command it runs is loaded (for `help <command>`, that one), the others are only
 * listed by name and summary.
 */
async function programFor(argv: readonly string[]): Promise<Command> {
  const words = argv.filter((a) => !a.startsWith('-'))
  const wanted = words[0] === 'help' ? words[1] : words[0]
  return assemble(
    await Promise.all(
      COMMANDS.map(async (c) => (c.name === wanted ? c.load() : new Command(c.name).summary(c.summary))),
    ),
  )
}

function assemble(commands: readonly Command[]): Command {
  const program = new Command('anchovy')
    .description(
      'anchovies: lightweight ETL workers. Exit codes: 0 ok, 1 a table or phase failed, 2 usage/config error, 3 degraded (healthcheck), 75 already running, 124 timeout.',
    )
    .version(version())
    .exitOverride()
    .showHelpAfterError()
  for (const [i, cmd] of commands.entries()) program.addCommand(cmd.summary() ? cmd : cmd.summary(COMMANDS[i]!.summary))
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
  const program = await programFor(normalizeArgv(argv))
  try {
    await program.parseAsync(normalizeArgv(argv), { from: 'user' })
    return (process.exitCode as number | undefined) ?? 0
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
        return EXIT.OK
      return EXIT.USAGE
    }
    const code = exitCodeFor(err)
    const e = err as Error
    if (isHumanOutput(argv)) {
      // A person at a terminal: code, message and causes on their own lines; stacks only when debugging.
      const stacks = ['debug', 'trace'].includes(requestedLogLevel(argv, process.env))
      process.stderr.write(`anchovy: ${redact(formatError(err, stacks))}\n`)
    } else {
      process.stderr.write(
        `anchovy: ${redact(isAnchoviesError(err) ? `${e.message} [${err.code}]` : (e.stack ?? String(err)))}\n`,
      )
    }
    return code
  }
}
