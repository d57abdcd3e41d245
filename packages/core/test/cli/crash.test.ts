import { afterAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { FilesystemDatastore, readDataFile, type CommitRecord } from '../../src/index.js'
import { FIXTURE_OPS, cleanupTempDirs, commitRecords, readTree, runCli, spawnCli, tempDir } from '../helpers.js'
import { rng } from '../../../../test/support/rng.mjs'

afterAll(cleanupTempDirs)

/** Every row in the committed data files of `user/id`, per table, in commit order. */
async function committedRows(root: string, home: string): Promise<Map<string, string[]>> {
  const ds = new FilesystemDatastore(root)
  const dir = path.join(root, home, '$commits')
  const out = new Map<string, string[]>()
  if (!existsSync(dir)) return out
  for (const name of readdirSync(dir)
    .filter((f) => /^\d{12}\.json$/.test(f))
    .sort()) {
    const rec = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as CommitRecord
    for (const f of rec.files) {
      const list = out.get(f.table) ?? []
      for await (const row of readDataFile(ds, f.path)) list.push(JSON.stringify(row))
      out.set(f.table, list)
    }
  }
  return out
}

describe('SIGKILL at random points', () => {
  it('never loses or duplicates a committed batch for a downstream uploader', async () => {
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000)
    const iterations = Number(process.env.CRASH_ITERATIONS ?? 8)
    const random = rng(seed)
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '3000', ACHVY_LOG_LEVEL: 'warn' }
    const kills: string[] = []
    const run = async (args: string[], kill: boolean): Promise<void> => {
      const child = spawnCli(['start', '-op', `${FIXTURE_OPS}:${args[0]}`, ...args.slice(1)], { env })
      if (kill) {
        const ms = Math.floor(random() * 400)
        setTimeout(() => child.kill('SIGKILL'), ms)
        kills.push(`${args[0]}@${ms}ms`)
      }
      const r = await child.result
      if (!kill || r.signal !== 'SIGKILL') expect(r.code, r.stderr).toBe(0)
    }
    try {
      for (let i = 0; i < iterations; i++) {
        await run(['TwoTables', '--id', 'dl'], random() < 0.7)
        await run(['Relay', '--id', 'up', '-U', 'dl'], random() < 0.7)
      }
      await run(['TwoTables', '--id', 'dl'], false)
      await run(['Relay', '--id', 'up', '-U', 'dl'], false)
      const upstream = await committedRows(ds, 'dev/dl')
      const downstream = await committedRows(ds, 'dev/up')
      for (const table of ['sales', 'contacts']) {
        const up = upstream.get(table) ?? []
        const down = downstream.get(table) ?? []
        expect(down.length).toBe(up.length)
        expect(new Set(down).size).toBe(down.length)
        expect(down).toEqual(up)
      }
      // data files of batches killed before their commit were removed by the next run
      for (const home of ['dev/dl', 'dev/up']) {
        const referenced = new Set<string>()
        for (const f of commitRecords(path.join(ds, home, '$commits'))) {
          for (const file of (JSON.parse(readFileSync(path.join(ds, home, '$commits', f), 'utf8')) as CommitRecord)
            .files)
            referenced.add(file.path)
        }
        const onDisk = [...readTree(path.join(ds, home, 'data')).keys()].map((p) => `${home}/data/${p}`)
        expect(onDisk.filter((p) => !referenced.has(p))).toEqual([])
      }
      // the downloader's checkpoints agree with what it committed: rows are numbered without gaps or repeats
      const ids = (upstream.get('sales') ?? []).map((r) => (JSON.parse(r) as { id: number }).id)
      expect(ids).toEqual(ids.map((_, i) => i))
    } catch (err) {
      throw new Error(`seed ${seed}, kills ${kills.join(', ')}: ${(err as Error).message}`)
    }
    console.log(`crash test seed ${seed}; kills: ${kills.join(', ')}`)
  }, 180_000)
})

describe('an uploader running while its downloader commits', () => {
  it('reads every committed file once, however commits and reads interleave', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '700', ACHVY_LOG_LEVEL: 'warn' }
    const dl = spawnCli(
      ['start', '-op', `${FIXTURE_OPS}:Stream`, '--id', 'dl', '-S', '--interval', '0', '--max-batches', '25'],
      { env },
    )
    let runs = 0
    let done = false
    void dl.result.then(() => (done = true))
    while (!done) {
      const r = await runCli(['start', '-op', `${FIXTURE_OPS}:Relay`, '--id', 'up', '-U', 'dl'], { env })
      expect(r.code, r.stderr).toBe(0)
      runs++
    }
    expect((await dl.result).code).toBe(0)
    expect((await runCli(['start', '-op', `${FIXTURE_OPS}:Relay`, '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    const up = (await committedRows(ds, 'dev/dl')).get('events')!
    const down = (await committedRows(ds, 'dev/up')).get('events')!
    expect(up).toHaveLength(25 * 700)
    expect(down).toEqual(up)
    expect(runs).toBeGreaterThan(1)
  }, 120_000)
})

describe('a corrupt datastore', () => {
  for (const [what, file, content] of [
    ['a checkpoint cut short', 'dev/dl/$checkpoints/sales.last', '{"v'],
    ['an empty checkpoint', 'dev/dl/$checkpoints/sales.last', ''],
    ['a checkpoint with garbage bytes', 'dev/dl/$checkpoints/sales.last', '\u0000\u0001\u0002'],
    ['a commit record', 'dev/dl/$commits/000000000002.json', '{"seq":2,"fi'],
  ] as const) {
    it(`stops with a clear error on ${what} and does not start over`, async () => {
      const ds = tempDir()
      const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '2' }
      expect((await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })).code).toBe(0)
      // the newest commit only touches contacts, so re-applying it cannot repair sales.last
      expect(
        (await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl', '-e', 'contacts'], { env })).code,
      ).toBe(0)
      const { writeFileSync: write } = await import('node:fs')
      write(path.join(ds, file), content)
      const r = await runCli(['start', '-op', `${FIXTURE_OPS}:TwoTables`, '--id', 'dl'], { env })
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/ANCH_ERR_DATASTORE_CORRUPT/)
      expect(r.stderr).toContain(file.split('/').pop())
      expect(commitRecords(path.join(ds, 'dev/dl/$commits'))).toHaveLength(2)
      expect(existsSync(path.join(ds, 'dev/dl/$lock'))).toBe(false)
    })
  }
})
