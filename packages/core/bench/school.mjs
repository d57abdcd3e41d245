// School benchmark: `anchovy school ls --json` and the server's GET /api/anchovies over a generated datastore of
// many anchovies, each with a summary and many past runs, on the filesystem and (when plugin-azblob's Azurite
// helper is there) on Azurite. Each measurement is a fresh process; prints the median, the spread (min–max), peak
// RSS and the ratio to a baseline measured in the same run: on the filesystem the CLI's own start (`anchovy
// --help`), on Azurite the same school with summaries written without their inline copy (every summary then costs
// one GET, as before listings carried them). Azurite gets one fresh instance per school; its run count is the
// largest it generates within --azurite-budget seconds (it slows down as a container grows), printed with the
// result, and a second school with --azurite-runs runs shows whether the run count matters.
// Usage: npm run bench:school -w packages/core -- [--anchovies N] [--runs N] [--azurite-runs N]
//   [--azurite-max-runs N] [--azurite-budget S] [--repeat N] [--no-azurite] [--no-filesystem]
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const bin = path.join(here, '../dist/cli/bin.js')
const flag = (name, def) => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const anchovies = flag('--anchovies', 1000)
const runs = flag('--runs', 100)
const azRuns = flag('--azurite-runs', 10)
const azMaxRuns = flag('--azurite-max-runs', 100)
const azBudgetS = flag('--azurite-budget', 180)
const repeat = flag('--repeat', 5)
const { openDatastore } = await import(path.join(here, '../dist/datastore/open.js'))

/**
 * Writes the school: `n` anchovies in chains of 5 (each reads the one before), each with a summary (with its inline
 * copy unless `plain`), then up to `r` result files each, one round of `n` at a time. Stops after the round that
 * crosses `budgetS` seconds; returns the runs per anchovy written.
 */
async function generate(location, n, r, { plain = false, budgetS = Infinity } = {}) {
  const ds = await openDatastore(location)
  const now = Date.now()
  const t0 = performance.now()
  const pool = async (jobs) => {
    let next = 0
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < jobs.length) await jobs[next++]()
      }),
    )
  }
  const id = (i) => `a${String(i).padStart(5, '0')}`
  const session = (i, k) => `20250101${String(k).padStart(6, '0')}.${i.toString(16).padStart(8, '0')}`
  await pool(
    Array.from({ length: n }, (_, i) => () => {
      const failed = i % 17 === 0
      const history = Array.from({ length: 20 }, (_, k) => {
        const end = new Date(now - k * 3600_000 - (i % 60) * 1000)
        return {
          session_id: session(i, k),
          started_at: new Date(end - 5000).toISOString(),
          ended_at: end.toISOString(),
          status: failed && k === 0 ? 'ERR' : 'OK',
          exit_code: failed && k === 0 ? 1 : 0,
          host: 'bench',
          pid: 1,
          duration_ms: 5000,
          rows: 1000,
          error: failed && k === 0 ? 'table t1: connection reset' : null,
        }
      })
      const summary = {
        format: 1,
        anchovy_id: id(i),
        anchovy_user: 'bench',
        operator: i % 5 ? 'Uploader' : 'Downloader',
        upstream: i % 5 ? [id(i - 1)] : [],
        service: false,
        task_store: 'default',
        lock_ttl_s: 60,
        tables: Array.from({ length: 5 }, (_, t) => ({ name: `t${t}`, rows: 200, status: 'OK' })),
        running: null,
        last_run: history[0],
        last_ok_at: history[failed ? 1 : 0].ended_at,
        history,
        updated_at: new Date(now).toISOString(),
      }
      // what the runtime writes (writeSummary); `plain` is how summaries were stored before listings carried them
      return ds.write(`$school/bench/${id(i)}.json`, JSON.stringify(summary), plain ? undefined : { inline: true })
    }),
  )
  let k = 0
  for (; k < r && (performance.now() - t0) / 1000 < budgetS; k++) {
    await pool(
      Array.from(
        { length: n },
        (_, i) => () =>
          ds.write(
            `bench/${id(i)}/$results/sessions/${session(i, k)}.json`,
            JSON.stringify({ anchovy_id: id(i), anchovy_user: 'bench', status: 'OK', batches: [] }),
          ),
      ),
    )
  }
  await ds.close()
  return k
}

/** Runs `node args` `repeat` times; returns wall times (ms) and peak RSS (MB) from /usr/bin/time when present. */
async function measureCli(args, env) {
  const times = []
  const rss = []
  const timeBin = existsSync('/usr/bin/time')
  for (let i = 0; i < repeat; i++) {
    const t = performance.now()
    const [cmd, argv] = timeBin ? ['/usr/bin/time', ['-f', '%M', process.execPath, ...args]] : [process.execPath, args]
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = 0
    let err = ''
    child.stdout.on('data', (d) => (out += d.length))
    child.stderr.on('data', (d) => (err += d))
    const [code] = await once(child, 'close')
    times.push(performance.now() - t)
    if (code !== 0) throw new Error(`${args.join(' ')} exited ${code}: ${err}`)
    if (timeBin) rss.push(Number(err.trim().split('\n').at(-1)) / 1024)
    if (out < 100) throw new Error('school ls printed nothing')
  }
  return { times, rss }
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let n = 0
      res.on('data', (d) => (n += d.length))
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`HTTP ${res.statusCode}`))))
    })
      .on('error', reject)
      .end()
  })
}

