import { afterAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, commitRecords, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)

const TRUST = path.join(REPO, 'test/fixtures/dist/trust.js')
const op = (name: string): string[] => ['-op', `${TRUST}:${name}`]

function jsonLines(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

function dataFiles(ds: string, home: string, table: string): string[] {
  const dir = path.join(ds, home, 'data', table)
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json.gz'))
        .sort()
        .map((f) => path.join(dir, f))
    : []
}

const ODD_CONFIG = JSON.stringify({
  tbls: {
    odd: {
      columns: {
        'Order Date': 'datetime',
        'Flight Date': 'date',
        'amount,usd': 'float',
        'a@b': 'str',
        'x@DT': 'str',
        'ünï cødé 名前': 'bytes',
        ' edge ': 'str',
        constructor: 'int',
        toString: 'str',
        hasOwnProperty: 'str',
        ['__proto__']: 'str',
        "quote\"d 'n' back\\slash": 'str',
      },
      unique_by: ['id', 'amount,usd'],
      sort_by: ['-Order Date', '+-odd', ' edge '],
    },
  },
})

describe('trust: what a run reads back is verified', () => {
  it('column names with spaces, commas, @, quotes, unicode and Object.prototype names round-trip through $tables and _types', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: out }
    for (let run = 0; run < 2; run++) {
      const r = await runCli(['start', ...op('OddNames'), '--id', 'odd', '-c', ODD_CONFIG], { env })
      expect(r.stderr).not.toContain('ANCH_ERR_DATASTORE_CORRUPT')
      expect(r.code).toBe(0)
    }
    const rec = JSON.parse(readFileSync(path.join(ds, 'dev/odd/$tables/odd.json'), 'utf8')) as Record<string, unknown>
    expect(Object.keys(rec.cols as object)).toContain('Order Date')
    expect(rec.unique_by).toEqual(['id', 'amount,usd'])
    const up = await runCli(['start', ...op('TypeProbe'), '--id', 'probe', '-U', 'odd'], { env })
    expect(up.stderr).not.toContain('ANCH_ERR')
    expect(up.code).toBe(0)
    const rows = jsonLines(out)
    expect(rows).toHaveLength(6)
    for (const row of rows) {
      expect(row.proto).toBe(true)
      const byName = new Map((row.values as [string, string, string][]).map(([k, t, v]) => [k, [t, v]]))
      expect(byName.get('Order Date')?.[0]).toBe('DateTime')
      expect(byName.get('Flight Date')?.[0]).toBe('LocalDate')
      expect(byName.get('ünï cødé 名前')?.[0]).toBe('Buffer')
      // names that only resemble an annotated one are left alone
      expect(byName.get('Date')).toEqual(['string', '2025-12-31'])
      expect(byName.get('Flight')).toEqual(['string', 'not a date'])
      expect(byName.get('x@DT')?.[0]).toBe('string')
      expect(byName.get('amount,usd')?.[0]).toBe('number')
      expect(byName.get('a@b')).toEqual(['string', 'at'])
      expect(byName.get(' edge ')).toEqual(['string', 'spaces'])
      expect(byName.get("quote\"d 'n' back\\slash")).toEqual(['string', 'q'])
      expect(byName.get('constructor')?.[0]).toBe('number')
      expect(byName.get('toString')).toEqual(['string', 'ts'])
      expect(byName.get('hasOwnProperty')).toEqual(['string', 'h'])
      expect(byName.get('__proto__')).toEqual(['string', 'proto'])
      expect(byName.size).toBe(15)
    }
  })

  it('float columns holding whole numbers are written as floats that outside readers see as floats', async () => {
    const ds = tempDir()
    const config = JSON.stringify({ tbls: { seq: { columns: { id: 'int', x: 'float' } } } })
    const r = await runCli(['start', ...op('Counter'), '--id', 'c', '-c', config], {
      env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '5' },
    })
    expect(r.code).toBe(0)
    const [file] = dataFiles(ds, 'dev/c', 'seq')
    // Python's gzip and json, as the Python implementation and pandas read these files
    const py = execFileSync(
      'python3',
      [
        '-c',
        'import gzip,json,sys\nfor l in gzip.open(sys.argv[1],"rt"):\n  r=json.loads(l); print(type(r["id"]).__name__, type(r["x"]).__name__, r["x"])',
        file!,
      ],
      { encoding: 'utf8' },
    )
    expect(py.trim().split('\n')).toEqual([
      'int float 0.0',
      'int float 2.0',
      'int float 4.0',
      'int float 6.0',
      'int float 8.0',
    ])
  })
})

