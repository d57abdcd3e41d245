import { definePlugin, type DatastoreFactory } from '@anchovies/core'
import { BlobDatastore } from './blob-datastore.js'
import { isBlobUrl, parseBlobLocation } from './location.js'

export { BlobDatastore } from './blob-datastore.js'
export type { BlobDatastoreOptions } from './blob-datastore.js'
export { parseBlobLocation, parseConnectionString, displayUrl, EMULATOR_ACCOUNT, EMULATOR_KEY } from './location.js'
export type { BlobLocation, ConnectionString } from './location.js'
export { resolveCredential } from './credentials.js'
export type { CredentialKind, ResolvedCredential } from './credentials.js'
export { leaseSeconds, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS } from './lease.js'
export { DEFAULT_RETRY, retryOptionsFromEnv } from './retry.js'
export type { RetryOptions } from './retry.js'

/** Opens `az://`, `azblob://` and `http(s)://` datastore URLs as Azure Blob Storage datastores. */
export const blobDatastoreFactory: DatastoreFactory = {
  accepts(location: string): boolean {
    if (!isBlobUrl(location)) return false
    try {
      parseBlobLocation(location) // registers a SAS in the URL as a secret as early as possible
    } catch {
      // open() reports the problem
    }
    return true
  },
  open(location: string): Promise<BlobDatastore> {
    return BlobDatastore.open(location)
  },
}

/** The azblob plugin: Azure Blob Storage as the datastore (`--datastore az://<container>/<prefix>`). */
// No error codes of its own: it raises core's ANCH_ERR_DATASTORE, ANCH_ERR_LOCKED and ANCH_ERR_CONFIG.
export default definePlugin({
  name: 'azblob',
  operators: {},
  connections: {},
  datastores: [blobDatastoreFactory],
  errors: {},
})
