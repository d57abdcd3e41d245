// Core throughput benchmark: a downloader writing N generated rows into the datastore, then an uploader reading
// them back into a sink that drops them, each in its own process (peak RSS per stage), against a baseline that
// does the minimum the same work needs (JSON + gzip level 1 to a file, then gunzip + JSON.parse) in the same
// process tree. Usage: npm run bench -w packages/core -- [--rows N] [--rows N2 …]
import { spawnSync } from 'node:child_process'
import { createWriteStream, createReadStream, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip, createGunzip } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)

function row(i) {
  return {
    id: i,
    name: `customer ${i % 1000}`,
    amount: (i % 10000) / 100,
    qty: i % 17,
    active: i % 3 === 0,
    at: new Date(Date.UTC(2025, 0, 1) + i * 1000),
    note: i % 5 ? null : 'free text, with "quotes"',
    code: `C${(i * 7919) % 100000}`,
  }
}

async function stage(name, rows, dir) {
  const started = performance.now()
  if (name === 'baseline-write') {
    const gz = createGzip({ level: 1 })
    const out = pipeline(gz, createWriteStream(path.join(dir, 'baseline.json.gz')))
    let buf = ''
    for (let i = 0; i < rows; i++) {
      const r = row(i)
      buf += JSON.stringify({ ...r, at: r.at.toISOString() }) + '\n'
      if (buf.length > 65536) {
        if (!gz.write(buf)) await new Promise((res) => gz.once('drain', res))
        buf = ''
      }
    }
    gz.end(buf)
    await out
  } else if (name === 'baseline-read') {
    let rest = ''
    let n = 0
    for await (const chunk of createReadStream(path.join(dir, 'baseline.json.gz')).pipe(createGunzip())) {
      const lines = (rest + chunk).split('\n')
      rest = lines.pop()
      for (const l of lines) if (l) JSON.parse(l), n++
    }
    if (n !== rows) throw new Error(`baseline read ${n} rows`)
  } else {
    const core = await import('../dist/index.js')
    const { Downloader, Uploader, source, sink, startAnchovy, createLogger } = core
    class BenchDownloader extends Downloader {
      async *gen() {
        for (let i = 0; i < rows; i++) yield row(i)
      }
    }
    source('bench')(BenchDownloader.prototype, 'gen')
    class BenchUploader extends Uploader {
      async drop(stream) {
        let n = 0
        for await (const _ of stream) n++
        if (n !== rows) throw new Error(`uploader read ${n} rows`)
      }
    }
    sink('*')(BenchUploader.prototype, 'drop')
    const op = name === 'download' ? BenchDownloader : BenchUploader
    const r = await startAnchovy(
      {
        flags: {
          id: name === 'download' ? 'dl' : 'up',
          user: 'bench',
          datastore: dir,
          upstream: name === 'download' ? [] : ['dl'],
        },
        env: {},
        cwd: dir,
      },
      { operator: { operator: op }, logger: createLogger('warn', false) },
    )
    if (r.exitCode !== 0) throw new Error(`${name} exited ${r.exitCode}`)
  }
  const ms = performance.now() - started
  process.stdout.write(JSON.stringify({ ms, rss: process.resourceUsage().maxRSS * 1024 }))
}

function run(name, rows, dir) {
  const r = spawnSync(process.execPath, [self, '--stage', name, String(rows), dir], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

const args = process.argv.slice(2)
if (args[0] === '--stage') {
  await stage(args[1], Number(args[2]), args[3])
} else {
  const sizes = []
  for (let i = 0; i < args.length; i++) if (args[i] === '--rows') sizes.push(Number(args[++i]))
  if (!sizes.length) sizes.push(200_000, 1_000_000)
  const mb = (b) => `${(b / 1048576).toFixed(0)} MB`
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cpus`)
  console.log('rows       stage          wall ms   rows/s     peak RSS   baseline ms  ratio')
  for (const rows of sizes) {
    const dir = mkdtempSync(path.join(tmpdir(), 'anchovies-bench-'))
    try {
      const bw = run('baseline-write', rows, dir)
      const br = run('baseline-read', rows, dir)
      const dl = run('download', rows, dir)
      const up = run('upload', rows, dir)
      for (const [label, s, b] of [
        ['download', dl, bw],
        ['upload', up, br],
      ]) {
        console.log(
          `${String(rows).padEnd(10)} ${label.padEnd(14)} ${s.ms.toFixed(0).padStart(7)} ${String(Math.round(rows / (s.ms / 1000))).padStart(10)} ${mb(s.rss).padStart(10)} ${b.ms.toFixed(0).padStart(12)} ${(s.ms / b.ms).toFixed(2).padStart(6)}`,
        )
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
