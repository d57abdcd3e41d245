import { spawn } from 'node:child_process'
import { createWriteStream, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { CommitLog, FilesystemDatastore, readDataFile } from '@anchovies/core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { BIN, checkpoint, remove, runCli, tableTask, tempDir } from './helpers/cli.js'
import { giveToUser, startMeterProxy, startSshd, type MeterProxy, type Sshd } from './helpers/sshd.js'

/**
 * A large file read through a metering proxy that holds (or slows) the transfer at ~80 %: the run is stopped
 * there (SIGKILL, or the execution timeout), and the rerun must go on from its last commit, reading only the
 * rest, with every record in the datastore exactly once. CI size: ~30 MB; FULL=1: 1 GB.
 */
const FULL = process.env.FULL === '1'
const SIZE = FULL ? 1024 ** 3 : 30 * 1024 ** 2
const ID = 'big_sftp'
const CONFIG = 'tbls:\n  big:\n    path: /in/*.csv*\n    columns: { id: int }\n'

let sshd: Sshd
let dir: string
let ds: string
let base: string
let n = 0
const proxies: MeterProxy[] = []

beforeAll(async () => {
  sshd = await startSshd()
})
afterAll(async () => {
  await sshd?.stop()
})
beforeEach(() => {
  dir = tempDir('sftp-resume')
  ds = nodePath.join(dir, 'ds')
  base = `r${++n}`
  mkdirSync(nodePath.join(sshd.root, base, 'in'), { recursive: true })
})
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close()
  remove(dir)
  remove(nodePath.join(sshd.root, base))
})

const HOUR_AGO = Date.now() / 1000 - 3600

/** One record: ~100 bytes, ids `first…`, the text varying so that no two records are alike. */
const record = (id: number): string =>
  `${id},customer-${id % 9973},${(id * 7919) % 100000}.${String(id % 100).padStart(2, '0')},${'x'.repeat(30 + (id % 40))}\n`

/** Writes a CSV of about `bytes` bytes (ids from `first`) to the server folder; returns its record count and size. */
async function putCsv(
  name: string,
  bytes: number,
  { first = 0, gzip = false, mtime = HOUR_AGO } = {},
): Promise<{ rows: number; size: number; path: string }> {
  const path = nodePath.join(sshd.root, base, 'in', name)
  let rows = 0
  async function* text(): AsyncGenerator<string> {
    yield 'id,customer,amount,note\n'
    let written = 0
    while (written < bytes) {
      let block = ''
      for (let i = 0; i < 2000 && written + block.length < bytes; i++) block += record(first + rows++)
      written += block.length
      yield block
    }
  }
  await (gzip
    ? pipeline(text(), createGzip({ level: 1 }), createWriteStream(path))
    : pipeline(text(), createWriteStream(path)))
  utimesSync(path, mtime, mtime)
  giveToUser(nodePath.join(sshd.root, base))
  return { rows, size: statSync(path).size, path }
}

/** Count, duplicates and a checksum of the ids committed for table `big` (streamed: 10M rows in FULL mode). */
async function committedIds(): Promise<{ count: number; distinct: number; sum: bigint }> {
  const store = new FilesystemDatastore(ds)
  const log = new CommitLog(store, `tester/${ID}`)
  const seen = new Set<number>()
  let count = 0
  let sum = 0n
  for (const seq of await log.sequences()) {
    for (const f of (await log.read(seq)).files.filter((x) => x.table === 'big')) {
      for await (const row of readDataFile(store, f.path)) {
        const id = row.id as number
        count++
        seen.add(id)
        sum += BigInt(id)
      }
    }
  }
  return { count, distinct: seen.size, sum }
}

/** Sum of ids first…first+rows-1. */
const idSum = (rows: number, first = 0): bigint => ((BigInt(first) * 2n + BigInt(rows) - 1n) * BigInt(rows)) / 2n

function env(proxy: MeterProxy, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ACHVY_CNXN__URI: `${sshd.uri({ port: proxy.port })}/${base}`,
    ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
    ...extra,
  }
}

