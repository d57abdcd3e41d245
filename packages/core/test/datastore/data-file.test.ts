import { afterAll, describe, expect, it } from 'vitest'
import { gunzipSync, gzipSync } from 'node:zlib'
import { readFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  DataFileWriter,
  DateTime,
  FilesystemDatastore,
  LocalDate,
  decodeRow,
  encodeRow,
  readDataFile,
} from '../../src/index.js'
import { gzipMember } from '../../src/datastore/gzip-members.js'
import { cleanupTempDirs, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

describe('data file format', () => {
  it('annotates top-level dates, datetimes and bytes like the Python implementation', () => {
    const line = encodeRow({
      id: 0,
      ts: new Date(Date.UTC(2025, 0, 1)),
      b: Buffer.from([1, 2]),
      d: new LocalDate(2025, 1, 2),
      n: null,
      nested: { a: [1, 2] },
    })
    expect(line).toBe(
      '{"id":0,"ts":"2025-01-01T00:00:00+00:00","b":"0102","d":"2025-01-02","n":null,"nested":{"a":[1,2]},"_types":"ts@DT b@B d@D"}',
    )
  })

  it('writes an empty annotation, overwrites a source _types column and keeps ms as microseconds', () => {
    expect(encodeRow({ a: 1, _types: 'x@DT' })).toBe('{"a":1,"_types":""}')
    expect(encodeRow({})).toBe('{"_types":""}')
    expect(encodeRow({ t: new Date(Date.UTC(2025, 0, 1, 0, 0, 0, 123)) })).toBe(
      '{"t":"2025-01-01T00:00:00.123000+00:00","_types":"t@DT"}',
    )
  })

  it('round-trips aware, naive and offset datetimes exactly', () => {
    for (const iso of [
      '2025-04-02T23:32:01.441251',
      '2025-01-01T10:00:00+05:30',
      '2024-12-31T23:59:59.999999+00:00',
      '2025-03-01T00:00:00-03:00',
    ]) {
      const row = decodeRow(JSON.parse(encodeRow({ v: DateTime.parse(iso) })))
      expect(row.v).toBeInstanceOf(DateTime)
      expect(String(row.v)).toBe(iso)
    }
    expect(DateTime.parse('2025-04-02T23:32:01.441251').isNaive).toBe(true)
    expect(DateTime.parse('2025-01-01T10:00:00+05:30').toDate().toISOString()).toBe('2025-01-01T04:30:00.000Z')
  })

  it('leaves strings that only look like annotated values alone', () => {
    const row = decodeRow(JSON.parse('{"a":"2025-01-02","b":"deadbeef","c":"col@DT other@B","_types":""}'))
    expect(row).toEqual({ a: '2025-01-02', b: 'deadbeef', c: 'col@DT other@B' })
  })

  it('streams rows into gzip files that roll over at the configured size and reads them back', async () => {
    const root = tempDir()
    const ds = new FilesystemDatastore(root)
    const w = new DataFileWriter(ds, (i) => `data/t/f-${i}.json.gz`, { maxBytes: 100_000, level: 1 })
    for (let i = 0; i < 10_000; i++) await w.write({ i, s: 'x'.repeat(20), d: new LocalDate(2025, 1, 1 + (i % 28)) })
    const files = await w.close()
    expect(files.length).toBeGreaterThan(3)
    expect(files.reduce((n, f) => n + f.rows, 0)).toBe(10_000)
    const firstLine = gunzipSync(readFileSync(path.join(root, files[0]!.path)))
      .toString('utf8')
      .split('\n')[0]
    expect(firstLine).toBe('{"i":0,"s":"xxxxxxxxxxxxxxxxxxxx","d":"2025-01-01","_types":"d@D"}')
    let n = 0
    for (const f of files) for await (const row of readDataFile(ds, f.path)) expect(row.i).toBe(n++)
    expect(n).toBe(10_000)
  })

  it('writes blocks as gzip members that any gunzip reads as one stream, long and non-ASCII lines included', async () => {
    const root = tempDir()
    const ds = new FilesystemDatastore(root)
    const w = new DataFileWriter(ds, (i) => `data/t/f-${i}.json.gz`, { maxBytes: 64 << 20, level: 1 })
    const rows: Record<string, unknown>[] = []
    for (let i = 0; i < 60_000; i++) {
      // Every 20,000th row is 3 MB: longer than a block, and 3 bytes a character in UTF-8.
      rows.push({ i, s: i % 20_000 === 7 ? '€'.repeat(1_000_000) : `é ${i} "q" \\ ${'x'.repeat(i % 50)}` })
    }
    for (const row of rows) await w.write(row)
    const files = await w.close()
    expect(files).toHaveLength(1)
    const raw = readFileSync(path.join(root, files[0]!.path))
    // More than one member (each starts with the gzip magic bytes and deflate method).
    expect(raw.subarray(1).indexOf(Buffer.from([0x1f, 0x8b, 0x08]))).toBeGreaterThan(0)
    const text = gunzipSync(raw).toString('utf8')
    expect(Buffer.byteLength(text)).toBe(files[0]!.bytes)
    expect(text.split('\n').slice(0, 2)).toEqual([encodeRow(rows[0]!), encodeRow(rows[1]!)])
    let n = 0
    for await (const row of readDataFile(ds, files[0]!.path)) expect(row).toEqual(rows[n++])
    expect(n).toBe(rows.length)
  })

  it('reads members that record their length, plain gzip members after them, and rejects a truncated file', async () => {
    const root = tempDir()
    const ds = new FilesystemDatastore(root)
    const lines = (from: number, n: number): string =>
      Array.from({ length: n }, (_, i) => `{"i":${from + i},"_types":""}\n`).join('')
    const ours = (
      await Promise.all([gzipMember(Buffer.from(lines(0, 5000)), 1), gzipMember(Buffer.from(lines(5000, 5000)), 6)])
    ).flat()
    // Written by another gzip (Python's, say): no length field; the reader streams the rest of the file.
    const theirs = [gzipSync(lines(10_000, 100)), gzipSync(lines(10_100, 100))]
    await ds.write('mixed.json.gz', Buffer.concat([...ours, ...theirs]))
    let n = 0
    for await (const row of readDataFile(ds, 'mixed.json.gz')) expect(row.i).toBe(n++)
    expect(n).toBe(10_200)
    expect(gunzipSync(Buffer.concat(ours)).toString()).toBe(lines(0, 10_000))

    const whole = Buffer.concat(ours)
    await ds.write('cut.json.gz', whole.subarray(0, whole.length - 100))
    await expect(async () => {
      for await (const _ of readDataFile(ds, 'cut.json.gz')) void _
    }).rejects.toThrow(/reading data file cut\.json\.gz: unexpected end of file/)
  })

  it('builds a DateTime from validated text exactly as parse would', () => {
    for (const [iso, offset] of [
      ['2024-02-29T23:59:59.123456-05:30', -330],
      ['1999-12-31T00:00:00', null],
      ['2025-01-01T00:00:00+00:00', 0],
    ] as const) {
      const made = DateTime.ofValidated(iso, offset)
      expect(made).toEqual(DateTime.parse(iso))
      expect(made.epochMicros).toBe(DateTime.parse(iso).epochMicros)
    }
  })

  it('parses datetimes on the fast path exactly as the ISO pattern does (fuzzed)', () => {
    const RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/
    const alphabet = '0123456789-: T.Z+z'
    const bases = [
      '2024-05-03T12:34:56.123456+05:30',
      '2024-05-03 12:34',
      '2024-05-03T12:34:56Z',
      '2024-05-03T12:34:56-0800',
      '2024-05-03T12:34:56.1',
    ]
    let seed = 7
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
    for (let k = 0; k < 50_000; k++) {
      const t = bases[k % bases.length]!.split('')
      for (let e = rnd(3); e > 0; e--) {
        const at = rnd(t.length + 1)
        const op = rnd(3)
        if (op === 0) t[at] = alphabet[rnd(alphabet.length)]!
        else if (op === 1) t.splice(at, 1)
        else t.splice(at, 0, alphabet[rnd(alphabet.length)]!)
      }
      const text = t.join('')
      const m = RE.exec(text)
      if (!m) {
        expect(() => DateTime.parse(text), text).toThrow('not an ISO datetime')
        continue
      }
      const tz = m[8]?.replace(':', '')
      const offset =
        tz === undefined
          ? null
          : tz === 'Z'
            ? 0
            : (tz[0] === '-' ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(3, 5)))
      const got = DateTime.parse(text)
      expect([got.iso, got.offsetMinutes], text).toEqual([text, offset])
    }
    expect(LocalDate.parse('2024-05-03')).toEqual(new LocalDate(2024, 5, 3))
    for (const bad of ['2024-5-03', '2024-05-0x', '20240-05-03', '2024-05-03 '])
      expect(() => LocalDate.parse(bad), bad).toThrow('not a date')
  })

  it('caches parsed annotations without mixing up columns', () => {
    for (let i = 0; i < 3; i++) {
      expect(decodeRow(JSON.parse('{"a":"2025-01-02","b":"00ff","_types":"a@D b@B"}'))).toEqual({
        a: new LocalDate(2025, 1, 2),
        b: Buffer.from([0, 255]),
      })
      expect(decodeRow(JSON.parse('{"a":"00ff","b":"2025-01-02","_types":"a@B b@D"}'))).toEqual({
        a: Buffer.from([0, 255]),
        b: new LocalDate(2025, 1, 2),
      })
    }
  })

  it('names the file and line of a corrupt row', async () => {
    const root = tempDir()
    const ds = new FilesystemDatastore(root)
    const { gzipSync } = await import('node:zlib')
    await ds.write('bad.json.gz', gzipSync('{"a":1,"_types":""}\n{"a":\n'))
    const rows: unknown[] = []
    await expect(async () => {
      for await (const r of readDataFile(ds, 'bad.json.gz')) rows.push(r)
    }).rejects.toThrow(/bad\.json\.gz line 2/)
  })
})
