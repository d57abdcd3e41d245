// Type-checks everything for real: each package's src and the operator fixtures (through the build graph), then
// every test file of every package and the root test/ suites (tsconfig.test.json, one program, no emit).
// Exits non-zero on any type error. (`tsc -b --dry` only lists what would be built and exits 0 on a type error.)
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const tsc = path.join(repo, 'node_modules/typescript/bin/tsc')
const packages = ['core', 'plugin-sftp', 'plugin-sql', 'plugin-azblob', 'plugin-lake', 'plugin-singer']

function tscOk(args) {
  return spawnSync(process.execPath, [tsc, ...args], { cwd: repo, stdio: 'inherit' }).status === 0
}

// Source projects are composite and reference each other: building them (incremental, cheap when up to date)
// fails on a type error in src and gives the tests current declarations to check against.
if (!tscOk(['-b', ...packages.map((p) => `packages/${p}`), 'test/fixtures'])) {
  console.error('typecheck: type errors in src (see above)')
  process.exit(1)
}
if (!tscOk(['-p', 'tsconfig.test.json', '--pretty'])) {
  console.error('typecheck: type errors in tests (see above)')
  process.exit(1)
}
console.log('typecheck: src and tests ok')
