// The encoding floor: hyparquet-writer alone encoding the benchmark's rows to Parquet on local disk, the rows already
// held as column arrays in the form lake.ParquetUploader hands the library (no datastore reading, no row objects, no
// value conversion), against DuckDB's `COPY (SELECT * FROM read_csv(...)) TO 'x.parquet'` of the same rows as CSV, in
// the same run, each in its own process, BENCH_RUNS times (default 5). Floors for the 8 data columns (what DuckDB
// writes) and for the 10 columns of the uploader's files (plus `_seq` and `_loaded_at`), each with hyparquet-writer's
// own snappy and with the plugin's (what the uploader uses). The floor's time is that of the encoding only (each row
// group is built before its clock starts); DuckDB's is its whole process, so the ratio flatters the floor. Beside
// them, another writer fed from JS the same way: DuckDB's appender and COPY (duckdb-writer.mjs). Prints medians, the
// spread (min–max), the CPU time of the encoding, peak RSS and the ratios of the medians.
//
//   node bench/encode-floor.mjs              the bench
//   node bench/encode-floor.mjs --child ...  one measured encoding (used by the bench itself)
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, spread, writeCsv } from './bench-lib.mjs'

const HERE = nodePath.dirname(fileURLToPath(import.meta.url))
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const COMPRESSION = process.env.BENCH_COMPRESSION ?? 'snappy'
const ROW_GROUP = Number(process.env.BENCH_ROW_GROUP_ROWS ?? 20_000)

if (process.argv[2] === '--child') await child(process.argv[3], Number(process.argv[4]), process.argv[5])
else await main()

/** One encoding in this process: builds the columns, then times writing them. Prints `FLOOR_MS <ms>`. */
async function child(file, columns, snappy) {
  const { ParquetWriter, fileWriter } = await import('hyparquet-writer')
  const { DateTime } = await import('@anchovies/core')
  const { loadZstd, compressors } = await import('../dist/compression.js')
  const { columnValues, schemaElement } = await import('../dist/parquet-file.js')
  if (COMPRESSION === 'zstd') await loadZstd()
  const types = ['int', 'str', 'float', 'bool', 'str', 'int', 'str', 'float', 'int', 'timestamptz']
  const names = ['id', 'name', 'amount', 'flag', 'note', 'qty', 'code', 'score', '_seq', '_loaded_at']
  const cols = names.slice(0, columns).map((name, j) => ({ name, type: types[j], scale: 0 }))
  const schema = cols.map(schemaElement)
  // Each row group is built just before it is written (the uploader holds one at a time) in the form the uploader
  // hands the library (its own column conversion: bigints, numbers, strings or UTF-8 bytes); only the writing is
  // timed.
  const loadedAt = DateTime.fromDate(new Date())
  const raw = [
    (i) => i,
    (i) => `name ${i % 1000}`,
    (i) => i * 0.25,
    (i) => i % 2 === 0,
    (i) => `note ${i}`,
    (i) => i % 97,
    (i) => `c${i % 13}`,
    (i) => (i % 1000) / 7,
    (i) => i + 1,
    () => loadedAt,
  ]
  const group = (at, n) =>
    cols.map((c, j) =>
      columnValues(
        c,
        Array.from({ length: n }, (_, k) => raw[j](at + k)),
        n,
      ),
    )
  let ns = 0n
  let cpu = 0
  let cpuAt = process.cpuUsage()
  let started = process.hrtime.bigint()
  const writer = new ParquetWriter({
    writer: fileWriter(file),
    schema: [{ name: 'schema', num_children: schema.length }, ...schema],
    codec: COMPRESSION === 'zstd' ? 'ZSTD' : 'SNAPPY',
    // `ours`: the plugin's snappy, as the uploader writes; `library`: hyparquet-writer's built-in one.
    compressors: snappy === 'library' ? {} : compressors(),
  })
  ns += process.hrtime.bigint() - started
  cpu += cpuMs(cpuAt)
  for (let at = 0; at < ROWS; at += ROW_GROUP) {
    const n = Math.min(ROW_GROUP, ROWS - at)
    const g = group(at, n)
    cpuAt = process.cpuUsage()
    started = process.hrtime.bigint()
    await writer.write({ columnData: schema.map((e, j) => ({ name: e.name, data: g[j] })), rowGroupSize: n })
    ns += process.hrtime.bigint() - started
    cpu += cpuMs(cpuAt)
  }
  cpuAt = process.cpuUsage()
  started = process.hrtime.bigint()
  await writer.finish()
  ns += process.hrtime.bigint() - started
  cpu += cpuMs(cpuAt)
  process.stderr.write(`\nFLOOR_MS ${Number(ns) / 1e6}\nFLOOR_CPU_MS ${cpu}\n`)
}

