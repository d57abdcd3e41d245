// Helper of sftp-bench.mjs: the plugin's transfer alone (SftpConnection.read, bytes counted and dropped, no
// decoding or parsing), to compare the SFTP reader with `sftp get`. Prints {"bytes":N}. Env: ACHVY_CNXN__*, BENCH_PATH.
import { createLogger } from '@anchovies/core'
import { listMatches } from '../dist/glob.js'
import { SftpConnection } from '../dist/sftp-connection.js'

const cnx = new SftpConnection({
  uri: process.env.ACHVY_CNXN__URI,
  ppk_path: process.env.ACHVY_CNXN__PPK_PATH,
  host_key: process.env.ACHVY_CNXN__HOST_KEY,
})
await cnx.open(createLogger('warn', false))
const signal = new AbortController().signal
let bytes = 0
for (const file of await cnx.withRetry('listing', (fs) => listMatches(fs, process.env.BENCH_PATH.replace(/^\//, '')))) {
  for await (const chunk of cnx.read(file, signal)) bytes += chunk.length
}
await cnx.close()
console.log(JSON.stringify({ bytes }))