async function proxy(): Promise<MeterProxy> {
  const p = await startMeterProxy(sshd.port)
  proxies.push(p)
  return p
}

const args = (extra: string[] = []): string[] => [
  'start',
  '-op',
  'sftp.CsvDownloader',
  '--id',
  ID,
  '--datastore',
  ds,
  ...extra,
]

/** Starts a run in the background (to be killed). */
function startRun(envs: Record<string, string>, extra: string[] = []) {
  writeFileSync(nodePath.join(dir, 'config.yaml'), CONFIG)
  const child = spawn(process.execPath, [BIN, ...args(extra)], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      ACHVY_USER: 'tester',
      ...envs,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let done = false
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => ((done = true), resolve(code))))
  /** Throws (with the run's log) when it ended on its own: it was meant to be stopped. */
  const running = (): true => {
    if (done) throw new Error(`the run ended before it was stopped: ${stderr.slice(-3000)}`)
    return true
  }
  return { child, exited, running, stderr: () => stderr }
}

function run(envs: Record<string, string>, extra: string[] = []) {
  writeFileSync(nodePath.join(dir, 'config.yaml'), CONFIG)
  return runCli(args(extra), envs, dir, FULL ? 600_000 : 50_000)
}

interface Resume {
  path: string
  offset: number
  line: number
  rows: number
}
const resumePoint = (): Resume | undefined => checkpoint(ds, ID, 'sftp.big.resume') as Resume | undefined

async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const LIMIT = FULL ? 900_000 : 90_000

