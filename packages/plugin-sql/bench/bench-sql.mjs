#!/usr/bin/env node
// Benchmark: N rows (default 1,000,000; BENCH_ROWS or --rows) through the datastore into a database with
// sql.Uploader, against the database's own CSV bulk load of the same rows, in the same run:
//   pg       `psql \copy … CSV`
//   mariadb  `LOAD DATA LOCAL INFILE` (mysql client)
//   sqlite   the sqlite3 CLI's `.import --csv`
// Load 1 inserts N new keys; load 2 sends N rows of which half update existing keys.
// --dialects pg,mariadb,sqlite (default pg) picks the databases; --fast-path off,on (default: the uploader's
// default) runs the uploader once per ACHVY_SQL_FAST_PATH value, each into its own target.
// --repeat N (BENCH_REPEAT) runs everything N times on fresh databases and prints medians, spread and ratios.
// Baselines for history semantics: PostgreSQL load 2 and MariaDB load 2 are hand-written SQL in one transaction
// (bulk load into a temporary table, one UPDATE … SET _del, one INSERT … SELECT); SQLite's .import cannot leave
// out the history columns without a warning per row, so both its loads import into a scratch table and copy it
// with one INSERT … SELECT (load 2 also marks the replaced rows first).
// --steps logs the uploader at debug level and prints the median time of each merge statement (the target-side
// floor: e.g. the INSERT … SELECT from the staging table into the history table).
// BENCH_PROFILE=<dir> writes a CPU profile of every anchovy process there (open in Chrome DevTools).
import { spawnSync } from 'node:child_process'
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import pg from 'pg'
import mysql from 'mysql2/promise'
import Database from 'better-sqlite3'
import { benchCsv } from './operators.mjs'

const here = nodePath.dirname(fileURLToPath(import.meta.url))
const root = nodePath.resolve(here, '../../..')
const cli = nodePath.join(root, 'packages/core/dist/cli/bin.js')
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : fallback
}
const N = Number(arg('--rows', process.env.BENCH_ROWS ?? 1_000_000))
const REPEAT = Number(arg('--repeat', process.env.BENCH_REPEAT ?? 1))
const DIALECTS = arg('--dialects', 'pg').split(',')
const MODES = arg('--fast-path', process.env.ACHVY_SQL_FAST_PATH ?? 'default').split(',')
const STEPS = process.argv.includes('--steps')
const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432'
const MY = { host: process.env.BENCH_MYSQL_HOST ?? '127.0.0.1', port: 3306, user: 'root' }
for (const d of DIALECTS) if (!['pg', 'mariadb', 'sqlite'].includes(d)) throw new Error(`unknown dialect ${d}`)
const need = { pg: 'psql', mariadb: 'mysql', sqlite: 'sqlite3' }
for (const d of DIALECTS) {
  if (spawnSync(need[d], ['--version'], { encoding: 'utf8' }).status !== 0) {
    console.error(
      `the ${d} baseline needs the ${need[d]} command-line client (Debian package ${d === 'pg' ? 'postgresql-client' : d === 'mariadb' ? 'mariadb-client' : 'sqlite3'}); install it or leave ${d} out of --dialects`,
    )
    process.exit(2)
  }
}
let dir = ''

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
      STEPS ? 'debug' : 'warn',
      ...args,
    ],
    { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 },
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (r.status !== 0) throw new Error(`anchovy ${args.join(' ')} failed (${r.status}):\n${r.stderr.slice(-4000)}`)
  const rss = Number(/BENCH_MAXRSS_KB (\d+)/.exec(r.stderr)?.[1] ?? 0) / 1024
  const steps = {}
  for (const line of r.stderr.split('\n')) {
    if (!line.includes('"merge step"')) continue
    try {
      const l = JSON.parse(line)
      steps[l.step] = (steps[l.step] ?? 0) + l.ms / 1000
    } catch {
      // not a log line
    }
  }
  let data = {}
  try {
    data =
      JSON.parse(r.stdout)
        .batches.flatMap((b) => b.done_tasks)
        .find((t) => t.task_type === 'TABLE')?.data ?? {}
  } catch {
    // a downloader run
  }
  return { seconds, rss, data, steps }
}

