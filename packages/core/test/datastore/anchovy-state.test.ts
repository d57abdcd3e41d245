import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  AnchovyState,
  CheckpointStore,
  DataBuffer,
  FilesystemDatastore,
  TableStore,
  bareTable,
  type Datastore,
  type StoreContext,
} from './state-helpers.js'
import { cleanupTempDirs, memoryLogger, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

/**
 * A real filesystem datastore whose process "dies" at the `failAt`-th mutating call (write, stream, create,
 * delete): that call and every later one fail, as nothing runs after a crash.
 */
class FailingDatastore extends FilesystemDatastore {
  calls = 0
  failAt = Infinity
  private step(what: string): void {
    if (++this.calls >= this.failAt) throw new Error(`injected crash at step ${this.calls} (${what})`)
  }
  override writeStream(p: string): ReturnType<FilesystemDatastore['writeStream']> {
    this.step(`stream ${p}`)
    return super.writeStream(p)
  }
  override async write(p: string, d: string | Uint8Array): Promise<void> {
    this.step(`write ${p}`)
    return super.write(p, d)
  }
  override async createExclusive(p: string, d: string | Uint8Array): Promise<boolean> {
    this.step(`create ${p}`)
    return super.createExclusive(p, d)
  }
  override async delete(p: string): Promise<void> {
    this.step(`delete ${p}`)
    return super.delete(p)
  }
}

function stateOn(ds: Datastore, id = 'dl'): AnchovyState {
  const ctx: StoreContext = { datastore: ds, user: 'dev', anchovyId: id, settings: {} }
  return new AnchovyState(
    ctx,
    { checkpoint: new CheckpointStore(ctx), table: new TableStore(ctx), dataBuffer: new DataBuffer(ctx) },
    memoryLogger().logger,
  )
}

/** One batch that writes `rows` rows of table t and sets checkpoint t.last, committed. */
async function batchOf(state: AnchovyState, batchId: string, rows: number, last: number): Promise<void> {
  const stage = await state.beginBatch(batchId)
  const chain = stage.child()
  const w = chain.writer(bareTable('t'))
  for (let i = 0; i < rows; i++) await w.write({ i })
  await w.close()
  chain.set('t.last', last)
  chain.mergeInto(stage)
  await state.commit(stage, { sessionId: 's', batchId }, [bareTable('t')])
}

/** Makes the run and commit locks look like holders that died long ago on another machine. */
function expireLock(root: string): void {
  for (const name of ['$lock', '$commit.lock']) {
    const lockPath = path.join(root, 'dev/dl', name)
    if (!existsSync(lockPath)) continue
    const info = JSON.parse(readFileSync(lockPath, 'utf8')) as Record<string, unknown>
    writeFileSync(lockPath, JSON.stringify({ ...info, host: 'elsewhere', heartbeat: new Date(0).toISOString() }))
  }
}

function dataFiles(root: string): string[] {
  const dir = path.join(root, 'dev/dl/data/t')
  return existsSync(dir) ? readdirSync(dir).sort() : []
}

describe('AnchovyState (the batch commit)', () => {
  it('a crash at any step of a batch leaves all of it or none of it after recovery', async () => {
    // Count the steps of a clean second batch, then crash at each one in turn.
    const probe = tempDir()
    const counting = new FailingDatastore(probe)
    const first = stateOn(counting)
    await first.open(60_000, () => undefined)
    await batchOf(first, '000', 5, 5)
    const before = counting.calls
    await batchOf(first, '001', 7, 12)
    const steps = counting.calls - before
    await first.finish(true)
    await first.release()
    expect(steps).toBeGreaterThan(3)

    const outcomes = new Set<unknown>()
    for (let k = 1; k <= steps; k++) {
      const root = tempDir()
      const ds = new FailingDatastore(root)
      const a = stateOn(ds)
      await a.open(60_000, () => undefined)
      await batchOf(a, '000', 5, 5)
      ds.failAt = ds.calls + k
      await batchOf(a, '001', 7, 12).catch(() => undefined)
      expect(ds.calls).toBeGreaterThanOrEqual(ds.failAt)
      await a.release().catch(() => undefined)
      expireLock(root)
      // the next run (recovery) sees either the whole second batch or none of it
      const b = stateOn(new FilesystemDatastore(root))
      await b.open(60_000, () => undefined)
      const last = b.committed.get('t.last')
      outcomes.add(last)
      const log = b.log
      const seqs = await log.sequences(0)
      const files = await Promise.all(seqs.map(async (s) => (await log.read(s)).files))
      const rows = files.flat().reduce((n, f) => n + f.rows, 0)
      if (last === 12) expect(rows).toBe(12)
      else {
        expect(last).toBe(5)
        expect(rows).toBe(5)
      }
      // no data file that no commit names
      const named = new Set(files.flat().map((f) => path.basename(f.path)))
      expect(dataFiles(root).filter((f) => !named.has(f))).toEqual([])
      await b.release()
    }
    // crashes before the record leave none of the batch, crashes after it all of it
    expect([...outcomes].sort()).toEqual([12, 5])
  })

  it('a second committer cannot open while the lock is held, and a fenced holder cannot commit', async () => {
    const root = tempDir()
    const a = stateOn(new FilesystemDatastore(root))
    await a.open(60_000, () => undefined)
    await expect(stateOn(new FilesystemDatastore(root)).open(60_000, () => undefined)).rejects.toMatchObject({
      code: 'ANCH_ERR_LOCKED',
    })
    // a frozen holder: its heartbeat is old, so B takes over; A wakes up and tries to commit
    expireLock(root)
    const b = stateOn(new FilesystemDatastore(root))
    await b.open(60_000, () => undefined)
    await expect(batchOf(a, '000', 3, 3)).rejects.toMatchObject({ code: 'ANCH_ERR_LOCKED' })
    await batchOf(b, '000', 4, 4)
    const seqs = await b.log.sequences(0)
    expect(seqs).toEqual([1])
    expect((await b.log.read(1)).files.map((f) => f.rows)).toEqual([4])
    await b.finish(true)
    await b.release()
  })

  it('a holder thawed after its successor committed says its lock was taken over and leaves the successor its in-flight marker', async () => {
    const root = tempDir()
    const a = stateOn(new FilesystemDatastore(root))
    await a.open(60_000, () => undefined)
    const stage = await a.beginBatch('000')
    const w = stage.writer(bareTable('t'))
    await w.write({ i: 0 })
    await w.close()
    stage.set('t.last', 1)
    // frozen past its TTL: B takes over, commits the same table, and is in flight with its next batch
    expireLock(root)
    const b = stateOn(new FilesystemDatastore(root))
    await b.open(60_000, () => undefined)
    await batchOf(b, '000', 4, 4)
    await b.beginBatch('001')
    const marker = readFileSync(path.join(root, 'dev/dl/$inflight.json'), 'utf8')
    // A wakes up: the commit is fenced by the lock before the conflict check, so the error names the real cause
    const refused = a.commit(stage, { sessionId: 's', batchId: '000' }, [bareTable('t')])
    await expect(refused).rejects.toMatchObject({
      code: 'ANCH_ERR_LOCKED',
      message: expect.stringMatching(/taken over/),
    })
    expect(a.lockLost).toBe(true)
    await a.finish(true)
    expect(readFileSync(path.join(root, 'dev/dl/$inflight.json'), 'utf8')).toBe(marker)
    expect(await b.log.sequences(0)).toEqual([1])
    await b.release()
  })

  it('concurrent committers that both got past the lock never both commit one sequence number', async () => {
    const root = tempDir()
    const [a, b] = [stateOn(new FilesystemDatastore(root)), stateOn(new FilesystemDatastore(root))]
    await a.open(60_000, () => undefined)
    // B ignores the lock (as a misconfigured second machine would after deleting it): only the records fence it
    rmSync(path.join(root, 'dev/dl/$lock'))
    await b.open(60_000, () => undefined)
    const results = await Promise.allSettled([batchOf(a, '000', 2, 2), batchOf(b, '000', 3, 3)])
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1)
    const seqs = await b.log.sequences(0)
    const recs = await Promise.all(seqs.map((s) => b.log.read(s)))
    expect(new Set(recs.map((r) => r.seq)).size).toBe(recs.length)
    await a.release().catch(() => undefined)
    await b.release().catch(() => undefined)
  })

  it('a discarded stage deletes the data files written into it, even those finished at a rollover', async () => {
    const root = tempDir()
    const ds = new FilesystemDatastore(root)
    const ctx: StoreContext = { datastore: ds, user: 'dev', anchovyId: 'dl', settings: { data_file_max_bytes: 100 } }
    const state = new AnchovyState(
      ctx,
      { checkpoint: new CheckpointStore(ctx), table: new TableStore(ctx), dataBuffer: new DataBuffer(ctx) },
      memoryLogger().logger,
    )
    await state.open(60_000, () => undefined)
    const stage = await state.beginBatch('000')
    const chain = stage.child()
    const w = chain.writer(bareTable('t'))
    for (let i = 0; i < 50; i++) await w.write({ i, pad: 'x'.repeat(20) })
    expect(dataFiles(root).length).toBeGreaterThan(3)
    await chain.discard()
    expect(dataFiles(root)).toEqual([])
    await state.commit(stage, { sessionId: 's', batchId: '000' })
    await state.finish(true)
    await state.release()
    expect(existsSync(path.join(root, 'dev/dl/$inflight.json'))).toBe(false)
  })
})