/** Offsets where gzip members start (each of our members records its length: a header with FEXTRA and `AN`). */
function memberStarts(file: string): number[] {
  const buf = readFileSync(file)
  const starts: number[] = []
  for (let at = 0; at + 20 <= buf.length; ) {
    starts.push(at)
    if (buf[at] !== 0x1f || buf[at + 1] !== 0x8b || !(buf[at + 3]! & 4)) break
    at += buf.readUInt32LE(at + 16)
  }
  return starts
}

describe('trust: data files are checked against their commit record', () => {
  async function downloaded(
    rows: number,
  ): Promise<{ ds: string; env: Record<string, string>; file: string; out: string }> {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: out, ROWS: String(rows) }
    expect((await runCli(['start', ...op('Counter'), '--id', 'dl'], { env })).code).toBe(0)
    const [file] = dataFiles(ds, 'dev/dl', 'seq')
    return { ds, env, file: file!, out }
  }
  const upload = (env: Record<string, string>) =>
    runCli(['start', ...op('TypeProbe'), '--id', 'up', '-U', 'dl'], { env })

  it('a data file cut at a gzip member boundary fails the upload naming the file, and nothing is loaded', async () => {
    const { env, file, out } = await downloaded(100_000)
    const starts = memberStarts(file)
    expect(starts.length).toBeGreaterThan(2)
    truncateSync(file, starts[starts.length - 1]!)
    // the cut file is a valid, shorter gzip file
    execFileSync('gzip', ['-t', file])
    const r = await upload(env)
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toContain('ANCH_ERR_DATASTORE_CORRUPT')
    expect(r.stdout + r.stderr).toContain(path.basename(file))
    expect(jsonLines(out)).toEqual([])
  })

  it('a data file grown, shrunk or replaced by another valid data file after its commit fails the upload', async () => {
    const { ds, env, file, out } = await downloaded(3000)
    const original = readFileSync(file)
    // 1: an extra member appended (valid gzip, more rows)
    writeFileSync(file, Buffer.concat([original, execFileSync('gzip', ['-c'], { input: '{"id":-1,"_types":""}\n' })]))
    let r = await upload(env)
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toMatch(/ANCH_ERR_DATASTORE_CORRUPT.*|bytes/)
    // 2: replaced by a file with the same rows count but other bytes
    const lines = execFileSync('gzip', ['-dc'], { input: original }).toString('utf8').replace('"x":0', '"x":1000')
    writeFileSync(file, execFileSync('gzip', ['-c'], { input: lines }))
    r = await upload(env)
    expect(r.code).toBe(1)
    // 3: fewer rows, cut mid-member
    writeFileSync(file, original.subarray(0, original.length - 100))
    r = await upload(env)
    expect(r.code).toBe(1)
    expect(jsonLines(out)).toEqual([])
    // restored: everything arrives once
    writeFileSync(file, original)
    expect((await upload(env)).code).toBe(0)
    expect(jsonLines(out)).toHaveLength(3000)
    expect(existsSync(ds)).toBe(true)
  })
})

