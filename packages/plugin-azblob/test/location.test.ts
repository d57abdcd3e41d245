import { describe, expect, it } from 'vitest'
import { redact } from '@anchovies/core'
import { displayUrl, parseBlobLocation, parseConnectionString } from '../src/location.js'
import { resolveCredential } from '../src/credentials.js'
import { blobDatastoreFactory } from '../src/index.js'

describe('parseBlobLocation', () => {
  it('reads https://<account>.blob.core.windows.net/<container>/<prefix> (the form the Python original crashed on)', () => {
    expect(parseBlobLocation('https://acme.blob.core.windows.net/etl/anchovies/prod', {})).toEqual({
      accountUrl: 'https://acme.blob.core.windows.net',
      accountName: 'acme',
      container: 'etl',
      prefix: 'anchovies/prod',
      sas: undefined,
    })
    expect(parseBlobLocation('https://acme.blob.core.windows.net/etl', {}).prefix).toBe('')
    expect(parseBlobLocation('https://acme.blob.core.windows.net/etl/', {}).prefix).toBe('')
    expect(parseBlobLocation('https://acme.blob.core.chinacloudapi.cn/etl/p', {}).accountUrl).toBe(
      'https://acme.blob.core.chinacloudapi.cn',
    )
    expect(parseBlobLocation('https://acme.z12.blob.storage.azure.net/etl/p', {}).accountName).toBe('acme')
  })

  it('reads the emulator path style http://127.0.0.1:<port>/<account>/<container>/<prefix>', () => {
    expect(parseBlobLocation('http://127.0.0.1:10000/devstoreaccount1/etl/a/b', {})).toMatchObject({
      accountUrl: 'http://127.0.0.1:10000/devstoreaccount1',
      accountName: 'devstoreaccount1',
      container: 'etl',
      prefix: 'a/b',
    })
    expect(parseBlobLocation('http://azurite:10000/devstoreaccount1/etl', {}).accountUrl).toBe(
      'http://azurite:10000/devstoreaccount1',
    )
  })

  it('reads az://<container>/<prefix> with the account from the environment', () => {
    expect(parseBlobLocation('az://etl/anchovies', { AZURE_STORAGE_ACCOUNT: 'acme' })).toMatchObject({
      accountUrl: 'https://acme.blob.core.windows.net',
      container: 'etl',
      prefix: 'anchovies',
    })
    expect(
      parseBlobLocation('azblob://etl/x/y/', { AZURE_STORAGE_ACCOUNT_URL: 'https://acme.blob.core.windows.net/' }),
    ).toMatchObject({ accountUrl: 'https://acme.blob.core.windows.net', prefix: 'x/y' })
    expect(
      parseBlobLocation('az://etl', { AZURE_BLOB_ACCOUNT_URL: 'https://old.blob.core.windows.net' }).accountName,
    ).toBe('old')
    const cs = 'DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5a2V5;EndpointSuffix=core.windows.net'
    expect(parseBlobLocation('az://etl/p', { AZURE_STORAGE_CONNECTION_STRING: cs }).accountUrl).toBe(
      'https://acme.blob.core.windows.net',
    )
    const withSas = parseBlobLocation('az://etl/p', {
      AZURE_STORAGE_ACCOUNT_URL: 'https://acme.blob.core.windows.net/?sv=1&sig=acctsig123',
    })
    expect(withSas).toMatchObject({ accountUrl: 'https://acme.blob.core.windows.net', sas: 'sv=1&sig=acctsig123' })
    expect(redact('sig=acctsig123')).not.toContain('acctsig123')
    expect(parseBlobLocation('az://etl@acme/p', {})).toMatchObject({
      accountUrl: 'https://acme.blob.core.windows.net',
      container: 'etl',
      prefix: 'p',
    })
  })

  it('rejects what cannot work with ANCH_ERR_CONFIG', () => {
    expect(() => parseBlobLocation('az://etl/p', {})).toThrow(/AZURE_STORAGE_CONNECTION_STRING/)
    expect(() => parseBlobLocation('az://Bad_Container/p', { AZURE_STORAGE_ACCOUNT: 'acme' })).toThrow(/container name/)
    expect(() => parseBlobLocation('az://Bad_Container/p', {})).toThrow(/container name/) // before asking for the account
    expect(() => parseBlobLocation('https://acme.blob.core.windows.net/', {})).toThrow(/no container/)
    expect(() => parseBlobLocation('https://acme.blob.core.windows.net/etl/a/../b', {})).not.toThrow() // URL normalises ..
    expect(() => parseBlobLocation('https://acme.blob.core.windows.net/etl/a%2F..%2Fb', {})).toThrow(/refusing/)
    try {
      parseBlobLocation('az://x/p', {})
    } catch (err) {
      expect(err).toMatchObject({ code: 'ANCH_ERR_CONFIG' })
    }
  })

  it('takes a query string as a SAS, keeps it out of the display URL and registers it as a secret', () => {
    const url = 'https://acme.blob.core.windows.net/etl/p?sv=2024-01-01&sp=rwdl&sig=c2VjcmV0LXNpZw%3D%3D'
    expect(parseBlobLocation(url, {}).sas).toBe('sv=2024-01-01&sp=rwdl&sig=c2VjcmV0LXNpZw%3D%3D')
    expect(displayUrl(url)).toBe('https://acme.blob.core.windows.net/etl/p')
    expect(redact(`opening ${url}`)).not.toContain('c2VjcmV0LXNpZw')
  })

  it('is what the plugin factory accepts', () => {
    for (const u of [
      'az://etl/p',
      'azblob://etl',
      'https://a1b.blob.core.windows.net/etl',
      'http://127.0.0.1:1/devstoreaccount1/etl',
    ]) {
      expect(blobDatastoreFactory.accepts(u)).toBe(true)
    }
    expect(blobDatastoreFactory.accepts('/var/data')).toBe(false)
    expect(blobDatastoreFactory.accepts('s3://bucket/x')).toBe(false)
  })
})

