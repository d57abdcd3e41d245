#!/usr/bin/env node
import { main } from './program.js'

const code = await main(process.argv.slice(2))
// Exit explicitly: a timed-out source that ignores its AbortSignal must not keep the process alive.
process.stdout.write('', () => process.exit(code))
