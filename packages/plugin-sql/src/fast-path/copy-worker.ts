import { isUtf8 } from 'node:buffer'
import { parentPort } from 'node:worker_threads'
import { gunzipSync } from 'node:zlib'
import { jsonText } from '../column-types.js'
import { FastLayout, convertMember, ownBuffer, type FastColumn, type FastFormat } from './copy-converter.js'

/** A job: one compressed member, and the layout to convert it for (none: only inflate). */
export interface MemberJob {
  readonly id: number
  readonly member: ArrayBuffer
  readonly layout?:
    | { readonly version: number; readonly format: FastFormat; readonly columns: readonly FastColumn[] }
    | undefined
}

/** A job's result: COPY text, or the inflated text for the general path, or the error inflating it. */
export interface MemberResult {
  readonly id: number
  /** Layout version converted for (-1: not converted). */
  readonly version: number
  readonly copy?: ArrayBuffer
  readonly starts?: ArrayBuffer
  readonly rows?: number
  /** MySQL: the longest string per column (Uint32Array). */
  readonly lengths?: ArrayBuffer | undefined
  /** Uncompressed bytes of the member. */
  readonly bytes: number
  /** The inflated text (also when converted: the caller may still need the general path, after a layout change). */
  readonly text?: ArrayBuffer
  /** The compressed member, given back when inflating failed (the general path reports the error). */
  readonly member?: ArrayBuffer
}

let layout: FastLayout | undefined
let version = -1

parentPort!.on('message', (job: MemberJob) => {
  let text: Buffer
  try {
    text = gunzipSync(Buffer.from(job.member), { chunkSize: 1 << 20 })
  } catch {
    parentPort!.postMessage({ id: job.id, version: -1, bytes: 0, member: job.member } satisfies MemberResult, [
      job.member,
    ])
    return
  }
  if (job.layout && job.layout.version !== version) {
    layout = new FastLayout(job.layout.columns, job.layout.format)
    version = job.layout.version
  }
  let converted: ReturnType<typeof convertMember>
  try {
    converted = job.layout && layout && isUtf8(text) ? convertMember(text, layout, jsonText) : undefined
  } catch {
    converted = undefined // e.g. a json value JSON.parse refuses: the general path reports it
  }
  const out = ownBuffer(text)
  if (converted) {
    const copy = ownBuffer(converted.copy)
    const starts = ownBuffer(
      new Uint8Array(converted.starts.buffer, converted.starts.byteOffset, converted.starts.byteLength),
    )
    const lengths = converted.lengths ? ownBuffer(new Uint8Array(converted.lengths.buffer)) : undefined
    parentPort!.postMessage(
      {
        id: job.id,
        version,
        copy,
        starts,
        rows: converted.rows,
        lengths,
        bytes: text.length,
        text: out,
      } satisfies MemberResult,
      lengths ? [copy, starts, out, lengths] : [copy, starts, out],
    )
    return
  }
  parentPort!.postMessage({ id: job.id, version: -1, bytes: text.length, text: out } satisfies MemberResult, [out])
})
