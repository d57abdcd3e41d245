import { existsSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../chaos/harness.js'
import { DOWNLOADER, Pipeline, USER, until } from './pipeline.js'

const FAKETIME = '/usr/bin/faketime'
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

/** Runs a process with its wall clock shifted (`-2d`, `+3h`, …) by libfaketime; timers keep the real monotonic clock. */
function shifted(offset: string): { wrapper: string[]; env: Record<string, string> } {
  if (!existsSync(FAKETIME))
    throw new Error(`${FAKETIME} is missing: apt-get install -y faketime (.ci/run must install it)`)
  return { wrapper: [FAKETIME, '-f', offset], env: { FAKETIME_DONT_FAKE_MONOTONIC: '1' } }
}

async function setup(seed: number): Promise<Pipeline> {
  const ds = tempDir('anch-fault-ds-')
  cleanups.push(ds.remove)
  const p = await Pipeline.start({ datastore: ds.dir, seed })
  cleanups.push(() => p.stop())
  p.source.addFile(400)
  p.source.addFile(400)
  await p.cleanRound()
  return p
}

function commitCount(ds: string): number {
  return readdirSync(path.join(ds, USER, DOWNLOADER, '$commits')).length
}

describe('clock jumps', () => {
  it('runs whose clocks jump back and forth between them still deliver every row once', async () => {
    const p = await setup(51)
    const plan: [string, string][] = [
      ['-2d', '+3d'],
      ['+1h', '-1h'],
      ['-400d', '+0'],
    ]
    for (const [dlShift, upShift] of plan) {
      p.source.appendRows(200)
      p.source.rewriteFile(20)
      const d = await p.outcome(`downloader at ${dlShift}`, p.downloader(shifted(dlShift)))
      expect(d.code, d.stderr).toBe(0)
      const u = await p.outcome(`uploader at ${upShift}`, p.uploader(shifted(upShift)))
      expect(u.code, u.stderr).toBe(0)
    }
    await p.expectConverged()
  }, 180_000)

  it('a file rewritten by a partner whose clock jumped back (older mtime) is taken again', async () => {
    const p = await setup(52)
    p.source.rewriteFile(0, 'orders', 86_400)
    p.source.rewriteFile(10, 'stock', 3_600)
    await p.expectConverged()
  }, 120_000)

  it('a run whose clock is an hour ahead while another run works: at most one of them commits, the rerun converges', async () => {
    const p = await setup(53)
    p.source.addFile(150_000)
    const before = commitCount(p.datastore)
    const a = p.downloader()
    await until(
      () => existsSync(path.join(p.datastore, USER, DOWNLOADER, '$lock')),
      20_000,
      'the first run to take the lock',
    )
    // The live holder's heartbeat looks an hour old to this run: core takes the lock over (see the issue 6 report);
    // the exclusive commit sequence must still keep the two runs from both committing.
    const b = p.downloader(shifted('+1h'))
    const [oa, ob] = [await p.outcome('downloader', a), await p.outcome('downloader an hour ahead', b)]
    expect(oa.code === 0 || ob.code === 0, `${oa.stderr}\n${ob.stderr}`).toBe(true)
    for (const o of [oa, ob]) if (o.code !== 0) expect([1, 75]).toContain(o.code)
    expect(commitCount(p.datastore)).toBe(before + 1)
    await p.expectConverged()
  }, 180_000)
})
