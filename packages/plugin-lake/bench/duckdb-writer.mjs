// A probe of another Parquet writer: DuckDB (already a dev dependency, for the tests) fed the benchmark's rows from JS
// as column arrays through its appender (data chunks of 2,048 rows), then `COPY ... TO 'x.parquet'`. Like the encoding
// floor, the JS column arrays are built before the clock starts (only the appending and the copy are timed), in a
// process of its own. Prints `FLOOR_MS` and `FLOOR_CPU_MS` for encode-floor.mjs, which runs it beside the others.
//
//   node bench/duckdb-writer.mjs out.parquet
import { BIGINT, BOOLEAN, DOUBLE, DuckDBDataChunk, DuckDBInstance, VARCHAR } from '@duckdb/node-api'

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const COMPRESSION = process.env.BENCH_COMPRESSION ?? 'snappy'
const ROW_GROUP = Number(process.env.BENCH_ROW_GROUP_ROWS ?? 20_000)
const CHUNK = 2048
const out = process.argv[2]

const types = [BIGINT, VARCHAR, DOUBLE, BOOLEAN, VARCHAR, BIGINT, VARCHAR, DOUBLE]
const raw = [
  (i) => BigInt(i),
  (i) => `name ${i % 1000}`,
  (i) => i * 0.25,
  (i) => i % 2 === 0,
  (i) => `note ${i}`,
  (i) => BigInt(i % 97),
  (i) => `c${i % 13}`,
  (i) => (i % 1000) / 7,
]
let ns = 0n
let cpu = 0
const timed = async (f) => {
  const c0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  const r = await f()
  ns += process.hrtime.bigint() - t0
  const d = process.cpuUsage(c0)
  cpu += (d.user + d.system) / 1000
  return r
}
const { db, c, appender } = await timed(async () => {
  const db = await DuckDBInstance.create(':memory:')
  const c = await db.connect()
  await c.run(
    'CREATE TABLE items (id BIGINT, name VARCHAR, amount DOUBLE, flag BOOLEAN, note VARCHAR, qty BIGINT, code VARCHAR, score DOUBLE)',
  )
  return { db, c, appender: await c.createAppender('items') }
})
for (let at = 0; at < ROWS; at += CHUNK) {
  const n = Math.min(CHUNK, ROWS - at)
  const columns = raw.map((f) => Array.from({ length: n }, (_, k) => f(at + k)))
  await timed(() => {
    const chunk = DuckDBDataChunk.create(types, n)
    chunk.setColumns(columns)
    appender.appendDataChunk(chunk)
  })
}
await timed(async () => {
  appender.closeSync()
  await c.run(`COPY items TO '${out}' (FORMAT parquet, COMPRESSION ${COMPRESSION}, ROW_GROUP_SIZE ${ROW_GROUP})`)
  c.closeSync()
  db.closeSync()
})
process.stderr.write(`\nFLOOR_MS ${Number(ns) / 1e6}\nFLOOR_CPU_MS ${cpu}\n`)
