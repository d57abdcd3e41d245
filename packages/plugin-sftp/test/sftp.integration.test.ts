import {
  chownSync,
  lchownSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  existsSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createLogger } from '@anchovies/core'
import { SftpConnection } from '../src/sftp-connection.js'
import * as nodePath from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { allFiles, checkpoint, committedRows, remove, runCli, tableTask, tempDir } from './helpers/cli.js'
import { badCorpus, CORPUS_BAD, CORPUS_GOOD_IDS } from './helpers/corpus.js'
import { giveToUser, KEY_PASSPHRASE, SFTP_PASSWORD, startCutProxy, startSshd, type Sshd } from './helpers/sshd.js'

let sshd: Sshd
let dir: string
let ds: string
let base: string
let n = 0

beforeAll(async () => {
  sshd = await startSshd()
})
afterAll(async () => {
  await sshd?.stop()
})
beforeEach(() => {
  dir = tempDir('sftp-it')
  ds = nodePath.join(dir, 'ds')
  // Each test gets its own folder on the server.
  base = `t${++n}`
  mkdirSync(nodePath.join(sshd.root, base, 'sales'), { recursive: true })
})
afterEach(() => remove(dir))

const HOUR_AGO = Date.now() / 1000 - 3600

function put(rel: string, content: string | Buffer, mtime = HOUR_AGO): void {
  const p = nodePath.join(sshd.root, base, rel)
  mkdirSync(nodePath.dirname(p), { recursive: true })
  writeFileSync(p, content)
  utimesSync(p, mtime, mtime)
  giveToUser(nodePath.join(sshd.root, base))
}

function uri(options?: { password?: string | null; port?: number }): string {
  return `${sshd.uri(options)}/${base}`
}

function run(config: string, env: Record<string, string>, extra: string[] = []) {
  writeFileSync(nodePath.join(dir, 'config.yaml'), config)
  return runCli(['start', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds, ...extra], env, dir)
}

const verified = (): Record<string, string> => ({ ACHVY_CNXN__URI: uri(), ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint })

const SALES = `
tbls:
  sales:
    path: /sales/*.tsv*
    delimiter: /t
    columns: { order_num: int, amount: float, day: date }
    set_by: order_num
    sort_by: -trans_num, line_item_num, -updated_at
  returns:
    path: /returns/*.csv
    header: false
    columns: { order_num: int, reason: str }
`

