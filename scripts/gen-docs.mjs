// Regenerates the tables in docs/ from the declarations in packages/core and each built-in plugin's
// definePlugin({ errors }) (run: npm run docs; packages/core/test/plugin-errors-docs.test.ts checks the result).
import { readFileSync, writeFileSync } from 'node:fs'
import { errorsTable, pluginErrorsTable, replaceSection, settingsTable } from '../packages/core/dist/docs.js'
import { BUILTIN_PLUGINS } from '../packages/core/dist/plugins/registry.js'

const plugins = []
for (const name of Object.keys(BUILTIN_PLUGINS)) {
  const url = new URL(`../packages/plugin-${name}/dist/index.js`, import.meta.url)
  plugins.push((await import(url.href)).default)
}

for (const [file, name, body] of [
  ['docs/configuration.md', 'settings', settingsTable()],
  ['docs/errors.md', 'errors', errorsTable()],
  ['docs/errors.md', 'plugin-errors', pluginErrorsTable(plugins)],
]) {
  const url = new URL(`../${file}`, import.meta.url)
  writeFileSync(url, replaceSection(readFileSync(url, 'utf8'), name, body))
}
