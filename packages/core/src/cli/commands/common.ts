import type { Command } from 'commander'
import type { SettingSpec } from '../../config/settings.js'
import {
  loadDocument,
  resolveSettings,
  throwProblems,
  type ConfigSources,
  type Settings,
} from '../../config/load-config.js'
import { ADDRESS_SETTINGS, givenFlags } from '../options.js'

/** The config sources of a command invocation. */
export function sourcesOf(cmd: Command, specs: readonly SettingSpec[] = ADDRESS_SETTINGS): ConfigSources {
  const o = cmd.opts<{ prod?: boolean; config?: string; configFile?: string }>()
  return {
    flags: givenFlags(cmd, specs),
    env: process.env,
    configFile: o.configFile,
    configText: o.config,
    cwd: process.cwd(),
    prod: o.prod,
  }
}

/** Resolves id, user and datastore for commands that address one anchovy. */
export function addressOf(cmd: Command): Settings {
  const problems: string[] = []
  const src = sourcesOf(cmd)
  const doc = loadDocument(src, problems)
  const settings = resolveSettings(src, { ...doc, config: pick(doc.config) }, problems, ADDRESS_SETTINGS)
  throwProblems(problems)
  return settings
}

/** The address settings of a `config:` map (own keys only; the rest belongs to `anchovy start`). */
function pick(config: Record<string, unknown>): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>
  for (const s of ADDRESS_SETTINGS) if (Object.hasOwn(config, s.key)) out[s.key] = config[s.key]
  return out
}
