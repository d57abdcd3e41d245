import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { parseTable } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { readTableSettings, TABLE_KEYS, tableKeys } from '../src/config.js'
import { compileGlob } from '../src/glob.js'
import { prune, readManifest, selectFiles } from '../src/manifest.js'
import { readSftpSettings } from '../src/sftp-connection.js'

const settings = (props: Record<string, unknown>) => {
  const problems: string[] = []
  const s = readTableSettings(parseTable('sales', props, 'test', problems), problems)
  return { s, problems }
}

describe('table settings', () => {
  it('reads tab written as /t, \\t or tab, and defaults', () => {
    for (const d of ['/t', '\\t', 'tab', '\t'])
      expect(settings({ path: '/x/*.tsv', delimiter: d }).s.delimiter).toBe('\t')
    const { s, problems } = settings({ path: '/sales/*.tsv' })
    expect(problems).toEqual([])
    expect(s).toMatchObject({
      path: 'sales/*.tsv',
      delimiter: ',',
      header: true,
      quote: '"',
      encoding: 'utf8',
      minAge: 0,
      after: { kind: 'keep' },
      onBadRow: 'fail',
    })
  })

  it('collects every problem at once', () => {
    const { problems } = settings({
      delimiter: '',
      after: 'archive',
      on_bad_row: 'ignore',
      encoding: 'ebcdic',
      min_age: -1,
      timezone: 'Mars/Olympus',
    })
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'tbls.sales.path',
      'tbls.sales.delimiter',
      'tbls.sales.encoding',
      'tbls.sales.after',
      'tbls.sales.on_bad_row',
      'tbls.sales.timezone',
      'tbls.sales.min_age',
    ])
  })
})

describe('names from config are never looked up on Object.prototype', () => {
  const PROTO = Object.getOwnPropertyNames(Object.prototype)

  it('reads delimiter: constructor and the other Object.prototype names as literal delimiters, and rejects them as encodings', () => {
    for (const name of PROTO) {
      const { s, problems } = settings({ path: '/x/*.csv', delimiter: name, encoding: name })
      expect(s.delimiter, name).toBe(name)
      expect(problems, name).toEqual([
        `tbls.sales.encoding: unsupported ${JSON.stringify(name.toLowerCase())} (use utf8, latin1, utf16le or cp1252)`,
      ])
    }
  })

  it('does not read settings through a __proto__ key of the table config (the unknown-setting check sees it)', () => {
    const table = parseTable(
      'sales',
      JSON.parse('{"__proto__": {"path": "/etc/*", "lineage": true}, "delimiter": ";"}'),
      'test',
      [],
    )
    const problems: string[] = []
    const s = readTableSettings(table, problems)
    expect(problems).toContain(
      'tbls.sales.path: is required: a glob relative to the connection base, e.g. /sales/*.tsv',
    )
    expect(s.lineage).toBe(false)
    expect(tableKeys(table.properties)).toContain('__proto__')
    for (const name of PROTO.filter((n) => n !== '__proto__')) {
      const t = parseTable('sales', { path: '/x/*.csv', [name]: 'x' }, 'test', [])
      expect(
        tableKeys(t.properties).filter((k) => !(TABLE_KEYS as readonly string[]).includes(k)),
        name,
      ).toEqual([name])
    }
  })

  it('rejects declared columns _file/_line when lineage is on (their values would be overwritten)', () => {
    expect(settings({ path: '/x/*.csv', lineage: true, columns: { _file: 'str' } }).problems).toEqual([
      'tbls.sales.lineage: columns declares _file, which lineage: true also writes; rename the column or set lineage: false',
    ])
    expect(settings({ path: '/x/*.csv', columns: { _file: 'str' } }).problems).toEqual([])
  })

  it('reads the new limits with byte units, and rejects nonsense', () => {
    const { s } = settings({
      path: '/x/*.csv',
      max_decompressed_size: '2 GiB',
      max_compression_ratio: 50,
      max_depth: 5,
    })
    expect(s).toMatchObject({ maxDecompressedBytes: 2 * 1024 ** 3, maxCompressionRatio: 50, maxDepth: 5 })
    expect(settings({ path: '/x/*.csv' }).s).toMatchObject({
      maxDecompressedBytes: 64 * 1024 ** 3,
      maxCompressionRatio: 500,
      maxDepth: 64,
    })
    expect(
      settings({ path: '/x/*.csv', max_decompressed_size: 'lots', max_depth: 0 }).problems.map((p) => p.split(':')[0]),
    ).toEqual(['tbls.sales.max_depth', 'tbls.sales.max_decompressed_size'])
  })
})

