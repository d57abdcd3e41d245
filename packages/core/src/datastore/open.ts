import { AnchoviesError } from '../errors.js'
import { loadPlugin } from '../plugins/registry.js'
import type { Datastore, DatastoreFactory } from './datastore.js'
import { FilesystemDatastore } from './filesystem-datastore.js'
import { fileURLToPath } from 'node:url'
import { homeDirectory, noHomeReason } from '../config/os-account.js'

/** URL schemes handled by built-in plugins (a Map: the scheme comes from the user's location). */
const SCHEME_PLUGINS: ReadonlyMap<string, string> = new Map([
  ['az', 'azblob'],
  ['azblob', 'azblob'],
  ['https', 'azblob'],
  ['http', 'azblob'],
])

const extraFactories: DatastoreFactory[] = []

/** Registers a datastore backend (plugins call this; tests may too). */
export function registerDatastore(factory: DatastoreFactory): void {
  extraFactories.push(factory)
}

/** Opens the datastore at a folder path, `file://` URL, or a URL a plugin handles (`az://container/prefix`). */
export async function openDatastore(location: string): Promise<Datastore> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase()
  if (!scheme || scheme === 'file') {
    return new FilesystemDatastore(scheme ? fileURLToPath(location) : expandHome(location))
  }
  for (const f of extraFactories) if (f.accepts(location)) return f.open(location)
  const pluginName = SCHEME_PLUGINS.get(scheme)
  if (pluginName) {
    const plugin = await loadPlugin(pluginName)
    for (const f of plugin.datastores ?? []) if (f.accepts(location)) return f.open(location)
  }
  throw new AnchoviesError(
    'ANCH_ERR_CONFIG',
    `datastore ${JSON.stringify(location.replace(/\?.*$/, '?…'))}: no installed plugin handles ${scheme}:// URLs`,
  )
}

/** `~` or `~/…` with the home folder (`$HOME`, else the password database); a clear error when there is none. */
function expandHome(location: string): string {
  if (location !== '~' && !location.startsWith('~/')) return location
  const home = homeDirectory(process.env)
  if (!home) {
    throw new AnchoviesError(
      'ANCH_ERR_CONFIG',
      `datastore ${JSON.stringify(location)}: cannot expand "~" (${noHomeReason()}); give an absolute path`,
    )
  }
  return home + location.slice(1)
}
