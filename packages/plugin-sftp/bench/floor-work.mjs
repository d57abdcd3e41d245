// Helper of floor.mjs: the CPU work the downloader's output format requires, with no framework around it, on a
// local CSV file (no transfer). Prints one JSON line: rows, in-process milliseconds, CPU milliseconds (all threads)
// and, where it applies, the time spent in each phase.
//   node floor-work.mjs floor --threads 1|2 --in FILE.csv --out FILE.gz   parse + convert, encode, gzip
//     [--encoder compiled]   encode with an encoder compiled for the table's row shape instead of core's encodeRow
//   node floor-work.mjs parse --in FILE.csv [--typed]                     parse (+ convert with --typed), rows dropped
//   node floor-work.mjs gzip --in FILE.jsonl --out FILE.gz               gzip alone, 1 MiB members
// Rows are parsed and converted by the plugin's own reader (readRows, the typed columns of the throughput bench)
// and encoded by core's encodeRow, the function the datastore writer calls for every row; lines go into 1 MiB
// blocks, each compressed as one gzip member at core's default level, as core's DataFileWriter does.
import { closeSync, openSync, readSync, writeSync } from 'node:fs'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { gzipSync } from 'node:zlib'
import { DateTime, LocalDate, encodeRow, parseTable } from '@anchovies/core'
import { readTableSettings } from '../dist/config.js'
import { readRows } from '../dist/csv-rows.js'

const started = performance.now()
const cpuStart = process.cpuUsage()
/** core's DataFileWriter: 1 MiB blocks, level data_compression_level (default 1). */
const BLOCK_BYTES = 1024 * 1024
const LEVEL = 1
/** CSV bytes handed to a worker at a time (2 threads). */
const CHUNK_BYTES = 4 * 1024 * 1024
const TYPED = { id: 'int', amount: 'float', created_at: 'datetime', day: 'date' }

function settingsFor(typed) {
  const problems = []
  const raw = { path: '/sales/*.csv', ...(typed ? { columns: TYPED } : {}) }
  const s = readTableSettings(parseTable('sales', raw, 'bench', problems), problems)
  if (problems.length) throw new Error(problems.join('\n'))
  return s
}
const FLOATS = new Set(Object.keys(TYPED).filter((c) => TYPED[c] === 'float'))
const FILE = { path: 'sales/big.csv', size: 0, mtime: 0 }
const fail = (bad) => {
  throw bad
}

/** Reads a local file in `size` chunks, synchronously (the page cache holds it: no I/O wait to hide). */
function* chunksOf(file, size) {
  const fd = openSync(file, 'r')
  try {
    for (;;) {
      const buf = Buffer.allocUnsafeSlow(size)
      const n = readSync(fd, buf, 0, size, null)
      if (n === 0) return
      yield buf.subarray(0, n)
    }
  } finally {
    closeSync(fd)
  }
}

async function* asAsync(iterable) {
  yield* iterable
}

/** core's float text (data-file.ts): a whole float keeps `.0`. */
function floatText(v) {
  if (!Number.isInteger(v) || Math.abs(v) >= 1e21) return String(v)
  return Object.is(v, -0) ? '-0.0' : `${v}.0`
}

/**
 * What a cheaper encoder could save (not core's code): one function compiled for the first row's shape (the plugin
 * builds every row of a file from one object literal), writing the same bytes as encodeRow; a row whose values do
 * not fit the shape (a null, a non-finite number) goes through encodeRow. The output is checked against the real
 * downloader's data files.
 */
