import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { allFiles, checkpoint, committedRows, remove, runCli, tableTask, tempDir, REPO } from './helpers/cli.js'
import { badCorpus, BIG_FIELD, CORPUS_BAD, CORPUS_GOOD_IDS } from './helpers/corpus.js'

let dir: string
let src: string
let ds: string

beforeEach(() => {
  dir = tempDir('csvdl')
  src = nodePath.join(dir, 'server')
  ds = nodePath.join(dir, 'ds')
  mkdirSync(nodePath.join(src, 'sales'), { recursive: true })
})
afterEach(() => remove(dir))

const HOUR_AGO = Date.now() / 1000 - 3600

function put(rel: string, content: string | Buffer, mtime = HOUR_AGO): string {
  const p = nodePath.join(src, rel)
  mkdirSync(nodePath.dirname(p), { recursive: true })
  writeFileSync(p, content)
  utimesSync(p, mtime, mtime)
  return p
}

function run(config: string, extra: string[] = [], env: Record<string, string> = {}) {
  writeFileSync(nodePath.join(dir, 'config.yaml'), config)
  return runCli(
    ['start', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds, ...extra],
    { ACHVY_CNXN__URI: `file://${src}`, ...env },
    dir,
  )
}

const SALES = `
tbls:
  sales:
    path: /sales/*.tsv*
    delimiter: /t
    columns: { order_num: int, amount: float, paid: bool, day: date, at: datetime }
    set_by: order_num
    sort_by: -trans_num, line_item_num
    autodiscover: true
`

