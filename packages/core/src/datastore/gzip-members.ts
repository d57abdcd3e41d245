import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { createGunzip, gunzip, gzip } from 'node:zlib'

const gzipAsync = promisify(gzip)
const gunzipAsync = promisify(gunzip)

/**
 * Data files are multi-member gzip files whose members carry their own length in a header extra field (like
 * BGZF): subfield `AN`, 4 bytes, the member's total length little-endian. Any gunzip ignores the field and reads
 * the file as one stream; our reader uses it to inflate several members at once in the thread pool.
 */
const SUBFIELD = [0x41, 0x4e] as const
const EXTRA = 2 + 2 + 2 + 4 // XLEN, SI1 SI2, LEN, length
const FEXTRA = 0x04
/** Members inflated at once ahead of the reader. */
const READ_AHEAD = 2

/**
 * Compresses `block` as one gzip member (one thread-pool job) that records its own length; returns the member
 * as pieces to write in order (the rewritten header, then zlib's output after its own header).
 */
export async function gzipMember(block: Buffer, level: number): Promise<Buffer[]> {
  // Output chunks big enough for the usual member (JSON lines compress 5-20x): one job, no event-loop round trips.
  const plain = await gzipAsync(block, { level, chunkSize: 256 * 1024 })
  if (plain[3] !== 0) return [plain] // a header with fields already: leave it as zlib wrote it
  const head = Buffer.allocUnsafe(10 + EXTRA)
  plain.copy(head, 0, 0, 10)
  head[3] = FEXTRA
  head.writeUInt16LE(EXTRA - 2, 10)
  head[12] = SUBFIELD[0]
  head[13] = SUBFIELD[1]
  head.writeUInt16LE(4, 14)
  head.writeUInt32LE(plain.length + EXTRA, 16)
  return [head, plain.subarray(10)]
}

/**
 * The length a member header at the start of `buf` records: a number, `undefined` when more bytes are needed to
 * tell, or `null` when the member does not record it (a file written by another gzip: read it as a stream).
 */
export function memberLength(buf: Buffer): number | undefined | null {
  if (buf.length < 12) return undefined
  if (buf[0] !== 0x1f || buf[1] !== 0x8b || buf[2] !== 0x08 || !(buf[3]! & FEXTRA)) return null
  const xlen = buf.readUInt16LE(10)
  if (buf.length < 12 + xlen) return undefined
  for (let at = 12; at + 4 <= 12 + xlen; ) {
    const len = buf.readUInt16LE(at + 2)
    if (buf[at] === SUBFIELD[0] && buf[at + 1] === SUBFIELD[1] && len === 4 && at + 8 <= 12 + xlen) {
      const total = buf.readUInt32LE(at + 4)
      return total > 12 + xlen ? total : null
    }
    at += 4 + len
  }
  return null
}

/**
 * The decompressed bytes of a gzip stream, in order. Members that record their length are inflated
 * `READ_AHEAD` at a time in the thread pool while the caller works on earlier ones; from the first member that
 * does not, the rest is read with a streaming gunzip.
 */
export async function* inflateMembers(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]()
  const jobs: Promise<Buffer>[] = []
  let pending: Buffer = Buffer.alloc(0)
  let ended = false
  const more = async (): Promise<boolean> => {
    if (ended) return false
    const r = await it.next()
    if (r.done) {
      ended = true
      return false
    }
    pending = pending.length ? Buffer.concat([pending, r.value]) : r.value
    return true
  }
  try {
    for (;;) {
      let length = memberLength(pending)
      while (length === undefined || (length !== null && pending.length < length)) {
        if (!(await more())) break
        length = memberLength(pending)
      }
      if (length === null) break
      if (length === undefined || pending.length < length) {
        if (pending.length === 0) break
        throw new Error('unexpected end of file')
      }
      const member = pending.subarray(0, length)
      pending = pending.subarray(length)
      const size = member.readUInt32LE(member.length - 4) // ISIZE: the member's uncompressed size (mod 2^32)
      const job = gunzipAsync(member, { chunkSize: Math.min(Math.max(64 * 1024, size + 1), 16 * 1024 * 1024) })
      job.catch(() => undefined)
      jobs.push(job)
      if (jobs.length >= READ_AHEAD) yield await jobs.shift()!
    }
    while (jobs.length) yield await jobs.shift()!
    if (pending.length === 0 && ended) return
    // A member without a recorded length: stream the rest of the file through one gunzip.
    const rest = pending
    const tail = Readable.from(
      (async function* () {
        if (rest.length) yield rest
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
      })(),
      { objectMode: false },
    )
    const stream = tail.pipe(createGunzip({ chunkSize: 256 * 1024 }))
    tail.on('error', (err) => stream.destroy(err))
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk
    } finally {
      tail.destroy()
      stream.destroy()
    }
  } finally {
    for (const job of jobs) job.catch(() => undefined)
    await it.return?.()
  }
}
