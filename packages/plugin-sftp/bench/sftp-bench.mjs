#!/usr/bin/env node
// Benchmark (not a test): sftp.CsvDownloader vs OpenSSH's `sftp get` on one big CSV served by a local sshd.
// Usage: npm run bench -w packages/plugin-sftp -- [--rows 1000000] [--typed] [--repeat 1] [--keep]
// With --repeat N every step runs N times, interleaved; the median of each is reported with the spread (min–max)
// and the highest peak RSS, and ratios are ratios of medians.
// Needs root (sshd with a throwaway host key, key login as root on 127.0.0.1) and a built repo (npm run build).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { generate, measure, median, startSshd } from './bench-lib.mjs'

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const ROWS = Number(opt('rows', '1000000'))
const TYPED = args.includes('--typed')
const KEEP = args.includes('--keep')
const REPEAT = Math.max(1, Number(opt('repeat', '1')))
const here = path.dirname(fileURLToPath(import.meta.url))
const BIN = path.resolve(here, '../../core/dist/cli/bin.js')
if (!existsSync(BIN)) throw new Error(`build first: ${BIN} is missing (npm run build)`)
if (process.getuid() !== 0) throw new Error('run as root (the benchmark starts sshd)')

const dir = mkdtempSync(path.join(tmpdir(), 'anchovies-bench-'))
const served = path.join(dir, 'served')
mkdirSync(path.join(served, 'sales'), { recursive: true })
let sshd

async function main() {
  // 1. The file: ~100 bytes a row.
  const file = path.join(served, 'sales', 'big.csv')
  await generate(file, ROWS)
  const bytes = statSync(file).size
  const old = Date.now() / 1000 - 3600
  execFileSync('touch', ['-d', `@${Math.floor(old)}`, file])

  // 2. sshd on a free port, key login as root.
  const ssh = await startSshd(dir)
  sshd = ssh.sshd
  const { port, key } = ssh

  const cnxnEnv = {
    ACHVY_CNXN__URI: `sftp://root@127.0.0.1:${port}${served}`,
    ACHVY_CNXN__PPK_PATH: key,
    ACHVY_CNXN__HOST_KEY: ssh.hostKey,
  }
  const columns = TYPED ? '\n    columns: { id: int, amount: float, created_at: datetime, day: date }' : ''
  const steps = {
    // 3. Baseline: OpenSSH sftp get to a local file.
    base: async () => {
      const out = path.join(dir, 'baseline.csv')
      const m = await measure(
        'sftp',
        [
          '-q',
          '-b',
          '-',
          '-i',
          key,
          '-P',
          String(port),
          '-o',
          'StrictHostKeyChecking=no',
          '-o',
          'UserKnownHostsFile=/dev/null',
          'root@127.0.0.1',
        ],
        {},
        `get ${file} ${out}\n`,
      )
      if (statSync(out).size !== bytes) throw new Error('baseline: sftp get did not fetch the whole file')
      rmSync(out)
      return m
    },
    // 4. The plugin's transfer alone (bytes counted and dropped), then download + parse (+ convert with --typed).
    transfer: async () => {
      const m = await measure(process.execPath, [path.join(here, 'transfer-only.mjs')], {
        ...cnxnEnv,
        BENCH_PATH: '/sales/*.csv',
      })
      if (JSON.parse(m.stdout).bytes !== bytes) throw new Error(`transfer-only: wrong byte count ${m.stdout}`)
      return m
    },
    plugin: async () => {
      const m = await measure(process.execPath, [path.join(here, 'read-only.mjs')], {
        ...cnxnEnv,
        BENCH_PATH: '/sales/*.csv',
        ...(TYPED ? { BENCH_TYPED: '1' } : {}),
      })
      if (JSON.parse(m.stdout).rows !== ROWS) throw new Error(`read-only: wrong row count ${m.stdout}`)
      return m
    },
    // 5. End to end: anchovy start -op sftp.CsvDownloader into a fresh datastore.
    ours: async () => {
      const work = path.join(dir, 'work')
      const ds = path.join(dir, 'ds')
      rmSync(work, { recursive: true, force: true })
      rmSync(ds, { recursive: true, force: true })
      mkdirSync(work)
      writeFileSync(path.join(work, 'config.yaml'), `tbls:\n  sales:\n    path: /sales/*.csv${columns}\n`)
      const m = await measure(
        process.execPath,
        [BIN, 'start', '-op', 'sftp.CsvDownloader', '--id', 'bench', '--datastore', ds, '--log-level', 'warn'],
        {
          ACHVY_USER: 'bench',
          ...cnxnEnv,
        },
        undefined,
        work,
      )
      const result = JSON.parse(m.stdout)
      const task = result.batches[0].done_tasks.find((t) => t.task_type === 'TABLE')
      if (result.status !== 'OK' || task.data.rows !== ROWS)
        throw new Error(`the run failed: ${m.stdout.slice(0, 2000)} ${m.stderr.slice(0, 2000)}`)
      return m
    },
  }
  const runs = {}
  for (let r = 0; r < REPEAT; r++) {
    for (const [name, step] of Object.entries(steps)) (runs[name] ??= []).push(await step())
  }
  const summary = (ms) => ({
    ms: median(ms.map((m) => m.ms)),
    min: Math.min(...ms.map((m) => m.ms)),
    max: Math.max(...ms.map((m) => m.ms)),
    peakKb: Math.max(...ms.map((m) => m.peakKb)),
  })
  const { base, transfer, plugin, ours } = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, summary(v)]))

  const mb = bytes / 1e6
  const row = (name, m) =>
    `${name.padEnd(28)} ${(m.ms / 1000).toFixed(2).padStart(7)} s${REPEAT > 1 ? ` (${(m.min / 1000).toFixed(2)}–${(m.max / 1000).toFixed(2)})` : ''} ${(mb / (m.ms / 1000)).toFixed(1).padStart(7)} MB/s ${String(Math.round(ROWS / (m.ms / 1000))).padStart(9)} rows/s  peak RSS ${(m.peakKb / 1024).toFixed(0).padStart(4)} MB`
  console.log(
    `file: ${ROWS.toLocaleString('en')} rows, ${mb.toFixed(1)} MB${TYPED ? ' (typed columns)' : ''}; node ${process.version}${REPEAT > 1 ? `; medians of ${REPEAT} runs (spread min–max; peak RSS: highest)` : ''}`,
  )
  console.log(row('sftp get (OpenSSH)', base))
  console.log(row('plugin: transfer only', transfer))
  console.log(row('plugin: download + parse', plugin))
  console.log(row('anchovy start (to datastore)', ours))
  console.log(
    `ratio transfer / sftp get: ${(transfer.ms / base.ms).toFixed(2)}; plugin / sftp get: ${(plugin.ms / base.ms).toFixed(2)}; end to end / sftp get: ${(ours.ms / base.ms).toFixed(2)}`,
  )
}

main()
  .catch((err) => {
    console.error(err.message)
    process.exitCode = 1
  })
  .finally(() => {
    sshd?.kill('SIGTERM')
    if (!KEEP) rmSync(dir, { recursive: true, force: true })
  })
