import { StringDecoder } from 'node:string_decoder'
import { AnchoviesError, decodeRow, type Row, type UpstreamFile } from '@anchovies/core'
import type { RowIntake } from '../row-intake.js'
import { readMembers } from './member-reader.js'
import type { MemberPool } from './worker-pool.js'

/** How the byte fast path opens an upstream data file (the datastore's read stream). */
export type OpenFile = (path: string) => Promise<AsyncIterable<Buffer> & { destroy(): void }>

function mismatch(path: string, what: string, got: number, want: number): AnchoviesError {
  return new AnchoviesError(
    'ANCH_ERR_DATASTORE_CORRUPT',
    `data file ${path} holds ${got} ${what} but its commit record says ${want}: the file was cut short or changed after it was committed; restore it from a backup (nothing of it was loaded)`,
  )
}

/**
 * Loads upstream files through the byte fast path: members the workers converted for the current layout go to the
 * stager as COPY text; every other member's text goes through the general path here, line by line, exactly as core's
 * readDataFileChunks reads it (same line numbers, the same checks against the commit record, the same errors).
 */
export async function loadFiles(
  intake: RowIntake,
  files: readonly UpstreamFile[],
  open: OpenFile,
  pool: MemberPool,
  signal: AbortSignal,
): Promise<void> {
  try {
    await loadEach(intake, files, open, pool, signal)
  } catch (err) {
    // Members already sent keep a COPY open: end it so the transaction can roll back.
    intake.abort()
    throw err
  }
}

async function loadEach(
  intake: RowIntake,
  files: readonly UpstreamFile[],
  open: OpenFile,
  pool: MemberPool,
  signal: AbortSignal,
): Promise<void> {
  for (let fi = 0; fi < files.length; fi++) {
    const file = files[fi]!
    const path = file.path
    const expected = file.seq > 0 ? { rows: file.rows, bytes: file.bytes } : undefined
    const input = await open(path)
    const decoder = new StringDecoder('utf8')
    let rest = ''
    /** True while no partial line or character is waiting in `rest`/`decoder` (a member starts at a line). */
    let atLine = true
    let lineNo = 0
    let bytes = 0
    const parse = (line: string): Row => {
      lineNo++
      try {
        return decodeRow(JSON.parse(line) as Row)
      } catch (err) {
        throw new AnchoviesError(
          'ANCH_ERR_DATA_FORMAT',
          `data file ${path} line ${lineNo}: ${(err as Error).message}`,
          { cause: err },
        )
      }
    }
    const general = async (block: Buffer): Promise<void> => {
      signal.throwIfAborted()
      const text = rest + decoder.write(block)
      const lines = text.split('\n')
      rest = lines.pop() ?? ''
      atLine = rest === '' && block.length > 0 && block[block.length - 1] === 0x0a
      const rows: Row[] = []
      for (const line of lines) if (line) rows.push(parse(line))
      for (const row of rows) {
        const wait = intake.add(row, fi)
        if (wait) await wait
      }
    }
    const members = readMembers(input, pool, () => intake.fastLayout())
    try {
      for (;;) {
        let next: IteratorResult<Awaited<ReturnType<typeof members.next>>['value']>
        try {
          next = await members.next()
        } catch (err) {
          if (err instanceof AnchoviesError) throw err
          throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `reading data file ${path}: ${(err as Error).message}`, {
            cause: err,
          })
        }
        if (next.done) break
        const item = next.value
        const text = item.kind === 'text' ? item.text : Buffer.from(item.result.text!)
        bytes += text.length
        if (expected && bytes > expected.bytes) throw mismatch(path, 'bytes (at least)', bytes, expected.bytes)
        const r = item.kind === 'member' ? item.result : undefined
        if (r?.copy && r.version === intake.layoutVersion && atLine) {
          const starts = new Uint32Array(r.starts!)
          lineNo += starts.length
          await intake.addCopy(Buffer.from(r.copy), starts, fi, r.lengths ? new Uint32Array(r.lengths) : undefined)
        } else await general(text)
      }
      rest += decoder.end()
      if (rest.trim()) {
        const wait = intake.add(parse(rest), fi)
        if (wait) await wait
      }
      if (expected) {
        if (bytes !== expected.bytes) throw mismatch(path, 'bytes', bytes, expected.bytes)
        if (lineNo !== expected.rows) throw mismatch(path, 'rows', lineNo, expected.rows)
      }
    } finally {
      await members.return(undefined).catch(() => undefined)
      input.destroy()
    }
  }
  await intake.end()
}
