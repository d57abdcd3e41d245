// The baseline: read a Singer stream from stdin and JSON.parse every line (what any Singer target must do at least).
import { StringDecoder } from 'node:string_decoder'

const decoder = new StringDecoder('utf8')
let partial = ''
let records = 0
for await (const chunk of process.stdin) {
  const lines = (partial + decoder.write(chunk)).split('\n')
  partial = lines.pop()
  for (const line of lines) if (line && JSON.parse(line).type === 'RECORD') records++
}
if (partial && JSON.parse(partial).type === 'RECORD') records++
process.stdout.write(`${records}\n`)
