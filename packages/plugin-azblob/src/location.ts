import { AnchoviesError, registerSecret } from '@anchovies/core'

/** Where a blob datastore lives: an account endpoint, a container and a prefix inside it. */
export interface BlobLocation {
  /** The account endpoint without credentials: `https://<account>.blob.core.windows.net` or `http://127.0.0.1:10000/<account>`. */
  readonly accountUrl: string
  /** The account name, when the URL or the environment names it. */
  readonly accountName: string | undefined
  readonly container: string
  /** The folder inside the container, without leading or trailing `/` (empty: the container root). */
  readonly prefix: string
  /** A SAS token given in the URL's query string (without `?`). */
  readonly sas: string | undefined
}

/** The public development-storage account of Azurite and the old storage emulator (documented by Microsoft; not a secret). */
export const EMULATOR_ACCOUNT = 'devstoreaccount1'
/** The well-known key of {@link EMULATOR_ACCOUNT}. */
export const EMULATOR_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

const SCHEMES = /^(az|azblob|https?):\/\//i
const CONTAINER_RE = /^(?:\$root|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$/
const ACCOUNT_RE = /^[a-z0-9]{3,24}$/
/** `<account>.blob.<suffix>`: the production host form (also sovereign clouds, Azure Stack and DNS-zone endpoints). */
const HOST_STYLE_RE = /^([a-z0-9]{3,24})\.(?:[a-z0-9-]+\.)?blob\./i

/** True when `location` looks like a blob datastore URL (`az://`, `azblob://`, `http(s)://`). */
export function isBlobUrl(location: string): boolean {
  return SCHEMES.test(location)
}

/** The parts of `AZURE_STORAGE_CONNECTION_STRING` this plugin uses. */
export interface ConnectionString {
  readonly accountName: string | undefined
  readonly accountKey: string | undefined
  readonly sas: string | undefined
  readonly blobEndpoint: string | undefined
}

/** Parses an Azure Storage connection string (`AccountName=…;AccountKey=…;EndpointSuffix=…` or `UseDevelopmentStorage=true`). */
export function parseConnectionString(text: string): ConnectionString {
  const fields = new Map<string, string>()
  for (const part of text.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim())
  }
  if (fields.get('usedevelopmentstorage')?.toLowerCase() === 'true') {
    const proxy = fields.get('developmentstorageproxyuri')?.replace(/\/+$/, '')
    return {
      accountName: EMULATOR_ACCOUNT,
      accountKey: EMULATOR_KEY,
      sas: undefined,
      blobEndpoint: `${proxy ?? 'http://127.0.0.1'}:10000/${EMULATOR_ACCOUNT}`,
    }
  }
  const accountName = fields.get('accountname') || undefined
  const protocol = fields.get('defaultendpointsprotocol') || 'https'
  const suffix = fields.get('endpointsuffix') || 'core.windows.net'
  const blobEndpoint =
    fields.get('blobendpoint')?.replace(/\/+$/, '') ||
    (accountName ? `${protocol}://${accountName}.blob.${suffix}` : undefined)
  return {
    accountName: accountName ?? (blobEndpoint ? accountFromUrl(blobEndpoint) : undefined),
    accountKey: fields.get('accountkey') || undefined,
    sas: fields.get('sharedaccesssignature')?.replace(/^\?/, '') || undefined,
    blobEndpoint,
  }
}

/**
 * Parses a datastore URL. Forms:
 * - `az://<container>/<prefix>` (also `azblob://`): the account comes from the environment
 *   (`AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_ACCOUNT_URL`, or `AZURE_STORAGE_ACCOUNT`);
 *   `az://<container>@<account>/<prefix>` names the account in the URL;
 * - `https://<account>.blob.core.windows.net/<container>/<prefix>` (host style: the host starts with `<account>.blob.`);
 * - `http://127.0.0.1:10000/<account>/<container>/<prefix>` (path style, used by Azurite and every host that does not
 *   start with `<account>.blob.`: the first path segment is the account).
 * A query string is taken as a SAS token.
 */
