// The floor of a TapDownloader given the datastore format (gzip JSON lines, a product decision): read a Singer
// stream from stdin, JSON.parse every line, encode each record again with JSON.stringify and gzip the lines at
// level 1 in 1 MiB members on the thread pool, as the core's data-file writer does. No typing, no checks, no files.
import { StringDecoder } from 'node:string_decoder'
import { promisify } from 'node:util'
import { gzip } from 'node:zlib'

const gz = promisify(gzip)
const decoder = new StringDecoder('utf8')
const pending = []
let partial = ''
let block = ''
let records = 0
let compressed = 0
const flush = async () => {
  pending.push(gz(block, { level: 1 }).then((b) => (compressed += b.length)))
  block = ''
  if (pending.length >= 4) await pending.shift()
}
const take = async (line) => {
  const m = JSON.parse(line)
  if (m.type !== 'RECORD') return
  records++
  block += `${JSON.stringify(m.record)}\n`
  if (block.length >= 1 << 20) await flush()
}
for await (const chunk of process.stdin) {
  const lines = (partial + decoder.write(chunk)).split('\n')
  partial = lines.pop()
  for (const line of lines) if (line) await take(line)
}
if (partial) await take(partial)
await flush()
await Promise.all(pending)
process.stdout.write(`${records} ${compressed}\n`)
