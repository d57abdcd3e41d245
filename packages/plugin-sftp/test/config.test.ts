import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { parseTable } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { readTableSettings } from '../src/config.js'
import { compileGlob } from '../src/glob.js'
import { prune, selectFiles } from '../src/manifest.js'
import { readSftpSettings } from '../src/sftp-connection.js'

const settings = (props: Record<string, unknown>) => {
  const problems: string[] = []
  const s = readTableSettings(parseTable('sales', props, 'test', problems), problems)
  return { s, problems }
}

describe('table settings', () => {
  it('reads tab written as /t, \\t or tab, and defaults', () => {
    for (const d of ['/t', '\\t', 'tab', '\t']) expect(settings({ path: '/x/*.tsv', delimiter: d }).s.delimiter).toBe('\t')
    const { s, problems } = settings({ path: '/sales/*.tsv' })
    expect(problems).toEqual([])
    expect(s).toMatchObject({ path: 'sales/*.tsv', delimiter: ',', header: true, quote: '"', encoding: 'utf8', minAge: 0, after: { kind: 'keep' }, onBadRow: 'fail' })
  })

  it('collects every problem at once', () => {
    const { problems } = settings({ delimiter: '', after: 'archive', on_bad_row: 'ignore', encoding: 'ebcdic', min_age: -1, timezone: 'Mars/Olympus' })
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'tbls.sales.path', 'tbls.sales.delimiter', 'tbls.sales.encoding', 'tbls.sales.after', 'tbls.sales.on_bad_row', 'tbls.sales.timezone', 'tbls.sales.min_age',
    ])
  })
})

describe('connection settings', () => {
  it('parses sftp URIs without ever echoing the password', () => {
    const s = readSftpSettings({ uri: 'sftp://bob:p%40ss@example.com:2222/in/data', host_key: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
    expect(s.display).toBe('sftp://bob@example.com:2222/in/data')
    expect(s.target).toMatchObject({ host: 'example.com', port: 2222, username: 'bob', password: 'p@ss', base: '/in/data' })
    expect(readSftpSettings({ uri: 'sftp://bob:x@h/~/in' }).target?.base).toBe('~/in')
    expect(readSftpSettings({ uri: 'sftp://bob:x@h' }).target?.base).toBe('/')
    expect(readSftpSettings({ uri: 'file:///srv/drop' }).local).toBe('/srv/drop')
    expect(() => readSftpSettings({ uri: 'sftp://bob@h' })).toThrow('neither a password')
    expect(() => readSftpSettings({ uri: 'sftp://bob:secret@h', ppk_path: '/nope' })).toThrow('cannot read the key file /nope')
    const dir = mkdtempSync(nodePath.join(tmpdir(), 'anchovies-ppk-'))
    try {
      writeFileSync(nodePath.join(dir, 'k.ppk'), 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n')
      expect(() => readSftpSettings({ uri: 'sftp://bob@h', ppk_path: nodePath.join(dir, 'k.ppk') })).toThrow('is a PuTTY v3 key; convert it with: puttygen')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('file selection', () => {
  it('compiles globs with a literal root', () => {
    expect(compileGlob('sales/2025/*.csv').root).toBe('sales/2025')
    expect(compileGlob('*.csv').root).toBe('')
    const seg = compileGlob('in/{a,b}-[0-9]?.csv').segments[0] as RegExp
    expect(['a-1x.csv', 'b-2y.csv', 'c-1x.csv', '.a-1x.csv'].map((n) => seg.test(n))).toEqual([true, true, false, false])
  })

  it('takes new and changed files old enough, in listing order, and prunes vanished entries', () => {
    const now = 1_000_000_000
    const listing = [
      { path: 'a', size: 1, mtime: now - 600_000 },
      { path: 'b', size: 2, mtime: now - 500_000 },
      { path: 'c', size: 3, mtime: now - 1000 },
    ]
    const manifest = { a: { size: 1, mtime: now - 600_000, rows: 1, taken_at: '' }, b: { size: 1, mtime: now - 500_000, rows: 1, taken_at: '' }, gone: { size: 1, mtime: 0, rows: 1, taken_at: '' } }
    const sel = selectFiles(listing, manifest, now, 60, 0)
    expect(sel.take.map((f) => f.path)).toEqual(['b'])
    expect(sel.unchanged).toBe(1)
    expect(sel.young.map((f) => f.path)).toEqual(['c'])
    expect(Object.keys(prune(manifest, listing))).toEqual(['a', 'b'])
    expect(selectFiles(listing, {}, now, 0, 2)).toMatchObject({ deferred: 1 })
  })
})
