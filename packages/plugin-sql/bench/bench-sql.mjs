#!/usr/bin/env node
// Benchmark: N rows (default 1,000,000; BENCH_ROWS or --rows) through the datastore into PostgreSQL with
// sql.Uploader, against `psql \copy` of the same rows as CSV into an equivalent table, in the same run.
// Load 1 inserts N new keys; load 2 sends N rows of which half update existing keys.
// BENCH_PROFILE=<dir> writes a CPU profile of every anchovy process there (open in Chrome DevTools).
import { spawnSync } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs'
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
const N = Number(argRows > 0 ? process.argv[argRows + 1] : process.env.BENCH_ROWS ?? 1_000_000)
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432'
const dbName = `anch_bench_${process.pid}`
const dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-bench-'))
const url = `${PG}/${dbName}`

function anchovy(args, env = {}) {
  const started = process.hrtime.bigint()
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE] : []
  const r = spawnSync(process.execPath, [...profile, '--import', nodePath.join(here, 'rss.mjs'), cli, 'start', '--datastore', dir, '-u', 'bench', '--log-level', 'warn', ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (r.status !== 0) throw new Error(`anchovy ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-4000)}`)
  const rss = Number(/BENCH_MAXRSS_KB (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024
  let phases = ''
  try {
    const task = JSON.parse(r.stdout).batches.flatMap((b) => b.done_tasks).find((t) => t.task_type === 'TABLE')
    if (task?.data?.stage_ms !== undefined) phases = `read+stage ${(task.data.stage_ms / 1000).toFixed(1)} s, merge ${(task.data.merge_ms / 1000).toFixed(1)} s`
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

function psqlCopy(file) {
  const started = process.hrtime.bigint()
  const r = spawnSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-c', `\\copy baseline FROM '${file}' CSV`], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

const admin = new pg.Client({ connectionString: `${PG}/postgres` })
await admin.connect()
await admin.query(`CREATE DATABASE ${dbName}`)
try {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  // The equivalent table: the same columns and types, and an index on the key.
  await c.query(`CREATE TABLE baseline (id bigint, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text)`)
  await c.query('CREATE INDEX ON baseline (id)')
  await c.end()

  const config = 'tbls:\n  orders:\n    unique_by: id\n    sort_by: -ts\n'
  const gen = nodePath.join(here, 'operators.mjs') + ':Generate'
  const report = []
  for (const [label, start, variant] of [['load 1 (new keys)', 0, 0], ['load 2 (half the keys updated)', Math.floor(N / 2), 1]]) {
    const t0 = process.hrtime.bigint()
    anchovy(['-op', gen, '--id', 'bench_dl', '-c', config], { BENCH_ROWS: String(N), BENCH_START: String(start), BENCH_VARIANT: String(variant) })
    const genSeconds = Number(process.hrtime.bigint() - t0) / 1e9
    const ours = anchovy(['-op', 'sql.Uploader', '--id', 'bench_up', '-U', 'bench_dl'], { ACHVY_CNXN__DB__URL: url })
    const csv = nodePath.join(dir, `load-${variant}.csv`)
    await writeCsv(csv, start, variant)
    const copySeconds = psqlCopy(csv)
    rmSync(csv)
    report.push({ label, genSeconds, ours, copySeconds })
  }
  const check = new pg.Client({ connectionString: url })
  await check.connect()
  const counts = (await check.query('SELECT count(*) AS total, count(*) FILTER (WHERE _del IS NULL) AS current FROM bench_dl__bench.orders')).rows[0]
  await check.end()

  console.log(`sql.Uploader benchmark: ${N.toLocaleString('en')} rows per load, 8 columns, PostgreSQL ${PG.replace(/\/\/[^@]*@/, '//')}`)
  for (const r of report) {
    console.log(
      `${r.label.padEnd(32)} ours ${r.ours.seconds.toFixed(2)} s = ${Math.round(N / r.ours.seconds).toLocaleString('en')} rows/s, peak RSS ${r.ours.rss.toFixed(0)} MB | ` +
        `psql \\copy ${r.copySeconds.toFixed(2)} s = ${Math.round(N / r.copySeconds).toLocaleString('en')} rows/s | ratio ours/copy ${(r.ours.seconds / r.copySeconds).toFixed(2)} | (${r.ours.phases}; download ${r.genSeconds.toFixed(1)} s)`,
    )
  }
  console.log(`target rows: ${counts.total} total, ${counts.current} current (expected ${2 * N} and ${Math.floor(N / 2) + N})`)
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  await admin.end()
  rmSync(dir, { recursive: true, force: true })
}
