#!/usr/bin/env node
// The `anchovy` command: a plain file so that npm can link it before the TypeScript build has run.
import '../dist/cli/bin.js'
