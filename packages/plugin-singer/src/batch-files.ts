import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createGunzip } from 'node:zlib'
import type { SingerMessage } from './messages.js'

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v)
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

/**
 * The records of a BATCH message (Singer SDK): JSON Lines files, gzip-compressed or not, named by `file://` URIs
 * in `manifest`. Other formats and remote storage are refused.
 */
export async function* batchRecords(
  msg: SingerMessage,
  fail: (message: string) => Error,
): AsyncGenerator<[unknown, string]> {
  const enc = isObject(msg.encoding) ? msg.encoding : {}
  if (enc.format !== 'jsonl') throw fail(`a BATCH in format ${JSON.stringify(enc.format)}: only jsonl is supported`)
  const gzip = enc.compression === 'gzip'
  if (!gzip && enc.compression !== undefined && enc.compression !== 'none' && enc.compression !== null)
    throw fail(`a BATCH with compression ${JSON.stringify(enc.compression)}: only gzip or none`)
  for (const uri of strings(msg.manifest)) {
    if (!uri.startsWith('file://'))
      throw fail(`a BATCH file ${JSON.stringify(uri.slice(0, 80))} that is not a file:// URI`)
    const path = fileURLToPath(uri)
    const input = createReadStream(path)
    const lines = createInterface({ input: gzip ? input.pipe(createGunzip()) : input, crlfDelay: Infinity })
    let n = 0
    try {
      for await (const text of lines) {
        n++
        if (!text.trim()) continue
        let record: unknown
        try {
          record = JSON.parse(text)
        } catch (err) {
          throw fail(`BATCH file ${path} line ${n} is not JSON (${(err as Error).message})`)
        }
        yield [record, text]
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code)
        throw fail(`BATCH file ${path} cannot be read (${(err as NodeJS.ErrnoException).code})`)
      throw err
    }
  }
}
