// Summarises a V8 .cpuprofile (from `npm run bench -- --profile DIR`): self time by package and by function.
//   node bench/profile-summary.mjs DIR/downloader.cpuprofile [--top 25]
import { readFileSync } from 'node:fs'

const [file, ...rest] = process.argv.slice(2)
if (!file) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N]')
  process.exit(2)
}
const top = Number(rest[rest.indexOf('--top') + 1]) || 25
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
const dt = profile.timeDeltas
for (let i = 0; i < profile.samples.length; i++)
  self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (dt[i] ?? 0))
const total = [...self.values()].reduce((a, b) => a + b, 0)

function area(url) {
  if (!url) return '(native/gc/idle)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]
  const p = /packages\/([^/]+)\/dist\/(.+)$/.exec(url)
  if (p) return `${p[1]}`
  if (url.startsWith('node:')) return 'node internals'
  return url
}
const byArea = new Map()
const byFn = new Map()
for (const [id, us] of self) {
  const n = byId.get(id)
  const cf = n.callFrame
  const a = cf.functionName === '(idle)' ? '(idle)' : cf.functionName === '(garbage collector)' ? '(gc)' : area(cf.url)
  byArea.set(a, (byArea.get(a) ?? 0) + us)
  const p = /packages\/([^/]+\/dist\/.+)$/.exec(cf.url)
  const where = p ? p[1] : cf.url.replace(/^.*node_modules\//, '')
  const key = `${cf.functionName || '(anonymous)'}  ${where}:${cf.lineNumber + 1}`
  byFn.set(key, (byFn.get(key) ?? 0) + us)
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nself time by area:`)
for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1]).slice(0, 15))
  console.log(`  ${pct(us)}  ${(us / 1e6).toFixed(2).padStart(6)} s  ${a}`)
console.log(`\ntop ${top} functions by self time:`)
for (const [f, us] of [...byFn].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`  ${pct(us)}  ${f}`)
