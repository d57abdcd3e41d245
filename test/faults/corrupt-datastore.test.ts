import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { CommitRecord } from '@anchovies/core'
import { spawnAnchovy, tempDir } from '../chaos/harness.js'
import { DOWNLOADER, Pipeline, UPLOADER, USER } from './pipeline.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function records(ds: string, id: string): { file: string; record: CommitRecord }[] {
  const dir = path.join(ds, USER, id, '$commits')
  return readdirSync(dir)
    .filter((n) => /^\d{12}\.json$/.test(n))
    .sort()
    .map((n) => ({
      file: path.join(dir, n),
      record: JSON.parse(readFileSync(path.join(dir, n), 'utf8')) as CommitRecord,
    }))
}

/** Both tables loaded once, then a batch that only touches stock: the newest commit does not carry the orders manifest. */
async function setup(seed: number): Promise<{ p: Pipeline; ds: string }> {
  const ds = tempDir('anch-fault-ds-')
  cleanups.push(ds.remove)
  const p = await Pipeline.start({ datastore: ds.dir, seed })
  cleanups.push(() => p.stop())
  p.source.addFile(500)
  p.source.addFile(500)
  await p.cleanRound()
  p.source.rewriteFile(50, 'stock')
  await p.cleanRound()
  return { p, ds: ds.dir }
}

async function currentRows(p: Pipeline): Promise<number> {
  const r = await p.db.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM "${DOWNLOADER}__${USER}".orders) + (SELECT count(*) FROM "${DOWNLOADER}__${USER}".stock) AS n`,
  )
  return Number(r[0]!.n)
}

describe('a corrupted datastore file, end to end', () => {
  it('a checkpoint cut short stops the downloader with ANCH_ERR_DATASTORE_CORRUPT; restored with anchovy checkpoint set, the rerun converges without re-downloading', async () => {
    const { p, ds } = await setup(31)
    const key = 'sftp.orders.manifest'
    const file = path.join(ds, USER, DOWNLOADER, '$checkpoints', key)
    const good = readFileSync(file, 'utf8')
    writeFileSync(file, good.slice(0, Math.floor(good.length / 2)))
    p.source.appendRows(100, 'orders')
    const before = records(ds, DOWNLOADER).length
    const o = await p.outcome('downloader on a corrupt checkpoint', p.downloader())
    expect(o.code).toBe(1)
    expect(o.stderr).toMatch(/ANCH_ERR_DATASTORE_CORRUPT/)
    expect(o.stderr).toContain(key)
    // nothing of orders was committed: in particular not every orders file again, as if from zero
    expect(
      records(ds, DOWNLOADER)
        .slice(before)
        .flatMap((r) => r.record.files)
        .filter((f) => f.table === 'orders'),
    ).toEqual([])
    const up = await p.outcome('uploader', p.uploader())
    expect(up.code, up.stderr).toBe(0)

    // the operator restores the value from the last commit record that set it
    const last = records(ds, DOWNLOADER)
      .filter((r) => key in r.record.checkpoints)
      .at(-1)!
    const set = await spawnAnchovy(
      [
        'checkpoint',
        'set',
        key,
        JSON.stringify(last.record.checkpoints[key]),
        '--id',
        DOWNLOADER,
        '-u',
        USER,
        '--datastore',
        ds,
      ],
      {},
      ds,
    ).done
    expect(set.code, set.stderr).toBe(0)
    await p.expectConverged()
  }, 120_000)

  it('a commit record cut short stops the downloader and the uploader (which does not skip it); restored from backup, the rerun converges', async () => {
    const { p, ds } = await setup(32)
    // a commit the uploader has not read yet: an applied record is never read again, so corrupting one proves nothing
    p.source.appendRows(100)
    const fresh = await p.outcome('downloader committing a batch', p.downloader())
    expect(fresh.code, fresh.stderr).toBe(0)
    const newest = records(ds, DOWNLOADER).at(-1)!
    const backup = `${newest.file}.bak`
    copyFileSync(newest.file, backup)
    const text = readFileSync(newest.file, 'utf8')
    writeFileSync(newest.file, text.slice(0, Math.floor(text.length / 2)))
    const rows = await currentRows(p)
    const upBefore = records(ds, UPLOADER).length
    p.source.appendRows(100)

    const o = await p.outcome('downloader on a corrupt commit record', p.downloader())
    expect(o.code).toBe(1)
    expect(o.stderr).toMatch(/ANCH_ERR_DATASTORE_CORRUPT/)
    expect(o.stderr).toContain(path.basename(newest.file))
    const up = await p.outcome('uploader reading a corrupt upstream commit record', p.uploader())
    expect(up.code).toBe(1)
    expect(up.stderr).toMatch(/ANCH_ERR_DATASTORE_CORRUPT/)
    expect(records(ds, UPLOADER).length).toBe(upBefore)
    expect(await currentRows(p)).toBe(rows)

    copyFileSync(backup, newest.file)
    await p.expectConverged()
  }, 120_000)
})
