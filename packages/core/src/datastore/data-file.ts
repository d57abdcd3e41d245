import { once } from 'node:events'
import { StringDecoder } from 'node:string_decoder'
import { finished } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import { AnchoviesError } from '../errors.js'
import type { Row } from '../types.js'
import { DateTime, LocalDate, formatDate } from '../values.js'
import type { Datastore } from './datastore.js'
import { gzipMember, inflateMembers } from './gzip-members.js'

/** `"key":` of the keys seen so far (rows of a table share a few). */
const keyPrefixes = new Map<string, string>()

function keyPrefix(key: string): string {
  let prefix = keyPrefixes.get(key)
  if (prefix === undefined) {
    prefix = `${JSON.stringify(key)}:`
    if (keyPrefixes.size >= 10_000) keyPrefixes.clear()
    keyPrefixes.set(key, prefix)
  }
  return prefix
}

/**
 * Whether a column name can stand in the `_types` string form shared with the Python implementation
 * (`"<col>@<code> …"`, split on spaces and `@`); other names are annotated in the object form.
 */
function plainAnnotationName(key: string): boolean {
  return key !== '' && !key.includes(' ') && !key.includes('@')
}

/** Text of a whole float: `0.0`, not `0`, so outside readers (DuckDB, pandas, Python) see a float column. */
function floatText(v: number): string {
  if (!Number.isInteger(v) || Math.abs(v) >= 1e21) return String(v)
  return Object.is(v, -0) ? '-0.0' : `${v}.0`
}

/**
 * Encodes one row as a JSON line with the `_types` annotation shared with the Python implementation:
 * top-level dates (`D`), datetimes (`DT`, ISO with offset when aware) and bytes (`B`, lower-case hex). The
 * annotation is the Python string `"col@CODE col@CODE"` while every annotated name fits that form, else an object
 * `{"<col>": "CODE"}` (names with spaces or `@` cannot be told apart in the string). Columns in `floats` are
 * written as JSON floats even when whole.
 */
export function encodeRow(row: Row, floats?: ReadonlySet<string>): string {
  // Built value by value: as fast as JSON.stringify for plain rows, and no copy of rows with annotated values.
  let types = ''
  let annotated: [string, string][] | undefined
  let out = ''
  const annotate = (key: string, code: string): void => {
    if (annotated) annotated.push([key, code])
    else if (plainAnnotationName(key)) types += types ? ` ${key}@${code}` : `${key}@${code}`
    else {
      annotated = types
        ? types.split(' ').map((part) => [part.slice(0, part.lastIndexOf('@')), part.slice(part.lastIndexOf('@') + 1)])
        : []
      annotated.push([key, code])
    }
  }
  // for-in is faster than Object.keys but also walks inherited keys, which JSON leaves out: only plain objects.
  const plain = Object.getPrototypeOf(row) === Object.prototype
  for (const key in row) {
    if (!plain && !Object.hasOwn(row, key)) continue
    // `_types` is the format's own key (a source column of that name is replaced, as in the Python implementation).
    if (key === '_types') continue
    const v = row[key]
    let text: string | undefined
    if (typeof v === 'string') text = JSON.stringify(v)
    else if (typeof v === 'number') text = !Number.isFinite(v) ? 'null' : floats?.has(key) ? floatText(v) : String(v)
    else if (typeof v === 'object') {
      if (v === null) text = 'null'
      else if (v instanceof DateTime) {
        text = JSON.stringify(v.iso)
        annotate(key, 'DT')
      } else if (v instanceof Date) {
        text = JSON.stringify(formatDate(v))
        annotate(key, 'DT')
      } else if (v instanceof LocalDate) {
        text = JSON.stringify(v.toString())
        annotate(key, 'D')
      } else if (ArrayBuffer.isView(v)) {
        text = `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}"`
        annotate(key, 'B')
      } else text = JSON.stringify(v) as string | undefined
    } else if (typeof v === 'boolean') text = v ? 'true' : 'false'
    else if (typeof v === 'bigint')
      text = v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? String(Number(v)) : `"${v}"`
    // undefined, functions and symbols are left out, as JSON.stringify does
    if (text === undefined) continue
    out += (out ? ',' : '{') + keyPrefix(key) + text
  }
  const annotation = annotated ? JSON.stringify(Object.fromEntries(annotated)) : types ? JSON.stringify(types) : '""'
  return `${out ? `${out},` : '{'}"_types":${annotation}}`
}

/** Parsed `_types` annotations: rows of one table nearly always repeat the same few strings. */
const annotations = new Map<string, ReadonlyArray<readonly [string, string]>>()

function parseAnnotation(types: string): ReadonlyArray<readonly [string, string]> {
  let parsed = annotations.get(types)
  if (parsed === undefined) {
    parsed = types
      .split(' ')
      .map((part) => part.split('@'))
      .filter((pieces): pieces is [string, string] => pieces.length === 2)
    if (annotations.size >= 1000) annotations.clear()
    annotations.set(types, parsed)
  }
  return parsed
}

