// Benchmark: BENCH_ROWS rows (default 1,000,000) x 8 columns from an anchovies datastore to Parquet on local disk with
// lake.ParquetUploader, against DuckDB's `COPY (SELECT * FROM read_csv(...)) TO 'x.parquet'` of the same rows as
// CSV, each in its own process, BENCH_RUNS times (default 5). Also measures the floor: an uploader that only reads
// the upstream rows (core's datastore reading, which every uploader pays). Prints medians, the spread, rows/s, MB/s
// (of the CSV text, the same for all), peak RSS and the ratios of the medians against DuckDB.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, spread, writeCsv } from './bench-lib.mjs'

const HERE = nodePath.dirname(fileURLToPath(import.meta.url))
const ROOT = nodePath.resolve(HERE, '../../..')
const BIN = nodePath.join(ROOT, 'packages/core/dist/cli/bin.js')
const OPERATORS = nodePath.resolve(HERE, '../test/fixtures/operators.js')
const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000)
const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const COMPRESSION = process.env.BENCH_COMPRESSION ?? 'snappy'
// Another uploader to measure in the same runs (`path/to/module.js:Class`), e.g. a build of an earlier version.
const COMPARE = process.env.BENCH_COMPARE_OP

function measure(args, cwd, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const proc = spawn(process.execPath, ['--import', nodePath.join(HERE, 'rss.mjs'), ...args], {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let err = ''
    proc.stderr.on('data', (d) => (err += d))
    proc.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      if (code !== 0) return reject(new Error(`${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))
      const kb = Number(/BENCH_MAXRSS_KB (\d+)/.exec(err)?.[1] ?? 0)
      const cpuMs = Number(/BENCH_CPU_US (\d+)/.exec(err)?.[1] ?? 0) / 1000
      resolve({ ms, rssMb: kb / 1024, cpuMs })
    })
  })
}

const dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-lake-bench-'))
try {
  const env = { ACHVY_DATASTORE: `${dir}/ds`, ACHVY_USER: 'bench', ACHVY_LOG_LEVEL: 'warn' }
  writeFileSync(`${dir}/config.yaml`, 'tbls:\n  items: {}\n')
  console.log(
    `preparing ${ROWS} rows x 8 columns (datastore and CSV)… load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  )
  await measure([BIN, 'start', '-op', `${OPERATORS}:Generate`, '--id', 'gen'], dir, {
    ...env,
    ACHVY_TEST_ROWS: String(ROWS),
  })
  await writeCsv(`${dir}/items.csv`, ROWS)
  const csvMb = statSync(`${dir}/items.csv`).size / 1e6
  const lake = []
  const duck = []
  const floor = []
  const compared = []
  const lakeEnv = (id) => ({
    ...env,
    ACHVY_CNXN__LAKE__URL: `${dir}/${id}`,
    ACHVY_LAKE_COMPRESSION: COMPRESSION,
    ...(process.env.BENCH_ROW_GROUP_ROWS ? { ACHVY_LAKE_ROW_GROUP_ROWS: process.env.BENCH_ROW_GROUP_ROWS } : {}),
  })
  for (let r = 0; r < RUNS; r++) {
    if (COMPARE) {
      const x = await measure([BIN, 'start', '-op', COMPARE, '--id', `cmp_${r}`, '-U', 'gen'], dir, lakeEnv(`cmp_${r}`))
      compared.push(x)
      console.log(`run ${r + 1}: compared ${x.ms.toFixed(0)} ms (CPU ${x.cpuMs.toFixed(0)}), ${x.rssMb.toFixed(0)} MB`)
      rmSync(`${dir}/cmp_${r}`, { recursive: true, force: true })
    }
    const l = await measure(
      [BIN, 'start', '-op', 'lake.ParquetUploader', '--id', `lake_${r}`, '-U', 'gen'],
      dir,
      lakeEnv(`lake_${r}`),
    )
    const d = await measure(
      [nodePath.join(HERE, 'duckdb-copy.mjs'), `${dir}/items.csv`, `${dir}/duck_${r}.parquet`],
      dir,
      {},
    )
    const f = await measure(
      [
        BIN,
        'start',
        '-op',
        `${nodePath.join(HERE, 'null-uploader.mjs')}:NullUploader`,
        '--id',
        `null_${r}`,
        '-U',
        'gen',
      ],
      dir,
      env,
    )
    lake.push(l)
    duck.push(d)
    floor.push(f)
    console.log(
      `run ${r + 1}: lake ${l.ms.toFixed(0)} ms (CPU ${l.cpuMs.toFixed(0)}), ${l.rssMb.toFixed(0)} MB; duckdb ${d.ms.toFixed(0)} ms, ${d.rssMb.toFixed(0)} MB; read-only floor ${f.ms.toFixed(0)} ms, ${f.rssMb.toFixed(0)} MB`,
    )
    rmSync(`${dir}/lake_${r}`, { recursive: true, force: true })
  }
  const report = (name, xs) => {
    const ms = median(xs.map((x) => x.ms))
    const cpu = xs.map((x) => x.cpuMs)
    console.log(
      `${name.padEnd(22)} median ${ms.toFixed(0)} ms (spread ${spread(xs.map((x) => x.ms))}), ${((ROWS / ms) * 1000).toFixed(0)} rows/s, ` +
        `${((csvMb / ms) * 1000).toFixed(1)} MB/s, CPU median ${median(cpu).toFixed(0)} ms (spread ${spread(cpu)}), ` +
        `peak RSS median ${median(xs.map((x) => x.rssMb)).toFixed(0)} MB (max ${Math.max(...xs.map((x) => x.rssMb)).toFixed(0)})`,
    )
    return { ms, cpu: median(cpu) }
  }
  console.log(
    `\n${ROWS} rows x 8 columns, ${csvMb.toFixed(1)} MB as CSV, ${RUNS} runs, lake compression ${COMPRESSION}`,
  )
  const a = report('lake.ParquetUploader', lake)
  const b = report('duckdb COPY from CSV', duck)
  const c = report('read-only floor', floor)
  if (COMPARE) {
    const x = report('compared uploader', compared)
    console.log(
      `compared uploader (${COMPARE}): ratio to duckdb ${(x.ms / b.ms).toFixed(2)}; lake.ParquetUploader / compared: time ${(a.ms / x.ms).toFixed(2)}, CPU ${(a.cpu / x.cpu).toFixed(2)}`,
    )
  }
  console.log(
    `ratio (uploader / duckdb, medians): ${(a.ms / b.ms).toFixed(2)} (goal <= 2.0); of CPU time ${(a.cpu / b.cpu).toFixed(2)}`,
  )
  console.log(
    `ratio (read-only floor / duckdb): ${(c.ms / b.ms).toFixed(2)}; Parquet writing adds ${(a.ms - c.ms).toFixed(0)} ms (${((a.ms - c.ms) / b.ms).toFixed(2)} x duckdb)`,
  )
  console.log(
    `load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  )
} finally {
  rmSync(dir, { recursive: true, force: true })
}
