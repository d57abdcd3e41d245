import { gzipSync } from 'node:zlib'
import { parseTable } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { readTableSettings } from '../src/config.js'
import { headerNames, readRows } from '../src/csv-rows.js'
import type { BadRowError } from '../src/errors.js'

async function rows(
  text: string,
  table: Record<string, unknown>,
): Promise<{ rows: Record<string, unknown>[]; bad: BadRowError[] }> {
  const problems: string[] = []
  const s = readTableSettings(parseTable('t', { path: 'x/*.csv', ...table }, 'test', problems), problems)
  expect(problems).toEqual([])
  const bad: BadRowError[] = []
  const out: Record<string, unknown>[] = []
  async function* bytes(): AsyncGenerator<Buffer> {
    yield Buffer.from(text)
  }
  for await (const batch of readRows(
    bytes(),
    { path: 'x/a.csv', size: text.length, mtime: 0 },
    s,
    (b) => void bad.push(b),
  ))
    out.push(...batch)
  return { rows: out, bad }
}

describe('row building', () => {
  it('builds rows in header order with converted values and lineage, the same shape for every row', async () => {
    const r = await rows('b,a\n1,x\n2,\n', { columns: { b: 'int' }, lineage: true })
    expect(r.rows).toEqual([
      { b: 1, a: 'x', _file: 'x/a.csv', _line: 2 },
      { b: 2, a: '', _file: 'x/a.csv', _line: 3 },
    ])
    expect(r.rows.map((row) => Object.keys(row))).toEqual([
      ['b', 'a', '_file', '_line'],
      ['b', 'a', '_file', '_line'],
    ])
  })

  it('names the first column that does not convert, and keeps building after a bad row', async () => {
    const r = await rows('n,m,d\n1,x,2025-01-01\n2,3,2025-02-30\nq,z,nope\n4,5,2025-01-02\n', {
      columns: { n: 'int', m: 'int', d: 'date' },
      on_bad_row: 'skip',
    })
    expect(r.bad.map((b) => [b.line, b.column])).toEqual([
      [2, 'm'],
      [3, 'd'],
      [4, 'n'],
    ])
    expect(r.rows).toEqual([{ n: 4, m: 5, d: expect.anything() }])
    expect(String(r.rows[0]!.d)).toBe('2025-01-02')
  })

  it('handles a column named __proto__ like the generic path (no prototype change)', async () => {
    const r = await rows('__proto__,b\n1,2\n', {})
    expect(r.bad.map((b) => b.message)).toEqual([])
    expect(r.rows).toHaveLength(1)
    expect(Object.getPrototypeOf(r.rows[0])).toBe(Object.prototype)
    expect(r.rows[0]!.b).toBe('2')
    expect(Object.keys(r.rows[0]!)).toEqual(['__proto__', 'b'])
  })
})

async function rowsOf(
  bytes: Buffer | Buffer[],
  table: Record<string, unknown>,
): Promise<{ rows: Record<string, unknown>[]; bad: BadRowError[] }> {
  const problems: string[] = []
  const s = readTableSettings(parseTable('t', { path: 'x/*.csv', ...table }, 'test', problems), problems)
  expect(problems).toEqual([])
  const bad: BadRowError[] = []
  const out: Record<string, unknown>[] = []
  const chunks = Array.isArray(bytes) ? bytes : [bytes]
  async function* source(): AsyncGenerator<Buffer> {
    yield* chunks
  }
  const size = chunks.reduce((n, c) => n + c.length, 0)
  for await (const batch of readRows(source(), { path: 'x/a.csv', size, mtime: 0 }, s, (b) => void bad.push(b)))
    out.push(...batch)
  return { rows: out, bad }
}

/** Every way to cut `buf` into two or three pieces around each byte of `around` (chunk boundaries inside sequences). */
function splits(buf: Buffer, around: number[]): Buffer[][] {
  const out: Buffer[][] = [[buf]]
  for (const at of around)
    for (let k = Math.max(1, at - 3); k <= Math.min(buf.length - 1, at + 4); k++)
      out.push([buf.subarray(0, k), buf.subarray(k, k + 1), buf.subarray(k + 1)])
  return out
}

