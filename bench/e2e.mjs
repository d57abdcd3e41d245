// End-to-end benchmark: a CSV of N rows served by a local sshd → sftp.CsvDownloader → datastore → sql.Uploader →
// PostgreSQL, against the baseline `sftp get` + `psql \copy` of the same file, in the same run.
//
//   npm run bench                      1,000,000 rows
//   npm run bench -- --rows 5000000    another size
//   npm run bench -- --repeat 5        medians of 5 runs (default 3), with the spread
//   npm run bench -- --pipelined       also the pipelined mode: the downloader commits every --batch rows (100,000)
//                                      while an uploader service with --follow loads each commit as it lands
//   npm run bench -- --profile DIR     also write V8 CPU profiles of both anchovy processes to DIR
//   npm run bench -- --json            one JSON line instead of the table
//
// Needs: /usr/sbin/sshd and sftp (openssh-server/-client), psql and a PostgreSQL server at 127.0.0.1:5432 with
// trust auth for user postgres (PGHOST/PGPORT/PGUSER override), /usr/bin/time (package time), and a built repo.
import { execFileSync, spawn } from 'node:child_process'
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { cpus, hostname, tmpdir, totalmem, userInfo } from 'node:os'
import * as net from 'node:net'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { rng } from '../test/support/rng.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const bin = path.join(repo, 'packages/core/dist/cli/bin.js')

function parseArgs(argv) {
  const out = { rows: 1_000_000, profile: null, json: false, keep: false, repeat: 3, pipelined: false, batch: 100_000 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--rows') out.rows = Number(String(argv[++i]).replace(/[_,]/g, ''))
    else if (a.startsWith('--rows=')) out.rows = Number(a.slice(7).replace(/[_,]/g, ''))
    else if (a === '--profile') out.profile = path.resolve(argv[++i] ?? 'bench-profiles')
    else if (a === '--json') out.json = true
    else if (a === '--repeat') out.repeat = Number(argv[++i])
    else if (a === '--pipelined') out.pipelined = true
    else if (a === '--batch') out.batch = Number(String(argv[++i]).replace(/[_,]/g, ''))
    else if (a === '--keep') out.keep = true
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node bench/e2e.mjs [--rows N] [--repeat N] [--pipelined [--batch ROWS]] [--profile DIR] [--json] [--keep]',
      )
      process.exit(0)
    } else {
      console.error(`unknown argument ${a}`)
      process.exit(2)
    }
  }
  if (!Number.isSafeInteger(out.repeat) || out.repeat < 1 || !Number.isSafeInteger(out.batch) || out.batch < 1) {
    console.error('--repeat and --batch must be positive integers')
    process.exit(2)
  }
  if (!Number.isSafeInteger(out.rows) || out.rows < 1) {
    console.error('--rows must be a positive integer')
    process.exit(2)
  }
  return out
}

const opts = parseArgs(process.argv.slice(2))
const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: process.env.PGPORT ?? '5432',
  user: process.env.PGUSER ?? 'postgres',
}
const say = (msg) => opts.json || console.error(msg)

for (const [file, pkg] of [
  ['/usr/sbin/sshd', 'openssh-server'],
  ['/usr/bin/time', 'time'],
]) {
  if (!existsSync(file)) {
    console.error(`${file} is missing: apt-get install -y ${pkg}`)
    process.exit(2)
  }
}
for (const cmd of ['sftp', 'psql', 'ssh-keygen']) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
  } catch {
    console.error(`${cmd} is missing (openssh-client, postgresql-client)`)
    process.exit(2)
  }
}
if (!existsSync(bin)) {
  console.error('the repo is not built: npm run build')
  process.exit(2)
}

const work = mkdtempSync(path.join(tmpdir(), 'anch-bench-'))
const cleanups = []
let exiting = false
async function cleanup() {
  if (exiting) return
  exiting = true
  for (const fn of cleanups.reverse()) {
    try {
      await fn()
    } catch {
      // best effort
    }
  }
  if (!opts.keep) rmSync(work, { recursive: true, force: true })
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)))

const CUSTOMERS = [
  'Anchovy Ltd',
  'Sardine & Sons',
  'Herring, Mackerel and Co',
  'Ünïcödé Fisch GmbH',
  'say "cheese"',
  'Trout',
  'Pike Partners',
  'Smelt',
]
const HEADER = 'id,order_ref,customer,qty,price,created_at,active,note'

