#!/usr/bin/env node
// Benchmark: sql.Downloader extracting an N-row (default 1,000,000; BENCH_ROWS or --rows), 8-column PostgreSQL
// table into the datastore (full mode), against `psql -c "\copy (SELECT …) TO …"` of the same table in the same
// run, BENCH_REPEAT times (default 3). Prints rows/s, peak RSS of the anchovy process, medians, spread and ratio.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const root = nodePath.resolve(here, '../../..')
const cli = nodePath.join(root, 'packages/core/dist/cli/bin.js')
const argRows = process.argv.indexOf('--rows')
const N = Number(argRows > 0 ? process.argv[argRows + 1] : (process.env.BENCH_ROWS ?? 1_000_000))
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3)
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432'
const dbName = `anch_bench_x_${process.pid}`
const dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-bench-x-'))
const url = `${PG}/${dbName}`

function extract(id) {
  const started = process.hrtime.bigint()
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      nodePath.join(here, 'rss.mjs'),
      cli,
      'start',
      '-op',
      'sql.Downloader',
      '--id',
      id,
      '-e',
      'public.src',
      '--datastore',
      dir,
      '-u',
      'bench',
      '--log-level',
      'warn',
    ],
    {
      env: { ...process.env, ACHVY_CNXN__DB__URL: url },
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    },
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (r.status !== 0) throw new Error(`sql.Downloader failed (${r.status}):\n${r.stderr.slice(-4000)}`)
  const task = JSON.parse(r.stdout)
    .batches.flatMap((b) => b.done_tasks)
    .find((t) => t.task_type === 'TABLE')
  if (task?.data?.rows !== N) throw new Error(`extracted ${task?.data?.rows} rows, expected ${N}`)
  // The table task alone (without starting Node, loading modules and connecting): the steady-state rate.
  return { seconds, task: task.duration / 1000, rss: Number(/BENCH_MAXRSS_KB (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024 }
}

function psqlCopy(file) {
  const started = process.hrtime.bigint()
  const r = spawnSync(
    'psql',
    [
      url,
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      `\\copy (SELECT id, name, amount, qty, flag, ts, day, note FROM src ORDER BY id) TO '${file}'`,
    ],
    { encoding: 'utf8' },
  )
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

/** The floor the datastore format sets for a Node extractor (extract-floor.mjs), in its own process. */
function floor() {
  const started = process.hrtime.bigint()
  const r = spawnSync(
    process.execPath,
    [
      nodePath.join(here, 'extract-floor.mjs'),
      url,
      'SELECT id, name, amount, qty, flag, ts, day, note FROM src ORDER BY id',
    ],
    { encoding: 'utf8' },
  )
  if (r.status !== 0 || Number(r.stdout) !== N)
    throw new Error(`extract-floor failed (${r.status}): ${r.stdout} ${r.stderr.slice(-2000)}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const admin = new pg.Client({ connectionString: `${PG}/postgres` })
await admin.connect()
await admin.query(`CREATE DATABASE ${dbName}`)
try {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query(
    `CREATE TABLE src (id bigint PRIMARY KEY, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text)`,
  )
  await c.query(
    `INSERT INTO src SELECT g, 'customer ' || g, g * 1.25, g % 1000, g % 2 = 0, '2025-01-01'::timestamptz + g * interval '1.000001 second', '2020-01-01'::date + (g % 2000), CASE WHEN g % 10 = 0 THEN NULL ELSE 'note with some text ' || md5(g::text) END FROM generate_series(1, ${N}) g`,
  )
  await c.query('VACUUM ANALYZE src')
  await c.end()
  const ours = []
  const base = []
  const floors = []
  for (let i = 0; i < REPEAT; i++) {
    const o = extract(`x${i}`)
    const p = psqlCopy(nodePath.join(dir, `copy${i}.tsv`))
    floors.push(floor())
    ours.push(o)
    base.push(p)
    console.log(
      `run ${i + 1}: sql.Downloader ${o.seconds.toFixed(2)} s = ${Math.round(N / o.seconds).toLocaleString('en')} rows/s (table task ${o.task.toFixed(2)} s), peak RSS ${o.rss.toFixed(0)} MB; psql \\copy ${p.toFixed(2)} s = ${Math.round(N / p).toLocaleString('en')} rows/s; ratio ${(o.seconds / p).toFixed(2)}`,
    )
  }
  const os = ours.map((o) => o.seconds)
  const mo = median(os)
  const mp = median(base)
  console.log(`\n${N.toLocaleString('en')} rows x 8 columns, ${REPEAT} runs (medians):`)
  console.log(
    `  sql.Downloader: ${mo.toFixed(2)} s (spread ${Math.min(...os).toFixed(2)}–${Math.max(...os).toFixed(2)}) = ${Math.round(N / mo).toLocaleString('en')} rows/s, peak RSS ${median(ours.map((o) => o.rss)).toFixed(0)} MB (max ${Math.max(...ours.map((o) => o.rss)).toFixed(0)} MB)`,
  )
  const mt = median(ours.map((o) => o.task))
  console.log(
    `  sql.Downloader table task alone: ${mt.toFixed(2)} s = ${Math.round(N / mt).toLocaleString('en')} rows/s, ratio to \\copy ${(mt / mp).toFixed(2)}`,
  )
  console.log(
    `  psql \\copy:     ${mp.toFixed(2)} s (spread ${Math.min(...base).toFixed(2)}–${Math.max(...base).toFixed(2)}) = ${Math.round(N / mp).toLocaleString('en')} rows/s`,
  )
  console.log(`  ratio ours/\\copy (whole process): ${(mo / mp).toFixed(2)} (goal <= 2.0)`)
  // No Node extractor writing the datastore's format can beat the floor: floor / \copy bounds the goal.
  const mf = median(floors)
  console.log(
    `  floor (pg cursor + JSON.stringify + gzip -1): ${mf.toFixed(2)} s (spread ${Math.min(...floors).toFixed(2)}–${Math.max(...floors).toFixed(2)}); ratio floor/\\copy ${(mf / mp).toFixed(2)}, ours/floor ${(mo / mf).toFixed(2)}`,
  )
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await admin.end()
  rmSync(dir, { recursive: true, force: true })
}
