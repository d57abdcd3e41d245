#!/usr/bin/env node
import '../core-copies.js'
import { setCliArgv } from './argv.js'
import { main } from './program.js'

const argv = process.argv.slice(2)
setCliArgv(argv)
const code = await main(argv)
// Exit explicitly: a timed-out source that ignores its AbortSignal must not keep the process alive.
process.stdout.write('', () => process.exit(code))