describe('parseConnectionString', () => {
  it('reads account, key, endpoint and SAS, and the development-storage shortcut', () => {
    expect(
      parseConnectionString(
        'DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=abc==;EndpointSuffix=core.usgovcloudapi.net',
      ),
    ).toEqual({
      accountName: 'acme',
      accountKey: 'abc==',
      sas: undefined,
      blobEndpoint: 'https://acme.blob.core.usgovcloudapi.net',
    })
    expect(
      parseConnectionString('BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;SharedAccessSignature=sv=1&sig=x'),
    ).toMatchObject({
      accountName: 'devstoreaccount1',
      blobEndpoint: 'http://127.0.0.1:10000/devstoreaccount1',
      sas: 'sv=1&sig=x',
    })
    expect(parseConnectionString('UseDevelopmentStorage=true').blobEndpoint).toBe(
      'http://127.0.0.1:10000/devstoreaccount1',
    )
  })
})

describe('resolveCredential', () => {
  const loc = parseBlobLocation('https://acme.blob.core.windows.net/etl/p', {})
  const key = Buffer.from('a-very-secret-account-key-0123456789').toString('base64')

  it('prefers a URL SAS, then the connection string, the account key, the SAS token, then DefaultAzureCredential', async () => {
    const urlSas = parseBlobLocation('https://acme.blob.core.windows.net/etl/p?sv=1&sig=abcd1234', {})
    expect((await resolveCredential(urlSas, { AZURE_STORAGE_KEY: key })).kind).toBe('url-sas')
    expect(
      (
        await resolveCredential(loc, {
          AZURE_STORAGE_CONNECTION_STRING: `AccountName=acme;AccountKey=${key}`,
          AZURE_STORAGE_KEY: key,
        })
      ).kind,
    ).toBe('connection-string')
    expect(
      (await resolveCredential(loc, { AZURE_STORAGE_KEY: key, AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=zzzz9999' })).kind,
    ).toBe('account-key')
    const sas = await resolveCredential(loc, { AZURE_STORAGE_SAS_TOKEN: '?sv=1&sig=zzzz9999' })
    expect(sas).toMatchObject({ kind: 'sas', sas: 'sv=1&sig=zzzz9999' })
    expect((await resolveCredential(loc, { AZURE_BLOB_CREDENTIAL: 'sv=1&sig=legacy9999' })).kind).toBe('sas')
    expect((await resolveCredential(loc, { AZURE_BLOB_CREDENTIAL: key })).kind).toBe('account-key')
    expect((await resolveCredential(loc, {})).kind).toBe('default-azure-credential')
    const emulator = parseBlobLocation('http://127.0.0.1:10000/devstoreaccount1/etl', {})
    expect((await resolveCredential(emulator, {})).kind).toBe('emulator')
  })

  it('registers every secret it sees, so logs never show them', async () => {
    await resolveCredential(loc, { AZURE_STORAGE_KEY: key })
    await resolveCredential(loc, { AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=sassecret%2Bsig' })
    const line = redact(`key=${key} sas=sv=1&sig=sassecret%2Bsig sig=sassecret+sig`)
    expect(line).not.toContain(key)
    expect(line).not.toContain('sassecret')
  })

  it('refuses a connection string for another account than the URL names', async () => {
    await expect(
      resolveCredential(loc, { AZURE_STORAGE_CONNECTION_STRING: `AccountName=other;AccountKey=${key}` }),
    ).rejects.toMatchObject({ code: 'ANCH_ERR_CONFIG' })
  })
})
