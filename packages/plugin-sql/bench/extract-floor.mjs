// The floor of any Node extractor given the datastore format (gzip JSON lines, a product decision): the pg driver
// reads the table in 10,000-row FETCHes from a cursor (its protocol parsing into row objects of text values), each row is encoded
// with JSON.stringify and the lines are gzipped at level 1 in 1 MiB members on the thread pool, as the core's
// data-file writer does. No typing, no checkpoints, no files. Usage: node extract-floor.mjs <url> <select>
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import pg from 'pg'

const [url, select] = process.argv.slice(2)
const gz = promisify(gzip)
// Every value as the server's text: no type parsing at all, so nothing here is work a real extractor could skip.
const client = new pg.Client({ connectionString: url, types: { getTypeParser: () => (v) => v } })
await client.connect()
await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
await client.query(`DECLARE c NO SCROLL CURSOR FOR ${select}`)
const pending = []
let block = ''
let rows = 0
const flush = async () => {
  pending.push(gz(block, { level: 1 }))
  block = ''
  if (pending.length >= 4) await pending.shift()
}
for (;;) {
  const r = await client.query('FETCH 10000 FROM c')
  if (!r.rows.length) break
  rows += r.rows.length
  for (const row of r.rows) {
    block += `${JSON.stringify(row)}\n`
    if (block.length >= 1 << 20) await flush()
  }
}
await flush()
await Promise.all(pending)
await client.query('COMMIT')
await client.end()
process.stdout.write(`${rows}\n`)
