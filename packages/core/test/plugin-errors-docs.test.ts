import { readFileSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { pluginErrorsTable, replaceSection } from '../src/docs.js'
import { ERROR_CODES } from '../src/errors.js'
import { isPlugin, type Plugin } from '../src/plugins/define-plugin.js'
import { BUILTIN_PLUGINS } from '../src/plugins/registry.js'
import { REPO } from './helpers.js'

/** Each built-in plugin's definePlugin() result, from its build (npm test builds first). */
async function builtinPlugins(): Promise<Plugin[]> {
  const plugins: Plugin[] = []
  for (const name of Object.keys(BUILTIN_PLUGINS)) {
    const entry = path.join(REPO, `packages/plugin-${name}/dist/index.js`)
    const loaded = ((await import(pathToFileURL(entry).href)) as { default: unknown }).default
    if (!isPlugin(loaded)) throw new Error(`${entry} does not default-export definePlugin()`)
    plugins.push(loaded)
  }
  return plugins
}

/** Every `'ANCH_ERR_…'` literal in a folder's .ts files. */
function codesUsedIn(dir: string): Set<string> {
  const found = new Set<string>()
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    if (!entry.endsWith('.ts')) continue
    for (const m of readFileSync(path.join(dir, entry), 'utf8').matchAll(/'(ANCH_ERR_[A-Z0-9_]+)'/g)) found.add(m[1]!)
  }
  return found
}

describe('plugin error codes', () => {
  it('docs/errors.md has the plugin error table generated from definePlugin({ errors }) (npm run docs)', async () => {
    const doc = readFileSync(path.join(REPO, 'docs/errors.md'), 'utf8')
    expect(replaceSection(doc, 'plugin-errors', pluginErrorsTable(await builtinPlugins()))).toBe(doc)
  })

  it('every code a plugin raises is core’s or declared in its definePlugin({ errors })', async () => {
    for (const plugin of await builtinPlugins()) {
      const declared = new Set(Object.keys(plugin.errors ?? {}))
      const undeclared = [...codesUsedIn(path.join(REPO, `packages/plugin-${plugin.name}/src`))].filter(
        (code) => !(code in ERROR_CODES) && !declared.has(code),
      )
      expect(undeclared, `plugin ${plugin.name}`).toEqual([])
    }
  })
})
