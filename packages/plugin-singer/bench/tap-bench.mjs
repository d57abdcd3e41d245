// Benchmark: a tap replaying ROWS records of 8 fields through singer.TapDownloader into a local datastore, against
// `cat` of the same stream into /dev/null, a plain JSON.parse loop over it, and the floor the datastore format sets
// (parse + stringify + gzip, bench/json-floor.mjs), in the same run. Prints the median of
// REPEAT runs, the spread, rows/s, peak RSS and the ratios. ROWS (default 1000000), REPEAT (default 3).
import { spawn } from 'node:child_process'
import { createWriteStream, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROWS = Number(process.env.ROWS ?? 1_000_000)
const REPEAT = Number(process.env.REPEAT ?? 3)
const STATE_EVERY = Number(process.env.STATE_EVERY ?? 100_000)
const here = dirname(fileURLToPath(import.meta.url))
const BIN = resolve(here, '../../core/dist/cli/bin.js')
const dir = mkdtempSync(join(tmpdir(), 'anchovies-singer-bench-'))
const stream = join(dir, 'stream.singer')

async function generate() {
  const out = createWriteStream(stream)
  const schema = {
    id: { type: 'integer' },
    name: { type: 'string' },
    amount: { type: 'number' },
    qty: { type: ['null', 'integer'] },
    active: { type: 'boolean' },
    at: { type: 'string', format: 'date-time' },
    tag: { type: ['null', 'string'] },
    score: { type: 'number' },
  }
  let chunk = `${JSON.stringify({ type: 'SCHEMA', stream: 'items', schema: { type: 'object', properties: schema }, key_properties: ['id'] })}\n`
  for (let i = 0; i < ROWS; i++) {
    const at = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString()
    chunk += `{"type":"RECORD","stream":"items","record":{"id":${i},"name":"item ${i}","amount":${(i % 1000) + 0.25},"qty":${i % 7 === 0 ? null : i % 100},"active":${i % 2 === 0},"at":"${at}","tag":"t${i % 13}","score":${i / 8}}}\n`
    if ((i + 1) % STATE_EVERY === 0 || i === ROWS - 1) chunk += `{"type":"STATE","value":{"position":${i}}}\n`
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
      chunk = ''
    }
  }
  out.end(chunk)
  await new Promise((r) => out.on('finish', r))
}

/** Runs a command, timing it and sampling its peak RSS (VmHWM) and that of its children from /proc. */
function measure(cmd, argv, { env = {}, stdin = 'ignore', stdout = 'pipe' } = {}) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now()
    const child = spawn(cmd, argv, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: [stdin, stdout, 'pipe'],
    })
    let stderr = ''
    let peakKb = 0
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout?.resume()
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
        if (m) peakKb = Math.max(peakKb, Number(m[1]))
      } catch {}
    }
    const timer = setInterval(sample, 20)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearInterval(timer)
      const ms = performance.now() - started
      if (code !== 0) reject(new Error(`${cmd} exited with ${code}: ${stderr.slice(-2000)}`))
      else resolvePromise({ ms, peakKb })
    })
  })
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

await generate()
const bytes = statSync(stream).size
const runs = { cat: [], parse: [], floor: [], tap: [] }
for (let r = 0; r < REPEAT; r++) {
  runs.cat.push(await measure('cat', [stream], { stdout: openSync('/dev/null', 'w') }))
  runs.parse.push(
    await measure(process.execPath, [join(here, 'json-parse-loop.mjs')], { stdin: openSync(stream, 'r') }),
  )
  runs.floor.push(await measure(process.execPath, [join(here, 'json-floor.mjs')], { stdin: openSync(stream, 'r') }))
  const ds = join(dir, `ds-${r}`)
  runs.tap.push(
    await measure(
      process.execPath,
      [BIN, 'start', '-op', 'singer.TapDownloader', '--id', 'bench', '--log-level', 'warn'],
      {
        env: { ACHVY_DATASTORE: ds, ACHVY_USER: 'bench', ACHVY_CNXN__TAP__COMMAND: JSON.stringify(['cat', stream]) },
      },
    ),
  )
  rmSync(ds, { recursive: true, force: true })
}
rmSync(dir, { recursive: true, force: true })

const row = (name, list) => {
  const ms = median(list.map((m) => m.ms))
  const lo = Math.min(...list.map((m) => m.ms))
  const hi = Math.max(...list.map((m) => m.ms))
  const rss = Math.max(...list.map((m) => m.peakKb)) / 1024
  return {
    name,
    ms,
    text: `${name.padEnd(34)} ${(ms / 1000).toFixed(2).padStart(6)} s (${(lo / 1000).toFixed(2)}–${(hi / 1000).toFixed(2)})  ${String(Math.round(ROWS / (ms / 1000))).padStart(9)} rows/s  peak RSS ${rss.toFixed(0).padStart(4)} MB`,
  }
}
const cat = row('cat > /dev/null', runs.cat)
const parse = row('JSON.parse loop (node)', runs.parse)
const floor = row('floor: parse + stringify + gzip -1', runs.floor)
const tap = row('singer.TapDownloader -> datastore', runs.tap)
console.log(
  `stream: ${ROWS.toLocaleString('en')} records of 8 fields, ${(bytes / 1e6).toFixed(1)} MB, a STATE every ${STATE_EVERY.toLocaleString('en')}; node ${process.version}; median of ${REPEAT} runs (range), peak RSS the highest`,
)
for (const r of [cat, parse, floor, tap]) console.log(r.text)
console.log(
  `ratio TapDownloader / JSON.parse loop: ${(tap.ms / parse.ms).toFixed(2)} (goal <= 2.0); TapDownloader / cat: ${(tap.ms / cat.ms).toFixed(1)}`,
)
// What the datastore format alone costs: no TapDownloader can beat the floor, so floor / parse bounds the goal.
console.log(
  `ratio floor / JSON.parse loop: ${(floor.ms / parse.ms).toFixed(2)}; TapDownloader / floor: ${(tap.ms / floor.ms).toFixed(2)}`,
)