describe('trust: an upstream without a commit record is not taken for a Python-written one', () => {
  it('an uploader never reads the data files of a first batch that is in flight or died', async () => {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = {
      ACHVY_DATASTORE: ds,
      ACHVY_USER: 'dev',
      OUT_FILE: out,
      ROWS: '20000',
      ACHVY_DATA_FILE_MAX_BYTES: '100000',
    }
    const dl = spawnCli(['start', ...op('WritesThenWaits'), '--id', 'dl'], { env })
    await waitFor(
      () => dataFiles(ds, 'dev/dl', 'slow').length > 2,
      30_000,
      'finished data files of the batch in flight',
    )
    // in flight: the lock and $inflight.json are there, no commit record
    let r = await runCli(['start', ...op('TypeProbe'), '--id', 'up', '-U', 'dl'], { env })
    expect(r.code).toBe(0)
    expect(jsonLines(out)).toEqual([])
    // died: SIGKILL leaves the files, the marker and a dead lock
    dl.kill('SIGKILL')
    await dl.result
    expect(dataFiles(ds, 'dev/dl', 'slow').length).toBeGreaterThan(2)
    rmSync(path.join(ds, 'dev/dl/$lock'), { force: true })
    rmSync(path.join(ds, 'dev/dl/$inflight.json'), { force: true }) // even without the marker
    r = await runCli(['start', ...op('TypeProbe'), '--id', 'up', '-U', 'dl'], { env })
    expect(r.code).toBe(0)
    expect(jsonLines(out)).toEqual([])
    expect(readFileSync(path.join(ds, 'dev/dl/$format.json'), 'utf8')).toContain('anchovies-commit-log')
  })
})

describe('trust: $commits/HEAD is a hint, and a gap is reported', () => {
  async function sixCommits(): Promise<{ ds: string; env: Record<string, string>; out: string }> {
    const ds = tempDir()
    const out = path.join(ds, 'out.jsonl')
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', OUT_FILE: out, ROWS: '100' }
    for (let i = 0; i < 3; i++) expect((await runCli(['start', ...op('Counter'), '--id', 'dl'], { env })).code).toBe(0)
    expect((await runCli(['start', ...op('TypeProbe'), '--id', 'up', '-U', 'dl'], { env })).code).toBe(0)
    for (let i = 0; i < 3; i++) expect((await runCli(['start', ...op('Counter'), '--id', 'dl'], { env })).code).toBe(0)
    expect(commitRecords(path.join(ds, 'dev/dl/$commits'))).toHaveLength(6)
    return { ds, env, out }
  }
  const upload = (env: Record<string, string>) =>
    runCli(['start', ...op('TypeProbe'), '--id', 'up', '-U', 'dl'], { env })
  const ids = (out: string): number[] =>
    jsonLines(out).map((r) => Number((r.values as [string, string, string][])[0]![2]))

  it('an empty, missing, lowered or garbage HEAD neither re-reads nor hides commits', async () => {
    const base = await sixCommits()
    for (const head of ['', undefined, '2', '0', '-1', 'abc', '1e3', ' 5\n']) {
      const ds = tempDir()
      cpSync(base.ds, ds, { recursive: true })
      const out = path.join(ds, 'out.jsonl')
      const env = { ...base.env, ACHVY_DATASTORE: ds, OUT_FILE: out }
      const headPath = path.join(ds, 'dev/dl/$commits/HEAD')
      if (head === undefined) rmSync(headPath)
      else writeFileSync(headPath, head)
      const r = await upload(env)
      expect(r.code, `HEAD ${JSON.stringify(head)}: ${r.stderr}`).toBe(0)
      const got = ids(out)
      expect(got, `HEAD ${JSON.stringify(head)}`).toEqual(Array.from({ length: 600 }, (_, i) => i))
      expect((await upload(env)).code).toBe(0)
      expect(ids(out)).toHaveLength(600)
    }
  }, 120_000)

  it('a deleted commit record stops the uploader naming it, with or without HEAD, instead of skipping its rows', async () => {
    const base = await sixCommits()
    for (const head of ['keep', 'remove', 'raise']) {
      const ds = tempDir()
      cpSync(base.ds, ds, { recursive: true })
      const out = path.join(ds, 'out.jsonl')
      const env = { ...base.env, ACHVY_DATASTORE: ds, OUT_FILE: out }
      rmSync(path.join(ds, 'dev/dl/$commits/000000000005.json'))
      const headPath = path.join(ds, 'dev/dl/$commits/HEAD')
      if (head === 'remove') rmSync(headPath)
      if (head === 'raise') writeFileSync(headPath, '9')
      const r = await upload(env)
      expect(r.code, head).toBe(1)
      expect(r.stdout + r.stderr).toContain('000000000005.json')
      expect(r.stdout + r.stderr).toContain('ANCH_ERR_DATASTORE_CORRUPT')
      expect(ids(out)).toHaveLength(300)
    }
  })

  it('a reader position past the newest commit (records lost) is reported, not waited on forever', async () => {
    const { ds, env } = await sixCommits()
    expect((await upload(env)).code).toBe(0)
    for (const seq of [4, 5, 6]) rmSync(path.join(ds, `dev/dl/$commits/00000000000${seq}.json`))
    writeFileSync(path.join(ds, 'dev/dl/$commits/HEAD'), '3')
    const r = await upload(env)
    expect(r.code).toBe(1)
    expect(r.stdout + r.stderr).toMatch(/ends at commit 3.*position is at commit 6/)
  })

  it('the writer itself refuses to start on a gap in its own commit records', async () => {
    const { ds, env } = await sixCommits()
    rmSync(path.join(ds, 'dev/dl/$commits/000000000002.json'))
    const r = await runCli(['start', ...op('Counter'), '--id', 'dl'], { env })
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('000000000002.json')
    expect(commitRecords(path.join(ds, 'dev/dl/$commits'))).toHaveLength(5)
  })
})

