import { existsSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../chaos/harness.js'
import { Pipeline } from './pipeline.js'

const FAKETIME = '/usr/bin/faketime'
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

/** Runs a process with its wall clock shifted (`-2d`, `+3h`, …) by libfaketime; timers keep the real monotonic clock. */
function shifted(offset: string): { wrapper: string[]; env: Record<string, string> } {
  if (!existsSync(FAKETIME)) throw new Error(`${FAKETIME} is missing: apt-get install -y faketime (.ci/run must install it)`)
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
})
