import { AnchoviesError } from '../errors.js'
import { loadPlugin } from '../plugins/registry.js'
import type { Datastore, DatastoreFactory } from './datastore.js'
import { FilesystemDatastore } from './filesystem-datastore.js'
import { fileURLToPath } from 'node:url'
import { homedir } from 'node:os'

/** URL schemes handled by built-in plugins. */
const SCHEME_PLUGINS: Readonly<Record<string, string>> = { az: 'azblob', azblob: 'azblob', https: 'azblob', http: 'azblob' }

const extraFactories: DatastoreFactory[] = []

/** Registers a datastore backend (plugins call this; tests may too). */
export function registerDatastore(factory: DatastoreFactory): void {
  extraFactories.push(factory)
}

/** Opens the datastore at a folder path, `file://` URL, or a URL a plugin handles (`az://container/prefix`). */
export async function openDatastore(location: string): Promise<Datastore> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location)?.[1]?.toLowerCase()
  if (!scheme || scheme === 'file') {
    const path = scheme ? fileURLToPath(location) : location.replace(/^~(?=$|\/)/, homedir())
    return new FilesystemDatastore(path)
  }
  for (const f of extraFactories) if (f.accepts(location)) return f.open(location)
  const pluginName = SCHEME_PLUGINS[scheme]
  if (pluginName) {
    const plugin = await loadPlugin(pluginName)
    for (const f of plugin.datastores ?? []) if (f.accepts(location)) return f.open(location)
  }
  throw new AnchoviesError('ANCH_ERR_CONFIG', `datastore ${JSON.stringify(location.replace(/\?.*$/, '?…'))}: no installed plugin handles ${scheme}:// URLs`)
}
