// CLI start-up benchmark: how much `anchovy --help` and an `anchovy healthcheck` probe cost over a bare `node -e 0`,
// each run as a fresh process, interleaved so that a noisy machine affects all three alike. Prints the median,
// the spread (min–max) and the ratio of medians. Usage: npm run bench:cli -w packages/core -- [--repeat N]
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/cli/bin.js')
const arg = process.argv.indexOf('--repeat')
const repeat = arg > 0 ? Number(process.argv[arg + 1]) : 15
const ds = mkdtempSync(path.join(tmpdir(), 'anchovies-cli-bench-'))
const cases = [
  ['node -e 0', ['-e', '0']],
  ['anchovy --help', [bin, '--help']],
  ['anchovy healthcheck', [bin, 'healthcheck', '--datastore', ds, '-i', 'probe', '-u', 'bench']],
]
const times = new Map(cases.map(([name]) => [name, []]))
for (let i = 0; i < repeat; i++) {
  for (const [name, args] of cases) {
    const t = performance.now()
    spawnSync(process.execPath, args, { stdio: 'ignore' })
    times.get(name).push(performance.now() - t)
  }
}
rmSync(ds, { recursive: true, force: true })
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const base = median(times.get('node -e 0'))
console.log(`CLI start-up, ${repeat} runs each (median, min–max, ratio to node -e 0)`)
for (const [name, xs] of times) {
  const m = median(xs)
  console.log(
    `  ${name.padEnd(20)} ${m.toFixed(0).padStart(5)} ms  (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})  ${(m / base).toFixed(2)}x  +${(m - base).toFixed(0)} ms`,
  )
}
