import { once } from 'node:events'
import { hostname } from 'node:os'
import type { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { Datastore } from '../../src/datastore/datastore.js'

/** A datastore under test, and a second handle on the same storage (as another process would open it). */
export interface ContractSubject {
  readonly datastore: Datastore
  /** Opens another handle on the same storage (no shared in-memory state with `datastore`). */
  second(): Promise<Datastore>
  cleanup(): Promise<void>
}

/** How a backend's locks behave in time. */
export interface ContractOptions {
  /** The TTL the lock tests use. */
  readonly lockTtlMs: number
  /** How long after the last renewal a lock with `lockTtlMs` becomes free for a takeover (blob leases: at least 15 s). */
  readonly lockExpiryMs: number
}

/**
 * The behaviour every Datastore must have (the core's runtime, commit log and stores rely on it). Each backend runs
 * this one suite, so backends cannot drift apart. Errors are checked by `code`/`name`, not `instanceof`, because a
 * plugin's errors come from the built core.
 */
export function describeDatastoreContract(
  name: string,
  open: () => Promise<ContractSubject>,
  options: ContractOptions,
): void {
  const withStore = (fn: (s: ContractSubject) => Promise<void>) => async () => {
    const s = await open()
    try {
      await fn(s)
    } finally {
      await s.cleanup()
    }
  }

  describe.concurrent(`Datastore contract: ${name}`, () => {
    it(
      'reads back what it wrote, and undefined for a missing object',
      withStore(async ({ datastore: ds }) => {
        expect(await ds.read('u/a/missing.json')).toBeUndefined()
        await ds.write('u/a/$checkpoints/sales.last', 'héllo ✓')
        expect((await ds.read('u/a/$checkpoints/sales.last'))?.toString('utf8')).toBe('héllo ✓')
        const bytes = Uint8Array.from([0, 1, 2, 255, 254])
        await ds.write('u/a/bin', bytes)
        expect([...(await ds.read('u/a/bin'))!]).toEqual([...bytes])
        await ds.write('u/a/empty', '')
        expect((await ds.read('u/a/empty'))?.length).toBe(0)
      }),
    )

    it(
      'replaces an object atomically: concurrent readers see the old or the new content, never a mix',
      withStore(async ({ datastore: ds }) => {
        const a = Buffer.alloc(512 * 1024, 'a')
        const b = Buffer.alloc(700 * 1024, 'b')
        await ds.write('u/a/big', a)
        const seen = new Set<string>()
        let writing = true
        const writer = (async () => {
          for (let i = 0; i < 6; i++) await ds.write('u/a/big', i % 2 ? a : b)
          writing = false
        })()
        while (writing) {
          const got = (await ds.read('u/a/big'))!
          const kind = got.equals(a) ? 'a' : got.equals(b) ? 'b' : `torn(${got.length})`
          seen.add(kind)
        }
        await writer
        expect([...seen].filter((k) => k.startsWith('torn'))).toEqual([])
      }),
    )

    it(
      'streams an object out, and rejects readStream of a missing one with ANCH_ERR_DATASTORE',
      withStore(async ({ datastore: ds }) => {
        const data = Buffer.alloc(3 * 1024 * 1024 + 17)
        for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251
        await ds.write('u/a/data/t/f.json.gz', data)
        expect((await collect(await ds.readStream('u/a/data/t/f.json.gz'))).equals(data)).toBe(true)
        const err = await ds.readStream('u/a/data/t/nope.json.gz').then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toMatchObject({ code: 'ANCH_ERR_DATASTORE' })
      }),
    )

    it(
      'writeStream: nothing is visible until the stream finishes, then all of it is',
      withStore(async ({ datastore: ds }) => {
        const chunk = Buffer.alloc(256 * 1024)
        for (let i = 0; i < chunk.length; i++) chunk[i] = i % 256
        const out = ds.writeStream('u/a/data/sales/x.json.gz')
        // 9 MiB in 256 KiB chunks: several blocks for block-based backends
        for (let i = 0; i < 36; i++) if (!out.write(chunk)) await once(out, 'drain')
        expect(await ds.read('u/a/data/sales/x.json.gz')).toBeUndefined()
        expect(await ds.list('u/a/data')).toEqual([])
        out.end()
        await once(out, 'finish')
        const got = (await ds.read('u/a/data/sales/x.json.gz'))!
        expect(got.length).toBe(36 * chunk.length)
        expect(
          got.subarray(0, chunk.length).equals(chunk) && got.subarray(got.length - chunk.length).equals(chunk),
        ).toBe(true)
        expect((await ds.list('u/a/data')).map((e) => [e.path, e.size])).toEqual([
          ['u/a/data/sales/x.json.gz', 36 * chunk.length],
        ])
      }),
    )

    it(
      'writeStream: a small object, and a replacement of an existing one',
      withStore(async ({ datastore: ds }) => {
        await ds.write('u/a/f', 'old')
        const out = ds.writeStream('u/a/f')
        out.end('new content')
        await once(out, 'finish')
        expect((await ds.read('u/a/f'))!.toString()).toBe('new content')
      }),
    )

    it(
      'writeStream: destroying the stream discards it (a new object never appears, an old one stays)',
      withStore(async ({ datastore: ds }) => {
        const big = Buffer.alloc(5 * 1024 * 1024, 'z')
        const fresh = ds.writeStream('u/a/data/t/partial.json.gz')
        fresh.on('error', () => undefined)
        fresh.write(big)
        fresh.write(big)
        await new Promise((r) => setTimeout(r, 50))
        fresh.destroy(new Error('batch aborted'))
        await closed(fresh)
        await ds.write('u/a/keep', 'kept')
        const replacing = ds.writeStream('u/a/keep')
        replacing.on('error', () => undefined)
        replacing.write(big)
        replacing.destroy()
        await closed(replacing)
        await new Promise((r) => setTimeout(r, 200))
        expect(await ds.read('u/a/data/t/partial.json.gz')).toBeUndefined()
        expect(await ds.list('u/a/data')).toEqual([])
        expect((await ds.read('u/a/keep'))!.toString()).toBe('kept')
      }),
    )

    it(
      'sweep removes what an interrupted streamed write left, and nothing else',
      withStore(async ({ datastore: ds, second }) => {
        if (!ds.sweep) return // optional: a backend whose writes leave nothing has no sweep
        await ds.write('u/a/data/t/kept.json.gz', 'kept')
        const abandoned = ds.writeStream('u/a/data/t/abandoned.json.gz')
        abandoned.on('error', () => undefined)
        const big = Buffer.alloc(9 * 1024 * 1024, 'q')
        if (!abandoned.write(big)) await once(abandoned, 'drain')
        // another process (the next run) sweeps while the writer is gone without finishing or cleaning up
        const sweeper = await second()
        let removed = 0
        for (let i = 0; i < 50 && removed === 0; i++) {
          removed = await sweeper.sweep!('u/a/data')
          if (!removed) await new Promise((r) => setTimeout(r, 100))
        }
        expect(removed).toBeGreaterThanOrEqual(1)
        expect(await sweeper.sweep!('u/a/data')).toBe(0)
        expect((await ds.list('u/a')).map((e) => e.path)).toEqual(['u/a/data/t/kept.json.gz'])
        expect((await ds.read('u/a/data/t/kept.json.gz'))!.toString()).toBe('kept')
        abandoned.destroy()
        await closed(abandoned)
        await sweeper.close()
      }),
    )

    it(
      'createExclusive: the first writer wins, a second gets false and changes nothing',
      withStore(async ({ datastore: ds }) => {
        expect(await ds.createExclusive('u/a/$commits/000000000001.json', '{"seq":1}')).toBe(true)
        expect(await ds.createExclusive('u/a/$commits/000000000001.json', '{"seq":1,"other":true}')).toBe(false)
        expect((await ds.read('u/a/$commits/000000000001.json'))!.toString()).toBe('{"seq":1}')
      }),
    )

    it(
      'createExclusive: of two writers racing on two handles, exactly one wins each object',
      withStore(async ({ datastore: ds, second }) => {
        const other = await second()
        for (let round = 0; round < 5; round++) {
          const path = `u/a/$commits/${String(round + 1).padStart(12, '0')}.json`
          const attempts = [ds, other, ds, other].map((d, i) =>
            d.createExclusive(path, `writer-${i}`).then((won) => ({ won, i })),
          )
          const results = await Promise.all(attempts)
          const winners = results.filter((r) => r.won)
          expect(winners).toHaveLength(1)
          expect((await ds.read(path))!.toString()).toBe(`writer-${winners[0]!.i}`)
        }
        await other.close()
      }),
    )

    it(
      'lists every object under a folder recursively, sorted, relative to the root, and nothing beside it',
      withStore(async ({ datastore: ds }) => {
        const paths = [
          'dev/dl/data/sales/20250101000000.a-0000.json.gz',
          'dev/dl/data/sales/2025/01/nested.json.gz',
          'dev/dl/data/sales2/x.json.gz',
          'dev/dl/data/sales_x/y.json.gz',
          'dev/dl/data/salesman.json',
          'dev/dl/$checkpoints/sales.last',
          'dev/dl/$commits/000000000001.json',
          '$task_logs/anchovy_user=dev/anchovy_id=dl/date=2025-01-01/s-000.0000.json',
          'top.json',
        ]
        for (const p of paths) await ds.write(p, p)
        const list = async (prefix: string) => (await ds.list(prefix)).map((e) => e.path)
        expect(await list('dev/dl/data/sales')).toEqual([
          'dev/dl/data/sales/2025/01/nested.json.gz',
          'dev/dl/data/sales/20250101000000.a-0000.json.gz',
        ])
        expect(await list('dev/dl/data/sales/')).toEqual(await list('dev/dl/data/sales'))
        expect(await list('/dev/dl/data/sales')).toEqual(await list('dev/dl/data/sales'))
        expect(await list('dev/dl/data/sales2')).toEqual(['dev/dl/data/sales2/x.json.gz'])
        expect(await list('dev/dl/data')).toEqual([...paths.slice(0, 5)].sort())
        expect(await list('dev/dl/$checkpoints')).toEqual(['dev/dl/$checkpoints/sales.last'])
        expect(await list('$task_logs/anchovy_user=dev')).toEqual([paths[7]])
        expect(await list('')).toEqual([...paths].sort())
        expect(await list('dev/dl/data/sales/20250101000000.a-0000.json.gz')).toEqual([]) // an object is not a folder
        expect(await list('dev/nobody')).toEqual([])
        expect(await list('dev/d')).toEqual([]) // a prefix of a folder name is not the folder
        const [entry] = await ds.list('dev/dl/$checkpoints')
        expect(entry!.size).toBe(Buffer.byteLength('dev/dl/$checkpoints/sales.last'))
        expect(entry!.mtime).toBeInstanceOf(Date)
        expect(Math.abs(entry!.mtime.getTime() - Date.now())).toBeLessThan(5 * 60_000)
        for (const e of await ds.list('')) expect(e.path.startsWith('/')).toBe(false)
      }),
    )

    it(
      'delete removes an object, and a missing object is not an error',
      withStore(async ({ datastore: ds }) => {
        await ds.write('u/a/$checkpoints/k', '1')
        await ds.delete('u/a/$checkpoints/k')
        expect(await ds.read('u/a/$checkpoints/k')).toBeUndefined()
        await ds.delete('u/a/$checkpoints/k')
        await ds.delete('u/never/existed')
        expect(await ds.list('u/a')).toEqual([])
      }),
    )

    it(
      'lock: one holder at a time; the other gets AnchovyLocked naming host, pid and since; release frees it',
      withStore(async ({ datastore: ds, second }) => {
        const other = await second()
        const lock = await ds.lock('dev/dl/$lock', options.lockTtlMs)
        expect(lock.info).toMatchObject({ host: hostname(), pid: process.pid })
        const seen = await other.readLock('dev/dl/$lock')
        expect(seen).toMatchObject({
          host: hostname(),
          pid: process.pid,
          token: lock.info.token,
          since: lock.info.since,
        })
        const err = (await other.lock('dev/dl/$lock', options.lockTtlMs).then(
          () => undefined,
          (e: unknown) => e,
        )) as Error & { code?: string }
        expect(err).toMatchObject({ code: 'ANCH_ERR_LOCKED', name: 'AnchovyLocked' })
        expect(err.message).toContain(hostname())
        expect(err.message).toContain(`pid ${process.pid}`)
        expect(err.message).toContain(lock.info.since)
        await lock.renew()
        expect(Date.parse(lock.info.heartbeat)).toBeGreaterThanOrEqual(Date.parse(lock.info.since))
        await lock.release()
        expect(await other.readLock('dev/dl/$lock')).toBeUndefined()
        const again = await other.lock('dev/dl/$lock', options.lockTtlMs)
        await again.release()
        await other.close()
      }),
    )

    it(
      'lock: of several concurrent lockers exactly one wins',
      withStore(async ({ datastore: ds, second }) => {
        const other = await second()
        const results = await Promise.allSettled(
          [ds, other, ds, other].map((d) => d.lock('dev/race/$lock', options.lockTtlMs)),
        )
        const won = results.filter((r) => r.status === 'fulfilled')
        expect(won).toHaveLength(1)
        for (const r of results)
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ANCH_ERR_LOCKED' })
        await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<Datastore['lock']>>>).value.release()
        await other.close()
      }),
    )

    it(
      'lock: renewing keeps a lock held past its expiry',
      withStore(async ({ datastore: ds, second }) => {
        const other = await second()
        const lock = await ds.lock('dev/renew/$lock', options.lockTtlMs)
        const until = Date.now() + options.lockExpiryMs + 1000
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, Math.max(200, options.lockTtlMs / 3)))
          await lock.renew()
        }
        await expect(other.lock('dev/renew/$lock', options.lockTtlMs)).rejects.toMatchObject({
          code: 'ANCH_ERR_LOCKED',
        })
        await lock.release()
        await other.close()
      }),
      options.lockExpiryMs * 2 + 30_000,
    )

    it(
      'lock: a holder that stops renewing is taken over after expiry; its renew then fails and its release leaves the new lock',
      withStore(async ({ datastore: ds, second }) => {
        const other = await second()
        const dead = await ds.lock('dev/takeover/$lock', options.lockTtlMs)
        await expect(other.lock('dev/takeover/$lock', options.lockTtlMs)).rejects.toMatchObject({
          code: 'ANCH_ERR_LOCKED',
        })
        await new Promise((r) => setTimeout(r, options.lockExpiryMs + 500))
        const taker = await other.lock('dev/takeover/$lock', options.lockTtlMs)
        expect(taker.info.token).not.toBe(dead.info.token)
        await expect(dead.renew()).rejects.toMatchObject({ code: 'ANCH_ERR_LOCKED' })
        await dead.release().catch(() => undefined)
        expect((await ds.readLock('dev/takeover/$lock'))?.token).toBe(taker.info.token)
        await expect(ds.lock('dev/takeover/$lock', options.lockTtlMs)).rejects.toMatchObject({
          code: 'ANCH_ERR_LOCKED',
        })
        await taker.release()
        expect(await ds.readLock('dev/takeover/$lock')).toBeUndefined()
        await other.close()
      }),
      options.lockExpiryMs * 2 + 30_000,
    )
  })
}

function closed(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => stream.once('close', () => resolve()))
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
