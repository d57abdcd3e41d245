/** Line numbers (1-based) of the bad-row corpus records, and what is wrong with each. */
export const CORPUS_BAD = [
  { line: 3, what: 'ragged' },
  { line: 4, what: 'bad quote' },
  { line: 5, what: 'bad UTF-8' },
  { line: 6, what: 'not a number' },
  { line: 10, what: 'unterminated quote' },
] as const

/** The ids of the good rows of the corpus. */
export const CORPUS_GOOD_IDS = [1, 6, 7, 9]

/** A 1 MB field value. */
export const BIG_FIELD = 'x'.repeat(1024 * 1024)

/**
 * A CSV file with a UTF-8 BOM, CRLF line ends, a 1 MB field, a multi-line field and one record of each kind of
 * trouble: ragged, bad quote, invalid UTF-8, a value that does not convert, an unterminated quote.
 */
export function badCorpus(): Buffer {
  return Buffer.concat([
    Buffer.from('\ufeffid,name,amount\r\n1,alice,1.5\r\n2,bob\r\n3,"car"ol,2\r\n4,d', 'utf8'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from(
      `ave,3\r\n5,"eve",x\r\n6,"${BIG_FIELD}",4\r\n7,"multi\r\nline",5\r\n8,"unterminated,6\r\n9,zed,7\r\n`,
      'utf8',
    ),
  ])
}
