// Helper of sftp-bench.mjs: downloads and parses one table's files with the plugin's own reader (no datastore),
// to separate the plugin's cost from the core pipeline's. Prints {"rows":N}. Env: ACHVY_CNXN__*, BENCH_PATH, BENCH_TYPED.
import { parseTable, createLogger } from '@anchovies/core'
import { readTableSettings } from '../dist/config.js'
import { readRows } from '../dist/csv-rows.js'
import { listMatches } from '../dist/glob.js'
import { SftpConnection } from '../dist/sftp-connection.js'

const problems = []
const raw = { path: process.env.BENCH_PATH }
if (process.env.BENCH_TYPED) raw.columns = { id: 'int', amount: 'float', created_at: 'datetime', day: 'date' }
const settings = readTableSettings(parseTable('sales', raw, 'bench', problems), problems)
if (problems.length) throw new Error(problems.join('\n'))
const cnx = new SftpConnection({
  uri: process.env.ACHVY_CNXN__URI,
  ppk_path: process.env.ACHVY_CNXN__PPK_PATH,
  host_key: process.env.ACHVY_CNXN__HOST_KEY,
})
await cnx.open(createLogger('warn', false))
const signal = new AbortController().signal
let rows = 0
for (const file of await cnx.withRetry('listing', (fs) => listMatches(fs, settings.path))) {
  for await (const batch of readRows(cnx.read(file, signal), file, settings, (bad) => {
    throw bad
  }))
    rows += batch.length
}
await cnx.close()
console.log(JSON.stringify({ rows }))
