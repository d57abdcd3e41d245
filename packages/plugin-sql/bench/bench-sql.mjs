#!/usr/bin/env node
// Benchmark: N rows (default 1,000,000; BENCH_ROWS or --rows) through the datastore into PostgreSQL with
// sql.Uploader, against `psql \copy` of the same rows as CSV into an equivalent table, in the same run.
// Load 1 inserts N new keys; load 2 sends N rows of which half update existing keys.
// --repeat N (BENCH_REPEAT) runs everything N times on a fresh database and prints medians, spread and ratios.
// Load 2's baseline is hand-written SQL: \copy into a temporary table, one UPDATE … SET _del, one INSERT … SELECT.
// ACHVY_SQL_FAST_PATH=on|off|auto selects the uploader's byte fast path (passed through to the anchovy).
// BENCH_PROFILE=<dir> writes a CPU profile of every anchovy process there (open in Chrome DevTools).
import { spawnSync } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import pg from 'pg'
import { benchCsv } from './operators.mjs'

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const root = nodePath.resolve(here, '../../..')
const cli = nodePath.join(root, 'packages/core/dist/cli/bin.js')
const argRows = process.argv.indexOf('--rows')
const N = Number(argRows > 0 ? process.argv[argRows + 1] : (process.env.BENCH_ROWS ?? 1_000_000))
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432'
const argRepeat = process.argv.indexOf('--repeat')
const REPEAT = Number(argRepeat > 0 ? process.argv[argRepeat + 1] : (process.env.BENCH_REPEAT ?? 1))
let dbName = ''
let dir = ''
let url = ''

function anchovy(args, env = {}) {
  const started = process.hrtime.bigint()
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []
  const r = spawnSync(
    process.execPath,
    [
      ...profile,
      '--import',
      nodePath.join(here, 'rss.mjs'),
      cli,
      'start',
      '--datastore',
      dir,
      '-u',
      'bench',
      '--log-level',
      'warn',
      ...args,
    ],
    {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    },
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (r.status !== 0) throw new Error(`anchovy ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-4000)}`)
  const rss = Number(/BENCH_MAXRSS_KB (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024
  let phases = ''
  try {
    const task = JSON.parse(r.stdout)
      .batches.flatMap((b) => b.done_tasks)
      .find((t) => t.task_type === 'TABLE')
    if (task?.data?.stage_ms !== undefined)
      phases = `read+stage ${(task.data.stage_ms / 1000).toFixed(1)} s, merge ${(task.data.merge_ms / 1000).toFixed(1)} s`
  } catch {
    // a downloader run: no phases
  }
  return { seconds, rss, phases }
}

async function writeCsv(file, start, variant) {
  const out = createWriteStream(file)
  let buf = ''
  for (let i = 0; i < N; i++) {
    buf += benchCsv(start + i, variant)
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
}

const COLS = 'id, name, amount, qty, flag, ts, day, note'

function psqlCopy(file, first) {
  const started = process.hrtime.bigint()
  // Load 1: \copy into the table. Load 2: what a DBA writes for the same history semantics, in one transaction.
  const script = first
    ? `\\copy baseline (${COLS}) FROM '${file}' CSV`
    : `BEGIN;\nCREATE TEMP TABLE stage (id bigint, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text) ON COMMIT DROP;\n\\copy stage FROM '${file}' CSV\nUPDATE baseline b SET _del = now() FROM stage s WHERE b.id = s.id AND b._del IS NULL;\nINSERT INTO baseline (${COLS}) SELECT ${COLS} FROM stage;\nCOMMIT;\n`
  const scriptFile = nodePath.join(dir, 'baseline.sql')
  writeFileSync(scriptFile, script)
  const r = spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-f', scriptFile], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

const admin = new pg.Client({ connectionString: `${PG}/postgres` })
await admin.connect()
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const spread = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`
const labels = ['load 1 (new keys)', 'load 2 (half the keys updated)']
const runs = labels.map(() => ({ ours: [], copy: [], ratio: [], rss: [], phases: [] }))
for (let rep = 0; rep < REPEAT; rep++) {
  dbName = `anch_bench_${process.pid}_${rep}`
  dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-bench-'))
  url = `${PG}/${dbName}`
  await admin.query(`CREATE DATABASE ${dbName}`)
  try {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    // The equivalent table: the same columns, history columns, and a partial index on the current rows' key.
    await c.query(
      `CREATE TABLE baseline (_seq bigserial PRIMARY KEY, id bigint, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text, _del timestamptz)`,
    )
    await c.query('CREATE INDEX ON baseline (id) WHERE _del IS NULL')
    await c.end()
    const config = 'tbls:\n  orders:\n    unique_by: id\n    sort_by: -ts\n'
    const gen = nodePath.join(here, 'operators.mjs') + ':Generate'
    for (const [k, [start, variant]] of [
      [0, 0],
      [Math.floor(N / 2), 1],
    ].entries()) {
      anchovy(['-op', gen, '--id', 'bench_dl', '-c', config], {
        BENCH_ROWS: String(N),
        BENCH_START: String(start),
        BENCH_VARIANT: String(variant),
      })
      const ours = anchovy(['-op', 'sql.Uploader', '--id', 'bench_up', '-U', 'bench_dl'], { ACHVY_CNXN__DB__URL: url })
      const csv = nodePath.join(dir, `load-${variant}.csv`)
      await writeCsv(csv, start, variant)
      const copySeconds = psqlCopy(csv, k === 0)
      rmSync(csv)
      const r = runs[k]
      r.ours.push(ours.seconds)
      r.copy.push(copySeconds)
      r.ratio.push(ours.seconds / copySeconds)
      r.rss.push(ours.rss)
      r.phases.push(ours.phases)
    }
    const check = new pg.Client({ connectionString: url })
    await check.connect()
    const counts = (
      await check.query(
        'SELECT count(*) AS total, count(*) FILTER (WHERE _del IS NULL) AS current FROM bench_dl__bench.orders',
      )
    ).rows[0]
    const base = (
      await check.query('SELECT count(*) AS total, count(*) FILTER (WHERE _del IS NULL) AS current FROM baseline')
    ).rows[0]
    await check.end()
    console.log(
      `run ${rep + 1}: target rows ${counts.total} total, ${counts.current} current; baseline ${base.total}/${base.current} (expected ${2 * N} and ${Math.floor(N / 2) + N}); ${runs.map((r) => r.phases.at(-1)).join(' | ')}`,
    )
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
    rmSync(dir, { recursive: true, force: true })
  }
}
await admin.end()
console.log(
  `sql.Uploader benchmark: ${N.toLocaleString('en')} rows per load, 8 columns, PostgreSQL ${PG.replace(/\/\/[^@]*@/, '//')}, fast path ${process.env.ACHVY_SQL_FAST_PATH ?? 'default'}, medians of ${REPEAT} runs (spread)`,
)
for (const [k, r] of runs.entries()) {
  const ours = median(r.ours)
  const copy = median(r.copy)
  console.log(
    `${labels[k].padEnd(32)} ours ${ours.toFixed(2)} s (${spread(r.ours)}) = ${Math.round(N / ours).toLocaleString('en')} rows/s, peak RSS ${median(r.rss).toFixed(0)} MB | ` +
      `${k === 0 ? 'psql \\copy' : 'SQL baseline'} ${copy.toFixed(2)} s (${spread(r.copy)}) | ratio ${median(r.ratio).toFixed(2)} (${spread(r.ratio)})`,
  )
}