describe('sftp.CsvDownloader against OpenSSH sshd', () => {
  it('runs the README example: globs several files (plain and gz, /t) and headerless files, with typed values, two tables at once', async () => {
    put('sales/a.tsv', 'order_num\ttrans_num\tamount\tday\n1\t10\t1.5\t2025-01-01\n2\t11\t2\t2025-01-02\n')
    put('sales/b.tsv.gz', gzipSync('order_num\ttrans_num\tamount\tday\n3\t12\t3.25\t2025-01-03\n'), HOUR_AGO + 1)
    put('returns/r.csv', '1,damaged\n3,"late, very"\n')
    const r = await run(SALES, verified(), ['--concurrency', '2'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain('not verified')
    const sales = await committedRows(ds, 'sales_sftp', 'sales')
    expect(sales.map((x) => [x.order_num, x.trans_num, x.amount, String(x.day)])).toEqual([
      [1, '10', 1.5, '2025-01-01'],
      [2, '11', 2, '2025-01-02'],
      [3, '12', 3.25, '2025-01-03'],
    ])
    expect(await committedRows(ds, 'sales_sftp', 'returns')).toEqual([
      { order_num: 1, reason: 'damaged' },
      { order_num: 3, reason: 'late, very' },
    ])
  })

  it('downloads nothing new on a second run; takes a modified file again; leaves a file younger than min_age', async () => {
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.csv\n    min_age: 120\n    columns: { n: int }\n'
    put('sales/a.csv', 'n\n1\n')
    put('sales/young.csv', 'n\n9\n', Date.now() / 1000)
    const first = await run(cfg, verified())
    expect(tableTask(first.results, 'sales')).toMatchObject({ status: 'OK', files_taken: 1, files_young: 1 })
    const second = await run(cfg, verified())
    expect(tableTask(second.results, 'sales')).toMatchObject({ files_taken: 0, files_unchanged: 1, files_young: 1 })
    put('sales/a.csv', 'n\n1\n2\n', HOUR_AGO + 30)
    const third = await run(cfg, verified())
    expect(tableTask(third.results, 'sales')).toMatchObject({ files_taken: 1 })
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual([1, 1, 2])
    const manifest = checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest') as Record<string, { size: number }>
    expect(Object.keys(manifest)).toEqual(['sales/a.csv'])
  })

  it('moves files (after: move:) only after the batch committed', async () => {
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.csv\n    after: move:/archive\n    columns: { n: int }\n'
    put('sales/a.csv', 'n\n1\n')
    put('sales/b.csv', 'n\nnot-a-number\n', HOUR_AGO + 1)
    const failed = await run(cfg, verified())
    expect(tableTask(failed.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_CSV_VALUE' })
    expect(String(tableTask(failed.results, 'sales')?.err_msg)).toBe(
      '/sales/b.csv line 2, column n: "not-a-number" is not an integer (column type int)',
    )
    expect(readdirSync(nodePath.join(sshd.root, base, 'sales')).sort()).toEqual(['a.csv', 'b.csv'])
    put('sales/b.csv', 'n\n2\n', HOUR_AGO + 2)
    const ok = await run(cfg, verified())
    expect(ok.code, ok.stderr).toBe(0)
    expect(readdirSync(nodePath.join(sshd.root, base, 'sales'))).toEqual([])
    expect(readdirSync(nodePath.join(sshd.root, base, 'archive')).sort()).toEqual(['a.csv', 'b.csv'])
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.n)).toEqual([1, 2])
  })

  describe('links an account holder creates on the server', () => {
    /** Creates a link on the server (after every put: giveToUser follows links). */
    const link = (rel: string, target: string): void => {
      const p = nodePath.join(sshd.root, base, rel)
      mkdirSync(nodePath.dirname(p), { recursive: true })
      symlinkSync(target, p)
      const owner = statSync(nodePath.join(sshd.root, base))
      lchownSync(p, owner.uid, owner.gid)
    }
    const values = async (): Promise<unknown[]> => (await committedRows(ds, 'sales_sftp', 'sales')).map((r) => r.n)

    it('takes a file once under a ** glob with a symlink loop (ln -s . loop) over SFTP, not 41 times; two loops end too', async () => {
      put('sales/a.csv', 'n\n1\n')
      put('sales/x/b.csv', 'n\n2\n', HOUR_AGO + 1)
      link('sales/loop', '.')
      const one = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n', verified())
      expect(one.code, one.stderr).toBe(0)
      expect(await values()).toEqual(['1', '2'])
      expect(one.stderr).toContain('sales/loop')

      link('sales/loop2', '.')
      link('sales/x/up', '..')
      link('sales/x/cycle1', 'cycle2')
      link('sales/x/cycle2', 'cycle1')
      put('sales/x/c.csv', 'n\n3\n', HOUR_AGO + 2)
      const started = Date.now()
      const two = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n', verified())
      expect(two.code, two.stderr).toBe(0)
      expect(Date.now() - started).toBeLessThan(30_000)
      expect(tableTask(two.results, 'sales')).toMatchObject({ files_listed: 3, files_taken: 1 })
      expect(await values()).toEqual(['1', '2', '3'])
    })

    it('leaves out links leading outside the base folder, and never moves a file through one', async () => {
      const outside = nodePath.join(sshd.root, `${base}-outside`)
      mkdirSync(nodePath.join(outside, 'deep'), { recursive: true })
      writeFileSync(nodePath.join(outside, 'secret.csv'), 'n\nSECRET\n')
      writeFileSync(nodePath.join(outside, 'deep', 'more.csv'), 'n\nSECRET2\n')
      giveToUser(outside)
      put('sales/a.csv', 'n\n1\n')
      link('sales/rel.csv', `../../${base}-outside/secret.csv`)
      link('sales/abs.csv', nodePath.join(outside, 'secret.csv'))
      link('sales/sub', nodePath.join(outside, 'deep'))
      link('done', outside)
      const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    after: move:/done/in\n', verified())
      expect(await values()).toEqual(['1'])
      for (const name of ['rel.csv', 'abs.csv', 'sub']) expect(r.stderr).toContain(`sales/${name}`)
      expect(readdirSync(outside).sort()).toEqual(['deep', 'secret.csv'])
      expect(existsSync(nodePath.join(sshd.root, base, 'sales/a.csv'))).toBe(true)
    })

    it('fails clearly, naming max_depth, on a tree deeper than max_depth', async () => {
      put('sales/1/2/3/a.csv', 'n\n1\n')
      const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    max_depth: 2\n', verified())
      expect(r.code).toBe(1)
      expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_LIMIT' })
      expect(String(tableTask(r.results, 'sales')?.err_msg)).toContain('tbls.sales.max_depth')
    })
  })

  it('authenticates with an OpenSSH key (no password) and verifies the server with KNOWN_HOSTS', async () => {
    put('sales/a.csv', 'n\n1\n')
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n', {
      ACHVY_CNXN__URI: uri({ password: null }),
      ACHVY_CNXN__PPK_PATH: sshd.keys.plain,
      ACHVY_CNXN__KNOWN_HOSTS: sshd.knownHosts,
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain('not verified')
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([{ n: '1' }])
  })

  it('authenticates with passphrase-protected OpenSSH and PuTTY (.ppk) keys', async () => {
    put('sales/a.csv', 'n\n1\n')
    for (const key of [sshd.keys.encrypted, sshd.keys.ppk]) {
      const r = await run(
        'tbls:\n  sales:\n    path: /sales/*.csv\n',
        {
          ACHVY_CNXN__URI: uri({ password: null }),
          ACHVY_CNXN__PPK_PATH: key,
          ACHVY_CNXN__PASSPHRASE: KEY_PASSPHRASE,
          ACHVY_CNXN__HOST_KEY: sshd.hostPublicLine,
        },
        ['--id', `key_${nodePath.basename(key).replace('.', '_')}`],
      )
      expect(r.code, r.stderr).toBe(0)
    }
    const wrong = await run('tbls:\n  sales:\n    path: /sales/*.csv\n', {
      ACHVY_CNXN__URI: uri({ password: null }),
      ACHVY_CNXN__PPK_PATH: sshd.keys.encrypted,
      ACHVY_CNXN__PASSPHRASE: 'wrong-passphrase',
    })
    expect(wrong.code).toBe(1)
    expect(wrong.results?.startup_task).toMatchObject({ status: 'ERR', data: { err_code: 'ANCH_ERR_SFTP_KEY' } })
  })

  it('fails at once, clearly and without retries, on a wrong password', async () => {
    const started = Date.now()
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n', {
      ACHVY_CNXN__URI: uri({ password: 'wrong-password-123' }),
      ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
    })
    expect(r.code).toBe(1)
    expect(r.results?.startup_task).toMatchObject({ status: 'ERR', data: { err_code: 'ANCH_ERR_SFTP_AUTH' } })
    expect(JSON.stringify(r.results)).toContain('authentication failed for user \\"anchovy_sftp\\" (tried password)')
    expect(r.stderr).not.toContain('retrying')
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(r.stdout + r.stderr).not.toContain('wrong-password-123')
  })

  it('fails clearly on a wrong host key, naming the fingerprint the server presented', async () => {
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n', {
      ACHVY_CNXN__URI: uri(),
      ACHVY_CNXN__HOST_KEY: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    })
    expect(r.code).toBe(1)
    const data = (r.results!.startup_task as { data: Record<string, string> }).data
    expect(data.err_code).toBe('ANCH_ERR_SFTP_HOST_KEY')
    expect(data.err_msg).toContain(sshd.hostFingerprint)
    expect(r.stderr).not.toContain('retrying')
  })

  it('connects without HOST_KEY/KNOWN_HOSTS but warns that the host is unverified', async () => {
    put('sales/a.csv', 'n\n1\n')
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n', {
      ACHVY_CNXN__URI: uri(),
      ANCHY_CNXN__PPK_PATH: '/nowhere',
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('the sftp host key is not verified')
    expect(r.stderr).toContain(sshd.hostFingerprint)
    expect(r.stderr).toContain('ANCHY_CNXN__PPK_PATH is ignored')
  })

  it('passes `anchovy healthcheck --connections` after a run, and fails it with a wrong password', async () => {
    put('sales/a.csv', 'n\n1\n')
    expect((await run('tbls:\n  sales:\n    path: /sales/*.csv\n', verified())).code).toBe(0)
    const check = (env: Record<string, string>) =>
      runCli(
        ['healthcheck', '--connections', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds],
        env,
        dir,
      )
    const ok = await check(verified())
    expect(ok.stdout, ok.stderr).toContain('healthy: last run OK')
    const bad = await check({
      ACHVY_CNXN__URI: uri({ password: 'nope-wrong-pw' }),
      ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
    })
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain('authentication failed')
    expect(bad.stdout + bad.stderr).not.toContain('nope-wrong-pw')
  })

  it('reads from a named connection chosen with --cnxn', async () => {
    put('sales/a.csv', 'n\n1\n')
    const r = await run(
      'tbls:\n  sales:\n    path: /sales/*.csv\n',
      { ACHVY_CNXN__PARTNER__URI: uri(), ACHVY_CNXN__PARTNER__HOST_KEY: sshd.hostFingerprint },
      ['--cnxn', 'partner'],
    )
    expect(r.code, r.stderr).toBe(0)
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([{ n: '1' }])
  })

  it('fails at once when the folder does not exist on the server, or cannot be read', async () => {
    const r = await run('tbls:\n  sales:\n    path: /missing/*.csv\n', verified())
    expect(tableTask(r.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_PATH' })
    expect(r.stderr).not.toContain('retrying')
    const locked = nodePath.join(sshd.root, base, 'locked')
    mkdirSync(locked, { mode: 0o700 })
    chownSync(locked, 0, 0)
    const denied = await run('tbls:\n  sales:\n    path: /locked/*.csv\n', verified())
    expect(tableTask(denied.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_PATH' })
    expect(String(tableTask(denied.results, 'sales')?.err_msg)).toContain('permission denied')
    expect(denied.stderr).not.toContain('retrying')
  })

  describe('dropped connections', () => {
    const ROWS = 60_000
    const bigCsv = (): string => {
      const lines = ['id,name,amount']
      for (let i = 0; i < ROWS; i++) lines.push(`${i},customer-${i}-${'z'.repeat(20)},${(i * 1.5).toFixed(2)}`)
      return lines.join('\n') + '\n'
    }
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { id: int }\n'

    it('resumes a transfer cut mid-file after reconnecting, with nothing duplicated', async () => {
      put('sales/big.csv', bigCsv())
      const proxy = await startCutProxy(sshd.port)
      try {
        proxy.cutAfter(1_000_000)
        const r = await run(cfg, {
          ACHVY_CNXN__URI: uri({ port: proxy.port }),
          ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
          ACHVY_CNXN__RETRY_DELAY: '0.2',
        })
        expect(r.code, r.stderr).toBe(0)
        expect(proxy.cuts).toBe(1)
        expect(r.stderr).toContain('resuming at the same byte')
      } finally {
        await proxy.close()
      }
      const ids = (await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.id as number)
      expect(ids.length).toBe(ROWS)
      expect(new Set(ids).size).toBe(ROWS)
      expect(ids[ROWS - 1]).toBe(ROWS - 1)
    })

    it('commits nothing when sshd drops the session and retries are exhausted; the next run takes the file once', async () => {
      put('sales/big.csv', bigCsv())
      const proxy = await startCutProxy(sshd.port)
      try {
        proxy.cutAfter(800_000)
        const failed = await run(cfg, {
          ACHVY_CNXN__URI: uri({ port: proxy.port }),
          ACHVY_CNXN__HOST_KEY: sshd.hostFingerprint,
          ACHVY_CNXN__RETRIES: '0',
        })
        expect(tableTask(failed.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_CONNECT' })
      } finally {
        await proxy.close()
      }
      expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([])
      const ok = await run(cfg, verified())
      expect(ok.code, ok.stderr).toBe(0)
      expect((await committedRows(ds, 'sales_sftp', 'sales')).length).toBe(ROWS)
    })

    it('survives sshd killing the session processes mid-transfer', async () => {
      put('sales/big.csv', bigCsv())
      writeFileSync(nodePath.join(dir, 'config.yaml'), cfg)
      const pending = runCli(
        ['start', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds, '--log-level', 'debug'],
        {
          ...verified(),
          ACHVY_CNXN__RETRY_DELAY: '0.2',
          ACHVY_STREAM_QUEUE_SIZE: '1',
          ACHVY_DATA_COMPRESSION_LEVEL: '9',
        },
        dir,
      )
      // Kill the session once the table task started reading (its data file appears).
      const deadline = Date.now() + 20_000
      let killed = false
      while (Date.now() < deadline) {
        const dataDir = nodePath.join(ds, 'tester/sales_sftp/data/sales')
        if (existsSync(dataDir) && readdirSync(dataDir).length) {
          sshd.dropSessions()
          killed = true
          break
        }
        await new Promise((r) => setTimeout(r, 5))
      }
      const r = await pending
      expect(r.code, r.stderr).toBe(0)
      const ids = (await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.id as number)
      expect(ids.length).toBe(ROWS)
      expect(new Set(ids).size).toBe(ROWS)
      expect(killed).toBe(true)
      expect(r.stderr).toMatch(/resuming at the same byte/)
    })
  })

  it('handles the bad-row corpus over SFTP with each policy', async () => {
    put('sales/bad.csv', badCorpus())
    const cfg = (policy: string) =>
      `tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { id: int, amount: float }\n    on_bad_row: ${policy}\n`
    const failed = await run(cfg('fail'), verified())
    expect(tableTask(failed.results, 'sales')).toMatchObject({
      status: 'ERR',
      err_code: 'ANCH_ERR_CSV_PARSE',
      err_msg: '/sales/bad.csv line 3: expected 3 fields, found 2 (ragged row)',
    })
    const skipped = await run(cfg('skip'), verified(), ['--id', 'skipper'])
    expect(tableTask(skipped.results, 'sales')).toMatchObject({
      status: 'OK',
      rows: CORPUS_GOOD_IDS.length,
      bad_rows: CORPUS_BAD.length,
    })
    const quarantined = await run(cfg('quarantine'), verified())
    expect(tableTask(quarantined.results, 'sales')).toMatchObject({ status: 'OK', quarantined: CORPUS_BAD.length })
    const lines = readFileSync(allFiles(nodePath.join(ds, 'tester/sales_sftp/quarantine/sales'))[0]!, 'utf8')
      .trim()
      .split('\n')
    expect(lines.map((l) => (JSON.parse(l) as { line: number }).line)).toEqual(CORPUS_BAD.map((b) => b.line))
    expect((await committedRows(ds, 'sales_sftp', 'sales')).map((x) => x.id)).toEqual(CORPUS_GOOD_IDS)
  })

  it('streams a file without keeping its bytes: memory stays flat whatever the file size', async () => {
    const size = 64 * 1024 * 1024
    const block = Buffer.alloc(1024 * 1024, 'a')
    put('sales/blob.bin', Buffer.concat(Array.from({ length: 64 }, () => block)))
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const cnx = new SftpConnection({ uri: uri(), host_key: sshd.hostFingerprint })
    await cnx.open(createLogger('silent', false))
    try {
      gc()
      const before = process.memoryUsage().arrayBuffers
      let peak = 0
      let bytes = 0
      let chunks = 0
      const st = statSync(nodePath.join(sshd.root, base, 'sales/blob.bin'))
      for await (const chunk of cnx.read(
        { path: 'sales/blob.bin', size: st.size, mtime: Math.floor(st.mtimeMs / 1000) * 1000 },
        new AbortController().signal,
      )) {
        bytes += chunk.length
        if (++chunks % 32 === 0) {
          gc()
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)
        }
      }
      expect(bytes).toBe(size)
      // ssh2 keeps a few MB of window and cipher buffers; a leak would hold all 64 MB.
      expect(peak).toBeLessThan(32 * 1024 * 1024)
    } finally {
      await cnx.close()
    }
  })

  it('never writes the password or key passphrase to stdout, stderr or the datastore', async () => {
    put('sales/a.csv', 'n\nbad\n')
    const cfg = 'tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { n: int }\n    on_bad_row: quarantine\n'
    const runs = [
      await run(cfg, { ACHVY_CNXN__URI: uri(), ACHVY_LOG_LEVEL: 'debug' }),
      await run(cfg, {
        ACHVY_CNXN__URI: uri(),
        ACHVY_CNXN__HOST_KEY: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        ACHVY_LOG_LEVEL: 'debug',
      }),
      await run(cfg, {
        ACHVY_CNXN__URI: uri({ password: null }),
        ACHVY_CNXN__PPK_PATH: sshd.keys.encrypted,
        ACHVY_CNXN__PASSPHRASE: KEY_PASSPHRASE,
        ACHVY_LOG_LEVEL: 'debug',
      }),
      await run(cfg, {
        ACHVY_CNXN__URI: uri({ password: null }),
        ACHVY_CNXN__PPK_PATH: sshd.keys.encrypted,
        ACHVY_CNXN__PASSPHRASE: `${KEY_PASSPHRASE}x`,
        ACHVY_LOG_LEVEL: 'debug',
      }),
      await run(cfg, {
        ACHVY_CNXN__URI: uri({ port: 1 }),
        ACHVY_CNXN__RETRIES: '1',
        ACHVY_CNXN__RETRY_DELAY: '0.1',
        ACHVY_LOG_LEVEL: 'debug',
      }),
    ]
    expect(runs[0]!.code, runs[0]!.stderr).toBe(0)
    expect(runs.map((r) => r.code)).toEqual([0, 1, 0, 1, 1])
    const secrets = [SFTP_PASSWORD, encodeURIComponent(SFTP_PASSWORD), KEY_PASSPHRASE]
    const outputs = runs.flatMap((r) => [r.stdout, r.stderr])
    for (const f of allFiles(ds)) outputs.push(readFileSync(f).toString('latin1'))
    expect(outputs.join('').length).toBeGreaterThan(1000)
    for (const text of outputs) for (const s of secrets) expect(text).not.toContain(s)
  })
})
