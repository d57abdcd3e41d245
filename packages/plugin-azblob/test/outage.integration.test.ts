import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BlobDatastore } from '../src/blob-datastore.js'
import { Azurite } from './azurite.js'
import { BASIC, SLEEPY, anchovy, ids, machine, spawnAnchovy, waitForFile } from './cli.js'

let azurite: Azurite
beforeAll(async () => {
  azurite = await Azurite.start()
})
afterAll(async () => {
  await azurite?.dispose()
})

describe('storage outage', () => {
  it('Azurite stopped mid-run: the run fails clearly; after a restart the next run succeeds and nothing is lost or doubled', async () => {
    const url = azurite.url('outage', `o-${randomBytes(3).toString('hex')}`)
    const [dlHome, upHome] = [await machine(), await machine()]
    const ready = join(dlHome, 'ready')
    const out = join(upHome, 'out.jsonl')
    const dl = ['start', '-op', `${SLEEPY}:Sleepy`, '--id', 'out', '-u', 'dev', '--datastore', url, '--lock-ttl', '3']
    // fewer, shorter retries than the defaults (5 tries, ~8 s of back-off) keep the test short
    const quick = { ACHVY_AZBLOB_MAX_TRIES: '3', ACHVY_AZBLOB_RETRY_DELAY_MS: '200' }

    const run = spawnAnchovy(dl, dlHome, { ...quick, ROWS: '5', SLEEP_MS: '3000', READY_FILE: ready })
    await waitForFile(ready)
    await azurite.stop()
    const stoppedAt = Date.now()
    const failed = await run.done
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(
      new RegExp(
        `cannot reach http://127.0.0.1:${azurite.port}/devstoreaccount1 \\(ECONN(REFUSED|RESET)\\) after 3 tries`,
      ),
    )
    expect(Date.now() - stoppedAt).toBeLessThan(20_000)

    await azurite.restart()
    // the failed run could not release its lease: on Azure it lapses 15 s after the last renewal (Azurite drops
    // leases when it restarts), so the next scheduled run is the first after that
    const ds = await BlobDatastore.open(url, { env: {} })
    while (await ds.readLock('dev/out/$lock')) await new Promise((r) => setTimeout(r, 500))
    const next = await anchovy(dl, dlHome, { ROWS: '5' })
    expect(next.code).toBe(0)
    expect((await ds.list('dev/out/$commits')).filter((e) => /\d{12}\.json$/.test(e.path))).toHaveLength(1)
    expect(
      (
        await anchovy(
          ['start', '-op', `${BASIC}:FileUploader`, '--id', 'up', '-u', 'dev', '-U', 'out', '--datastore', url],
          upHome,
          { OUT_FILE: out },
        )
      ).code,
    ).toBe(0)
    expect((await ids(out)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4])
  }, 90_000)
})
