#!/usr/bin/env node
// Benchmark (not a test): what resuming saves. `anchovy start -op sftp.CsvDownloader` on one big CSV served by a
// local sshd, into a fresh datastore each time: the full file, against a resume from 80% (a datastore whose
// committed `sftp.sales.resume` checkpoint points at the first record past 80% of the file, as a run stopped
// there leaves it). Runs alternate; prints the median of each, the spread (min–max) and the ratio of medians.
// Usage: npm run bench:resume -w packages/plugin-sftp -- [--rows 1000000] [--repeat 5] [--keep]
// Needs root (sshd with a throwaway host key, key login as root on 127.0.0.1) and a built repo (npm run build).
import { execFileSync, spawn } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  closeSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { COLUMNS, generate, median, startSshd } from './bench-lib.mjs'

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const ROWS = Number(opt('rows', '1000000'))
const REPEAT = Math.max(1, Number(opt('repeat', '5')))
const KEEP = args.includes('--keep')
const here = path.dirname(fileURLToPath(import.meta.url))
const BIN = path.resolve(here, '../../core/dist/cli/bin.js')
if (!existsSync(BIN)) throw new Error(`build first: ${BIN} is missing (npm run build)`)
if (process.getuid() !== 0) throw new Error('run as root (the benchmark starts sshd)')

const dir = mkdtempSync(path.join(tmpdir(), 'anchovies-bench-resume-'))
const served = path.join(dir, 'served')
mkdirSync(path.join(served, 'sales'), { recursive: true })
let sshd

async function main() {
  const file = path.join(served, 'sales', 'big.csv')
  await generate(file, ROWS)
  const bytes = statSync(file).size
  const mtime = Math.floor(Date.now() / 1000 - 3600)
  execFileSync('touch', ['-d', `@${mtime}`, file])
  const resume = resumePoint(file, bytes, mtime * 1000, 0.8)

  const ssh = await startSshd(dir)
  sshd = ssh.sshd
  const env = {
    ACHVY_CNXN__URI: `sftp://root@127.0.0.1:${ssh.port}${served}`,
    ACHVY_CNXN__PPK_PATH: ssh.key,
    ACHVY_CNXN__HOST_KEY: ssh.hostKey,
    ACHVY_USER: 'bench',
  }
  writeFileSync(path.join(dir, 'config.yaml'), 'tbls:\n  sales:\n    path: /sales/*.csv\n')

  let n = 0
  const once = async (fromResume) => {
    const ds = path.join(dir, `ds${++n}`)
    const common = ['--id', 'sales_sftp', '--datastore', ds]
    if (fromResume) await run(['checkpoint', 'set', ...common, 'sftp.sales.resume', JSON.stringify(resume)], env)
    const started = performance.now()
    const out = await run(['start', '-op', 'sftp.CsvDownloader', ...common], env)
    const ms = performance.now() - started
    const task = JSON.parse(out).batches[0].done_tasks.find((t) => t.tbl === 'sales')
    const expected = fromResume ? ROWS - resume.rows : ROWS
    if (task.data.rows !== expected) throw new Error(`expected ${expected} rows, the run took ${task.data.rows}`)
    rmSync(ds, { recursive: true, force: true })
    return ms
  }
  const full = []
  const resumed = []
  for (let i = 0; i < REPEAT; i++) {
    full.push(await once(false))
    resumed.push(await once(true))
  }
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b)
    return { median: median(s), min: s[0], max: s.at(-1) }
  }
  const f = stats(full)
  const r = stats(resumed)
  const sec = (ms) => (ms / 1000).toFixed(2)
  console.log(
    `file: ${ROWS.toLocaleString('en')} rows, ${(bytes / 1e6).toFixed(1)} MB; resume at byte ${resume.offset} (${((resume.offset / bytes) * 100).toFixed(1)}%), line ${resume.line}; node ${process.version}; ${REPEAT} runs each, alternating`,
  )
  console.log(`full download         median ${sec(f.median)} s  (min ${sec(f.min)}, max ${sec(f.max)})`)
  console.log(`resume from 80%       median ${sec(r.median)} s  (min ${sec(r.min)}, max ${sec(r.max)})`)
  console.log(
    `ratio resume / full   ${(r.median / f.median).toFixed(2)} (bytes left to read: ${((1 - resume.offset / bytes) * 100).toFixed(1)}%; the rest is startup, connect and commit)`,
  )
}

/** The resume checkpoint a run stopped at `fraction` of the file leaves: the first record starting past it. */
function resumePoint(file, size, mtimeMs, fraction) {
  const fd = openSync(file, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  let lines = 0
  let offset = -1
  const target = Math.floor(size * fraction)
  for (let pos = 0; offset < 0 && pos < size; ) {
    const n = readSync(fd, buf, 0, buf.length, pos)
    for (let i = buf.indexOf(10); i >= 0 && i < n; i = buf.indexOf(10, i + 1)) {
      lines++
      if (pos + i + 1 >= target) {
        offset = pos + i + 1
        break
      }
    }
    pos += n
  }
  closeSync(fd)
  // `lines` newlines before the record: it starts on line lines + 1; the header is line 1.
  return { path: 'sales/big.csv', size, mtime: mtimeMs, offset, line: lines + 1, columns: COLUMNS, rows: lines - 1 }
}

function run(argv, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0
        ? resolve(stdout)
        : reject(new Error(`anchovy ${argv[0]} exited with ${code}: ${stderr.slice(-2000)}`)),
    )
  })
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