async function writeCsv(file, start, variant, dialect) {
  const out = createWriteStream(file)
  let buf = ''
  for (let i = 0; i < N; i++) {
    buf += benchCsv(start + i, variant, dialect)
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain')
      buf = ''
    }
  }
  out.end(buf)
  await once(out, 'finish')
}

const COLS = 'id, name, amount, qty, flag, ts, day, note'

function run(cmd, args, input) {
  const started = process.hrtime.bigint()
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 26 })
  if (r.status !== 0 || r.stderr.trim()) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.slice(0, 2000)}`)
  return Number(process.hrtime.bigint() - started) / 1e9
}

/** One database per dialect, fast-path mode and repetition: how to create it, load the baseline and count rows. */
const targets = {
  pg: (name) => {
    const url = `${PG}/${name}`
    return {
      url,
      async create(admin) {
        await admin.pg.query(`CREATE DATABASE ${name}`)
        const c = new pg.Client({ connectionString: url })
        await c.connect()
        // The equivalent table: the same columns, history columns, and a partial index on the current rows' key.
        await c.query(
          'CREATE TABLE baseline (_seq bigserial PRIMARY KEY, id bigint, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text, _del timestamptz)',
        )
        await c.query('CREATE INDEX ON baseline (id) WHERE _del IS NULL')
        await c.end()
      },
      baseline(file, first) {
        const script = first
          ? `\\copy baseline (${COLS}) FROM '${file}' CSV`
          : `BEGIN;\nCREATE TEMP TABLE stage (id bigint, name text, amount double precision, qty bigint, flag boolean, ts timestamptz, day date, note text) ON COMMIT DROP;\n\\copy stage FROM '${file}' CSV\nUPDATE baseline b SET _del = now() FROM stage s WHERE b.id = s.id AND b._del IS NULL;\nINSERT INTO baseline (${COLS}) SELECT ${COLS} FROM stage;\nCOMMIT;\n`
        const f = nodePath.join(dir, 'baseline.sql')
        writeFileSync(f, script)
        return run('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-f', f])
      },
      async counts(table) {
        const c = new pg.Client({ connectionString: url })
        await c.connect()
        try {
          const q = (t) =>
            `SELECT count(*)::int AS total, (count(*) FILTER (WHERE _del IS NULL))::int AS current FROM ${t}`
          return [(await c.query(q(table))).rows[0], (await c.query(q('baseline'))).rows[0]]
        } finally {
          await c.end()
        }
      },
      ours: 'bench_dl__bench.orders',
      env: { ACHVY_CNXN__DB__URL: url },
      async drop(admin) {
        await admin.pg.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      },
    }
  },
  mariadb: (name) => {
    const conn = () => mysql.createConnection({ ...MY, database: name })
    return {
      async create(admin) {
        await admin.my.query(`CREATE DATABASE ${name}`)
        const c = await conn()
        await c.query(
          'CREATE TABLE baseline (_seq BIGINT AUTO_INCREMENT PRIMARY KEY, id BIGINT, name VARCHAR(255), amount DOUBLE, qty BIGINT, flag BOOLEAN, ts DATETIME(6), day DATE, note VARCHAR(255), _del DATETIME(6), KEY (id, _del)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
        )
        await c.end()
      },
      baseline(file, first) {
        const load = (table) =>
          `LOAD DATA LOCAL INFILE '${file}' INTO TABLE ${table} CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' (${COLS});`
        const script = first
          ? load('baseline')
          : `BEGIN;\nCREATE TEMPORARY TABLE stage (id BIGINT, name VARCHAR(255), amount DOUBLE, qty BIGINT, flag BOOLEAN, ts DATETIME(6), day DATE, note VARCHAR(255)) ENGINE=InnoDB;\n${load('stage')}\nUPDATE baseline b JOIN stage s ON b.id = s.id SET b._del = NOW(6) WHERE b._del IS NULL;\nINSERT INTO baseline (${COLS}) SELECT ${COLS} FROM stage;\nCOMMIT;\n`
        return run('mysql', ['--local-infile=1', '-h', MY.host, '-u', MY.user, name], script)
      },
      async counts(table) {
        const c = await conn()
        try {
          const q = (t) => `SELECT count(*) AS total, CAST(SUM(_del IS NULL) AS SIGNED) AS current FROM ${t}`
          return [(await c.query(q(table)))[0][0], (await c.query(q('baseline')))[0][0]]
        } finally {
          await c.end()
        }
      },
      ours: `${name}__bench.orders`,
      env: {
        ACHVY_CNXN__DB__URL: `mysql://${MY.user}@${MY.host}:${MY.port}/${name}`,
        ACHVY_CNXN__SCHEMAS__BENCH_DL: name,
      },
      async drop(admin) {
        await admin.my.query(`DROP DATABASE IF EXISTS ${name}`)
        await admin.my.query(`DROP DATABASE IF EXISTS ${name}__bench`)
      },
    }
  },
  sqlite: (name) => {
    const file = () => nodePath.join(dir, `${name}.db`)
    return {
      async create() {
        const db = new Database(file())
        db.exec(
          'CREATE TABLE baseline (_seq INTEGER PRIMARY KEY, id INTEGER, name TEXT, amount REAL, qty INTEGER, flag BOOLEAN, ts TEXT, day TEXT, note TEXT, _del TEXT); CREATE INDEX baseline_id ON baseline (id) WHERE _del IS NULL',
        )
        db.close()
      },
      baseline(csv, first) {
        const script = [
          'CREATE TEMP TABLE stage (id INTEGER, name TEXT, amount REAL, qty INTEGER, flag BOOLEAN, ts TEXT, day TEXT, note TEXT);',
          `.import --csv --schema temp '${csv}' stage`,
          'BEGIN;',
          ...(first
            ? []
            : [
                "UPDATE baseline SET _del = strftime('%Y-%m-%dT%H:%M:%f', 'now') WHERE _del IS NULL AND id IN (SELECT id FROM stage);",
              ]),
          `INSERT INTO baseline (${COLS}) SELECT ${COLS} FROM stage;`,
          'COMMIT;',
        ].join('\n')
        return run('sqlite3', ['-bail', file()], script)
      },
      async counts(table) {
        const db = new Database(file(), { readonly: true })
        try {
          const q = (t) => `SELECT count(*) AS total, SUM(_del IS NULL) AS current FROM "${t}"`
          return [db.prepare(q(table)).get(), db.prepare(q('baseline')).get()]
        } finally {
          db.close()
        }
      },
      ours: 'bench_dl__bench__orders',
      get env() {
        return { ACHVY_CNXN__DB__URL: `sqlite:///${file()}` }
      },
      async drop() {},
    }
  },
}

