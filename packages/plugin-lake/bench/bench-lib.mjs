// Shared by the lake benches: the rows as CSV (DuckDB's input) and the statistics they print.
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'

/** The same `rows` rows as the Generate test downloader, as CSV. */
export async function writeCsv(file, rows) {
  const out = createWriteStream(file)
  out.write('id,name,amount,flag,note,qty,code,score\n')
  let buf = ''
  for (let i = 0; i < rows; i++) {
    buf += `${i},name ${i % 1000},${i * 0.25},${i % 2 === 0},note ${i},${i % 97},c${i % 13},${(i % 1000) / 7}\n`
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
}

/** The median of `xs` (the upper middle value for an even count). */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** min–max of `xs`, rounded. */
export const spread = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`