function compiledEncoder(first) {
  const keys = Object.keys(first)
  const kind = (k) => {
    const v = first[k]
    if (v instanceof DateTime) return 'DT'
    if (v instanceof LocalDate) return 'D'
    if (typeof v === 'number') return FLOATS.has(k) ? 'float' : 'num'
    return typeof v === 'string' ? 'str' : undefined
  }
  if (keys.includes('_types') || keys.some((k) => kind(k) === undefined)) return (row) => encodeRow(row, FLOATS)
  const checks = []
  const parts = []
  const types = []
  keys.forEach((k, i) => {
    const v = `row[${JSON.stringify(k)}]`
    const prefix = JSON.stringify(`${i ? ',' : '{'}${JSON.stringify(k)}:`)
    const k1 = kind(k)
    if (k1 === 'DT') {
      checks.push(`${v} instanceof DateTime`)
      parts.push(`${prefix} + JSON.stringify(${v}.iso)`)
      types.push(`${k}@DT`)
    } else if (k1 === 'D') {
      checks.push(`${v} instanceof LocalDate`)
      parts.push(`${prefix} + JSON.stringify(${v}.toString())`)
      types.push(`${k}@D`)
    } else if (k1 === 'str') {
      checks.push(`typeof ${v} === 'string'`)
      parts.push(`${prefix} + JSON.stringify(${v})`)
    } else {
      checks.push(`typeof ${v} === 'number' && Number.isFinite(${v})`)
      parts.push(`${prefix} + ${k1 === 'float' ? `floatText(${v})` : `String(${v})`}`)
    }
  })
  const tail = JSON.stringify(`${keys.length ? ',' : '{'}"_types":${JSON.stringify(types.join(' '))}}`)
  const body = `return (row) => (${checks.join(' && ')}) ? ${parts.join(' + ')} + ${tail} : encodeRow(row, FLOATS)`
  return new Function('DateTime', 'LocalDate', 'encodeRow', 'FLOATS', 'floatText', body)(
    DateTime,
    LocalDate,
    encodeRow,
    FLOATS,
    floatText,
  )
}

/**
 * Parses + converts `bytes`, encodes every row as core does and gzips every full 1 MiB block; calls `emit` with
 * each member. Returns rows and the time of each phase.
 */
async function encodeAll(bytes, settings, emit, compiled = false) {
  const t = { parse: 0, encode: 0, gzip: 0 }
  let rows = 0
  let block = Buffer.allocUnsafe(BLOCK_BYTES)
  let used = 0
  const seal = () => {
    const g0 = performance.now()
    emit(gzipSync(block.subarray(0, used), { level: LEVEL, chunkSize: 256 * 1024 }))
    t.gzip += performance.now() - g0
    used = 0
  }
  const it = readRows(bytes, FILE, settings, fail)[Symbol.asyncIterator]()
  let encode = compiled ? undefined : (row) => encodeRow(row, FLOATS)
  for (;;) {
    const p0 = performance.now()
    const next = await it.next()
    t.parse += performance.now() - p0
    if (next.done) break
    const e0 = performance.now()
    let gz = 0
    for (const row of next.value) {
      encode ??= compiledEncoder(row)
      const line = encode(row)
      if (used + line.length * 3 + 1 > block.length) {
        const g0 = performance.now()
        seal()
        gz += performance.now() - g0
        if (line.length * 3 + 1 > block.length) block = Buffer.allocUnsafe(line.length * 3 + 1)
      }
      used += block.write(line, used)
      block[used++] = 0x0a
    }
    rows += next.value.length
    t.encode += performance.now() - e0 - gz
  }
  if (used) seal()
  return { rows, ...t }
}

function report(extra) {
  const cpu = process.cpuUsage(cpuStart)
  console.log(JSON.stringify({ ms: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, ...extra }))
}

const args = process.argv.slice(2)
const opt = (name) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}

if (!isMainThread) {
  // A worker of `floor --threads 2`: chunks of whole CSV lines in (the header in front), gzip members out.
  const settings = settingsFor(true)
  const total = { parse: 0, encode: 0, gzip: 0 }
  parentPort.on('message', async ({ seq, bytes, from, to }) => {
    if (bytes === null) return parentPort.postMessage({ seq: -1, phases: total })
    const members = []
    // Fed to the parser in 256 KiB slices, as in 1 thread: a whole chunk's rows at once would outlive the young
    // generation and make the workers' GC several times dearer (measured: +50% CPU, 500 MB RSS).
    const data = Buffer.from(bytes, from, to - from)
    const slices = [Buffer.from(workerData.header)] // a Uint8Array once cloned into the worker
    for (let at = 0; at < data.length; at += 256 * 1024) slices.push(data.subarray(at, at + 256 * 1024))
    const r = await encodeAll(asAsync(slices), settings, (m) => members.push(m))
    total.parse += r.parse
    total.encode += r.encode
    total.gzip += r.gzip
    parentPort.postMessage({ seq, rows: r.rows, members })
  })
} else {
  const mode = args[0]
  if (mode === 'parse') {
    let rows = 0
    for await (const batch of readRows(
      asAsync(chunksOf(opt('in'), 256 * 1024)),
      FILE,
      settingsFor(args.includes('--typed')),
      fail,
    ))
      rows += batch.length
    report({ rows })
  } else if (mode === 'gzip') {
    const out = openSync(opt('out'), 'w')
    let bytes = 0
    for (const block of chunksOf(opt('in'), BLOCK_BYTES)) {
      writeSync(out, gzipSync(block, { level: LEVEL, chunkSize: 256 * 1024 }))
      bytes += block.length
    }
    closeSync(out)
    report({ bytes })
  } else if (mode === 'floor' && opt('threads') === '1') {
    const out = openSync(opt('out'), 'w')
    const r = await encodeAll(
      asAsync(chunksOf(opt('in'), 256 * 1024)),
      settingsFor(true),
      (m) => writeSync(out, m),
      opt('encoder') === 'compiled',
    )
    closeSync(out)
    report({ rows: r.rows, phases: { parse: r.parse, encode: r.encode, gzip: r.gzip } })
  } else if (mode === 'floor' && opt('threads') === '2') {
    await floorThreads(2)
  } else throw new Error(`usage: see the head of ${import.meta.url}`)
}

