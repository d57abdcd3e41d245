import { gzipSync } from 'node:zlib'
import { parseTable, type Row } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { readTableSettings } from '../src/config.js'
import { readRows, type ReadPosition } from '../src/csv-rows.js'
import type { BadRowError } from '../src/errors.js'

function settings(table: Record<string, unknown>) {
  const problems: string[] = []
  const s = readTableSettings(parseTable('t', { path: 'x/*', ...table }, 'test', problems), problems)
  expect(problems).toEqual([])
  return s
}

/** `buf` in pieces of `size` bytes (cutting characters and records anywhere). */
async function* pieces(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
}

interface Read {
  rows: Row[]
  bad: string[]
  /** After each yielded batch: the position, and how many rows (and bad rows) came before it. */
  points: { position: ReadPosition; rows: number; bad: number }[]
}

async function read(
  file: Buffer,
  name: string,
  table: Record<string, unknown>,
  chunk: number,
  resume?: ReadPosition,
): Promise<Read> {
  const s = settings(table)
  const gz = name.endsWith('.gz')
  const out: Read = { rows: [], bad: [], points: [] }
  const progress: { position: ReadPosition | undefined } = { position: undefined }
  const bytes = pieces(resume && !gz ? file.subarray(resume.offset) : file, chunk)
  const onBad = (b: BadRowError): void => void out.bad.push(`${b.line}:${b.reason}`)
  for await (const batch of readRows(bytes, { path: name, size: file.length, mtime: 0 }, s, onBad, {
    resume,
    progress,
  })) {
    out.rows.push(...batch)
    if (progress.position) out.points.push({ position: progress.position, rows: out.rows.length, bad: out.bad.length })
  }
  return out
}

/** Reading from every reported position gives exactly the rows (and bad rows, with their lines) not read before it. */
async function checkEveryResume(
  file: Buffer,
  name: string,
  table: Record<string, unknown>,
  chunk: number,
): Promise<number> {
  const whole = await read(file, name, table, chunk)
  expect(whole.points.length).toBeGreaterThan(2)
  for (const p of whole.points) {
    const rest = await read(file, name, table, chunk + 7, p.position)
    expect(rest.rows, `resumed at byte ${p.position.offset}`).toEqual(whole.rows.slice(p.rows))
    expect(rest.bad).toEqual(whole.bad.slice(p.bad))
  }
  return whole.points.length
}

const records = (n: number, row: (i: number) => string, header = 'id,name,note\n'): string =>
  header + Array.from({ length: n }, (_, i) => row(i)).join('')

describe('resuming a file at a reported position', () => {
  it('gives exactly the remaining rows, with their line numbers, for UTF-8 text cut inside characters and quoted multi-line records', async () => {
    const text =
      '\uFEFF' +
      records(300, (i) => (i % 7 === 0 ? `${i},"naïve ☃ ${i}","two\nlines, ""quoted"""\r\n` : `${i},日本${i},plain\n`))
    const n = await checkEveryResume(Buffer.from(text), 'a.csv', { columns: { id: 'int' }, lineage: true }, 97)
    expect(n).toBeGreaterThan(20)
  })

  it('keeps bad rows and comments in place across a resume (skip policy, lines still right)', async () => {
    const text = records(200, (i) =>
      i % 13 === 0
        ? `${i},"bad"x,y\n`
        : i % 17 === 0
          ? `# comment ${i}\n${i},a,b\n`
          : i % 19 === 0
            ? `${i},short\n`
            : `${i},a,b\n`,
    )
    await checkEveryResume(
      Buffer.from(text),
      'a.csv',
      { columns: { id: 'int' }, on_bad_row: 'skip', comment: '#', lineage: true },
      64,
    )
  })

  it('works for latin1, cp1252 and UTF-16LE (with its BOM), and for headerless files named by their first record', async () => {
    const text = records(200, (i) => `${i},café ${i},€ ok\n`)
    await checkEveryResume(Buffer.from(text, 'latin1'), 'a.csv', { encoding: 'latin1' }, 50)
    await checkEveryResume(Buffer.from(text.replace(/€/g, 'x'), 'latin1'), 'a.csv', { encoding: 'cp1252' }, 50)
    await checkEveryResume(
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]),
      'a.csv',
      { encoding: 'utf16le' },
      51,
    )
    await checkEveryResume(
      Buffer.from(records(200, (i) => `${i};x;y\n`, '')),
      'a.csv',
      { header: false, delimiter: ';' },
      40,
    )
    await checkEveryResume(
      Buffer.from(records(200, (i) => `${i};x;y\n`, 'junk line\n')),
      'a.csv',
      { header: false, delimiter: ';', skip_rows: 1 },
      40,
    )
  })

  it('resumes a gzip file by reading it from the start and dropping the decompressed bytes read before', async () => {
    const text = records(3000, (i) => `${i},name ${i},${'x'.repeat(i % 50)}\n`)
    await checkEveryResume(gzipSync(text), 'a.csv.gz', { columns: { id: 'int' } }, 4096)
  })

  it('reports no position inside invalid UTF-8 it cannot measure, and an exact one again after it', async () => {
    const good = Buffer.from(records(100, (i) => `${i},a,b\n`))
    const file = Buffer.concat([
      good,
      Buffer.from('101,\xff\xfe,b\n', 'latin1'),
      Buffer.from(records(100, (i) => `${i + 102},a,b\n`, '')),
    ])
    await checkEveryResume(file, 'a.csv', { on_bad_row: 'skip' }, 33)
  })
})