function cpuMs(since) {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1000
}

function measure(args) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const proc = spawn(process.execPath, ['--import', nodePath.join(HERE, 'rss.mjs'), ...args], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...pick('BENCH_ROWS', 'BENCH_COMPRESSION', 'BENCH_ROW_GROUP_ROWS'),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let err = ''
    proc.stderr.on('data', (d) => (err += d))
    proc.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - started) / 1e6
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))
      const kb = Number(/BENCH_MAXRSS_KB (\d+)/.exec(err)?.[1] ?? 0)
      const inner = /FLOOR_MS ([\d.]+)/.exec(err)?.[1]
      const innerCpu = /FLOOR_CPU_MS ([\d.]+)/.exec(err)?.[1]
      const cpuUs = Number(/BENCH_CPU_US (\d+)/.exec(err)?.[1] ?? 0)
      resolve({
        ms: inner === undefined ? wall : Number(inner),
        cpu: innerCpu === undefined ? cpuUs / 1000 : Number(innerCpu),
        rssMb: kb / 1024,
      })
    })
  })
}

function pick(...keys) {
  return Object.fromEntries(keys.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]))
}

async function main() {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-lake-floor-'))
  try {
    await writeCsv(`${dir}/items.csv`, ROWS)
    const csvMb = statSync(`${dir}/items.csv`).size / 1e6
    const self = fileURLToPath(import.meta.url)
    const floors = [
      ['8 columns, its own snappy', [self, '--child', `${dir}/floor-8-library.parquet`, '8', 'library']],
      ['8 columns, our snappy', [self, '--child', `${dir}/floor-8-ours.parquet`, '8', 'ours']],
      ['10 columns, its own snappy', [self, '--child', `${dir}/floor-10-library.parquet`, '10', 'library']],
      ['10 columns, our snappy', [self, '--child', `${dir}/floor-10-ours.parquet`, '10', 'ours']],
    ]
    // Another writer for comparison, fed from JS the same way (not a floor of this plugin): DuckDB's appender.
    const other = [
      'DuckDB fed from JS, 8 columns',
      [nodePath.join(HERE, 'duckdb-writer.mjs'), `${dir}/duckdb-writer.parquet`],
    ]
    const duck = []
    const times = [...floors, other].map(() => [])
    for (let r = 0; r < RUNS; r++) {
      const d = await measure([nodePath.join(HERE, 'duckdb-copy.mjs'), `${dir}/items.csv`, `${dir}/duck.parquet`])
      duck.push(d)
      const line = [`duckdb ${d.ms.toFixed(0)} ms`]
      for (const [k, [name, args]] of [...floors, other].entries()) {
        const f = await measure(args)
        times[k].push(f)
        line.push(`${name} ${f.ms.toFixed(0)} ms`)
      }
      console.log(`run ${r + 1}: ${line.join('; ')}`)
    }
    const report = (name, xs) => {
      const ms = median(xs.map((x) => x.ms))
      const cpu = median(xs.map((x) => x.cpu))
      console.log(
        `${name.padEnd(48)} median ${ms.toFixed(0)} ms (spread ${spread(xs.map((x) => x.ms))}), ${((ROWS / ms) * 1000).toFixed(0)} rows/s, ` +
          `${((csvMb / ms) * 1000).toFixed(1)} MB/s, CPU median ${cpu.toFixed(0)} ms (spread ${spread(xs.map((x) => x.cpu))}), ` +
          `peak RSS median ${median(xs.map((x) => x.rssMb)).toFixed(0)} MB`,
      )
      return { ms, cpu }
    }
    const mb = (f) => (statSync(`${dir}/${f}`).size / 1e6).toFixed(1)
    console.log(
      `\n${ROWS} rows, ${csvMb.toFixed(1)} MB as CSV, ${RUNS} runs, ${COMPRESSION}, row groups of ${ROW_GROUP} rows, load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    )
    const b = report('duckdb COPY from CSV (whole process)', duck)
    console.log(`  file ${mb('duck.parquet')} MB`)
    for (const [k, [name, args]] of [...floors, other].entries()) {
      const a = report(k < floors.length ? `hyparquet-writer alone, ${name}` : name, times[k])
      const file = nodePath.basename(args[k < floors.length ? 2 : 1])
      console.log(
        `  file ${mb(file)} MB, ratio to duckdb (medians): time ${(a.ms / b.ms).toFixed(2)}, CPU ${(a.cpu / b.cpu).toFixed(2)}`,
      )
    }
    console.log('goal of the uploader: ratio <= 2.0')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