/** Sets a row value by name as an own property, whatever the name (`__proto__` included). */
function setValue(obj: Row, col: string, value: unknown): void {
  if (col === '__proto__')
    Object.defineProperty(obj, col, { value, enumerable: true, writable: true, configurable: true })
  else obj[col] = value as Row[string]
}

function restore(obj: Row, col: string, code: unknown): void {
  if (!Object.hasOwn(obj, col)) return
  const v = obj[col]
  if (typeof v !== 'string') return
  if (code === 'DT') setValue(obj, col, DateTime.parse(v))
  else if (code === 'D') setValue(obj, col, LocalDate.parse(v))
  else if (code === 'B') setValue(obj, col, Buffer.from(v, 'hex'))
}

/** Restores the values a `_types` annotation names and removes the annotation (mutates and returns `obj`). */
export function decodeRow(obj: Row): Row {
  const types = obj._types
  delete obj._types
  if (typeof types === 'string') {
    if (types) for (const [col, code] of parseAnnotation(types)) restore(obj, col, code)
  } else if (types !== null && typeof types === 'object' && !Array.isArray(types)) {
    for (const [col, code] of Object.entries(types)) restore(obj, col, code)
  }
  return obj
}

/** A data file written by a DataFileWriter. */
export interface WrittenFile {
  readonly path: string
  readonly rows: number
  /** Uncompressed JSON bytes. */
  readonly bytes: number
}

/** Options of the gzip JSON-lines writer. */
export interface DataFileOptions {
  /** Roll over to a new file after this many uncompressed bytes. */
  readonly maxBytes: number
  /** gzip level 1–9. */
  readonly level: number
  /** Columns declared `float`: whole values are written as `1.0`. */
  readonly floats?: ReadonlySet<string>
}

/** Uncompressed bytes per gzip member: big enough for a full compression window, small enough to keep memory flat. */
const BLOCK_BYTES = 1024 * 1024
/** Members being compressed at once (in libuv's thread pool, in parallel with the encoding on the main thread). */
const IN_FLIGHT = 3

/**
 * Writes rows to gzip JSON-lines files under `dir`, rolling over at `maxBytes`; files are unique by `nameFor`.
 *
 * Lines are encoded straight into 1 MiB blocks and each block is compressed as its own gzip member by a thread-pool
 * job, so compression runs on the other core while the main thread keeps encoding (a zlib stream needs the event
 * loop between its chunks and so mostly waits for the encoder instead). A file of several members is a standard
 * gzip file: gunzip, Python's `gzip` and every reader of the original format read it whole.
 */
export class DataFileWriter {
  private out: Writable | undefined
  private done: Promise<void> | undefined
  private current: { path: string; rows: number; bytes: number } | undefined
  private block: Buffer = Buffer.allocUnsafe(BLOCK_BYTES)
  private used = 0
  /** Blocks whose compression finished, to fill again (fresh 1 MiB buffers live outside the heap until a full GC). */
  private readonly spare: Buffer[] = []
  /** Compressed members in file order, still being compressed or not yet written. */
  private readonly queue: Promise<Buffer[]>[] = []
  private writing: Promise<void> = Promise.resolve()
  private readonly files: WrittenFile[] = []

  constructor(
    private readonly datastore: Datastore,
    private readonly nameFor: (index: number) => string,
    private readonly options: DataFileOptions,
  ) {}

  /** Appends a row; resolves when there is room again (back-pressure), or returns undefined right away. */
  write(row: Row): Promise<void> | undefined {
    const line = encodeRow(row, this.options.floats)
    if (!this.current) this.open()
    const cur = this.current!
    let wait: Promise<void> | undefined
    // A UTF-16 code unit takes at most 3 bytes in UTF-8; a line longer than a block gets a block of its own.
    if (this.used + line.length * 3 + 1 > this.block.length) {
      wait = this.seal()
      if (line.length * 3 + 1 > this.block.length) this.block = Buffer.allocUnsafe(line.length * 3 + 1)
    }
    const n = this.block.write(line, this.used) + 1
    this.block[this.used + n - 1] = 0x0a
    this.used += n
    cur.rows++
    cur.bytes += n
    if (cur.bytes >= this.options.maxBytes) return (wait ?? Promise.resolve()).then(() => this.finishFile())
    return wait
  }

  /** Uncompressed bytes written so far, in every file. */
  get bytes(): number {
    return this.files.reduce((n, f) => n + f.bytes, 0) + (this.current?.bytes ?? 0)
  }

  /** Finishes the last file and returns every file written. */
  async close(): Promise<WrittenFile[]> {
    if (this.current) await this.finishFile()
    return [...this.files]
  }

  /** Stops writing and deletes what was written: the file in progress and every file finished before it. */
  async abort(err?: Error): Promise<void> {
    const finished = this.files.splice(0)
    for (const job of this.queue.splice(0)) job.catch(() => undefined)
    this.out?.destroy(err ?? new Error('aborted'))
    this.writing = Promise.resolve()
    this.done?.catch(() => undefined)
    this.out = undefined
    this.current = undefined
    this.used = 0
    for (const f of finished) await this.datastore.delete(f.path)
  }

