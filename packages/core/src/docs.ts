import { CORE_SETTINGS, type SettingSpec } from './config/settings.js'
import { ERROR_CODES } from './errors.js'
import type { PluginDefinition } from './plugins/define-plugin.js'

/** The settings table of docs/configuration.md, rendered from the declarations. */
export function settingsTable(specs: readonly SettingSpec[] = CORE_SETTINGS): string {
  const rows = specs.map((s) => {
    const env = [...s.env, ...(s.invertedEnv ?? []).map((e) => `${e} (inverted)`)].join(', ') || '-'
    const keys = [s.key, ...(s.invertedKeys ?? []).map((k) => `${k} (inverted)`)]
      .map((k) => `\`config.${k.replace(/ \(inverted\)$/, '')}\`${k.endsWith('(inverted)') ? ' (inverted)' : ''}`)
      .join(', ')
    const def =
      s.default === undefined
        ? ''
        : Array.isArray(s.default)
          ? s.default.length
            ? s.default.join(',')
            : ''
          : String(s.default)
    return `| ${s.flags ? `\`${s.flags}\`` : '-'} | ${
      env === '-'
        ? '-'
        : env
            .split(', ')
            .map((e) => (e.includes('(') ? `\`${e.split(' ')[0]}\` (inverted)` : `\`${e}\``))
            .join(', ')
    } | ${keys} | ${def ? `\`${def}\`` : ''} | ${s.description} |`
  })
  return ['| flag | env | config.yaml | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n')
}

/** The error table of docs/errors.md, rendered from ERROR_CODES. */
export function errorsTable(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, [meaning, fix]]) => `| \`${code}\` | ${meaning} | ${fix} |`)
  return ['| code | meaning | how to fix |', '|---|---|---|', ...rows].join('\n')
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->`. */
export function replaceSection(doc: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`
  const end = `<!-- ${name}:end -->`
  const i = doc.indexOf(start)
  const j = doc.indexOf(end)
  if (i < 0 || j < i) throw new Error(`missing ${start} … ${end}`)
  return `${doc.slice(0, i + start.length)}\n${body}\n${doc.slice(j)}`
}

/** The plugin error table of docs/errors.md, rendered from each plugin's `definePlugin({ errors })`. */
export function pluginErrorsTable(plugins: readonly PluginDefinition[]): string {
  const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ')
  const rows = plugins.flatMap((plugin) =>
    Object.entries(plugin.errors ?? {}).map(([code, doc]) => {
      const [meaning, fix] = typeof doc === 'string' ? [doc, `see the ${plugin.name} plugin's README`] : doc
      return `| \`${code}\` | ${plugin.name} | ${cell(meaning)} | ${cell(fix)} |`
    }),
  )
  return ['| code | plugin | meaning | how to fix |', '|---|---|---|---|', ...rows].join('\n')
}