describe('connection settings', () => {
  it('parses sftp URIs without ever echoing the password', () => {
    const s = readSftpSettings({
      uri: 'sftp://bob:p%40ss@example.com:2222/in/data',
      host_key: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    })
    expect(s.display).toBe('sftp://bob@example.com:2222/in/data')
    expect(s.target).toMatchObject({
      host: 'example.com',
      port: 2222,
      username: 'bob',
      password: 'p@ss',
      base: '/in/data',
    })
    expect(readSftpSettings({ uri: 'sftp://bob:x@h/~/in' }).target?.base).toBe('~/in')
    expect(readSftpSettings({ uri: 'sftp://bob:x@h' }).target?.base).toBe('/')
    expect(readSftpSettings({ uri: 'file:///srv/drop' }).local).toBe('/srv/drop')
    expect(() => readSftpSettings({ uri: 'sftp://bob@h' })).toThrow('neither a password')
    expect(() => readSftpSettings({ uri: 'sftp://bob:secret@h', ppk_path: '/nope' })).toThrow(
      'cannot read the key file /nope',
    )
    const dir = mkdtempSync(nodePath.join(tmpdir(), 'anchovies-ppk-'))
    try {
      writeFileSync(nodePath.join(dir, 'k.ppk'), 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n')
      expect(() => readSftpSettings({ uri: 'sftp://bob@h', ppk_path: nodePath.join(dir, 'k.ppk') })).toThrow(
        'is a PuTTY v3 key; convert it with: puttygen',
      )
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
    expect(['a-1x.csv', 'b-2y.csv', 'c-1x.csv', '.a-1x.csv'].map((n) => seg.test(n))).toEqual([
      true,
      true,
      false,
      false,
    ])
  })

  it('remembers files named after Object.prototype members (a file called __proto__ is taken once, not every run)', () => {
    const names = Object.getOwnPropertyNames(Object.prototype)
    const listing = names.map((path) => ({ path, size: 1, mtime: 5 }))
    const first = selectFiles(listing, readManifest(undefined), 1e12, 0, 0)
    expect(first.take.map((f) => f.path)).toEqual(names)
    const manifest = prune(
      readManifest(JSON.parse('{"__proto__": {"size": 1, "mtime": 5, "rows": 1, "taken_at": ""}}')),
      listing,
    )
    for (const f of listing) manifest[f.path] = { size: 1, mtime: 5, rows: 1, taken_at: '' }
    const stored = readManifest(JSON.parse(JSON.stringify(manifest)))
    expect(Object.keys(stored).sort()).toEqual([...names].sort())
    expect(selectFiles(listing, stored, 1e12, 0, 0)).toMatchObject({ take: [], unchanged: names.length })
  })

  it('takes new and changed files old enough, in listing order, and prunes vanished entries', () => {
    const now = 1_000_000_000
    const listing = [
      { path: 'a', size: 1, mtime: now - 600_000 },
      { path: 'b', size: 2, mtime: now - 500_000 },
      { path: 'c', size: 3, mtime: now - 1000 },
    ]
    const manifest = {
      a: { size: 1, mtime: now - 600_000, rows: 1, taken_at: '' },
      b: { size: 1, mtime: now - 500_000, rows: 1, taken_at: '' },
      gone: { size: 1, mtime: 0, rows: 1, taken_at: '' },
    }
    const sel = selectFiles(listing, manifest, now, 60, 0)
    expect(sel.take.map((f) => f.path)).toEqual(['b'])
    expect(sel.unchanged).toBe(1)
    expect(sel.young.map((f) => f.path)).toEqual(['c'])
    expect(Object.keys(prune(manifest, listing))).toEqual(['a', 'b'])
    expect(selectFiles(listing, {}, now, 0, 2)).toMatchObject({ deferred: 1 })
  })
})
