import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import * as path from 'node:path'
import type { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import { FilesystemDatastore, createLogger, registerDatastore, startAnchovy, type Datastore } from '@anchovies/core'
import { tempDir, writeConfig } from '../chaos/harness.js'
import { downloaderConfig } from '../chaos/source.js'
import { DOWNLOADER, Pipeline, USER } from './pipeline.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn()
})

function enospc(what: string): Error {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${what}`), { code: 'ENOSPC', errno: -28 })
}

/** A filesystem datastore whose writes to paths matching `failOn` throw ENOSPC once armed (at once, or after a write matching `armAfter`). */
class FailingDatastore implements Datastore {
  armed: boolean
  failures = 0
  constructor(
    private readonly inner: FilesystemDatastore,
    private readonly failOn: RegExp,
    private readonly armAfter?: RegExp,
  ) {
    this.armed = !armAfter
  }
  private written(p: string): void {
    if (this.armAfter?.test(p)) this.armed = true
  }
  get url(): string {
    return this.inner.url
  }
  private check(p: string): void {
    if (this.armed && this.failOn.test(p)) {
      this.failures++
      throw enospc(`write '${p}'`)
    }
  }
  read(p: string) {
    return this.inner.read(p)
  }
  readStream(p: string) {
    return this.inner.readStream(p)
  }
  async write(p: string, data: string | Uint8Array) {
    this.check(p)
    await this.inner.write(p, data)
    this.written(p)
  }
  writeStream(p: string): Writable {
    const w = this.inner.writeStream(p)
    if (this.armed && this.failOn.test(p)) {
      this.failures++
      // fail after the first chunk, like a disk filling up in the middle of a file
      const original = w._write.bind(w)
      let chunks = 0
      w._write = (chunk, enc, cb) => (chunks++ === 0 ? original(chunk, enc, cb) : cb(enospc(`write '${p}'`)))
    }
    return w
  }
  async createExclusive(p: string, data: string | Uint8Array) {
    this.check(p)
    const created = await this.inner.createExclusive(p, data)
    if (created) this.written(p)
    return created
  }
  list(prefix: string) {
    return this.inner.list(prefix)
  }
  delete(p: string) {
    return this.inner.delete(p)
  }
  lock(p: string, ttl: number) {
    return this.inner.lock(p, ttl)
  }
  readLock(p: string) {
    return this.inner.readLock(p)
  }
  close() {
    return this.inner.close()
  }
}

const failing = new Map<string, FailingDatastore>()
registerDatastore({
  accepts: (location) => location.startsWith('failing://'),
  open: async (location) => failing.get(location)!,
})

async function setup(seed: number): Promise<{ p: Pipeline; ds: string }> {
  const ds = tempDir('anch-fault-ds-')
  cleanups.push(ds.remove)
  const p = await Pipeline.start({ datastore: ds.dir, seed })
  cleanups.push(() => p.stop())
  p.source.addFile(300)
  p.source.addFile(300)
  await p.cleanRound()
  return { p, ds: ds.dir }
}

/** Runs the downloader in this process on the failing datastore. */
async function runFailing(p: Pipeline, ds: FailingDatastore, name: string): Promise<number> {
  const location = `failing://${name}`
  failing.set(location, ds)
  const work = tempDir('anch-fault-cfg-')
  cleanups.push(work.remove)
  const r = await startAnchovy(
    {
      flags: { operator_cls: 'sftp.CsvDownloader', id: DOWNLOADER, user: USER, datastore: location },
      env: p.env(),
      configFile: writeConfig(work.dir, downloaderConfig()),
      cwd: work.dir,
    },
    { logger: createLogger('silent', false) },
  )
  return r.exitCode
}

function commitCount(ds: string): number {
  return readdirSync(path.join(ds, USER, DOWNLOADER, '$commits')).length
}

describe('a datastore write failing', () => {
  for (const [what, failOn, armAfter, committed] of [
    ['a data file (disk full in the middle of it)', /\/data\//, undefined, false],
    ['the commit record', /\/\$commits\//, undefined, false],
    ['a checkpoint, after the commit record', /\/\$checkpoints\//, /\/\$commits\//, true],
  ] as const) {
    it(`${what}: the run fails, ${committed ? 'the next run re-applies the commit' : 'nothing becomes visible'}, the rerun converges`, async () => {
      const { p, ds } = await setup(41)
      p.source.appendRows(2000, 'orders')
      p.source.addFile(2000)
      const store = new FailingDatastore(new FilesystemDatastore(ds), failOn, armAfter)
      const before = commitCount(ds)
      const code = await runFailing(p, store, `${ds}-${String(failOn)}`)
      expect(store.failures).toBeGreaterThan(0)
      expect(code).toBe(1)
      expect(commitCount(ds)).toBe(committed ? before + 1 : before)
      await p.expectConverged()
    }, 120_000)
  }

  it('disk full on a real tmpfs: the run fails with ENOSPC, nothing becomes visible; with space again, the rerun converges', async () => {
    const mnt = tempDir('anch-tmpfs-')
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt.dir])
    cleanups.push(mnt.remove)
    cleanups.push(() => void execFileSync('umount', ['-l', mnt.dir]))
    const ds = path.join(mnt.dir, 'datastore')
    mkdirSync(ds)
    const p = await Pipeline.start({ datastore: ds, seed: 42 })
    cleanups.push(() => p.stop())
    p.source.addFile(300)
    p.source.addFile(300)
    await p.cleanRound()
    const before = commitCount(ds)
    p.source.addFile(40_000)
    const o = await p.outcome('downloader on a full disk', p.downloader())
    expect(o.code).toBe(1)
    expect(o.stderr).toMatch(/ENOSPC/)
    expect(commitCount(ds)).toBe(before)
    expect(existsSync(path.join(ds, USER, DOWNLOADER, '$lock'))).toBe(false)
    execFileSync('mount', ['-o', 'remount,size=256m', mnt.dir])
    await p.expectConverged()
  }, 180_000)
})
