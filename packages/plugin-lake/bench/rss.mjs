// Preloaded into a measured process: reports its peak resident set size on exit.
import { writeSync } from 'node:fs'
process.on('exit', () => writeSync(2, `\nBENCH_MAXRSS_KB ${process.resourceUsage().maxRSS}\n`))