describe('sftp.CsvDownloader on a local folder (file://)', () => {
  it('globs several files (plain and .gz, tab written as /t) into one table with typed values, in mtime order', async () => {
    put(
      'sales/b.tsv',
      'order_num\ttrans_num\tamount\tpaid\tday\tat\n2\t20\t2.5\tyes\t2025-01-02\t2025-01-02 10:00:00\n',
      HOUR_AGO + 10,
    )
    put(
      'sales/a.tsv.gz',
      gzipSync(
        'order_num\ttrans_num\tamount\tpaid\tday\tat\n1\t10\t1.25\tfalse\t2025-01-01\t2025-01-01T09:30:00+02:00\n',
      ),
      HOUR_AGO,
    )
    put('sales/ignored.csv', 'nope\n')
    put('sales/.hidden.tsv', 'order_num\n99\n')
    const r = await run(SALES)
    expect(r.code, r.stderr).toBe(0)
    const rows = await committedRows(ds, 'sales_sftp', 'sales')
    expect(rows.map((x) => x.order_num)).toEqual([1, 2])
    expect(rows[0]).toMatchObject({ trans_num: '10', amount: 1.25, paid: false })
    expect(String(rows[0]!.day)).toBe('2025-01-01')
    expect(String(rows[0]!.at)).toBe('2025-01-01T09:30:00+02:00')
    expect(String(rows[1]!.at)).toBe('2025-01-02T10:00:00')
    expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'OK', files_listed: 2, files_taken: 2, rows: 2 })
    const manifest = checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest') as Record<
      string,
      { size: number; rows: number }
    >
    expect(Object.keys(manifest).sort()).toEqual(['sales/a.tsv.gz', 'sales/b.tsv'])
    expect(manifest['sales/b.tsv']!.rows).toBe(1)
  })

  it("runs the README's example config as written (file://)", async () => {
    const readme = readFileSync(nodePath.join(REPO, 'packages/plugin-sftp/README.md'), 'utf8')
    const config = /```yaml\n([\s\S]*?)```/.exec(readme)![1]!
    put('sales/2025-01-01.tsv', 'order_num\ttrans_num\tline_item_num\tupdated_at\n7\t70\t1\t2025-01-01 08:00:00\n')
    const r = await run(config)
    expect(r.code, r.stderr).toBe(0)
    expect(
      (await committedRows(ds, 'sales_sftp', 'sales')).map((x) => [x.order_num, x.trans_num, String(x.updated_at)]),
    ).toEqual([[7, 70, '2025-01-01T08:00:00']])
    expect(readdirSync(nodePath.join(src, 'sales/done'))).toEqual(['2025-01-01.tsv'])
  })

  it('downloads nothing new on a second run, and takes a modified file again as a new version', async () => {
    put('sales/a.tsv', 'order_num\tamount\n1\t1\n')
    put('sales/b.tsv', 'order_num\tamount\n2\t2\n')
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.tsv\n    delimiter: tab\n    columns: { order_num: int }\n'
    expect((await run(cfg)).code).toBe(0)
    const second = await run(cfg)
    expect(second.code).toBe(0)
    expect(tableTask(second.results, 'sales')).toMatchObject({ files_taken: 0, files_unchanged: 2, rows: 0 })
    expect((await committedRows(ds, 'sales_sftp', 'sales')).length).toBe(2)
    put('sales/a.tsv', 'order_num\tamount\n1\t10\n3\t30\n', HOUR_AGO + 60)
    const third = await run(cfg)
    expect(tableTask(third.results, 'sales')).toMatchObject({ files_taken: 1, files_unchanged: 1, rows: 2 })
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.order_num)).toEqual([1, 2, 1, 3])
  })

  it('leaves a file younger than min_age alone until it is old enough', async () => {
    put('sales/old.tsv', 'n\n1\n')
    put('sales/new.tsv', 'n\n2\n', Date.now() / 1000)
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.tsv\n    min_age: 300\n'
    const r = await run(cfg)
    expect(tableTask(r.results, 'sales')).toMatchObject({ files_taken: 1, files_young: 1 })
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual(['1'])
    utimesSync(nodePath.join(src, 'sales/new.tsv'), HOUR_AGO, HOUR_AGO)
    const later = await run(cfg)
    expect(tableTask(later.results, 'sales')).toMatchObject({ files_taken: 1, files_young: 0 })
  })

  it('reads headerless files with the columns order naming the fields, and adds _file/_line lineage', async () => {
    put('sales/x.csv', '# exported by partner\n1;2,5;t\n2;3;f\n')
    const cfg = `
tbls:
  sales:
    path: sales/*.csv
    delimiter: ';'
    header: false
    comment: '#'
    decimal_separator: ','
    lineage: true
    columns: { id: int, amount: float, flag: bool }
`
    const r = await run(cfg)
    expect(r.code, r.stderr).toBe(0)
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([
      { id: 1, amount: 2.5, flag: true, _file: 'sales/x.csv', _line: 2 },
      { id: 2, amount: 3, flag: false, _file: 'sales/x.csv', _line: 3 },
    ])
  })

  it('applies after: move:<dir> only once the batch has committed (never after a failed table)', async () => {
    put('sales/a.tsv', 'n\n1\n')
    put('sales/b.tsv', 'n\tm\n1\n')
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.tsv\n    delimiter: tab\n    after: move:/done\n'
    const failed = await run(cfg)
    expect(tableTask(failed.results, 'sales')?.status).toBe('ERR')
    expect(existsSync(nodePath.join(src, 'sales/a.tsv'))).toBe(true)
    expect(existsSync(nodePath.join(src, 'done'))).toBe(false)
    put('sales/b.tsv', 'n\tm\n2\t3\n', HOUR_AGO + 5)
    const ok = await run(cfg)
    expect(ok.code, ok.stderr).toBe(0)
    expect(readdirSync(nodePath.join(src, 'sales'))).toEqual([])
    expect(readdirSync(nodePath.join(src, 'done')).sort()).toEqual(['a.tsv', 'b.tsv'])
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual(['1', '2'])
  })

  it('as a service, takes each file once across batches', async () => {
    put('sales/a.tsv', 'n\n1\n')
    const r = await run('tbls:\n  sales:\n    path: /sales/*.tsv\n', ['-S', '--max-batches', '3', '--interval', '0'])
    expect(r.code, r.stderr).toBe(0)
    const batches = (r.results?.batches ?? []) as {
      done_tasks: { task_type: string; data: Record<string, unknown> }[]
    }[]
    expect(batches.map((b) => b.done_tasks.find((t) => t.task_type === 'TABLE')?.data.files_taken)).toEqual([1, 0, 0])
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual(['1'])
  })

  it('stops mid-file on the execution timeout, keeps what it committed, and the next run resumes the file: every row once', async () => {
    const lines = ['id,at']
    for (let i = 0; i < 1_000_000; i++) lines.push(`${i},2025-01-01 00:00:${String(i % 60).padStart(2, '0')}`)
    put('sales/big.csv', lines.join('\n') + '\n')
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { id: int, at: datetime }\n'
    const stopped = await run(cfg, ['-t', '0.3'])
    expect(stopped.code).toBe(124)
    expect(checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest')).toBeUndefined()
    const ok = await run(cfg)
    expect(ok.code, ok.stderr).toBe(0)
    const ids = (await committedRows(ds, 'sales_sftp', 'sales')).map((r) => r.id as number)
    expect(ids.length).toBe(1_000_000)
    expect(new Set(ids).size).toBe(1_000_000)
    expect(checkpoint(ds, 'sales_sftp', 'sftp.sales.resume')).toBeUndefined()
  })

  it('reads a partly read file first, from its resume point, even when an older file appeared since (max_files: 1)', async () => {
    const big = put('sales/big.csv', 'id\n' + Array.from({ length: 100 }, (_, i) => `${i}\n`).join(''))
    put('sales/older.csv', 'id\n1000\n1001\n', HOUR_AGO - 600)
    // As a run stopped after committing ids 0…59 leaves it: the next record (id 60) starts at line 62.
    const offset = Buffer.byteLength('id\n' + Array.from({ length: 60 }, (_, i) => `${i}\n`).join(''))
    const mtime = Math.floor(HOUR_AGO) * 1000
    utimesSync(big, mtime / 1000, mtime / 1000)
    const resume = {
      path: 'sales/big.csv',
      size: readFileSync(big).length,
      mtime,
      offset,
      line: 62,
      columns: ['id'],
      rows: 60,
    }
    const set = await runCli(
      ['checkpoint', 'set', '--id', 'sales_sftp', '--datastore', ds, 'sftp.sales.resume', JSON.stringify(resume)],
      {},
      dir,
    )
    expect(set.code, set.stderr).toBe(0)
    const cfg =
      'tbls:\n  sales:\n    path: /sales/*.csv\n    max_files: 1\n    lineage: true\n    columns: { id: int }\n'
    const first = await run(cfg)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toContain(`resuming /sales/big.csv at byte ${offset} of ${resume.size} (line 62)`)
    expect(tableTask(first.results, 'sales')).toMatchObject({
      files_taken: 1,
      files_resumed: 1,
      files_deferred: 1,
      rows: 40,
    })
    const second = await run(cfg)
    expect(tableTask(second.results, 'sales')).toMatchObject({ files_taken: 1, rows: 2 })
    const rows = await committedRows(ds, 'sales_sftp', 'sales')
    expect(rows.map((r) => r.id)).toEqual([...Array.from({ length: 40 }, (_, i) => i + 60), 1000, 1001])
    expect(rows[0]).toMatchObject({ _file: 'sales/big.csv', _line: 62 })
    expect(checkpoint(ds, 'sales_sftp', 'sftp.sales.resume')).toBeUndefined()
  })

  it('fails with ANCH_ERR_SFTP_RESUME on a resume checkpoint that is not a position, instead of restarting silently', async () => {
    put('sales/a.csv', 'id\n1\n')
    const set = await runCli(
      [
        'checkpoint',
        'set',
        '--id',
        'sales_sftp',
        '--datastore',
        ds,
        'sftp.sales.resume',
        '{"path":"sales/a.csv","offset":-4}',
      ],
      {},
      dir,
    )
    expect(set.code, set.stderr).toBe(0)
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n')
    expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_RESUME' })
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([])
  })

  it('fails a file that grows while it is read (still uploading) and commits nothing of it', async () => {
    const lines = ['id,at']
    for (let i = 0; i < 300_000; i++) lines.push(`${i},2025-01-01 00:00:${String(i % 60).padStart(2, '0')}`)
    const path = put('sales/big.csv', lines.join('\n') + '\n')
    writeFileSync(
      nodePath.join(dir, 'config.yaml'),
      'tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { id: int, at: datetime }\n',
    )
    const pending = runCli(
      ['start', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds],
      { ACHVY_CNXN__URI: `file://${src}` },
      dir,
    )
    const dataDir = nodePath.join(ds, 'tester/sales_sftp/data/sales')
    const deadline = Date.now() + 20_000
    while (!(existsSync(dataDir) && readdirSync(dataDir).length) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
    appendFileSync(path, '300000,2025-01-01 00:00:00\n')
    const r = await pending
    expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_FILE_CHANGED' })
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([])
  })

  it('applies after: delete after commit', async () => {
    put('sales/a.tsv', 'n\n1\n')
    const r = await run('tbls:\n  sales:\n    path: /sales/*.tsv\n    after: delete\n')
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(nodePath.join(src, 'sales'))).toEqual([])
  })

  it('matches ** across folders', async () => {
    put('sales/2025/01/a.csv', 'n\n1\n')
    put('sales/2025/02/b.csv', 'n\n2\n', HOUR_AGO + 1)
    put('sales/c.csv', 'n\n3\n', HOUR_AGO + 2)
    const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n')
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual(['1', '2', '3'])
    expect(tableTask(r.results, 'sales')).toMatchObject({ files_taken: 3 })
  })

  it('fails at once with a clear message when the folder does not exist', async () => {
    const r = await run('tbls:\n  sales:\n    path: /nowhere/*.csv\n')
    expect(r.code).toBe(1)
    expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_PATH' })
    expect(String(tableTask(r.results, 'sales')?.err_msg)).toContain(
      '"/nowhere" (from path "/nowhere/*.csv") does not exist',
    )
  })

  it('checks every table at startup: all problems in one error, and a warning for unknown keys', async () => {
    const r = await run(
      'tbls:\n  sales:\n    path: /sales/*.csv\n    delimeter: ";"\n  bad:\n    after: archive\n    on_bad_row: ignore\n',
    )
    expect(r.code).toBe(2) // a configuration error (docs/errors.md)
    const startup = r.results?.startup_task as { data: Record<string, string> }
    expect(startup.data.err_code).toBe('ANCH_ERR_SFTP_CONFIG')
    expect(startup.data.err_msg).toContain('tbls.bad.path: is required')
    expect(startup.data.err_msg).toContain('tbls.bad.after: must be keep, delete or move:<dir>')
    expect(startup.data.err_msg).toContain('tbls.bad.on_bad_row')
    expect(r.stderr).toContain('tbls.sales: keys not read by sftp.CsvDownloader (typo?): delimeter')
  })

  it('treats an empty file and a header-only file as no rows', async () => {
    put('sales/empty.csv', '')
    put('sales/header.csv', 'a,b\r\n')
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n')
    expect(r.code, r.stderr).toBe(0)
    expect(tableTask(r.results, 'sales')).toMatchObject({ files_taken: 2, rows: 0 })
  })

  describe('bad-row corpus (ragged, bad quote, bad UTF-8, BOM, CRLF, 1 MB field, unterminated quote)', () => {
    const cfg = (policy: string) =>
      `tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { id: int, amount: float }\n    on_bad_row: ${policy}\n`

    it('fails the table by default, naming the file, line and problem, and commits nothing', async () => {
      put('sales/bad.csv', badCorpus())
      const r = await run(cfg('fail'))
      expect(r.code).toBe(1)
      const t = tableTask(r.results, 'sales')
      expect(t).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_CSV_PARSE' })
      expect(String(t?.err_msg)).toBe('/sales/bad.csv line 3: expected 3 fields, found 2 (ragged row)')
      expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([])
      expect(checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest')).toBeUndefined()
    })

    it('skip keeps the good rows (BOM stripped, CRLF, 1 MB field, multi-line field) and counts the bad ones', async () => {
      put('sales/bad.csv', badCorpus())
      const r = await run(cfg('skip'))
      expect(r.code, r.stderr).toBe(0)
      const rows = await committedRows(ds, 'sales_sftp', 'sales')
      expect(rows.map((x) => x.id)).toEqual(CORPUS_GOOD_IDS)
      expect(Object.keys(rows[0]!)).toEqual(['id', 'name', 'amount'])
      expect(rows[1]!.name).toBe(BIG_FIELD)
      expect(rows[2]!.name).toBe('multi\r\nline')
      expect(tableTask(r.results, 'sales')).toMatchObject({ bad_rows: CORPUS_BAD.length, rows: 4 })
      expect(existsSync(nodePath.join(ds, 'tester/sales_sftp/quarantine'))).toBe(false)
    })

    it('max_bad_rows turns too many skipped rows into a failure', async () => {
      put('sales/bad.csv', badCorpus())
      const r = await run(`${cfg('skip')}    max_bad_rows: 4\n`)
      expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_CSV_PARSE' })
      expect(String(tableTask(r.results, 'sales')?.err_msg)).toMatch(
        /^more than max_bad_rows \(4\) bad rows; the last: \/sales\/bad.csv line 10/,
      )
      expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([])
    })

    it('quarantine writes each bad line with its reason to quarantine/<table>/ in the datastore', async () => {
      put('sales/bad.csv', badCorpus())
      const r = await run(cfg('quarantine'))
      expect(r.code, r.stderr).toBe(0)
      const t = tableTask(r.results, 'sales')
      expect(t).toMatchObject({ bad_rows: 5, quarantined: 5 })
      const files = allFiles(nodePath.join(ds, 'tester/sales_sftp/quarantine/sales'))
      expect(files).toHaveLength(1)
      const bad = readFileSync(files[0]!, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
      expect(bad.map((b) => b.line)).toEqual(CORPUS_BAD.map((b) => b.line))
      expect(bad.map((b) => b.code)).toEqual([
        'ANCH_ERR_CSV_PARSE',
        'ANCH_ERR_CSV_PARSE',
        'ANCH_ERR_CSV_PARSE',
        'ANCH_ERR_CSV_VALUE',
        'ANCH_ERR_CSV_PARSE',
      ])
      expect(bad[0]).toMatchObject({
        file: '/sales/bad.csv',
        raw: '2,bob',
        reason: 'expected 3 fields, found 2 (ragged row)',
      })
      expect(bad[1]).toMatchObject({ raw: '3,"car"ol,2' })
      expect(bad[2]).toMatchObject({ column: 'name' })
      expect(bad[3]).toMatchObject({ column: 'amount', raw: '5,eve,x' })
      expect(String(bad[4]!.reason)).toContain('unterminated')
      expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.id)).toEqual(CORPUS_GOOD_IDS)
    })
  })

  it('delivers every row exactly once to an uploader downstream', async () => {
    put('sales/a.tsv', 'n\n1\n2\n')
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.tsv\n'
    await run(cfg)
    put('sales/b.tsv', 'n\n3\n', HOUR_AGO + 1)
    await run(cfg)
    const out = nodePath.join(dir, 'out.jsonl')
    const up = () =>
      runCli(
        [
          'start',
          '-op',
          `${nodePath.join(REPO, 'test/fixtures/dist/basic.js')}:FileUploader`,
          '--id',
          'up',
          '-U',
          'sales_sftp',
          '--datastore',
          ds,
        ],
        { OUT_FILE: out },
        dir,
      )
    expect((await up()).code).toBe(0)
    expect((await up()).code).toBe(0)
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { n: string })
    expect(lines.map((l) => l.n)).toEqual(['1', '2', '3'])
  })
})
