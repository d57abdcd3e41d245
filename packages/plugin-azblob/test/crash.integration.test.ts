import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'
import { BlobDatastore } from '../src/blob-datastore.js'
import { EMULATOR_ACCOUNT, EMULATOR_KEY } from '../src/location.js'
import { Azurite } from './azurite.js'
import { BASIC, SLEEPY, anchovy, ids, machine, spawnAnchovy, waitForFile } from './cli.js'

let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

describe.concurrent('crashes on a blob datastore', () => {
  it('SIGKILL between writing data and committing: nothing becomes visible, the next run on this host takes the dead holder lease at once, nothing is lost', async () => {
    const url = azurite.url('crash', `k-${randomBytes(3).toString('hex')}`)
    const ds = await BlobDatastore.open(url, { env: {} })
    const [dlHome, upHome] = [await machine(), await machine()]
    const ready = join(dlHome, 'ready')
    const out = join(upHome, 'out.jsonl')
    const dl = ['start', '-op', `${SLEEPY}:Sleepy`, '--id', 'crash', '-u', 'dev', '--datastore', url, '--lock-ttl', '3']
    const up = ['start', '-op', `${BASIC}:FileUploader`, '--id', 'up', '-u', 'dev', '-U', 'crash', '--datastore', url]

    const victim = spawnAnchovy(dl, dlHome, { ROWS: '5', SLEEP_MS: '120000', READY_FILE: ready })
    await waitForFile(ready)
    // the data file is in the storage, the commit record is not
    const orphan = (await ds.list('dev/crash/data/rows')).map((e) => e.path)
    expect(orphan).toHaveLength(1)
    expect(await ds.list('dev/crash/$commits')).toEqual([])
    expect(await ds.readLock('dev/crash/$lock')).toMatchObject({ pid: victim.proc.pid })
    victim.proc.kill('SIGKILL')
    const killedAt = Date.now()
    expect((await victim.done).signal).toBe('SIGKILL')

    // nothing of the killed run is visible downstream
    expect((await anchovy(up, upHome, { OUT_FILE: out })).code).toBe(0)
    expect(await ids(out)).toEqual([])

    // the holder ran on this host and its pid is gone: the next run breaks the lease at once (a holder on
    // another host, or a frozen one, waits for the lease to expire: see the SIGSTOP test) and re-downloads
    const r = await anchovy(dl, dlHome, { ROWS: '5' })
    expect(r.code, r.stderr).toBe(0)
    const takeover = Date.now() - killedAt
    expect(takeover).toBeLessThan(15_000)
    // the run that took over deleted the killed batch's data file: only its own, committed one is left
    const files = (await ds.list('dev/crash/data/rows')).map((e) => e.path)
    expect(files).toHaveLength(1)
    expect(files).not.toContain(orphan[0])
    expect((await anchovy(up, upHome, { OUT_FILE: out })).code).toBe(0)
    expect((await ids(out)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4])
    // the next batch continues from the cursor
    expect((await anchovy(dl, dlHome, { ROWS: '5' })).code).toBe(0)
    expect((await anchovy(up, upHome, { OUT_FILE: out })).code).toBe(0)
    expect((await ids(out)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    console.log(`takeover after SIGKILL: ${takeover} ms`)
  }, 90_000)

  it('a holder on another machine killed with SIGKILL blocks the anchovy until its lease expires, then is taken over', async () => {
    const url = azurite.url('crash', `h-${randomBytes(3).toString('hex')}`)
    const [dlHome, victimHome] = [await machine(), await machine()]
    const ready = join(victimHome, 'ready')
    const dl = ['start', '-op', `${SLEEPY}:Sleepy`, '--id', 'far', '-u', 'dev', '--datastore', url, '--lock-ttl', '3']
    const victim = spawnAnchovy(dl, victimHome, { ROWS: '5', SLEEP_MS: '120000', READY_FILE: ready }, 'elsewhere')
    await waitForFile(ready)
    victim.proc.kill('SIGKILL')
    const killedAt = Date.now()
    expect((await victim.done).signal).toBe('SIGKILL')
    const refused = await anchovy(dl, dlHome, { ROWS: '5' })
    expect(refused.code).toBe(75)
    expect(refused.stderr).toMatch(/already running on host elsewhere/)
    let takeover: number | undefined
    while (takeover === undefined) {
      expect(Date.now() - killedAt).toBeLessThan(40_000)
      const r = await anchovy(dl, dlHome, { ROWS: '5' })
      if (r.code === 0) takeover = Date.now() - killedAt
      else expect(r.code, r.stderr).toBe(75)
      if (takeover === undefined) await new Promise((res) => setTimeout(res, 1000))
    }
    expect(takeover).toBeGreaterThan(8_000)
    console.log(`takeover of a killed holder on another host: ${takeover} ms`)
  }, 90_000)

  it('a run frozen past its lease (SIGSTOP) is taken over; thawed, it commits nothing and overwrites nothing', async () => {
    const url = azurite.url('crash', `z-${randomBytes(3).toString('hex')}`)
    const ds = await BlobDatastore.open(url, { env: {} })
    const [dlHome, upHome] = [await machine(), await machine()]
    const ready = join(dlHome, 'ready')
    const out = join(upHome, 'out.jsonl')
    const dl = [
      'start',
      '-op',
      `${SLEEPY}:Sleepy`,
      '--id',
      'zombie',
      '-u',
      'dev',
      '--datastore',
      url,
      '--lock-ttl',
      '3',
    ]
    const zombie = spawnAnchovy(dl, dlHome, { ROWS: '5', SLEEP_MS: '4000', READY_FILE: ready })
    await waitForFile(ready)
    zombie.proc.kill('SIGSTOP')
    const frozenAt = Date.now()
    let successor
    do {
      expect(Date.now() - frozenAt).toBeLessThan(30_000)
      await new Promise((r) => setTimeout(r, 1000))
      successor = await anchovy(dl, dlHome, { ROWS: '5' })
    } while (successor.code === 75)
    expect(successor.code).toBe(0)
    const checkpoint = (await ds.read('dev/zombie/$checkpoints/rows.last'))!.toString()
    zombie.proc.kill('SIGCONT')
    const thawed = await zombie.done
    expect(thawed.code).not.toBe(0)
    expect(thawed.stderr).toMatch(/lost the run lock|taken over|already exists/)
    expect((await ds.list('dev/zombie/$commits')).filter((e) => /\d{12}\.json$/.test(e.path))).toHaveLength(1)
    expect((await ds.read('dev/zombie/$checkpoints/rows.last'))!.toString()).toBe(checkpoint)
    expect(
      (
        await anchovy(
          ['start', '-op', `${BASIC}:FileUploader`, '--id', 'up', '-u', 'dev', '-U', 'zombie', '--datastore', url],
          upHome,
          { OUT_FILE: out },
        )
      ).code,
    ).toBe(0)
    expect((await ids(out)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4])
  }, 90_000)

  it('SIGKILL in the middle of a streamed upload: the next run drops the uncommitted blocks and nothing of it is ever visible', async () => {
    const url = azurite.url('crash', `b-${randomBytes(3).toString('hex')}`)
    const ds = await BlobDatastore.open(url, { env: {} })
    const home = await machine()
    const service = new BlobServiceClient(
      azurite.accountUrl,
      new StorageSharedKeyCredential(EMULATOR_ACCOUNT, EMULATOR_KEY),
    ).getContainerClient('crash')
    const prefix = new URL(url).pathname.split('/').slice(3).join('/')
    const partial = async (): Promise<string[]> => {
      const committed = new Set((await ds.list('dev/stub/data')).map((e) => `${prefix}/${e.path}`))
      const names: string[] = []
      for await (const item of service.listBlobsFlat({
        prefix: `${prefix}/dev/stub/data/`,
        includeUncommitedBlobs: true,
      }))
        if (!committed.has(item.name)) names.push(item.name)
      return names
    }
    // small blocks, so blocks of the never-ending table reach the storage quickly
    const victim = spawnAnchovy(
      ['start', '-op', `${BASIC}:Stubborn`, '--id', 'stub', '-u', 'dev', '--datastore', url, '--lock-ttl', '3'],
      home,
      { ACHVY_AZBLOB_BLOCK_SIZE: '65536' },
    )
    const deadline = Date.now() + 20_000
    while ((await partial()).length === 0) {
      expect(Date.now()).toBeLessThan(deadline)
      await new Promise((r) => setTimeout(r, 100))
    }
    victim.proc.kill('SIGKILL')
    await victim.done
    expect(await partial()).toHaveLength(1)
    expect(await ds.list('dev/stub/data')).toEqual([])
    // the next run of this anchovy (any operator) cleans up once the dead run's lease has expired
    let next
    do {
      await new Promise((r) => setTimeout(r, 1000))
      next = await anchovy(
        ['start', '-op', `${BASIC}:TwoTables`, '--id', 'stub', '-u', 'dev', '--datastore', url],
        home,
        { ROWS: '1' },
      )
    } while (next.code === 75 && Date.now() < deadline + 30_000)
    expect(next.code).toBe(0)
    expect(await partial()).toEqual([])
    expect((await ds.list('dev/stub/data')).map((e) => e.path.split('/')[3])).toEqual(['contacts', 'sales'])
  }, 90_000)
})
