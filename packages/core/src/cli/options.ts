import { Option, type Command } from 'commander'
import { CORE_SETTINGS, type SettingSpec } from '../config/settings.js'

const FLAG_ALIASES: ReadonlyMap<string, string> = new Map([
  ['-op', '--operator-cls'],
  ['--op', '--operator-cls'],
  ['-up', '--upstream'],
  ['--enabled', '--enable'],
  ['--disabled', '--disable'],
])

/** Rewrites the README's multi-letter short flags (`-op`, `-up`) and plural aliases into commander's forms. */
export function normalizeArgv(argv: string[]): string[] {
  return argv.map((a) => {
    const eq = a.indexOf('=')
    const flag = eq > 0 ? a.slice(0, eq) : a
    // A Map: every command-line word is looked up, and `constructor` must not find Object.prototype's.
    const to = FLAG_ALIASES.get(flag)
    return to ? (eq > 0 ? `${to}${a.slice(eq)}` : to) : a
  })
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** Adds one commander option per setting that has flags (booleans also get `--no-…`). */
export function addSettingOptions(cmd: Command, specs: readonly SettingSpec[]): Command {
  for (const spec of specs) {
    if (!spec.flags) continue
    const env = spec.env[0] ?? spec.invertedEnv?.[0]
    const def =
      spec.default !== undefined && !(Array.isArray(spec.default) && spec.default.length === 0)
        ? `; default ${JSON.stringify(spec.default)}`
        : ''
    const opt = new Option(
      spec.flags,
      `${spec.description}${env ? ` [env ${env}${spec.invertedEnv ? ', inverted' : ''}]` : ''}${def}`,
    )
    if (spec.type === 'list') opt.argParser(collect)
    if (spec.choices) opt.choices(spec.choices as string[])
    cmd.addOption(opt)
    if (spec.type === 'bool') {
      const long = /--([a-z-]+)/.exec(spec.flags)?.[1]
      if (long) cmd.addOption(new Option(`--no-${long}`, `turn ${long} off (overrides the env and config)`))
    }
  }
  return cmd
}

/** The settings the user actually gave on the command line (defaults and absent flags are left out). */
export function givenFlags(cmd: Command, specs: readonly SettingSpec[]): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>
  const opts = cmd.opts()
  for (const spec of specs) {
    if (!spec.flags) continue
    const long = /--([a-z-]+)/.exec(spec.flags)?.[1] ?? spec.key
    const attr = long.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())
    if (cmd.getOptionValueSource(attr) === 'cli' && Object.hasOwn(opts, attr) && opts[attr] !== undefined)
      out[spec.key] = opts[attr]
  }
  return out
}

/** Settings of commands that address one anchovy (healthcheck, checkpoint). */
export const ADDRESS_SETTINGS = CORE_SETTINGS.filter((s) =>
  ['id', 'user', 'prod', 'datastore', 'log_level', 'workers'].includes(s.key),
)

/** Adds --id/-u/--prod/--datastore/--log-level/-c/--config-file to a command. */
export function addAddressOptions(cmd: Command): Command {
  addSettingOptions(cmd, ADDRESS_SETTINGS)
  return cmd
    .option('--prod', 'use the user "prod"')
    .option('-c, --config <yaml>', 'inline YAML or JSON configuration document')
    .option('--config-file <path>', 'configuration document (default ./config.yaml when present)')
}