describe('duplicate and colliding column names', () => {
  it('keeps every column of a header x,x,x_2 (the renamed second x no longer overwrites the real x_2)', async () => {
    const r = await rowsOf(Buffer.from('x,x,x_2\n1,2,3\n'), {})
    expect(r.rows).toEqual([{ x: '1', x_3: '2', x_2: '3' }])
  })

  it('gives every header column its own name, whatever the repeats, blanks and suffixes (random headers)', () => {
    let seed = 7
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n)
    const pool = ['x', 'x_2', 'x_3', 'x_2_2', '', ' ', 'column_1', 'column_2', 'column_3_2', 'y', 'y_1']
    for (let round = 0; round < 500; round++) {
      const fields = Array.from({ length: 1 + rand(12) }, () => pool[rand(pool.length)]!)
      const names = headerNames(fields)
      expect(new Set(names).size, JSON.stringify(fields)).toBe(fields.length)
      // A name the file spells out is kept by its first occurrence.
      fields.forEach((f, i) => {
        if (f.trim() && fields.findIndex((g) => g.trim() === f.trim()) === i) expect(names[i]).toBe(f.trim())
      })
    }
    // Linear: 100 000 columns all called x.
    const started = Date.now()
    expect(new Set(headerNames(Array.from({ length: 100_000 }, () => 'x'))).size).toBe(100_000)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('fails clearly instead of letting lineage overwrite a file column called _file or _line', async () => {
    for (const header of ['_file,a', 'a,_line', '_line,_file']) {
      await expect(rowsOf(Buffer.from(`${header}\n1,2\n`), { lineage: true })).rejects.toThrow(
        /lineage: true also writes/,
      )
    }
    await expect(
      rowsOf(Buffer.from('1,2\n'), { lineage: true, header: false, columns: { _file: 'str', b: 'str' } }),
    ).rejects.toThrow()
    // Without lineage the columns are ordinary.
    expect((await rowsOf(Buffer.from('_file,_line\n1,2\n'), {})).rows).toEqual([{ _file: '1', _line: '2' }])
  })

  it('round-trips a header named after every Object.prototype member as ordinary columns', async () => {
    const names = Object.getOwnPropertyNames(Object.prototype)
    expect(names).toContain('__proto__')
    const values = names.map((_, i) => String(i))
    for (const extra of [
      {},
      { columns: { hasOwnProperty: 'int', valueOf: 'int', toString: 'int' } },
      { null_values: ['NULL'] },
    ]) {
      const r = await rowsOf(Buffer.from(`${names.join(',')}\n${values.join(',')}\n`), extra)
      expect(r.bad.map((b) => b.message)).toEqual([])
      const row = r.rows[0]!
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
      expect(Object.keys(row)).toEqual(names)
      names.forEach((n, i) => {
        expect(Object.getOwnPropertyDescriptor(row, n)?.value, n).toEqual(
          'columns' in extra && ['hasOwnProperty', 'valueOf', 'toString'].includes(n) ? i : String(i),
        )
      })
    }
  })
})

describe('invalid bytes are found on the bytes, not by looking for U+FFFD', () => {
  const FFFD = Buffer.from('\uFFFD', 'utf8')

  it('takes a correctly encoded U+FFFD as data (csv-spectrum location_coordinates.csv), also with on_bad_row: skip', async () => {
    const file = Buffer.from(
      'Location,Coordinates\nHeredia,"10°0′0″N 84°7′0″W"\nReplacement,\uFFFD marks \uFFFD\n',
      'utf8',
    )
    for (const policy of ['fail', 'skip']) {
      for (const chunks of splits(file, [file.indexOf(FFFD), file.lastIndexOf(FFFD), file.indexOf('°')])) {
        const r = await rowsOf(chunks, { on_bad_row: policy })
        expect(r.bad.map((b) => b.message)).toEqual([])
        expect(r.rows).toEqual([
          { Location: 'Heredia', Coordinates: '10°0′0″N 84°7′0″W' },
          { Location: 'Replacement', Coordinates: '\uFFFD marks \uFFFD' },
        ])
      }
    }
  })

  it('still finds every kind of invalid UTF-8 in the right row and column, wherever the chunks are cut', async () => {
    const invalid = [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0x80]]
    for (const bytes of invalid) {
      const file = Buffer.concat([
        Buffer.from('a,b\n1,ok \uFFFD\n2,x', 'utf8'),
        Buffer.from(bytes),
        Buffer.from('y\n3,é\n', 'utf8'),
      ])
      for (const chunks of splits(file, [file.indexOf(Buffer.from(bytes))])) {
        const r = await rowsOf(chunks, { on_bad_row: 'skip' })
        expect(r.rows, JSON.stringify(bytes)).toEqual([
          { a: '1', b: 'ok \uFFFD' },
          { a: '3', b: 'é' },
        ])
        expect(r.bad.map((b) => [b.line, b.column])).toEqual([[3, 'b']])
        expect(r.bad[0]!.raw).toContain('\uFFFD')
      }
    }
    // A sequence cut off by the end of the file.
    const r = await rowsOf(Buffer.concat([Buffer.from('a\nx'), Buffer.from([0xe2, 0x82])]), { on_bad_row: 'skip' })
    expect(r.bad.map((b) => b.line)).toEqual([2])
  })

  it('keeps a UTF-8 BOM out of the first column name even when the BOM is cut across chunks', async () => {
    const file = Buffer.from('\ufeffid\n1\n', 'utf8')
    for (const k of [1, 2, 3])
      expect((await rowsOf([file.subarray(0, k), file.subarray(k)], {})).rows).toEqual([{ id: '1' }])
  })

  it('takes U+FFFD in UTF-16LE as data, and finds a lone surrogate in the right row', async () => {
    const good = Buffer.from('\ufeffa,b\n1,\uFFFD😀\n', 'utf16le')
    for (const chunks of splits(good, [good.indexOf(Buffer.from('😀', 'utf16le'))])) {
      expect((await rowsOf(chunks, { encoding: 'utf16le' })).rows).toEqual([{ a: '1', b: '\uFFFD😀' }])
    }
    const bad = Buffer.concat([
      Buffer.from('a,b\n1,x', 'utf16le'),
      Buffer.from([0x00, 0xd8]),
      Buffer.from('\n2,y\n', 'utf16le'),
    ])
    const r = await rowsOf(bad, { encoding: 'utf16le', on_bad_row: 'skip' })
    expect(r.rows).toEqual([{ a: '2', b: 'y' }])
    expect(r.bad.map((b) => [b.line, b.column])).toEqual([[2, 'b']])
  })
})

