// The benchmark's data generator: a Downloader whose rows are a pure function of (index, variant).
import { Downloader, LocalDate, source } from '@anchovies/core'

const T0 = Date.UTC(2025, 0, 1)

/** Row `i` of load `variant` (8 mixed columns: int key, text, float, int, bool, timestamptz, date, nullable text). */
export function benchRow(i, variant) {
  const ts = new Date(T0 + i * 1000 + variant * 60_000)
  return {
    id: i,
    name: `customer-${i}`,
    amount: (i % 100_000) / 100 + variant,
    qty: (i * 7 + variant) % 1000,
    flag: (i + variant) % 2 === 0,
    ts,
    day: LocalDate.fromDate(ts),
    note: i % 10 === 0 ? null : `note ${variant} ${i % 97}`,
  }
}

/**
 * The same row as a CSV line: for `psql \copy ... CSV` (empty unquoted field = NULL), for MariaDB's
 * `LOAD DATA … FIELDS TERMINATED BY ','` (`\N` = NULL, booleans 1/0, datetimes without a zone) or for the sqlite3
 * CLI's `.import --csv` (no NULL: an empty string; datetimes as the uploader writes them).
 */
export function benchCsv(i, variant, dialect = 'pg') {
  const r = benchRow(i, variant)
  if (dialect === 'mariadb')
    return `${r.id},${r.name},${r.amount},${r.qty},${r.flag ? 1 : 0},${r.ts.toISOString().slice(0, 23).replace('T', ' ')},${r.day},${r.note ?? '\\N'}\n`
  if (dialect === 'sqlite')
    return `${r.id},${r.name},${r.amount},${r.qty},${r.flag ? 1 : 0},${r.ts.toISOString().slice(0, 19)}+00:00,${r.day},${r.note ?? ''}\n`
  return `${r.id},${r.name},${r.amount},${r.qty},${r.flag ? 't' : 'f'},${r.ts.toISOString()},${r.day},${r.note ?? ''}\n`
}

/** Yields BENCH_ROWS rows starting at id BENCH_START, variant BENCH_VARIANT. */
export class Generate extends Downloader {
  async *rows() {
    const n = Number(process.env.BENCH_ROWS)
    const start = Number(process.env.BENCH_START ?? 0)
    const variant = Number(process.env.BENCH_VARIANT ?? 0)
    for (let i = 0; i < n; i++) yield benchRow(start + i, variant)
  }
}
source('*')(Generate.prototype, 'rows', Object.getOwnPropertyDescriptor(Generate.prototype, 'rows'))