/**
 * The floor work split by chunks of whole lines over `n` worker threads (only bytes cross threads: CSV chunks
 * in, gzip members out); this thread reads, cuts at the last newline (the generated file has no newline inside a
 * quoted field) and writes the members in file order.
 */
async function floorThreads(n) {
  const out = openSync(opt('out'), 'w')
  // One buffer a chunk, read after the previous chunk's unfinished line and handed over whole (no copy).
  const fd = openSync(opt('in'), 'r')
  let carry = Buffer.alloc(0)
  const nextChunk = () => {
    const buf = Buffer.allocUnsafeSlow(carry.length + CHUNK_BYTES)
    carry.copy(buf)
    const n = readSync(fd, buf, carry.length, CHUNK_BYTES, null)
    const end = carry.length + n
    const cut = n === 0 ? end : buf.subarray(0, end).lastIndexOf(0x0a) + 1
    carry = Buffer.from(buf.subarray(cut, end))
    return cut > 0 ? buf.subarray(0, cut) : undefined
  }
  const first = nextChunk()
  const eol = first.indexOf(0x0a)
  const header = Buffer.from(first.subarray(0, eol + 1))
  const workers = Array.from({ length: n }, () => new Worker(new URL(import.meta.url), { workerData: { header } }))
  const done = new Map()
  let nextOut = 0
  let rows = 0
  const phases = { parse: 0, encode: 0, gzip: 0 }
  let finishedWorkers = 0
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  /** Chunks handed out and not written yet, per worker: at most 2 each (back-pressure). */
  const inFlight = new Array(n).fill(0)
  const waiting = []
  const flush = () => {
    while (done.has(nextOut)) {
      const r = done.get(nextOut)
      done.delete(nextOut++)
      for (const m of r.members) writeSync(out, m)
      rows += r.rows
    }
  }
  workers.forEach((w, i) => {
    w.on('message', (msg) => {
      if (msg.seq === -1) {
        for (const k of Object.keys(phases)) phases[k] += msg.phases[k]
        if (++finishedWorkers === n) resolveAll()
        return
      }
      done.set(msg.seq, msg)
      inFlight[i]--
      flush()
      waiting.shift()?.()
    })
    w.on('error', (err) => {
      console.error(err)
      process.exit(1)
    })
  })
  let seq = 0
  const send = async (chunk, from) => {
    let i
    while ((i = inFlight.findIndex((c) => c < 2)) < 0) await new Promise((r) => waiting.push(r))
    inFlight[i]++
    workers[i].postMessage({ seq: seq++, bytes: chunk.buffer, from, to: chunk.length }, [chunk.buffer])
  }
  await send(first, eol + 1)
  for (let chunk = nextChunk(); chunk; chunk = nextChunk()) await send(chunk, 0)
  closeSync(fd)
  while (inFlight.some((c) => c > 0)) await new Promise((r) => waiting.push(r))
  for (const w of workers) w.postMessage({ bytes: null })
  await all
  flush()
  closeSync(out)
  await Promise.all(workers.map((w) => w.terminate()))
  report({ rows, phases })
}