/** Writes the CSV: 8 columns (int, str, str with quoting, int, float, datetime, bool, nullable str). */
async function generate(file, rows) {
  const random = rng(42)
  const out = createWriteStream(file)
  const base = Date.UTC(2024, 0, 1)
  let buf = `${HEADER}\n`
  for (let i = 1; i <= rows; i++) {
    let customer = CUSTOMERS[Math.floor(random() * CUSTOMERS.length)]
    if (/[",]/.test(customer)) customer = `"${customer.replace(/"/g, '""')}"`
    const ts = new Date(base + Math.floor(random() * 31_536_000) * 1000).toISOString()
    const note = random() < 0.3 ? '' : `note ${Math.floor(random() * 100_000)}`
    buf += `${i},ORD-${String(i).padStart(9, '0')},${customer},${1 + Math.floor(random() * 50)},${(random() * 1000).toFixed(2)},${ts},${random() < 0.5 ? 'true' : 'false'},${note}\n`
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await new Promise((r) => out.once('drain', r))
      buf = ''
    }
  }
  out.end(buf)
  await new Promise((r, j) => out.on('finish', r).on('error', j))
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

function banner(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const done = (ok) => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(1000, () => done(false))
    s.on('data', (d) => done(d.toString().startsWith('SSH-')))
    s.on('error', () => done(false))
  })
}

/** An OpenSSH server on a free loopback port that lets the current user in with a throwaway key. */
async function startSshd(dir) {
  const user = userInfo().username
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')])
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')])
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_key.pub')), { mode: 0o600 })
  const port = await freePort()
  const config = path.join(dir, 'sshd_config')
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'PubkeyAuthentication yes',
      `PermitRootLogin ${user === 'root' ? 'prohibit-password' : 'no'}`,
      `AllowUsers ${user}`,
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  )
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  cleanups.push(() => child.kill('SIGTERM'))
  const deadline = Date.now() + 10_000
  while (!(await banner(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const knownHosts = path.join(dir, 'known_hosts')
  writeFileSync(
    knownHosts,
    `[127.0.0.1]:${port} ${readFileSync(path.join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`,
  )
  return { port, user, key: path.join(dir, 'client_key'), knownHosts }
}

/** Runs a command under /usr/bin/time; resolves wall time (ms), peak RSS (MB), stdout and the exit code. */
function timed(cmd, args, { env, cwd, input } = {}) {
  const rssFile = path.join(work, `rss-${Math.random().toString(36).slice(2)}`)
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint()
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, cmd, ...args], {
      env: env ?? process.env,
      cwd: cwd ?? work,
      stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    if (input) child.stdin.end(input)
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop())
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${stderr.slice(-4000)}`))
      else resolve({ ms, rssMb: kb / 1024, stdout, stderr })
    })
  })
}

function psql(db, sql) {
  return execFileSync(
    'psql',
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', PG.host, '-p', PG.port, '-U', PG.user, '-d', db, '-At', '-c', sql],
    {
      encoding: 'utf8',
      env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
    },
  ).trim()
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
/** Median and spread (min–max) of one measure over the repeats. */
const stat = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) })

