import { describe, expect, it } from 'vitest'
import { CsvParser, type CsvSyntax } from '../src/csv-parser.js'

const SYNTAX: CsvSyntax = {
  delimiter: ',',
  quote: '"',
  escape: '"',
  comment: null,
  skipRows: 0,
  maxRecordChars: 1 << 20,
  relaxQuotes: false,
}

function parse(text: string | string[], syntax: Partial<CsvSyntax> = {}) {
  const records: [number, string[]][] = []
  const issues: [number, string, string][] = []
  const p = new CsvParser(
    { ...SYNTAX, ...syntax },
    { record: (f, l) => records.push([l, f]), issue: (l, r, raw) => issues.push([l, r, raw]) },
  )
  const parts = Array.isArray(text) ? text : [text]
  for (const part of parts) p.feed(part)
  p.feed('', true)
  return { records, issues }
}

describe('CsvParser', () => {
  it('splits plain and quoted fields, doubled quotes, CRLF, and reports the line each record starts on', () => {
    const { records, issues } = parse('a,b,c\r\n1,"x, y","say ""hi"""\r\n\r\n2,"multi\nline",3\n4,,\n')
    expect(issues).toEqual([])
    expect(records).toEqual([
      [1, ['a', 'b', 'c']],
      [2, ['1', 'x, y', 'say "hi"']],
      [4, ['2', 'multi\nline', '3']],
      [6, ['4', '', '']],
    ])
  })

  it('gives the same records whatever the chunk boundaries', () => {
    const text = 'id,v\n1,"a ""b"" c"\r\n2,"x\r\ny"\n3,plain\n'
    const whole = parse(text).records
    for (let size = 1; size < 8; size++) {
      const chunks = text.match(new RegExp(`[\\s\\S]{1,${size}}`, 'g'))!
      expect(parse(chunks).records).toEqual(whole)
    }
  })

  it('resynchronises at the next line after a bad quote, losing only the bad record', () => {
    const { records, issues } = parse('1,"bad"x,7\n8,9\n10,11\n')
    expect(records.map((r) => r[1])).toEqual([
      ['8', '9'],
      ['10', '11'],
    ])
    expect(issues).toEqual([[1, 'unexpected "x" after a closing quote (field 2)', '1,"bad"x,7']])
  })

  it('reports an unterminated quote and goes on with the line after the record start', () => {
    const { records, issues } = parse('1,"open\n2,b\n3,c\n')
    expect(issues[0]![0]).toBe(1)
    expect(issues[0]![1]).toContain('unterminated quoted field')
    expect(records.map((r) => r[1])).toEqual([
      ['2', 'b'],
      ['3', 'c'],
    ])
  })

  it('rejects a quote inside an unquoted field unless relax_quotes', () => {
    expect(parse('12" pipe,1\n').issues).toHaveLength(1)
    expect(parse('12" pipe,1\n', { relaxQuotes: true }).records).toEqual([[1, ['12" pipe', '1']]])
  })

  it('bounds memory: a record longer than max_record_size is a bad row', () => {
    const huge = `1,"${'x'.repeat(5000)}`
    const { records, issues } = parse([huge.slice(0, 3000), huge.slice(3000), '\n2,ok\n'], { maxRecordChars: 2048 })
    expect(issues).toHaveLength(1)
    expect(issues[0]![1]).toContain('max_record_size')
    expect(records).toEqual([[2, ['2', 'ok']]])
  })

  it('skips comment lines, skip_rows and handles tab, multi-character delimiters, backslash escapes and no quoting', () => {
    expect(parse('junk\n# c\na\tb\n', { delimiter: '\t', comment: '#', skipRows: 1 }).records).toEqual([
      [3, ['a', 'b']],
    ])
    expect(parse('a||b\n', { delimiter: '||' }).records).toEqual([[1, ['a', 'b']]])
    expect(parse('"a\\"b",c\n', { escape: '\\' }).records).toEqual([[1, ['a"b', 'c']]])
    expect(parse('"a",b\n', { quote: null }).records).toEqual([[1, ['"a"', 'b']]])
  })

  it('parses the same with the char-code fast path and the general path (random inputs, random chunks)', () => {
    let seed = 42
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
    const alphabet = ['a', 'b', ',', ',', '"', '\n', '\r\n', 'xyz', '""']
    for (let round = 0; round < 400; round++) {
      let text = ''
      for (let k = rand(60); k > 0; k--) text += alphabet[rand(alphabet.length)]
      const chunks: string[] = []
      for (let at = 0; at < text.length; ) {
        const size = 1 + rand(12)
        chunks.push(text.slice(at, at + size))
        at += size
      }
      const results = [true, false].map((simple) => {
        const out: unknown[] = []
        const p = new CsvParser(SYNTAX, {
          record: (f, l) => out.push(['r', l, f]),
          issue: (l, r) => out.push(['i', l, r]),
        })
        ;(p as unknown as { simple: boolean }).simple = simple
        for (const c of chunks) p.feed(c)
        p.feed('', true)
        return out
      })
      expect(results[0], JSON.stringify(text)).toEqual(results[1])
    }
  })

  it('parses the same with the one-line fast path and the char-code path (CR, trailing delimiters, relaxed quotes)', () => {
    let seed = 7
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
    const alphabet = ['a', 'bc', 'defghijklmnopq', ',', ',', '"', '""', '\n', '\r\n', '\r', ' ', '"x, y"']
    for (let round = 0; round < 1500; round++) {
      let text = ''
      for (let k = rand(80); k > 0; k--) text += alphabet[rand(alphabet.length)]
      const chunkSize = 1 + rand(40)
      const syntax = { ...SYNTAX, relaxQuotes: round % 3 === 0, escape: round % 5 === 0 ? null : '"' }
      const results = [true, false].map((fast) => {
        const out: unknown[] = []
        const p = new CsvParser(syntax, {
          record: (f, l) => out.push(['r', l, [...f]]),
          issue: (l, r) => out.push(['i', l, r]),
        })
        if (!fast) (p as unknown as { oneLine: () => undefined }).oneLine = () => undefined
        for (let at = 0; at < text.length; at += chunkSize) p.feed(text.slice(at, at + chunkSize))
        p.feed('', true)
        return out
      })
      expect(results[0], JSON.stringify(text)).toEqual(results[1])
    }
  })

  it('parses a last line without a line end', () => {
    expect(parse('a,b\n1,"2"').records).toEqual([
      [1, ['a', 'b']],
      [2, ['1', '2']],
    ])
  })

  it('enforces max_record_size exactly above 64 KiB, whatever the chunk size (records up to 2x the limit used to pass)', () => {
    for (const max of [1024, 70_000, 100_000, 200_000]) {
      // Four shapes of a record exactly `len` characters long (without its line end): plain, quoted field, all
      // quoted, and a quoted field spanning two lines.
      const shapes = (len: number): string[] => [
        'a'.repeat(len),
        `1,"${'b'.repeat(len - 6)}",2`,
        `"${'c'.repeat(len - 2)}"`,
        `x,"${'d'.repeat(Math.floor((len - 7) / 2))}\n${'e'.repeat(Math.ceil((len - 7) / 2))}",y`,
      ]
      for (const [i, shape] of shapes(max).entries()) expect(shape.length, `shape ${i}`).toBe(max)
      const text = ['first', ...shapes(max), ...shapes(max + 1), 'last'].join('\r\n') + '\r\n'
      for (const size of [1000, 4096, 65_536, 65_537, 70_001, 131_072, text.length]) {
        const chunks: string[] = []
        for (let at = 0; at < text.length; at += size) chunks.push(text.slice(at, at + size))
        const { records, issues } = parse(chunks, { maxRecordChars: max })
        const label = `max ${max}, chunks of ${size}`
        // Exactly `max` characters pass, in every shape ...
        expect(
          records.map((r) => r[0]),
          label,
        ).toEqual([1, 2, 3, 4, 5, 12])
        expect(records[1]![1][0]!.length, label).toBe(max)
        // ... and one more does not: each is reported at the line it starts on (the second line of the
        // two-line one is then read on its own, and is a bad row of its own).
        expect(
          issues.filter((x) => x[1].includes('max_record_size')).map((x) => x[0]),
          label,
        ).toEqual([7, 8, 9, 10])
        expect(
          issues.map((x) => x[0]),
          label,
        ).toEqual([7, 8, 9, 10, 11])
      }
    }
  })

  it('gives the same records and issues with a small max_record_size whatever the chunks (random inputs)', () => {
    let seed = 99
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
    const alphabet = ['a', 'bcdefgh', ',', '"', '""', '\n', '\r\n', '"x\ny"', 'x"z']
    for (let round = 0; round < 1500; round++) {
      let text = ''
      for (let k = rand(50); k > 0; k--) text += alphabet[rand(alphabet.length)]
      const max = 1 + rand(12)
      const run = (size: number, variant: number): unknown[] => {
        const out: unknown[] = []
        const p = new CsvParser(
          { ...SYNTAX, maxRecordChars: max },
          { record: (f, l) => out.push(['r', l, [...f]]), issue: (l, r) => out.push(['i', l, r]) },
        )
        if (variant === 1) (p as unknown as { simple: boolean }).simple = false
        if (variant === 2) (p as unknown as { oneLine: () => undefined }).oneLine = () => undefined
        for (let at = 0; at < text.length; at += size) p.feed(text.slice(at, at + size))
        p.feed('', true)
        return out
      }
      const whole = run(text.length || 1, 0)
      for (const [size, variant] of [
        [1, 0],
        [2, 0],
        [1 + rand(9), 0],
        [text.length || 1, 1],
        [1 + rand(9), 1],
        [text.length || 1, 2],
        [1, 2],
      ] as const) {
        expect(run(size, variant), `${JSON.stringify(text)} max ${max} chunks ${size} variant ${variant}`).toEqual(
          whole,
        )
      }
    }
  })
})