export function parseBlobLocation(location: string, env: NodeJS.ProcessEnv = process.env): BlobLocation {
  const bad = (why: string): AnchoviesError =>
    new AnchoviesError('ANCH_ERR_CONFIG', `datastore ${JSON.stringify(displayUrl(location))}: ${why}`)
  let url: URL
  try {
    url = new URL(location)
  } catch {
    throw bad(
      'not a valid URL (use az://<container>/<prefix> or https://<account>.blob.core.windows.net/<container>/<prefix>)',
    )
  }
  let sas = url.search.length > 1 ? url.search.slice(1) : undefined
  if (sas) registerSasSecrets(sas)
  const scheme = url.protocol.slice(0, -1).toLowerCase()
  let segments: string[]
  try {
    segments = decodeURIComponent(url.pathname).split('/').filter(Boolean)
  } catch {
    throw bad('the path is not valid percent-encoding')
  }
  let accountUrl: string
  let accountName: string | undefined
  let container: string | undefined
  if (scheme === 'az' || scheme === 'azblob') {
    // az://container/prefix: URL puts the container in the host (lower-cased, which container names are anyway)
    if (url.username) {
      container = decodeURIComponent(url.username)
      accountName = url.hostname
      if (!ACCOUNT_RE.test(accountName))
        throw bad(`${JSON.stringify(accountName)} is not a storage account name (3-24 lowercase letters and digits)`)
      accountUrl = `https://${accountName}.blob.core.windows.net`
    } else {
      container = url.hostname
      if (!CONTAINER_RE.test(container))
        throw bad(
          `${JSON.stringify(container)} is not a valid container name (3-63 lowercase letters, digits and single hyphens)`,
        )
      const fromEnv = accountFromEnv(env)
      if (!fromEnv) {
        throw bad(
          'az:// URLs need the account: set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_URL or AZURE_STORAGE_ACCOUNT, ' +
            'or use az://<container>@<account>/<prefix> or https://<account>.blob.core.windows.net/<container>/<prefix>',
        )
      }
      accountUrl = fromEnv.url
      accountName = fromEnv.name
      sas ??= fromEnv.sas
    }
  } else {
    const origin = `${scheme}://${url.host}`
    const hostStyle = HOST_STYLE_RE.exec(url.hostname)
    if (hostStyle) {
      accountName = hostStyle[1]!.toLowerCase()
      accountUrl = origin
    } else {
      const account = segments.shift()
      if (!account) throw bad('path-style URLs (emulator) need http://<host>:<port>/<account>/<container>/<prefix>')
      accountName = account
      accountUrl = `${origin}/${account}`
    }
    container = segments.shift()
  }
  if (!container) throw bad('no container in the URL')
  if (!CONTAINER_RE.test(container)) {
    throw bad(
      `${JSON.stringify(container)} is not a valid container name (3-63 lowercase letters, digits and single hyphens)`,
    )
  }
  for (const s of segments) {
    if (s === '.' || s === '..' || /[\u0000-\u001f\\]/.test(s))
      throw bad(`refusing the prefix segment ${JSON.stringify(s)}`)
  }
  return { accountUrl, accountName, container, prefix: segments.join('/'), sas }
}

/** The URL with the query string (a SAS) and any user-info password removed, for logs and errors. */
export function displayUrl(location: string): string {
  return location.replace(/\?.*$/s, '').replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@]*):[^/@]*@/i, '$1@')
}

/** The account of an `https://<account>.blob…` or `http://host:port/<account>` endpoint. */
function accountFromUrl(endpoint: string): string | undefined {
  try {
    const u = new URL(endpoint)
    return HOST_STYLE_RE.exec(u.hostname)?.[1]?.toLowerCase() ?? (u.pathname.split('/').find(Boolean) || undefined)
  } catch {
    return undefined
  }
}

function accountFromEnv(env: NodeJS.ProcessEnv): { url: string; name: string | undefined; sas?: string } | undefined {
  if (env.AZURE_STORAGE_CONNECTION_STRING) {
    const cs = parseConnectionString(env.AZURE_STORAGE_CONNECTION_STRING)
    if (cs.blobEndpoint) return { url: cs.blobEndpoint, name: cs.accountName }
  }
  const raw = env.AZURE_STORAGE_ACCOUNT_URL || env.AZURE_BLOB_ACCOUNT_URL
  if (raw) {
    // an account URL may carry a SAS (…?sv=…&sig=…): keep it as the credential, out of the URL
    const q = raw.indexOf('?')
    const sas = q >= 0 && q < raw.length - 1 ? raw.slice(q + 1) : undefined
    if (sas) registerSasSecrets(sas)
    const url = (q >= 0 ? raw.slice(0, q) : raw).replace(/\/+$/, '')
    return { url, name: accountFromUrl(url), ...(sas ? { sas } : {}) }
  }
  if (env.AZURE_STORAGE_ACCOUNT)
    return { url: `https://${env.AZURE_STORAGE_ACCOUNT}.blob.core.windows.net`, name: env.AZURE_STORAGE_ACCOUNT }
  return undefined
}

/** Registers a SAS token, its signature and their encoded forms as secrets (masked in every output of anchovies). */
export function registerSasSecrets(sas: string): void {
  const token = sas.replace(/^\?/, '')
  registerSecret(token)
  registerSecret(`?${token}`)
  for (const part of token.split('&')) {
    const [name, value] = part.split('=')
    if (name?.toLowerCase() === 'sig' && value) {
      registerSecret(value)
      try {
        registerSecret(decodeURIComponent(value))
      } catch {
        // not percent-encoded: registered as is
      }
    }
  }
}