/** Polls `probe` every 100 ms until it returns true; resolves the time it did (ms since `since`). */
async function until(probe, since, limitMs, what) {
  for (;;) {
    if (await probe()) return Number(process.hrtime.bigint() - since) / 1e6
    if (Number(process.hrtime.bigint() - since) / 1e6 > limitMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

async function main() {
  say(
    `anchovies end-to-end benchmark: ${opts.rows.toLocaleString('en-US')} rows × ${opts.repeat} repeats${opts.pipelined ? ' (+ pipelined)' : ''} on ${hostname()} (${cpus().length} × ${cpus()[0]?.model.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version})`,
  )
  const served = path.join(work, 'served')
  mkdirSync(path.join(served, 'bench'), { recursive: true })
  const csv = path.join(served, 'bench', 'orders.csv')
  const t = Date.now()
  await generate(csv, opts.rows)
  const bytes = statSync(csv).size
  say(`generated ${csv} (${(bytes / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - t) / 1000).toFixed(1)} s`)

  const sshd = await startSshd(work)
  const db = `anch_bench_${Math.random().toString(16).slice(2, 10)}`
  psql('postgres', `CREATE DATABASE ${db}`)
  cleanups.push(() => psql('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`))

  const config = path.join(work, 'bench.yaml')
  writeFileSync(
    config,
    [
      'tbls:',
      '  orders:',
      '    path: /bench/*.csv',
      '    columns: {id: int, order_ref: str, customer: str, qty: int, price: float, created_at: datetime, active: bool, note: str}',
      '',
    ].join('\n'),
  )
  // ACHVY_* settings of the bench's own environment (e.g. ACHVY_SQL_FAST_PATH=on) reach both anchovies, so one
  // bench compares settings; the bench's own values below win for what it must control.
  const passed = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('ACHVY_')))
  const envFor = (datastore) => ({
    ...passed,
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? work,
    ACHVY_DATASTORE: datastore,
    ACHVY_USER: 'bench',
    ACHVY_LOG_LEVEL: 'warn',
    ACHVY_CNXN__URI: `sftp://${sshd.user}@127.0.0.1:${sshd.port}${served}`,
    ACHVY_CNXN__PPK_PATH: sshd.key,
    ACHVY_CNXN__KNOWN_HOSTS: sshd.knownHosts,
    ACHVY_CNXN__DB__URL: `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`,
  })
  const node = (name) =>
    opts.profile ? ['--cpu-prof', '--cpu-prof-dir', opts.profile, '--cpu-prof-name', `${name}.cpuprofile`] : []
  if (opts.profile) mkdirSync(opts.profile, { recursive: true })
  const m = { dl: [], up: [], get: [], copy: [], dlRss: [], upRss: [], pipe: [], pipeRss: [], dsBytes: 0 }

  for (let r = 1; r <= opts.repeat; r++) {
    // --- ours: downloader then uploader, each its own process, each repeat from an empty datastore and target
    const datastore = path.join(work, `datastore-${r}`)
    const env = envFor(datastore)
    psql(
      db,
      'DROP SCHEMA IF EXISTS bench_dl__bench CASCADE; DROP SCHEMA IF EXISTS bench_pl__bench CASCADE; DROP TABLE IF EXISTS baseline',
    )
    say(`[${r}/${opts.repeat}] sftp.CsvDownloader …`)
    const dl = await timed(
      process.execPath,
      [
        ...node(`downloader-${r}`),
        bin,
        'start',
        '-op',
        'sftp.CsvDownloader',
        '--id',
        'bench_dl',
        '--config-file',
        config,
      ],
      { env },
    )
    say(`[${r}/${opts.repeat}] sql.Uploader …`)
    const up = await timed(
      process.execPath,
      [...node(`uploader-${r}`), bin, 'start', '-op', 'sql.Uploader', '--id', 'bench_up', '-U', 'bench_dl'],
      { env },
    )
    const loaded = Number(psql(db, 'SELECT count(*) FROM bench_dl__bench.orders WHERE _del IS NULL'))
    if (loaded !== opts.rows) throw new Error(`the uploader loaded ${loaded} rows, expected ${opts.rows}`)
    m.dsBytes = Number(execFileSync('du', ['-sb', datastore], { encoding: 'utf8' }).split(/\s/)[0])
    rmSync(datastore, { recursive: true, force: true })
    psql(db, 'DROP SCHEMA IF EXISTS bench_dl__bench CASCADE')

    // --- baseline: sftp get, then psql \copy into an equivalent table
    const local = path.join(work, 'baseline.csv')
    say(`[${r}/${opts.repeat}] baseline sftp get …`)
    const get = await timed(
      'sftp',
      [
        '-q',
        '-i',
        sshd.key,
        '-P',
        String(sshd.port),
        '-o',
        `UserKnownHostsFile=${sshd.knownHosts}`,
        '-o',
        'BatchMode=yes',
        '-b',
        '-',
        `${sshd.user}@127.0.0.1`,
      ],
      {
        input: `get ${csv} ${local}\n`,
      },
    )
    if (statSync(local).size !== bytes) throw new Error('sftp get fetched a different size')
    psql(
      db,
      'CREATE TABLE baseline (id bigint, order_ref text, customer text, qty bigint, price double precision, created_at timestamptz, active boolean, note text)',
    )
    say(`[${r}/${opts.repeat}] baseline psql \\copy …`)
    const copy = await timed('psql', [
      '-X',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      PG.host,
      '-p',
      PG.port,
      '-U',
      PG.user,
      '-d',
      db,
      '-c',
      `\\copy baseline FROM '${local}' WITH (FORMAT csv, HEADER true)`,
    ])
    const copied = Number(psql(db, 'SELECT count(*) FROM baseline'))
    if (copied !== opts.rows) throw new Error(`\\copy loaded ${copied} rows, expected ${opts.rows}`)
    rmSync(local, { force: true })
    m.dl.push(dl.ms)
    m.up.push(up.ms)
    m.get.push(get.ms)
    m.copy.push(copy.ms)
    m.dlRss.push(dl.rssMb)
    m.upRss.push(up.rssMb)

    if (opts.pipelined) {
      // --- pipelined: the downloader commits every --batch rows; an uploader service with --follow loads each
      // commit as soon as it lands. Measured from the start of both until every row is in the target.
      const pds = path.join(work, `pipelined-${r}`)
      const penv = { ...envFor(pds), ACHVY_BATCH_MAX_ROWS: String(opts.batch) }
      say(`[${r}/${opts.repeat}] pipelined: downloader + uploader --follow …`)
      const since = process.hrtime.bigint()
      // Spawned directly (not under /usr/bin/time, which would not pass SIGTERM on): its peak RSS is read from
      // /proc before it is stopped.
      const svc = spawn(
        process.execPath,
        [
          bin,
          'start',
          '-op',
          'sql.Uploader',
          '--id',
          'bench_pl',
          '-U',
          'bench_dl',
          '-S',
          '--follow',
          '--interval',
          '60',
        ],
        { env: penv, cwd: work, stdio: ['ignore', 'ignore', 'pipe'] },
      )
      let svcErr = ''
      svc.stderr.on('data', (d) => (svcErr = (svcErr + d).slice(-4000)))
      const svcExit = new Promise((resolve) => svc.on('close', resolve))
      const pdl = await timed(
        process.execPath,
        [bin, 'start', '-op', 'sftp.CsvDownloader', '--id', 'bench_dl', '--config-file', config],
        { env: penv },
      )
      const count = () => {
        try {
          return Number(psql(db, 'SELECT count(*) FROM bench_dl__bench.orders WHERE _del IS NULL'))
        } catch {
          return 0 // the uploader has not created the table yet
        }
      }
      const ms = await until(
        () =>
          svc.exitCode === null
            ? count() === opts.rows
            : Promise.reject(new Error(`the pipelined uploader exited: ${svcErr}`)),
        since,
        30 * 60_000,
        'the pipelined uploader',
      )
      const upKb = Number(/VmHWM:\s*(\d+)/.exec(readFileSync(`/proc/${svc.pid}/status`, 'utf8'))?.[1] ?? 0)
      svc.kill('SIGTERM')
      await svcExit
      m.pipe.push(ms)
      m.pipeRss.push(Math.max(pdl.rssMb, upKb / 1024))
      rmSync(pds, { recursive: true, force: true })
      psql(db, 'DROP SCHEMA IF EXISTS bench_dl__bench CASCADE')
    }
  }

  const S = Object.fromEntries(
    Object.entries(m)
      .filter(([, v]) => Array.isArray(v) && v.length)
      .map(([k, v]) => [k, stat(v)]),
  )
  const ours = median(m.dl.map((d, i) => d + m.up[i]))
  const base = median(m.get.map((g, i) => g + m.copy[i]))
  const rate = (ms) => Math.round(opts.rows / (ms / 1000))
  const sec = (ms) => +(ms / 1000).toFixed(2)
  const spread = (st) => `${sec(st.min)}–${sec(st.max)}`
  const result = {
    rows: opts.rows,
    repeat: opts.repeat,
    csv_mib: +(bytes / 2 ** 20).toFixed(1),
    datastore_mib: +(m.dsBytes / 2 ** 20).toFixed(1),
    downloader: {
      s: sec(S.dl.median),
      spread_s: spread(S.dl),
      rows_per_s: rate(S.dl.median),
      peak_rss_mb: Math.round(S.dlRss.max),
    },
    uploader: {
      s: sec(S.up.median),
      spread_s: spread(S.up),
      rows_per_s: rate(S.up.median),
      peak_rss_mb: Math.round(S.upRss.max),
    },
    end_to_end: { s: sec(ours), rows_per_s: rate(ours) },
    pipelined: S.pipe
      ? {
          s: sec(S.pipe.median),
          spread_s: spread(S.pipe),
          rows_per_s: rate(S.pipe.median),
          peak_rss_mb: Math.round(S.pipeRss.max),
          batch_rows: opts.batch,
        }
      : undefined,
    baseline_sftp_get: { s: sec(S.get.median), spread_s: spread(S.get) },
    baseline_psql_copy: { s: sec(S.copy.median), spread_s: spread(S.copy) },
    baseline: { s: sec(base), rows_per_s: rate(base) },
    settings: passed,
    // ratios of medians
    ratio: {
      download: +(S.dl.median / S.get.median).toFixed(2),
      upload: +(S.up.median / S.copy.median).toFixed(2),
      end_to_end: +(ours / base).toFixed(2),
      pipelined: S.pipe ? +(S.pipe.median / base).toFixed(2) : undefined,
    },
    machine: {
      host: hostname(),
      cpus: cpus().length,
      cpu: cpus()[0]?.model.trim(),
      mem_gib: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
  }
  if (opts.json) {
    console.log(JSON.stringify(result))
    return
  }
  const row = (stage, s, sp, r, rss, ratio) =>
    `| ${stage.padEnd(28)} | ${s.padStart(8)} | ${sp.padStart(13)} | ${r.padStart(10)} | ${rss.padStart(13)} | ${ratio.padStart(14)} |`
  const f = (n) => n.toLocaleString('en-US')
  console.log(
    `\n${f(opts.rows)} rows, ${result.csv_mib} MiB CSV (datastore: ${result.datastore_mib} MiB gzip JSON lines); medians of ${opts.repeat} runs\n`,
  )
  const settings = Object.entries(passed).map(([k, v]) => `${k}=${v}`)
  if (settings.length) console.log(`settings from the environment: ${settings.join(' ')}\n`)
  console.log(row('stage', 'median s', 'spread s', 'rows/s', 'peak RSS (MB)', 'ours/baseline'))
  console.log(row('-'.repeat(28), '-------:', '------------:', '---------:', '------------:', '-------------:'))
  console.log(
    row(
      'sftp.CsvDownloader',
      result.downloader.s.toFixed(2),
      result.downloader.spread_s,
      f(result.downloader.rows_per_s),
      String(result.downloader.peak_rss_mb),
      result.ratio.download.toFixed(2),
    ),
  )
  console.log(
    row(
      'sql.Uploader (PostgreSQL)',
      result.uploader.s.toFixed(2),
      result.uploader.spread_s,
      f(result.uploader.rows_per_s),
      String(result.uploader.peak_rss_mb),
      result.ratio.upload.toFixed(2),
    ),
  )
  console.log(
    row(
      'anchovies, one after other',
      result.end_to_end.s.toFixed(2),
      '',
      f(result.end_to_end.rows_per_s),
      String(Math.max(result.downloader.peak_rss_mb, result.uploader.peak_rss_mb)),
      result.ratio.end_to_end.toFixed(2),
    ),
  )
  if (result.pipelined)
    console.log(
      row(
        `anchovies, pipelined`,
        result.pipelined.s.toFixed(2),
        result.pipelined.spread_s,
        f(result.pipelined.rows_per_s),
        String(result.pipelined.peak_rss_mb),
        result.ratio.pipelined.toFixed(2),
      ),
    )
  console.log(
    row(
      'baseline sftp get',
      result.baseline_sftp_get.s.toFixed(2),
      result.baseline_sftp_get.spread_s,
      f(rate(S.get.median)),
      '',
      '',
    ),
  )
  console.log(
    row(
      'baseline psql \\copy',
      result.baseline_psql_copy.s.toFixed(2),
      result.baseline_psql_copy.spread_s,
      f(rate(S.copy.median)),
      '',
      '',
    ),
  )
  console.log(row('baseline end to end', result.baseline.s.toFixed(2), '', f(result.baseline.rows_per_s), '', ''))
  const goals = [
    ['download ≤ 2.5× sftp get', result.ratio.download <= 2.5],
    ['upload ≤ 1.5× psql \\copy', result.ratio.upload <= 1.5],
    ['end to end ≤ 2.5×', result.ratio.end_to_end <= 2.5],
    ...(result.pipelined
      ? [
          ['pipelined ≤ 1.7×', result.ratio.pipelined <= 1.7],
          ['≥ 300,000 rows/s pipelined', result.pipelined.rows_per_s >= 300_000],
        ]
      : []),
    [
      'peak RSS < 200 MB',
      Math.max(result.downloader.peak_rss_mb, result.uploader.peak_rss_mb, result.pipelined?.peak_rss_mb ?? 0) < 200,
    ],
  ]
  console.log(`\ngoals: ${goals.map(([g, ok]) => `${ok ? 'met' : 'MISSED'}: ${g}`).join('; ')}`)
  console.log(
    `machine: ${result.machine.cpus} × ${result.machine.cpu}, ${result.machine.mem_gib} GiB, Node ${result.machine.node}`,
  )
  if (opts.profile)
    console.log(
      `CPU profiles: ${opts.profile}/downloader-N.cpuprofile, uploader-N.cpuprofile (open in Chrome DevTools)`,
    )
}

try {
  await main()
} catch (err) {
  console.error(err instanceof Error ? err.message : err)
  process.exitCode = 1
} finally {
  await cleanup()
}
