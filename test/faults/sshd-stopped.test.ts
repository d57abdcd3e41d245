import { readdirSync, existsSync } from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { tempDir } from '../chaos/harness.js'
import { DOWNLOADER, Pipeline, USER, until } from './pipeline.js'
import { SshdControl } from './sshd-control.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

/** True while a data file of the downloader is being written (rows are streaming from sshd). */
function writingData(ds: string): boolean {
  const dir = path.join(ds, USER, DOWNLOADER, 'data')
  if (!existsSync(dir)) return false
  return readdirSync(dir, { recursive: true }).some((n) => /\.tmp-[0-9a-f]+$/.test(String(n)))
}

function commits(ds: string): number {
  const dir = path.join(ds, USER, DOWNLOADER, '$commits')
  return existsSync(dir) ? readdirSync(dir).length : 0
}

async function setup(seed: number): Promise<{ p: Pipeline; ds: string; control: SshdControl }> {
  const ds = tempDir('anch-fault-ds-')
  cleanups.push(ds.remove)
  const p = await Pipeline.start({ datastore: ds.dir, seed })
  cleanups.push(() => p.stop())
  const control = new SshdControl(p.sshd)
  cleanups.push(() => control.dispose())
  p.source.addFile(50)
  p.source.addFile(50)
  await p.cleanRound()
  p.source.addFile(120_000) // big enough to be stopped in the middle
  return { p, ds: ds.dir, control }
}

describe('sshd stopped mid-transfer', () => {
  it('fails the run without committing a partial file; once sshd is back the rerun converges', async () => {
    const { p, ds, control } = await setup(11)
    const before = commits(ds)
    const dl = p.downloader({
      env: { ACHVY_CNXN__RETRIES: '2', ACHVY_CNXN__RETRY_DELAY: '0.2', ACHVY_CNXN__TIMEOUT: '3' },
    })
    await until(() => writingData(ds), 30_000, 'rows to stream')
    await control.stop()
    const o = await p.outcome('downloader while sshd is down', dl)
    expect(o.code, o.stderr).toBe(1)
    expect(o.stderr).toMatch(/ANCH_ERR_SFTP/)
    expect(commits(ds)).toBe(before)
    const again = await p.outcome(
      'downloader while sshd is still down',
      p.downloader({ env: { ACHVY_CNXN__RETRIES: '0' } }),
    )
    expect(again.code).toBe(1)
    expect(commits(ds)).toBe(before)
    await control.start()
    await p.expectConverged()
  }, 120_000)

  it('resumes the file when sshd comes back within the retries; the rerun converges', async () => {
    const { p, ds, control } = await setup(12)
    const dl = p.downloader({ env: { ACHVY_CNXN__RETRIES: '6', ACHVY_CNXN__RETRY_DELAY: '0.3' } })
    await until(() => writingData(ds), 30_000, 'rows to stream')
    await control.stop()
    await control.start()
    const o = await p.outcome('downloader across an sshd restart', dl)
    expect(o.code, o.stderr).toBe(0)
    await p.expectConverged()
  }, 120_000)
})
