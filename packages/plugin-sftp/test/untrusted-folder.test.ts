import { existsSync, mkdirSync, readdirSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import * as nodePath from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { listMatches } from '../src/glob.js'
import { LocalFs } from '../src/remote-fs.js'
import { checkpoint, committedRows, remove, runCli, tableTask, tempDir } from './helpers/cli.js'

// What a partner (or anybody who can write into the folder) can do to the local-folder connection: links out of
// the folder, link loops, decompression bombs, hostile names. Real files and real symlinks in a temp folder.

let dir: string
let src: string
let outside: string
let ds: string

beforeEach(() => {
  dir = tempDir('untrusted')
  src = nodePath.join(dir, 'server')
  outside = nodePath.join(dir, 'outside')
  ds = nodePath.join(dir, 'ds')
  mkdirSync(nodePath.join(src, 'sales'), { recursive: true })
  mkdirSync(outside, { recursive: true })
  writeFileSync(nodePath.join(outside, 'secret.csv'), 'n\nSECRET\n')
  mkdirSync(nodePath.join(outside, 'deep'), { recursive: true })
  writeFileSync(nodePath.join(outside, 'deep', 'more.csv'), 'n\nSECRET2\n')
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

function link(rel: string, target: string): void {
  const p = nodePath.join(src, rel)
  mkdirSync(nodePath.dirname(p), { recursive: true })
  symlinkSync(target, p)
}

function run(config: string) {
  writeFileSync(nodePath.join(dir, 'config.yaml'), config)
  return runCli(
    ['start', '-op', 'sftp.CsvDownloader', '--id', 'sales_sftp', '--datastore', ds],
    { ACHVY_CNXN__URI: `file://${src}` },
    dir,
  )
}

const values = async (): Promise<unknown[]> => (await committedRows(ds, 'sales_sftp', 'sales')).map((r) => r.n)

describe('local folder: paths stay inside the folder', () => {
  it('does not ingest a file linked from outside the folder (and says which link it left out)', async () => {
    put('sales/a.csv', 'n\n1\n')
    link('sales/passwd.csv', nodePath.join(outside, 'secret.csv'))
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n')
    expect(r.code, r.stderr).toBe(0)
    expect(await values()).toEqual(['1'])
    expect(r.stderr).toContain('sales/passwd.csv')
    expect(r.stderr).toContain('outside the connection folder')
  })

  it('leaves out every shape of link out of the folder: relative, absolute, chained, to a folder under **, and a glob folder that is itself such a link', async () => {
    put('sales/ok.csv', 'n\nok\n')
    link('sales/rel.csv', '../../outside/secret.csv')
    link('sales/abs.csv', nodePath.join(outside, 'secret.csv'))
    link('sales/hop.csv', 'rel.csv')
    link('sales/sub', outside)
    link('sales/deeper/dots', '../../../outside/deep')
    link('elsewhere', outside)
    const walked = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n')
    expect(walked.code, walked.stderr).toBe(0)
    expect(await values()).toEqual(['ok'])
    for (const name of ['rel.csv', 'abs.csv', 'hop.csv', 'sub', 'deeper/dots'])
      expect(walked.stderr).toContain(`sales/${name}`)

    const root = await run('tbls:\n  other:\n    path: /elsewhere/*.csv\n')
    expect(root.code).toBe(1)
    expect(tableTask(root.results, 'other')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_PATH' })
    expect(String(tableTask(root.results, 'other')?.err_msg)).toContain('leads outside the connection folder')
  })

  it('still follows links that stay inside the folder, taking each real file once under its own path', async () => {
    put('sales/2025/a.csv', 'n\na\n')
    put('archive/b.csv', 'n\nb\n', HOUR_AGO + 1)
    link('sales/latest', '2025')
    link('sales/b.csv', '../archive/b.csv')
    const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n')
    expect(r.code, r.stderr).toBe(0)
    expect(await values()).toEqual(['a', 'b'])
    expect(Object.keys(checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest') as object).sort()).toEqual([
      'sales/2025/a.csv',
      'sales/b.csv',
    ])
  })

  it('after: move:<dir> through a link never moves a file out of the folder', async () => {
    put('sales/a.csv', 'n\n1\n')
    link('done', outside)
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv\n    after: move:/done/sales\n')
    expect(readdirSync(outside).sort()).toEqual(['deep', 'secret.csv'])
    expect(existsSync(nodePath.join(src, 'sales/a.csv'))).toBe(true)
    expect(`${r.stdout}${r.stderr}`).toContain('leads outside the connection folder')

    // The same with the link as the move folder's parent, one level further down.
    link('archive', outside)
    put('sales/b.csv', 'n\n2\n')
    await run('tbls:\n  sales:\n    path: /sales/*.csv\n    after: move:/archive/x/y\n')
    expect(readdirSync(outside).sort()).toEqual(['deep', 'secret.csv'])
    expect(existsSync(nodePath.join(src, 'sales/b.csv'))).toBe(true)
  })

  it('refuses to read a file swapped for a link out of the folder after it was listed', async () => {
    put('sales/a.csv', 'n\n1\n')
    const fs = new LocalFs(src)
    const [file] = await listMatches(fs, 'sales/*.csv')
    expect(file?.path).toBe('sales/a.csv')
    unlinkSync(nodePath.join(src, 'sales/a.csv'))
    link('sales/a.csv', nodePath.join(outside, 'secret.csv'))
    const read = async (): Promise<string> => {
      let text = ''
      for await (const chunk of fs.read('sales/a.csv', 0)) text += String(chunk)
      return text
    }
    await expect(read()).rejects.toMatchObject({ code: 'ANCH_ERR_SFTP_PATH' })
    await expect(fs.stat('sales/a.csv')).rejects.toMatchObject({ code: 'ANCH_ERR_SFTP_PATH' })
    await expect(fs.list('sales/../../outside')).rejects.toMatchObject({ code: 'ANCH_ERR_SFTP_PATH' })
  })
})

describe('local folder: link loops', () => {
  it('takes a file once under a ** glob with a symlink loop (ln -s . loop), not 41 times', async () => {
    put('sales/a.csv', 'n\n1\n')
    link('sales/loop', '.')
    const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n')
    expect(r.code, r.stderr).toBe(0)
    expect(await values()).toEqual(['1'])
    expect(tableTask(r.results, 'sales')).toMatchObject({ files_listed: 1, files_taken: 1 })
    expect(r.stderr).toContain('sales/loop')
  })

  it('ends the walk with two loops, loops to a parent, and link cycles, taking every real file once', async () => {
    put('sales/a.csv', 'n\n1\n')
    put('sales/x/b.csv', 'n\n2\n', HOUR_AGO + 1)
    put('sales/x/y/c.csv', 'n\n3\n', HOUR_AGO + 2)
    link('sales/loop1', '.')
    link('sales/loop2', '.')
    link('sales/x/up', '..')
    link('sales/x/y/top', '../../..')
    link('sales/x/y/again', '../../x')
    link('sales/cycle1', 'cycle2')
    link('sales/cycle2', 'cycle1')
    const started = Date.now()
    const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n')
    expect(r.code, r.stderr).toBe(0)
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(await values()).toEqual(['1', '2', '3'])
    expect(Object.keys(checkpoint(ds, 'sales_sftp', 'sftp.sales.manifest') as object).sort()).toEqual([
      'sales/a.csv',
      'sales/x/b.csv',
      'sales/x/y/c.csv',
    ])
  })

  it('fails clearly, naming max_depth, on a tree deeper than max_depth', async () => {
    put('sales/1/2/3/4/a.csv', 'n\n1\n')
    const shallow = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    max_depth: 3\n')
    expect(shallow.code).toBe(1)
    expect(tableTask(shallow.results, 'sales')).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_LIMIT' })
    expect(String(tableTask(shallow.results, 'sales')?.err_msg)).toContain('tbls.sales.max_depth')
    const enough = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    max_depth: 4\n')
    expect(enough.code, enough.stderr).toBe(0)
    expect(await values()).toEqual(['1'])
  })
})

describe('local folder: after: move: into the folder the glob lists', () => {
  it('rejects at startup a move folder that is the glob folder (which would take nothing forever) or holds it', async () => {
    put('sales/a.csv', 'n\n1\n')
    for (const [path, move] of [
      ['/sales/*.csv', 'move:/sales'],
      ['/sales/*.csv', 'move:sales/'],
      ['/in/sales/*.csv', 'move:/in'],
      ['/sales/a.csv', 'move:/sales'],
    ]) {
      const r = await run(`tbls:\n  sales:\n    path: ${path}\n    after: ${move}\n`)
      expect(r.code, `${path} ${move}`).toBe(2)
      const startup = r.results?.startup_task as { data: Record<string, string> }
      expect(startup.data.err_code).toBe('ANCH_ERR_SFTP_CONFIG')
      expect(startup.data.err_msg).toContain('tbls.sales.after: move:')
      expect(startup.data.err_msg).toContain('nothing could be taken')
    }
  })

  it('moves files into a sub-folder of the glob folder, which the glob then does not see', async () => {
    put('sales/a.csv', 'n\n1\n')
    put('sales/2025/b.csv', 'n\n2\n', HOUR_AGO + 1)
    const r = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    after: move:/sales/done\n')
    expect(r.code, r.stderr).toBe(0)
    expect(readdirSync(nodePath.join(src, 'sales/done')).sort()).toEqual(['2025', 'a.csv'])
    const again = await run('tbls:\n  sales:\n    path: /sales/**/*.csv\n    after: move:/sales/done\n')
    expect(tableTask(again.results, 'sales')).toMatchObject({ files_listed: 0, files_taken: 0 })
    expect(await values()).toEqual(['1', '2'])
  })
})

describe('local folder: decompression bombs', () => {
  /** A multi-member gzip file: `members` copies of a member holding `rowsPerMember` lines `1`. */
  function bomb(members: number, rowsPerMember: number): Buffer {
    const member = gzipSync(Buffer.from('1\n'.repeat(rowsPerMember)), { level: 9 })
    return Buffer.concat([gzipSync(Buffer.from('n\n')), ...Array.from({ length: members }, () => member)])
  }

  it('stops a 1 MB .csv.gz that inflates to 1 GiB (a ratio far above any real file) with the defaults, quickly', async () => {
    const file = bomb(128, 4 * 1024 * 1024)
    expect(file.length).toBeLessThan(2 * 1024 * 1024)
    put('sales/bomb.csv.gz', file)
    const started = Date.now()
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv.gz\n')
    // Generous (a busy 2-core machine): without the guard the run inflates all 1 GiB (537M rows) and never ends in time.
    expect(Date.now() - started).toBeLessThan(45_000)
    expect(r.code).toBe(1)
    const t = tableTask(r.results, 'sales')
    expect(t).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_LIMIT' })
    expect(String(t?.err_msg)).toContain('/sales/bomb.csv.gz')
    expect(String(t?.err_msg)).toContain('tbls.sales.max_compression_ratio')
    expect(await values()).toEqual([])
  })

  it('stops a file that inflates past max_decompressed_size, naming the file and the setting; a higher limit takes it', async () => {
    put('sales/big.csv.gz', gzipSync(Buffer.from(`n\n${'123456789\n'.repeat(300_000)}`)))
    const r = await run('tbls:\n  sales:\n    path: /sales/*.csv.gz\n    max_decompressed_size: 1MiB\n')
    expect(r.code).toBe(1)
    const t = tableTask(r.results, 'sales')
    expect(t).toMatchObject({ status: 'ERR', err_code: 'ANCH_ERR_SFTP_LIMIT' })
    expect(String(t?.err_msg)).toContain('/sales/big.csv.gz')
    expect(String(t?.err_msg)).toContain('tbls.sales.max_decompressed_size')
    const ok = await run('tbls:\n  sales:\n    path: /sales/*.csv.gz\n    max_decompressed_size: 4 MiB\n')
    expect(ok.code, ok.stderr).toBe(0)
    expect(tableTask(ok.results, 'sales')).toMatchObject({ rows: 300_000 })
  })
})

describe('local folder: names from files and config that are Object.prototype members', () => {
  const PROTO = Object.getOwnPropertyNames(Object.prototype)

  it('round-trips a header naming every Object.prototype member into the datastore as ordinary columns', async () => {
    put('sales/a.csv', `${PROTO.join(',')}\n${PROTO.map((_, i) => i).join(',')}\n`)
    const r = await run(
      'tbls:\n  sales:\n    path: /sales/*.csv\n    columns: { constructor: int, toString: int, hasOwnProperty: int, valueOf: int }\n',
    )
    expect(r.code, r.stderr).toBe(0)
    const [row] = await committedRows(ds, 'sales_sftp', 'sales')
    expect(row).toBeDefined()
    for (const [i, name] of PROTO.entries()) {
      const want = ['constructor', 'toString', 'hasOwnProperty', 'valueOf'].includes(name) ? i : String(i)
      expect(Object.getOwnPropertyDescriptor(row, name)?.value, name).toEqual(want)
    }
  })

  it('takes files called __proto__, constructor or toString once, not again on every run', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) put(`sales/${name}`, `n\n${name}\n`)
    const cfg = 'tbls:\n  sales:\n    path: /sales/*\n'
    expect((await run(cfg)).code).toBe(0)
    const second = await run(cfg)
    expect(tableTask(second.results, 'sales')).toMatchObject({ files_listed: 4, files_taken: 0, files_unchanged: 4 })
    expect((await values()).sort()).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])
  })

  it('warns about a __proto__ key in a table config and reads no setting through it', async () => {
    put('sales/a.csv', 'n\n1\n')
    const r = await run(
      'tbls:\n  sales:\n    path: /sales/*.csv\n    __proto__: { lineage: true }\n    constructor: x\n',
    )
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/keys not read by sftp.CsvDownloader \(typo\?\): .*__proto__/)
    expect(r.stderr).toMatch(/keys not read by sftp.CsvDownloader \(typo\?\): .*constructor/)
    expect(await committedRows(ds, 'sales_sftp', 'sales')).toEqual([{ n: '1' }])
  })
})