  private open(): void {
    const path = this.nameFor(this.files.length)
    this.out = this.datastore.writeStream(path)
    this.done = finished(this.out)
    this.done.catch(() => undefined)
    this.current = { path, rows: 0, bytes: 0 }
  }

  /** Hands the filled block to the thread pool; waits for the oldest member when too many are in flight. */
  private seal(): Promise<void> | undefined {
    if (this.used === 0) return undefined
    const block = this.block
    const job = gzipMember(block.subarray(0, this.used), this.options.level).then((member) => {
      if (block.length === BLOCK_BYTES) this.spare.push(block)
      return member
    })
    job.catch(() => undefined)
    this.queue.push(job)
    this.block = this.spare.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES)
    this.used = 0
    return this.queue.length >= IN_FLIGHT ? this.writeOldest() : undefined
  }

  /** Writes the oldest member once compressed; writes stay in file order even if a caller does not wait. */
  private writeOldest(): Promise<void> {
    const member = this.queue.shift()!
    const out = this.out!
    const done = this.done!
    this.writing = this.writing.then(async () => {
      let full = false
      for (const piece of await member) full = !out.write(piece)
      if (full) await Promise.race([once(out, 'drain'), done])
    })
    this.writing.catch(() => undefined)
    return this.writing
  }

  private async finishFile(): Promise<void> {
    await this.seal()
    while (this.queue.length) void this.writeOldest()
    await this.writing
    const cur = this.current!
    this.out!.end()
    await this.done
    this.files.push({ ...cur })
    this.out = undefined
    this.current = undefined
  }
}

/** Bytes of decompressed text parsed into one chunk of rows. */
const PARSE_SLICE = 64 * 1024

/** What a commit record promises about a data file: a reader checks it got exactly that. */
export interface ExpectedContent {
  readonly rows: number
  /** Uncompressed bytes. */
  readonly bytes: number
}

/** Reads the rows of one gzip JSON-lines data file, restoring `_types`; errors name the file and line. */
export async function* readDataFile(
  datastore: Datastore,
  path: string,
  signal?: AbortSignal,
  expected?: ExpectedContent,
): AsyncGenerator<Row> {
  for await (const chunk of readDataFileChunks(datastore, path, signal, expected)) yield* chunk
}

function mismatch(path: string, what: string, got: number, want: number): AnchoviesError {
  return new AnchoviesError(
    'ANCH_ERR_DATASTORE_CORRUPT',
    `data file ${path} holds ${got} ${what} but its commit record says ${want}: the file was cut short or changed after it was committed; restore it from a backup (nothing of it was loaded)`,
  )
}

/**
 * Like readDataFile, in arrays of rows (one per decompressed block). With `expected` (what the commit record
 * says), the uncompressed bytes are counted as they arrive and the rows at the end: a file cut at a gzip member
 * boundary still inflates cleanly, and only this check tells it from the real one. Rows of a file that fails the
 * check are not all yielded: the last chunk is held back until the count is known.
 */
export async function* readDataFileChunks(
  datastore: Datastore,
  path: string,
  signal?: AbortSignal,
  expected?: ExpectedContent,
): AsyncGenerator<Row[]> {
  const input = await datastore.readStream(path)
  const decoder = new StringDecoder('utf8')
  let rest = ''
  let lineNo = 0
  const parse = (line: string): Row => {
    lineNo++
    try {
      return decodeRow(JSON.parse(line) as Row)
    } catch (err) {
      throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `data file ${path} line ${lineNo}: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }
  let bytes = 0
  let held: Row[] | undefined
  try {
    for await (const block of inflateMembers(input)) {
      bytes += block.length
      if (expected && bytes > expected.bytes) throw mismatch(path, 'bytes (at least)', bytes, expected.bytes)
      // Parse in slices: a member's whole 1 MiB at once makes bigger strings and row arrays than GC handles well.
      for (let at = 0; at < block.length; at += PARSE_SLICE) {
        signal?.throwIfAborted()
        const text = rest + decoder.write(block.subarray(at, at + PARSE_SLICE))
        const lines = text.split('\n')
        rest = lines.pop() ?? ''
        const rows: Row[] = []
        for (const line of lines) if (line) rows.push(parse(line))
        if (rows.length) {
          if (held) yield held
          held = rows
        }
      }
    }
    rest += decoder.end()
    if (rest.trim()) {
      if (held) yield held
      held = [parse(rest)]
    }
    if (expected) {
      if (bytes !== expected.bytes) throw mismatch(path, 'bytes', bytes, expected.bytes)
      if (lineNo !== expected.rows) throw mismatch(path, 'rows', lineNo, expected.rows)
    }
    if (held) yield held
  } catch (err) {
    if (err instanceof AnchoviesError) throw err
    throw new AnchoviesError('ANCH_ERR_DATA_FORMAT', `reading data file ${path}: ${(err as Error).message}`, {
      cause: err,
    })
  } finally {
    input.destroy()
  }
}