describe('sftp.CsvDownloader resumes a large file from its last commit', () => {
  it(
    'a run SIGKILLed at ~80% of a large file: the rerun reads less than 30% of it and every record lands exactly once',
    async () => {
      const file = await putCsv('big.csv', SIZE)
      const first = await proxy()
      first.slowAfter(Math.floor(file.size * 0.8), 0)
      // A commit about every 2% of the file.
      const commits = { ACHVY_BATCH_MAX_ROWS: String(Math.ceil(file.rows / 50)) }
      const killed = startRun(env(first, commits))
      await waitFor(
        'a commit past 70% of the file',
        () => killed.running() && (resumePoint()?.offset ?? 0) >= file.size * 0.7,
        LIMIT,
      )
      killed.child.kill('SIGKILL')
      await killed.exited
      const kept = resumePoint()!
      expect(kept.offset).toBeLessThanOrEqual(file.size * 0.8)
      expect(kept.line).toBe(kept.rows + 2)

      const second = await proxy()
      const r = await run(env(second, commits))
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(`resuming /in/big.csv at byte ${kept.offset} of ${file.size} (line ${kept.line})`)
      expect(tableTask(r.results, 'big')).toMatchObject({
        status: 'OK',
        files_taken: 1,
        files_resumed: 1,
        bytes_read: file.size - kept.offset,
      })
      expect(second.bytesDown / file.size, `rerun received ${second.bytesDown} bytes of ${file.size}`).toBeLessThan(0.3)
      expect(await committedIds()).toEqual({ count: file.rows, distinct: file.rows, sum: idSum(file.rows) })
      expect(resumePoint()).toBeUndefined()
      expect(Object.keys(checkpoint(ds, ID, 'sftp.big.manifest') as object)).toEqual(['in/big.csv'])
    },
    FULL ? 900_000 : 120_000,
  )

  it(
    'a run stopped by the execution timeout (-t) at ~80% commits what it read just before the deadline; the rerun goes on from there',
    async () => {
      // A third of the size: the run must reach 80% well before the deadline, even on a loaded machine.
      const file = await putCsv('big.csv', SIZE / 3)
      const first = await proxy()
      // Past 80% the transfer crawls (64 KiB/s): the deadline finds the run there, still reading.
      first.slowAfter(Math.floor(file.size * 0.8), 64 * 1024)
      // No row, byte or time limit: only the commit the source asks for near its deadline keeps anything.
      const limits = { ACHVY_BATCH_MAX_ROWS: '0', ACHVY_BATCH_MAX_BYTES: '0' }
      const stopped = await run(env(first, limits), ['-t', FULL ? '120' : '15'])
      expect(stopped.code, stopped.stderr).toBe(124)
      expect(stopped.stderr).toContain('the execution timeout is near; committing what was read so far')
      const kept = resumePoint()!
      expect(kept.offset / file.size).toBeGreaterThan(0.75)
      expect(kept.offset / file.size).toBeLessThan(0.95)

      const second = await proxy()
      const r = await run(env(second, limits))
      expect(r.code, r.stderr).toBe(0)
      expect(second.bytesDown / file.size).toBeLessThan(0.3)
      expect(await committedIds()).toEqual({ count: file.rows, distinct: file.rows, sum: idSum(file.rows) })
    },
    FULL ? 900_000 : 120_000,
  )

  it(
    'a file that changed between runs is read again from byte 0, and the log says so',
    async () => {
      const file = await putCsv('big.csv', SIZE / 2)
      const first = await proxy()
      first.slowAfter(Math.floor(file.size * 0.6), 0)
      const killed = startRun(env(first, { ACHVY_BATCH_MAX_ROWS: String(Math.ceil(file.rows / 50)) }))
      await waitFor(
        'a commit past 40% of the file',
        () => killed.running() && (resumePoint()?.offset ?? 0) >= file.size * 0.4,
        LIMIT,
      )
      killed.child.kill('SIGKILL')
      await killed.exited
      const kept = resumePoint()!
      // The partner replaces the file (other records, another size and mtime).
      const replaced = await putCsv('big.csv', SIZE / 4, { first: 10_000_000, mtime: HOUR_AGO + 60 })

      const second = await proxy()
      const r = await run(env(second))
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).toContain(
        '/in/big.csv changed since it was partly read (size or mtime differs): reading it again from the start',
      )
      expect(r.stderr).not.toContain('resuming')
      expect(tableTask(r.results, 'big')).toMatchObject({ files_taken: 1, bytes_read: replaced.size })
      expect(second.bytesDown).toBeGreaterThan(replaced.size)
      // The rows committed from the first version stay; the new version is taken whole.
      expect(await committedIds()).toEqual({
        count: kept.rows + replaced.rows,
        distinct: kept.rows + replaced.rows,
        sum: idSum(kept.rows) + idSum(replaced.rows, 10_000_000),
      })
    },
    FULL ? 900_000 : 120_000,
  )

  it(
    'a gzip file (no seeking) commits whole: a run killed in it commits none of it, and the rerun reads it again from the start',
    async () => {
      const file = await putCsv('big.csv.gz', SIZE / 3, { gzip: true })
      const first = await proxy()
      const hold = Math.floor(file.size * 0.8)
      first.slowAfter(hold, 0)
      const killed = startRun(env(first, { ACHVY_BATCH_MAX_ROWS: '1000' }))
      await waitFor('80% of the file sent', () => killed.running() && first.bytesDown >= hold, LIMIT).catch(
        (err: Error) => {
          throw new Error(`${err.message} (${first.bytesDown} of ${file.size} bytes): ${killed.stderr().slice(-2000)}`)
        },
      )
      // Time for anything the run might (wrongly) commit to be committed.
      await new Promise((r) => setTimeout(r, 1500))
      killed.child.kill('SIGKILL')
      await killed.exited
      expect(resumePoint()).toBeUndefined()
      expect((await committedIds()).count).toBe(0)

      const second = await proxy()
      const r = await run(env(second))
      expect(r.code, r.stderr).toBe(0)
      expect(second.bytesDown).toBeGreaterThan(file.size)
      expect(await committedIds()).toEqual({ count: file.rows, distinct: file.rows, sum: idSum(file.rows) })
    },
    FULL ? 900_000 : 120_000,
  )
})