describe('trust: checkpoint files are verified against the commit that wrote them', () => {
  async function committedTwice(): Promise<{ ds: string; env: Record<string, string> }> {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', ROWS: '6', OUT_FILE: path.join(ds, 'out') }
    expect(
      (
        await runCli(['start', '-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:TwoTables`, '--id', 'dl'], {
          env,
        })
      ).code,
    ).toBe(0)
    // the newest commit carries only contacts.last
    expect(
      (
        await runCli(
          [
            'start',
            '-op',
            `${path.join(REPO, 'test/fixtures/dist/basic.js')}:TwoTables`,
            '--id',
            'dl',
            '-e',
            'contacts',
          ],
          { env },
        )
      ).code,
    ).toBe(0)
    expect(readFileSync(path.join(ds, 'dev/dl/$checkpoints/sales.last'), 'utf8')).toBe('6')
    return { ds, env }
  }
  const start = (env: Record<string, string>) =>
    runCli(['start', '-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:TwoTables`, '--id', 'dl'], { env })

  it('a checkpoint damaged to a shorter valid value is refused by the run and the CLI, and repaired deliberately', async () => {
    const { ds, env } = await committedTwice()
    writeFileSync(path.join(ds, 'dev/dl/$checkpoints/sales.last'), '1')
    const r = await start(env)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('sales.last')
    expect(r.stderr).toContain('ANCH_ERR_DATASTORE_CORRUPT')
    const get = await runCli(['checkpoint', 'get', 'sales.last', '--id', 'dl'], { env })
    expect(get.code).not.toBe(0)
    expect(get.stderr).toContain('sales.last')
    expect((await runCli(['checkpoint', 'set', 'sales.last', '6', '--id', 'dl'], { env })).code).toBe(0)
    expect((await start(env)).code).toBe(0)
    expect(readFileSync(path.join(ds, 'dev/dl/$checkpoints/sales.last'), 'utf8')).toBe('12')
  })

  it('a checkpoint file deleted, added or changed in type by hand is refused; deleting the key deliberately repairs it', async () => {
    for (const damage of ['delete', 'add', 'type', 'same-length']) {
      const { ds, env } = await committedTwice()
      const file = path.join(ds, 'dev/dl/$checkpoints/sales.last')
      if (damage === 'delete') rmSync(file)
      if (damage === 'add') writeFileSync(path.join(ds, 'dev/dl/$checkpoints/sales.extra'), '5')
      if (damage === 'type') writeFileSync(file, '"6"')
      if (damage === 'same-length') writeFileSync(file, '9')
      const r = await start(env)
      expect(r.code, damage).not.toBe(0)
      expect(r.stderr, damage).toContain('ANCH_ERR_DATASTORE_CORRUPT')
      const key = damage === 'add' ? 'sales.extra' : 'sales.last'
      const del = await runCli(['checkpoint', 'delete', key, '--id', 'dl'], { env })
      expect(del.code, `${damage}: ${del.stderr}`).toBe(0)
      expect((await start(env)).code, damage).toBe(0)
    }
  })
})

describe('trust: a failed table leaves nothing behind', () => {
  it('a table that fails after a data-file rollover leaves none of its files, and the next run is clean', async () => {
    for (const concurrency of ['1', '2']) {
      const ds = tempDir()
      const env = {
        ACHVY_DATASTORE: ds,
        ACHVY_USER: 'dev',
        ROWS: '5000',
        FAIL_AFTER: '1',
        ACHVY_DATA_FILE_MAX_BYTES: '20000',
        ACHVY_CONCURRENCY: concurrency,
      }
      const r = await runCli(['start', ...op('FailsLate'), '--id', 'dl'], { env })
      expect(r.code).toBe(1)
      expect(dataFiles(ds, 'dev/dl', 'big')).toEqual([])
      expect(dataFiles(ds, 'dev/dl', 'small')).toHaveLength(1)
      expect(existsSync(path.join(ds, 'dev/dl/$inflight.json'))).toBe(false)
      const ok = await runCli(['start', ...op('FailsLate'), '--id', 'dl'], { env: { ...env, FAIL_AFTER: '' } })
      expect(ok.code).toBe(0)
      const files = dataFiles(ds, 'dev/dl', 'big')
      expect(files.length).toBeGreaterThan(5)
      const rows = files.reduce(
        (n, f) => n + execFileSync('gzip', ['-dc', f]).toString().split('\n').filter(Boolean).length,
        0,
      )
      expect(rows).toBe(5000)
    }
  })
})

describe('trust: every run ends with a result', () => {
  it('a hook or source awaiting a promise that never settles ends the run with a clear error, results and a free lock', async () => {
    for (const hang of ['startup', 'xopen', 'xclose', 'shutdown', 'table']) {
      const ds = tempDir()
      const env = {
        ACHVY_DATASTORE: ds,
        ACHVY_USER: 'dev',
        ...(hang === 'table' ? { HANG_TABLE: '1' } : { HANG_PHASE: hang }),
      }
      const r = await runCli(['start', ...op('NeverSettles'), '--id', 'n', '--abort-grace', '1'], { env })
      expect(r.code, `${hang}: ${r.stderr}`).toBe(1)
      expect(r.stdout + r.stderr).toContain('ANCH_ERR_STALLED')
      const results = JSON.parse(readFileSync(path.join(ds, 'dev/n/$results/anchovy_run_results.json'), 'utf8')) as {
        exit_code: number
      }
      expect(results.exit_code).toBe(1)
      expect(existsSync(path.join(ds, 'dev/n/$lock'))).toBe(false)
      expect(
        (
          await runCli(['start', ...op('NeverSettles'), '--id', 'n'], {
            env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' },
          })
        ).code,
      ).toBe(0)
    }
  })

  it('-t bounds startup and shutdown hooks too: exit 124 with results and a free lock', async () => {
    for (const hang of ['startup', 'shutdown']) {
      const ds = tempDir()
      const started = Date.now()
      const r = await runCli(['start', ...op('BusyHooks'), '--id', 'b', '-t', '1', '--abort-grace', '1'], {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev', HANG_PHASE: hang },
      })
      expect(r.code, `${hang}: ${r.stderr}`).toBe(124)
      expect(Date.now() - started).toBeLessThan(20_000)
      expect(JSON.parse(readFileSync(path.join(ds, 'dev/b/$results/anchovy_run_results.json'), 'utf8')).exit_code).toBe(
        124,
      )
      expect(existsSync(path.join(ds, 'dev/b/$lock'))).toBe(false)
    }
  })
})

describe('trust: class references named after Object.prototype members', () => {
  it('-op and --*-cls with constructor, toString, __proto__ … get a clear error, never a TypeError', async () => {
    const ds = tempDir()
    const env = { ACHVY_DATASTORE: ds, ACHVY_USER: 'dev' }
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
      for (const args of [
        ['-op', `${name}.X`],
        ['-op', `sftp.${name}`],
        ['-op', `${path.join(REPO, 'test/fixtures/dist/basic.js')}:${name}`],
        ['-op', `${TRUST}:Counter`, '--task-store-cls', name],
        ['-op', `${TRUST}:Counter`, '--checkpoint-cls', `sftp.${name}`],
      ]) {
        const r = await runCli(['start', ...args, '--id', 'p'], { env })
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
        expect(r.stderr, args.join(' ')).not.toMatch(/TypeError|is not a function|at .*\.js:\d+/)
      }
    }
  }, 120_000)
})
