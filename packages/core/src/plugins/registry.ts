import { createRequire } from 'node:module'
import * as nodePath from 'node:path'
import { pathToFileURL } from 'node:url'
import { AnchoviesError } from '../errors.js'
import { isPlugin, type Plugin } from './define-plugin.js'

/** Short plugin names and their packages (loaded on demand). */
export const BUILTIN_PLUGINS: Readonly<Record<string, string>> = {
  sftp: '@anchovies/plugin-sftp',
  sql: '@anchovies/plugin-sql',
  azblob: '@anchovies/plugin-azblob',
  lake: '@anchovies/plugin-lake',
  singer: '@anchovies/plugin-singer',
}

/** A class found by name, with the plugin it came from (if any). */
export interface Resolved<T> {
  readonly value: T
  readonly plugin: Plugin | undefined
}

const cache = new Map<string, Promise<Record<string, unknown>>>()

/** Imports a package (from the working directory's node_modules first) or a module path. */
export async function importModule(specifier: string, cwd = process.cwd()): Promise<Record<string, unknown>> {
  const key = `${cwd}\0${specifier}`
  let p = cache.get(key)
  if (!p) {
    p = doImport(specifier, cwd)
    cache.set(key, p)
    p.catch(() => cache.delete(key))
  }
  return p
}

async function doImport(specifier: string, cwd: string): Promise<Record<string, unknown>> {
  const isPath = specifier.startsWith('.') || specifier.startsWith('/') || /^[A-Za-z]:[\\/]/.test(specifier)
  try {
    if (isPath) return (await import(pathToFileURL(nodePath.resolve(cwd, specifier)).href)) as Record<string, unknown>
    try {
      return (await import(specifier)) as Record<string, unknown>
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err
      const resolved = createRequire(nodePath.join(cwd, 'noop.js')).resolve(specifier)
      return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>
    }
  } catch (err) {
    const code = (err as { code?: string }).code
    const hint =
      code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
        ? ` (is it installed? npm install ${specifier})`
        : ''
    throw new AnchoviesError(
      'ANCH_ERR_PLUGIN_LOAD',
      `cannot load ${specifier}${hint}: ${(err as Error).message.split('\n')[0]}`,
      { cause: err },
    )
  }
}

/** The module of a plugin short name, else the name itself (own keys only: names come from the command line). */
function moduleOf(name: string): string {
  return (Object.hasOwn(BUILTIN_PLUGINS, name) ? BUILTIN_PLUGINS[name] : undefined) ?? name
}

/** An own property of a module namespace or a plugin's map, never an inherited one (`toString`, `constructor`). */
function own(obj: object | undefined, key: string): unknown {
  return obj && Object.hasOwn(obj, key) ? (obj as Record<string, unknown>)[key] : undefined
}

/** Loads a plugin by short name (`sftp`), package name or module path. */
export async function loadPlugin(name: string, cwd = process.cwd()): Promise<Plugin> {
  const mod = await importModule(moduleOf(name), cwd)
  const plugin = mod.default
  if (!isPlugin(plugin)) {
    throw new AnchoviesError('ANCH_ERR_PLUGIN_LOAD', `${name} does not default-export definePlugin({...})`)
  }
  return plugin
}

/**
 * Resolves `plugin.Class`, `package.Class`, `@scope/package.Class` or `./module.js:Class` to a class:
 * from a plugin's operators/components, or a module's named export.
 */
export async function resolveClass<T = unknown>(
  ref: string,
  kind: 'operators' | 'components',
  cwd = process.cwd(),
): Promise<Resolved<T>> {
  let moduleName: string
  let className: string
  const colon = ref.lastIndexOf(':')
  if (colon > 1) {
    moduleName = ref.slice(0, colon)
    className = ref.slice(colon + 1)
  } else {
    const dot = ref.lastIndexOf('.')
    if (dot <= 0)
      throw new AnchoviesError(
        'ANCH_ERR_USAGE',
        `${JSON.stringify(ref)}: use plugin.Class (e.g. sftp.CsvDownloader) or ./module.js:Class`,
      )
    moduleName = ref.slice(0, dot)
    className = ref.slice(dot + 1)
  }
  const mod = await importModule(moduleOf(moduleName), cwd)
  const plugin = isPlugin(mod.default) ? mod.default : undefined
  const value = own(plugin?.[kind] as object | undefined, className) ?? own(mod, className)
  if (typeof value !== 'function') {
    const available = Object.keys((plugin?.[kind] as object | undefined) ?? {})
    throw new AnchoviesError(
      'ANCH_ERR_PLUGIN_LOAD',
      `${moduleName} has no ${kind === 'operators' ? 'operator' : 'class'} ${className}${available.length ? ` (available: ${available.join(', ')})` : ''}`,
    )
  }
  return { value: value as T, plugin }
}
