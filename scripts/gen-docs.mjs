// Regenerates the tables in docs/ from the declarations in packages/core (run: npm run docs).
import { readFileSync, writeFileSync } from 'node:fs'
import { errorsTable, replaceSection, settingsTable } from '../packages/core/dist/docs.js'

for (const [file, name, body] of [
  ['docs/configuration.md', 'settings', settingsTable()],
  ['docs/errors.md', 'errors', errorsTable()],
]) {
  const url = new URL(`../${file}`, import.meta.url)
  writeFileSync(url, replaceSection(readFileSync(url, 'utf8'), name, body))
}