describe('decompression limits', () => {
  it('stops a gzip bomb a few MiB in, by the compressed bytes the inflater consumed (not those it read ahead)', async () => {
    const member = gzipSync(Buffer.from('1\n'.repeat(4 * 1024 * 1024)), { level: 9 })
    const bomb = Buffer.concat([gzipSync(Buffer.from('n\n')), ...Array.from({ length: 64 }, () => member)])
    const problems: string[] = []
    const s = readTableSettings(parseTable('t', { path: 'x/*.csv.gz' }, 'test', problems), problems)
    async function* source(): AsyncGenerator<Buffer> {
      for (let at = 0; at < bomb.length; at += 64 * 1024) yield bomb.subarray(at, at + 64 * 1024)
    }
    let rows = 0
    const read = async (): Promise<void> => {
      for await (const batch of readRows(
        source(),
        { path: 'x/bomb.csv.gz', size: bomb.length, mtime: 0 },
        s,
        () => undefined,
      ))
        rows += batch.length
    }
    await expect(read()).rejects.toMatchObject({
      code: 'ANCH_ERR_SFTP_LIMIT',
      message: expect.stringContaining('tbls.t.max_compression_ratio'),
    })
    // 4 MiB of "1\n" is ~2.1M rows; one 64 KiB chunk read ahead would have let ~32M through.
    expect(rows).toBeLessThan(3_000_000)
  })
})
