import { AnchoviesError, registerSecret } from '@anchovies/core'
import type { TokenCredential } from '@azure/identity'
import { AnonymousCredential, StorageSharedKeyCredential } from '@azure/storage-blob'
import {
  EMULATOR_ACCOUNT,
  EMULATOR_KEY,
  parseConnectionString,
  registerSasSecrets,
  type BlobLocation,
} from './location.js'

/** Anything BlobServiceClient accepts as a credential (shared key, anonymous + SAS, or an Entra ID token credential). */
export type BlobCredential = StorageSharedKeyCredential | AnonymousCredential | TokenCredential

/** How the datastore authenticates (the kind is logged; the secret never is). */
export type CredentialKind =
  | 'url-sas'
  | 'connection-string'
  | 'account-key'
  | 'sas'
  | 'emulator'
  | 'default-azure-credential'

/** A credential for the blob service, and a SAS to append to the account URL when it is SAS-based. */
export interface ResolvedCredential {
  readonly kind: CredentialKind
  readonly credential: BlobCredential
  readonly sas: string | undefined
  /** The account endpoint to use (a connection string may name it). */
  readonly accountUrl: string
}

/**
 * Picks the credential, first match wins: a SAS in the datastore URL; `AZURE_STORAGE_CONNECTION_STRING` (its key or SAS);
 * `AZURE_STORAGE_KEY` (account key); `AZURE_STORAGE_SAS_TOKEN`; the emulator's well-known key for `devstoreaccount1`;
 * else `@azure/identity`'s DefaultAzureCredential (managed identity, workload identity, Azure CLI, …).
 * Every secret it sees is registered, so anchovies masks it in logs, task logs and results.
 */
export async function resolveCredential(
  loc: BlobLocation,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedCredential> {
  const accountUrl = loc.accountUrl
  if (loc.sas) return { kind: 'url-sas', credential: new AnonymousCredential(), sas: loc.sas, accountUrl }
  const account = loc.accountName
  if (env.AZURE_STORAGE_CONNECTION_STRING) {
    registerSecret(env.AZURE_STORAGE_CONNECTION_STRING)
    const cs = parseConnectionString(env.AZURE_STORAGE_CONNECTION_STRING)
    if (cs.accountKey) registerSecret(cs.accountKey)
    if (cs.sas) registerSasSecrets(cs.sas)
    if (cs.accountName && account && cs.accountName.toLowerCase() !== account.toLowerCase()) {
      throw new AnchoviesError(
        'ANCH_ERR_CONFIG',
        `AZURE_STORAGE_CONNECTION_STRING is for account ${cs.accountName} but the datastore URL names account ${account}: ` +
          'point the URL at the same account, or unset the connection string and use AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN',
      )
    }
    if (cs.accountKey && cs.accountName) {
      return {
        kind: 'connection-string',
        credential: new StorageSharedKeyCredential(cs.accountName, cs.accountKey),
        sas: undefined,
        accountUrl,
      }
    }
    if (cs.sas) return { kind: 'connection-string', credential: new AnonymousCredential(), sas: cs.sas, accountUrl }
  }
  const legacy = env.AZURE_BLOB_CREDENTIAL // the Python implementation's variable: a key or a SAS
  const legacyIsSas = legacy !== undefined && /(^|[?&])sig=/.test(legacy)
  const key = env.AZURE_STORAGE_KEY || env.AZURE_STORAGE_ACCOUNT_KEY || (legacy && !legacyIsSas ? legacy : undefined)
  if (key) {
    registerSecret(key)
    if (!account) {
      throw new AnchoviesError(
        'ANCH_ERR_CONFIG',
        'an account key is set but the storage account is unknown: name it in the datastore URL or set AZURE_STORAGE_ACCOUNT',
      )
    }
    try {
      return {
        kind: 'account-key',
        credential: new StorageSharedKeyCredential(account, key),
        sas: undefined,
        accountUrl,
      }
    } catch (err) {
      throw new AnchoviesError('ANCH_ERR_CONFIG', 'AZURE_STORAGE_KEY is not a valid base64 account key', { cause: err })
    }
  }
  const sas = env.AZURE_STORAGE_SAS_TOKEN || (legacyIsSas ? legacy : undefined)
  if (sas) {
    registerSasSecrets(sas)
    return { kind: 'sas', credential: new AnonymousCredential(), sas: sas.replace(/^\?/, ''), accountUrl }
  }
  if (account === EMULATOR_ACCOUNT) {
    return {
      kind: 'emulator',
      credential: new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY),
      sas: undefined,
      accountUrl,
    }
  }
  let identity: typeof import('@azure/identity')
  try {
    identity = await import('@azure/identity')
  } catch (err) {
    throw new AnchoviesError(
      'ANCH_ERR_PLUGIN_LOAD',
      'no storage credential is set and @azure/identity cannot be loaded: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN',
      { cause: err },
    )
  }
  return {
    kind: 'default-azure-credential',
    credential: new identity.DefaultAzureCredential(),
    sas: undefined,
    accountUrl,
  }
}