const admin = {}
if (DIALECTS.includes('pg')) {
  admin.pg = new pg.Client({ connectionString: `${PG}/postgres` })
  await admin.pg.connect()
}
if (DIALECTS.includes('mariadb')) admin.my = await mysql.createConnection(MY)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const spread = (xs, d = 2) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`
const labels = ['load 1 (new keys)', 'load 2 (half the keys updated)']
const BASELINE = {
  pg: ['psql \\copy', 'SQL baseline'],
  mariadb: ['LOAD DATA', 'SQL baseline'],
  sqlite: ['.import', '.import + SQL'],
}
/** results[dialect][mode][load] */
const results = {}
const baselines = {}
for (const d of DIALECTS) {
  results[d] = Object.fromEntries(
    MODES.map((m) => [m, labels.map(() => ({ s: [], rss: [], stage: [], merge: [], fast: [], steps: {} }))]),
  )
  baselines[d] = labels.map(() => [])
}
for (let rep = 0; rep < REPEAT; rep++) {
  dir = mkdtempSync(nodePath.join(tmpdir(), 'anch-bench-'))
  const dbs = []
  try {
    for (const d of DIALECTS)
      for (const m of MODES) {
        const t = targets[d](`anch_bench_${process.pid}_${rep}_${m}`)
        await t.create(admin)
        dbs.push({ d, m, t })
      }
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
      for (const d of DIALECTS) {
        // The same rows as CSV; the baseline loads into the first mode's database (its own table).
        const csv = nodePath.join(dir, `load-${variant}-${d}.csv`)
        await writeCsv(csv, start, variant, d)
        for (const { m, t } of dbs.filter((x) => x.d === d)) {
          const env = { ...t.env, ...(m === 'default' ? {} : { ACHVY_SQL_FAST_PATH: m }) }
          const ours = anchovy(['-op', 'sql.Uploader', '--id', `bench_up_${d}_${m}`, '-U', 'bench_dl'], env)
          const r = results[d][m][k]
          r.s.push(ours.seconds)
          r.rss.push(ours.rss)
          r.stage.push((ours.data.stage_ms ?? 0) / 1000)
          r.merge.push((ours.data.merge_ms ?? 0) / 1000)
          r.fast.push(Number(ours.data.fast_rows ?? 0))
          for (const [s, v] of Object.entries(ours.steps)) (r.steps[s] ??= []).push(v)
        }
        baselines[d][k].push(dbs.find((x) => x.d === d).t.baseline(csv, k === 0))
        rmSync(csv)
      }
    }
    for (const { d, m, t } of dbs) {
      const [ours, base] = await t.counts(t.ours)
      const ok = Number(ours.total) === 2 * N && Number(ours.current) === Math.floor(N / 2) + N
      const first = dbs.find((x) => x.d === d).m === m
      const baseOk = !first || (Number(base.total) === 2 * N && Number(base.current) === Math.floor(N / 2) + N)
      if (!ok || !baseOk)
        throw new Error(
          `${d} ${m}: target ${ours.total}/${ours.current}, baseline ${base.total}/${base.current} rows (total/current); expected ${2 * N}/${Math.floor(N / 2) + N}`,
        )
    }
    console.log(
      `run ${rep + 1}: every target and baseline holds ${2 * N} rows, ${Math.floor(N / 2) + N} current; load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    )
  } finally {
    for (const { t } of dbs) await t.drop(admin).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
}
await admin.pg?.end()
await admin.my?.end()
console.log(
  `sql.Uploader benchmark: ${N.toLocaleString('en')} rows per load, 8 columns, medians of ${REPEAT} runs (spread); load average now ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
)
for (const d of DIALECTS) {
  for (const [k, label] of labels.entries()) {
    const base = baselines[d][k]
    console.log(`${d} ${label}: ${BASELINE[d][k]} ${median(base).toFixed(2)} s (${spread(base)})`)
    for (const m of MODES) {
      const r = results[d][m][k]
      const ratio = r.s.map((s, i) => s / base[i])
      const steps = Object.entries(r.steps)
        .map(([s, v]) => `${s} ${median(v).toFixed(2)}`)
        .join(', ')
      console.log(
        `  fast path ${m.padEnd(7)} ours ${median(r.s).toFixed(2)} s (${spread(r.s)}) = ${Math.round(N / median(r.s)).toLocaleString('en')} rows/s, ratio ${median(ratio).toFixed(2)} (${spread(ratio)}), peak RSS ${median(r.rss).toFixed(0)} MB (${spread(r.rss, 0)}), read+stage ${median(r.stage).toFixed(1)} s, merge ${median(r.merge).toFixed(1)} s, fast rows ${median(r.fast)}${steps ? ` | merge steps (s): ${steps}` : ''}`,
      )
    }
  }
}
