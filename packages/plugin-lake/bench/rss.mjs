// Preloaded into a measured process: reports its peak resident set size and CPU time (user + system) on exit.
import { writeSync } from 'node:fs'
process.on('exit', () => {
  const u = process.resourceUsage()
  writeSync(2, `\nBENCH_MAXRSS_KB ${u.maxRSS}\nBENCH_CPU_US ${u.userCPUTime + u.systemCPUTime}\n`)
})
