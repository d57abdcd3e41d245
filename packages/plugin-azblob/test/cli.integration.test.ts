import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob'
import { BlobDatastore } from '../src/blob-datastore.js'
import { EMULATOR_ACCOUNT, EMULATOR_KEY } from '../src/location.js'
import { Azurite } from './azurite.js'
import { BASIC, SLEEPY, anchovy, machine, spawnAnchovy } from './cli.js'

// A second account with a random key: a real secret that must never appear in any output.
const SECRET_ACCOUNT = 'anchovies'
const SECRET_KEY = randomBytes(64).toString('base64')

let azurite: Azurite
let service: BlobServiceClient
beforeAll(async () => {
  azurite = await Azurite.start({ [SECRET_ACCOUNT]: SECRET_KEY })
  service = new BlobServiceClient(azurite.accountUrl, new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY))
})
afterAll(async () => {
  await azurite?.dispose()
})

const unique = (): string => randomBytes(3).toString('hex')
const rowsOf = async (file: string): Promise<Record<string, unknown>[]> =>
  (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)

describe.concurrent('anchovy CLI on a blob datastore', () => {
  it('a downloader and an uploader on two machines share only the blob datastore; every row arrives exactly once', async () => {
    const ds = azurite.url('school', `prod-${unique()}`)
    const [dlHome, upHome] = [await machine(), await machine()]
    const out = join(upHome, 'out.jsonl')
    const dl = ['start', '-op', `${BASIC}:TwoTables`, '--id', 'dl', '-u', 'dev', '--datastore', ds]
    // the uploader finds the datastore through ACHVY_DATASTORE
    const up = ['start', '-op', `${BASIC}:FileUploader`, '--id', 'up', '-u', 'dev', '-U', 'dl']
    const upEnv = { OUT_FILE: out, ACHVY_DATASTORE: ds }
    for (let round = 0; round < 2; round++) {
      expect((await anchovy(dl, dlHome, { ROWS: '4' })).code).toBe(0)
      expect((await anchovy(up, upHome, upEnv)).code).toBe(0)
    }
    expect((await anchovy(up, upHome, upEnv)).code).toBe(0) // nothing new: nothing delivered again
    const rows = await rowsOf(out)
    const keys = rows.map((r) => `${String(r.table)}:${String(r.id ?? r.contact_id)}`)
    expect(keys).toHaveLength(16)
    expect(new Set(keys).size).toBe(16)
    expect(keys.filter((k) => k.startsWith('dl.sales:')).sort()).toEqual(
      ['0', '1', '2', '3', '4', '5', '6', '7'].map((i) => `dl.sales:${i}`).sort(),
    )
    // nothing was kept on either machine: no local datastore
    expect(await readdir(dlHome)).toEqual([])
    expect((await readdir(upHome)).sort()).toEqual(['out.jsonl'])
  })

  it('of two concurrent runs of one anchovy exactly one proceeds; the other exits 75 naming the holder', async () => {
    const ds = azurite.url('school', `twins-${unique()}`)
    const home = await machine()
    const args = ['start', '-op', `${SLEEPY}:Sleepy`, '--id', 'twin', '-u', 'dev', '--datastore', ds]
    const a = spawnAnchovy(args, home, { SLEEP_MS: '5000' })
    const b = spawnAnchovy(args, home, { SLEEP_MS: '5000' })
    const results = await Promise.all([a.done, b.done])
    expect(results.map((r) => r.code).sort()).toEqual([0, 75])
    const winner = results[0]!.code === 0 ? a : b
    const loser = results.find((r) => r.code === 75)!
    expect(loser.stderr).toContain(`already running on host ${hostname()} (pid ${winner.proc.pid}`)
    const commits = (await list('school', ds, 'dev/twin/$commits')).filter((p) => /\d{12}\.json$/.test(p)).length
    expect(commits).toBe(1)
  })

  it('a --service anchovy commits batch after batch on blob, stops on SIGTERM releasing its lease at once, and its heartbeat serves the healthcheck', async () => {
    const ds = azurite.url('school', `svc-${unique()}`)
    const home = await machine()
    const addr = ['--id', 'tick', '-u', 'dev', '--datastore', ds]
    const svc = spawnAnchovy(
      ['start', '-op', `${BASIC}:Ticker`, ...addr, '-S', '--interval', '0.1', '--lock-ttl', '3'],
      home,
    )
    const store = await BlobDatastore.open(ds, { env: {} })
    while (Number((await store.read('dev/tick/$commits/HEAD'))?.toString() ?? 0) < 8)
      await new Promise((r) => setTimeout(r, 100))
    expect(await anchovy(['healthcheck', ...addr, '--max-age', '30'], home)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('last service heartbeat OK'),
    })
    svc.proc.kill('SIGTERM')
    const stopped = await svc.done
    expect(stopped.code).toBe(0)
    expect(stopped.stderr).not.toContain('refusing to overwrite') // its own checkpoints, heartbeat and HEAD, batch after batch
    expect(await store.readLock('dev/tick/$lock')).toBeUndefined() // released, not left to expire
    const seqs = (await store.list('dev/tick/$commits')).filter((e) => /\d{12}\.json$/.test(e.path)).length
    expect(seqs).toBeGreaterThanOrEqual(8)
    expect((await store.read('dev/tick/$checkpoints/ticks.n'))!.toString()).toBe(String(seqs))
    const again = await anchovy(
      ['start', '-op', `${BASIC}:Ticker`, ...addr, '-S', '--interval', '0', '--max-batches', '1'],
      home,
    )
    expect(again.code).toBe(0)
    expect((await store.read('dev/tick/$checkpoints/ticks.n'))!.toString()).toBe(String(seqs + 1))
  })

  it('anchovy healthcheck and anchovy checkpoint work against the blob datastore', async () => {
    const ds = azurite.url('school', `ops-${unique()}`)
    const home = await machine()
    const addr = ['--id', 'dl', '-u', 'dev', '--datastore', ds]
    const none = await anchovy(['healthcheck', ...addr], home)
    expect(none).toMatchObject({ code: 1, stdout: expect.stringContaining('no run of dev/dl is recorded') })
    expect((await anchovy(['start', '-op', `${BASIC}:TwoTables`, ...addr], home, { ROWS: '2' })).code).toBe(0)
    expect(await anchovy(['healthcheck', ...addr, '--max-age', '60'], home)).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^healthy: last run OK/),
    })
    expect((await anchovy(['checkpoint', 'list', ...addr], home)).stdout).toBe('contacts.last\t2\nsales.last\t2\n')
    expect((await anchovy(['checkpoint', 'set', 'sales.last', '100', ...addr], home)).code).toBe(0)
    expect((await anchovy(['checkpoint', 'get', 'sales.last', ...addr], home)).stdout).toBe('100\n')
    expect((await anchovy(['checkpoint', 'delete', 'contacts.*', ...addr], home)).stdout).toContain(
      'deleted 1 checkpoint(s)',
    )
    expect((await anchovy(['checkpoint', 'list', ...addr], home)).stdout).toBe('sales.last\t100\n')
    const unreachable = await anchovy(
      ['healthcheck', '--id', 'dl', '-u', 'dev', '--datastore', `http://127.0.0.1:9/${EMULATOR_ACCOUNT}/school/x`],
      home,
      { ACHVY_AZBLOB_MAX_TRIES: '2' },
    )
    expect(unreachable).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('cannot reach http://127.0.0.1:9/devstoreaccount1 (ECONNREFUSED)'),
    })
  })

  it('--task-store-cls hive writes every task log into one Hive-partitioned folder at the datastore root', async () => {
    const prefix = `hive-${unique()}`
    const ds = azurite.url('school', prefix)
    const home = await machine()
    for (const id of ['dl1', 'dl2']) {
      expect(
        (
          await anchovy(
            [
              'start',
              '-op',
              `${BASIC}:TwoTables`,
              '--id',
              id,
              '-u',
              'dev',
              '--datastore',
              ds,
              '--task-store-cls',
              'hive',
            ],
            home,
          )
        ).code,
      ).toBe(0)
    }
    const logs = await list('school', ds, '$task_logs')
    const today = new Date().toISOString().slice(0, 10)
    for (const id of ['dl1', 'dl2']) {
      const mine = logs.filter((p) => p.startsWith(`$task_logs/anchovy_user=dev/anchovy_id=${id}/date=${today}/`))
      expect(mine.length).toBeGreaterThanOrEqual(6) // STARTUP, XOPEN, 2 × TABLE, XCLOSE, SHUTDOWN
      const records = await Promise.all(
        mine.map(
          async (p) => JSON.parse((await readBlob('school', `${prefix}/${p}`)).toString()) as Record<string, unknown>,
        ),
      )
      expect(new Set(records.map((r) => r.task_type))).toEqual(
        new Set(['STARTUP', 'XOPEN', 'TABLE', 'XCLOSE', 'SHUTDOWN']),
      )
      expect(records.every((r) => r.anchovy_id === id && r.anchovy_user === 'dev')).toBe(true)
    }
    expect(logs.length).toBe(logs.filter((p) => p.startsWith('$task_logs/anchovy_user=dev/')).length)
    expect(await list('school', ds, 'dev/dl1/$task_logs')).toEqual([])
  })

  it('never writes the account key, the connection string or a SAS into logs, task logs, results or errors', async () => {
    const container = `secrets-${unique()}`
    const secretService = new BlobServiceClient(
      azurite.endpoint(SECRET_ACCOUNT),
      new StorageSharedKeyCredential(SECRET_ACCOUNT, SECRET_KEY),
    )
    await secretService.getContainerClient(container).create()
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse('racwdl'),
        expiresOn: new Date(Date.now() + 3600_000),
      },
      new StorageSharedKeyCredential(SECRET_ACCOUNT, SECRET_KEY),
    ).toString()
    const sig = new URLSearchParams(sas).get('sig')!
    const connectionString = `DefaultEndpointsProtocol=http;AccountName=${SECRET_ACCOUNT};AccountKey=${SECRET_KEY};BlobEndpoint=${azurite.endpoint(SECRET_ACCOUNT)};`
    const url = `${azurite.endpoint(SECRET_ACCOUNT)}/${container}/prod`
    const [dlHome, upHome] = [await machine(), await machine()]
    const outputs: string[] = []
    const run = async (args: string[], home: string, env: Record<string, string>): Promise<number | null> => {
      const r = await anchovy([...args, '--log-level', 'debug'], home, env)
      outputs.push(r.stdout, r.stderr)
      return r.code
    }
    const dl = ['start', '-op', `${BASIC}:TwoTables`, '--id', 'dl', '-u', 'dev']
    const up = ['start', '-op', `${BASIC}:FileUploader`, '--id', 'up', '-u', 'dev', '-U', 'dl']
    // key via connection string + az:// URL; SAS via the environment; SAS in the URL itself
    expect(
      await run([...dl, '--datastore', `az://${container}/prod`], dlHome, {
        AZURE_STORAGE_CONNECTION_STRING: connectionString,
      }),
    ).toBe(0)
    expect(
      await run([...up, '--datastore', url], upHome, {
        AZURE_STORAGE_SAS_TOKEN: sas,
        OUT_FILE: join(upHome, 'out'),
        FAIL_UPLOAD: 'sales',
      }),
    ).toBe(1)
    expect(await run([...up, '--datastore', `${url}?${sas}`], upHome, { OUT_FILE: join(upHome, 'out') })).toBe(0)
    expect(await run([...dl, '--datastore', url], dlHome, { AZURE_STORAGE_KEY: SECRET_KEY })).toBe(0)
    // failures: a key refused by another account, and an unreachable endpoint
    expect(
      await run(['healthcheck', '--id', 'dl', '-u', 'dev', '--datastore', azurite.url(container, 'prod')], dlHome, {
        AZURE_STORAGE_KEY: SECRET_KEY,
      }),
    ).toBe(1)
    expect(
      await run(
        [
          'healthcheck',
          '--id',
          'dl',
          '-u',
          'dev',
          '--datastore',
          `http://127.0.0.1:9/${SECRET_ACCOUNT}/${container}?${sas}`,
        ],
        dlHome,
        { ACHVY_AZBLOB_MAX_TRIES: '1' },
      ),
    ).toBe(1)
    expect(
      await run(['checkpoint', 'list', '--id', 'dl', '-u', 'dev', '--datastore', `az://${container}/prod`], dlHome, {
        AZURE_STORAGE_CONNECTION_STRING: connectionString,
      }),
    ).toBe(0)
    // everything the runs wrote to the storage, and to their machines
    for await (const item of secretService.getContainerClient(container).listBlobsFlat()) {
      outputs.push(
        (await secretService.getContainerClient(container).getBlobClient(item.name).downloadToBuffer()).toString(
          'latin1',
        ),
      )
    }
    for (const home of [dlHome, upHome])
      for (const f of await readdir(home)) outputs.push(await readFile(join(home, f), 'latin1'))
    const everything = outputs.join('\n')
    expect(everything).toContain('"task_type":"TABLE"') // task logs were scanned
    expect(everything).toContain('refused the credentials') // the failure was reported
    for (const secret of [
      SECRET_KEY,
      connectionString,
      sas,
      sig,
      encodeURIComponent(sig),
      SECRET_KEY.slice(0, 20),
      sig.slice(0, 16),
    ]) {
      expect(everything.includes(secret), `leaked ${secret.slice(0, 6)}…`).toBe(false)
    }
  })
})

async function list(container: string, datastoreUrl: string, folder: string): Promise<string[]> {
  const prefix = new URL(datastoreUrl).pathname.split('/').slice(3).join('/')
  const out: string[] = []
  for await (const item of service.getContainerClient(container).listBlobsFlat({ prefix: `${prefix}/${folder}/` }))
    out.push(item.name.slice(prefix.length + 1))
  return out
}

async function readBlob(container: string, name: string): Promise<Buffer> {
  return service.getContainerClient(container).getBlobClient(name).downloadToBuffer()
}
