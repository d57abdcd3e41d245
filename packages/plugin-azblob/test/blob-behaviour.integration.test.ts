import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob'
import { redact } from '@anchovies/core'
import { BlobDatastore } from '../src/blob-datastore.js'
import { EMULATOR_ACCOUNT, EMULATOR_KEY } from '../src/location.js'
import { Azurite, freePort } from './azurite.js'
import { FaultProxy } from './fault-proxy.js'

let azurite: Azurite
let service: BlobServiceClient
beforeAll(async () => {
  azurite = await Azurite.start()
  service = new BlobServiceClient(azurite.accountUrl, new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY))
})
afterAll(async () => {
  await azurite?.dispose()
})

const unique = (): string => randomBytes(4).toString('hex')
const fast = { maxTries: 4, baseDelayMs: 20, maxDelayMs: 200, tryTimeoutMs: 5000 }

describe.concurrent('BlobDatastore on Azurite', () => {
  it('creates a missing container when allowed, and says clearly when it is not', async () => {
    const name = `new-${unique()}`
    await expect(BlobDatastore.open(azurite.url(name, 'p'), { env: {}, createContainer: false })).rejects.toMatchObject(
      {
        code: 'ANCH_ERR_DATASTORE',
        message: expect.stringMatching(new RegExp(`container .*/${name} does not exist`)),
      },
    )
    expect(await service.getContainerClient(name).exists()).toBe(false)
    const ds = await BlobDatastore.open(azurite.url(name, 'p'), { env: {} })
    expect(await service.getContainerClient(name).exists()).toBe(true)
    await ds.write('x', '1')
    expect((await ds.read('x'))!.toString()).toBe('1')
    expect(ds.url).toBe(`${azurite.accountUrl}/${name}/p`)
  })

  it('fails clearly, without the key, when the credentials are refused', async () => {
    const wrongKey = Buffer.from(`not-the-key-${unique()}-padding-padding`).toString('base64')
    const err = (await BlobDatastore.open(azurite.url('auth', 'p'), { env: { AZURE_STORAGE_KEY: wrongKey } }).catch(
      (e: unknown) => e,
    )) as Error
    expect(err).toMatchObject({ code: 'ANCH_ERR_DATASTORE' })
    expect(err.message).toMatch(/refused the credentials \(403/)
    expect(err.message).not.toContain(wrongKey)
    expect(
      redact(JSON.stringify({ msg: err.message, stack: err.stack, cause: String((err as { cause?: unknown }).cause) })),
    ).not.toContain(wrongKey)
  })

  it('without any storage credential falls back to DefaultAzureCredential and says what to set when it finds none', async () => {
    // DefaultAzureCredential reads process.env itself: hide any Azure identity the test machine may have
    const saved = Object.entries(process.env).filter(([k]) => k.startsWith('AZURE_'))
    for (const [k] of saved) delete process.env[k]
    const err = await BlobDatastore.open('https://nosuchaccount0.blob.core.windows.net/etl/p', {
      env: {},
      retry: { ...fast, maxTries: 1 },
    })
      .catch((e: unknown) => e)
      .finally(() => Object.assign(process.env, Object.fromEntries(saved)))
    expect(err).toMatchObject({
      code: 'ANCH_ERR_DATASTORE',
      message: expect.stringContaining(
        'no Azure credential is available for https://nosuchaccount0.blob.core.windows.net',
      ),
    })
    expect((err as Error).message).toContain('AZURE_STORAGE_CONNECTION_STRING')
  })

  it('fails clearly when the storage cannot be reached, after the configured tries', async () => {
    const port = await freePort()
    const started = Date.now()
    const err = await BlobDatastore.open(`http://127.0.0.1:${port}/${EMULATOR_ACCOUNT}/etl/p`, {
      env: {},
      retry: fast,
    }).catch((e: unknown) => e)
    expect(err).toMatchObject({
      code: 'ANCH_ERR_DATASTORE',
      message: expect.stringMatching(
        new RegExp(`cannot reach http://127.0.0.1:${port}/devstoreaccount1 \\(ECONNREFUSED\\) after 4 tries`),
      ),
    })
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('works with a SAS token (environment or URL query) and never shows it in errors', async () => {
    const container = `sas-${unique()}`
    await service.getContainerClient(container).create()
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse('racwdl'),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY),
    ).toString()
    const viaEnv = await BlobDatastore.open(azurite.url(container, 'p'), { env: { AZURE_STORAGE_SAS_TOKEN: sas } })
    expect(viaEnv.credentialKind).toBe('sas')
    await viaEnv.write('a/b', 'sas works')
    const viaUrl = await BlobDatastore.open(`${azurite.url(container, 'p')}?${sas}`, { env: {} })
    expect(viaUrl.credentialKind).toBe('url-sas')
    expect(viaUrl.url).not.toContain('sig=')
    expect((await viaUrl.list('a')).map((e) => e.path)).toEqual(['a/b'])
    const sig = new URLSearchParams(sas).get('sig')!
    const err = (await viaUrl.readStream('missing').catch((e: unknown) => e)) as Error
    expect(err.message).not.toContain(sig)
    expect(redact(`${sas} ${sig} ${encodeURIComponent(sig)}`)).not.toMatch(
      new RegExp(sig.slice(0, 10).replace(/[+/]/g, '.')),
    )
  })

  it('works with AZURE_STORAGE_CONNECTION_STRING and an az:// URL', async () => {
    const ds = await BlobDatastore.open(`az://cs-${unique()}/school/prod`, {
      env: { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString },
    })
    expect(ds.credentialKind).toBe('connection-string')
    await ds.write('dev/a/$checkpoints/k', 'v')
    expect((await ds.list('dev')).map((e) => e.path)).toEqual(['dev/a/$checkpoints/k'])
  })

  it('refuses to overwrite a blob another writer changed since this process saw it (ETag fencing)', async () => {
    const url = azurite.url('fencing', unique())
    const zombie = await BlobDatastore.open(url, { env: {} })
    const successor = await BlobDatastore.open(url, { env: {} })
    await zombie.write('dev/a/$checkpoints/sales.last', '10')
    await zombie.write('dev/a/$checkpoints/sales.last', '11') // its own replacement: fine
    expect((await successor.read('dev/a/$checkpoints/sales.last'))!.toString()).toBe('11')
    await successor.write('dev/a/$checkpoints/sales.last', '20')
    await expect(zombie.write('dev/a/$checkpoints/sales.last', '12')).rejects.toMatchObject({
      code: 'ANCH_ERR_LOCKED',
      message: expect.stringContaining('another writer changed it'),
    })
    await expect(zombie.delete('dev/a/$checkpoints/sales.last')).rejects.toMatchObject({ code: 'ANCH_ERR_LOCKED' })
    const stream = zombie.writeStream('dev/a/$checkpoints/sales.last')
    stream.on('error', () => undefined)
    stream.end('13')
    const [err] = (await once(stream, 'error').catch((e: unknown) => [e])) as [Error]
    expect(err).toMatchObject({ code: 'ANCH_ERR_LOCKED' })
    expect((await successor.read('dev/a/$checkpoints/sales.last'))!.toString()).toBe('20')
    // after reading the new state, the zombie may write again (it is a cache of what it saw, not a lock)
    await zombie.read('dev/a/$checkpoints/sales.last')
    await zombie.write('dev/a/$checkpoints/sales.last', '21')
  })

  it('streams data files as staged blocks: blocks reach the storage before the stream ends, the blob appears only at the end', async () => {
    const ds = await BlobDatastore.open(azurite.url('streams', unique()), { env: {}, blockSize: 1024 * 1024 })
    const out = ds.writeStream('dev/dl/data/sales/big.json.gz')
    const chunk = randomBytes(256 * 1024)
    for (let i = 0; i < 24; i++) if (!out.write(chunk)) await once(out, 'drain')
    const client = ds.blob('dev/dl/data/sales/big.json.gz')
    let uncommitted = 0
    for (let i = 0; i < 50 && uncommitted === 0; i++) {
      uncommitted = ((await client.getBlockList('uncommitted')).uncommittedBlocks ?? []).length
      if (!uncommitted) await new Promise((r) => setTimeout(r, 50))
    }
    expect(uncommitted).toBeGreaterThanOrEqual(1)
    expect(await client.exists()).toBe(false)
    out.end()
    await once(out, 'finish')
    const props = await client.getProperties()
    expect(props.contentLength).toBe(24 * chunk.length)
    expect(props.contentType).toBe('application/gzip')
    expect(props.contentEncoding).toBeUndefined() // nobody may gunzip a data file on the fly
    expect((await client.getBlockList('committed')).committedBlocks).toHaveLength(6)
  })

  it('retries throttling (429 with Retry-After, 503 ServerBusy) with back-off, then succeeds', async () => {
    let failures = 0
    const proxy = await FaultProxy.start(azurite.port, (req) => {
      if (req.method === 'PUT' && req.url?.includes('/throttled/') && failures < 3) {
        failures++
        return failures === 2
          ? { kind: 'status', status: 429, headers: { 'retry-after': '1' } }
          : { kind: 'status', status: 503 }
      }
      return { kind: 'forward' }
    })
    try {
      const ds = await BlobDatastore.open(`http://127.0.0.1:${proxy.port}/${EMULATOR_ACCOUNT}/retries/throttled`, {
        env: {},
        retry: { ...fast, maxTries: 5 },
      })
      const started = Date.now()
      await ds.write('dev/a/x', 'made it')
      expect(Date.now() - started).toBeGreaterThanOrEqual(900) // the 429's Retry-After: 1 was honoured
      expect((await ds.read('dev/a/x'))!.toString()).toBe('made it')
      expect(proxy.seen.filter((s) => s.fault === 'status')).toHaveLength(3)
      failures = -100 // from now on: always throttle
      await expect(ds.write('dev/a/y', 'never')).rejects.toMatchObject({
        code: 'ANCH_ERR_DATASTORE',
        message: expect.stringContaining('(503 ServerBusy) after 5 tries'),
      })
    } finally {
      await proxy.close()
    }
  })

  it('createExclusive and replacements stay correct when a response is lost and the request retried', async () => {
    const drop = new Set<string>()
    const proxy = await FaultProxy.start(azurite.port, (req) => {
      const key = `${req.method} ${req.url?.split('?')[0]}`
      if (req.method === 'PUT' && req.url?.includes('/lost/') && !drop.has(key)) {
        drop.add(key)
        return { kind: 'drop-response' }
      }
      return { kind: 'forward' }
    })
    try {
      const ds = await BlobDatastore.open(`http://127.0.0.1:${proxy.port}/${EMULATOR_ACCOUNT}/retries/lost`, {
        env: {},
        retry: fast,
      })
      // the first try creates the blob but its answer is lost; the retry meets 409 and recognises its own write
      expect(await ds.createExclusive('dev/a/$commits/000000000001.json', '{"seq":1}')).toBe(true)
      expect(await ds.createExclusive('dev/a/$commits/000000000001.json', '{"seq":1}')).toBe(false)
      await ds.write('dev/a/$checkpoints/k', 'v1')
      drop.clear()
      // a conditional replacement whose answer is lost: the retry's If-Match fails, yet it is our write
      await ds.write('dev/a/$checkpoints/k', 'v2')
      expect((await ds.read('dev/a/$checkpoints/k'))!.toString()).toBe('v2')
      expect(proxy.seen.filter((s) => s.fault === 'drop-response').length).toBeGreaterThanOrEqual(3)
    } finally {
      await proxy.close()
    }
  })

  it('keeps a lock whose TTL exceeds the longest lease (60 s) alive between the runtime renewals', async () => {
    const proxy = await FaultProxy.start(azurite.port, () => ({ kind: 'forward' }))
    const renewals = (): number =>
      proxy.seen.filter((r) => r.method === 'PUT' && r.url.includes('comp=lease') && r.leaseAction === 'renew').length
    try {
      const ds = await BlobDatastore.open(`http://127.0.0.1:${proxy.port}/${EMULATOR_ACCOUNT}/keepalive/${unique()}`, {
        env: {},
      })
      const lock = await ds.lock('dev/a/$lock', 180_000) // the runtime would renew every 60 s; the lease lasts 60 s
      await new Promise((r) => setTimeout(r, 21_000))
      expect(renewals()).toBeGreaterThanOrEqual(1) // the plugin renewed on its own after 20 s
      await lock.release()
      expect(await ds.readLock('dev/a/$lock')).toBeUndefined()
    } finally {
      await proxy.close()
    }
  }, 40_000)
})