/** Starts `school serve`, times GET /api/anchovies `repeat` times, reads the server's peak RSS. */
async function measureApi(env) {
  const child = spawn(process.execPath, [bin, 'school', 'serve', '--port', '0', '-a'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const start = Date.now()
  while (!/on (http:\/\/\S+)/.test(err)) {
    if (child.exitCode !== null || Date.now() - start > 30_000) throw new Error(`school serve did not start: ${err}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const url = /on (http:\/\/\S+)/.exec(err)[1]
  const times = []
  for (let i = 0; i < repeat; i++) {
    const t = performance.now()
    await getJson(`${url}/api/anchovies`)
    times.push(performance.now() - t)
  }
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
  child.kill('SIGTERM')
  await once(child, 'close')
  return { times, rss: hwm ? [Number(hwm[1]) / 1024] : [] }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const load = () =>
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`
const fmt = (label, { times, rss }, base) =>
  `  ${label.padEnd(34)} median ${median(times).toFixed(0).padStart(6)} ms  (${Math.min(...times).toFixed(0)}–${Math.max(...times).toFixed(0)})` +
  (rss.length ? `  peak RSS ${Math.max(...rss).toFixed(0)} MB` : '') +
  (base ? `  ${(median(times) / median(base.times)).toFixed(2)}x ${base.label}` : '')

/** Measures `school ls` and the API on one school; returns the measurements (for ratios). */
async function bench(name, location, r, opts = {}, base = {}) {
  const t = performance.now()
  const got = await generate(location, anchovies, r, opts)
  console.log(
    `${name}: ${anchovies} anchovies × ${got} runs${got < r ? ` (of ${r}: the generation budget of ${opts.budgetS} s ran out)` : ''}, generated in ${((performance.now() - t) / 1000).toFixed(1)} s; ${repeat} runs each, ${load()}`,
  )
  const env = { ACHVY_DATASTORE: location, ACHVY_USER: 'bench', ACHVY_LOG_LEVEL: 'warn' }
  const ls = await measureCli([bin, 'school', 'ls', '--json'], env)
  console.log(fmt('anchovy school ls --json', ls, base.ls))
  const api = await measureApi(env)
  console.log(fmt('GET /api/anchovies (warm server)', api, base.api))
  return { ls: { ...ls, label: base.label }, api: { ...api, label: base.label } }
}

if (!process.argv.includes('--no-filesystem')) {
  const fsRoot = mkdtempSync(path.join(tmpdir(), 'anchovies-school-bench-'))
  try {
    const help = await measureCli([bin, '--help'], {})
    console.log(`CLI start (baseline), ${load()}`)
    console.log(fmt('anchovy --help', help))
    const start = { ls: { ...help, label: 'CLI start' } }
    await bench('filesystem', fsRoot, runs, {}, start)
  } finally {
    rmSync(fsRoot, { recursive: true, force: true })
  }
}

/** Runs `fn(url)` against a fresh Azurite (its own folder and port), stopped afterwards. */
async function withAzurite(fn) {
  // plugin-azblob's helper is TypeScript (vitest loads it); a plain script starts Azurite the same way it does.
  const main = path.join(here, '../../../node_modules/azurite/dist/src/blob/main.js')
  const loc = mkdtempSync(path.join(tmpdir(), 'anchovies-school-bench-az-'))
  const port = 20000 + Math.floor(Math.random() * 20000)
  const az = spawn(
    process.execPath,
    [
      main,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      loc,
      '--silent',
      '--skipApiVersionCheck',
      '--disableTelemetry',
    ],
    { stdio: 'ignore' },
  )
  try {
    const until = Date.now() + 20_000
    for (;;) {
      const up = await new Promise((res) =>
        request(`http://127.0.0.1:${port}/devstoreaccount1?comp=list`, (r) => (r.resume(), res(true)))
          .on('error', () => res(false))
          .end(),
      )
      if (up) break
      if (Date.now() > until || az.exitCode !== null) throw new Error('azurite did not start')
      await new Promise((r) => setTimeout(r, 100))
    }
    return await fn(`http://127.0.0.1:${port}/devstoreaccount1/bench/school`)
  } finally {
    if (az.exitCode === null) {
      az.kill('SIGTERM')
      await once(az, 'close')
    }
    rmSync(loc, { recursive: true, force: true })
  }
}

const azuriteHelper = path.join(here, '../../plugin-azblob/test/azurite.ts')
if (!process.argv.includes('--no-azurite') && existsSync(azuriteHelper)) {
  const plain = await withAzurite((url) =>
    bench('azurite, summaries without inline copy (baseline)', url, azRuns, { plain: true }),
  )
  const base = { ...plain, label: 'baseline' }
  base.ls.label = base.api.label = 'baseline'
  await withAzurite((url) => bench('azurite', url, azRuns, {}, base))
  if (azMaxRuns > azRuns) await withAzurite((url) => bench('azurite', url, azMaxRuns, { budgetS: azBudgetS }, base))
}
