import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { EXIT } from '../../src/errors.js'
import { context } from '../../src/index.js'
import { FIXTURE_OPS, REPO, cleanupTempDirs, commitRecords, runCli, spawnCli, tempDir, waitFor } from '../helpers.js'

afterAll(cleanupTempDirs)
const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  running.clear()
})

const EDGES = path.join(REPO, 'test/fixtures/dist/edges.js')
const SPIN = path.join(REPO, 'test/fixtures/dist/spin.js')
const PROGRESS = path.join(REPO, 'test/fixtures/dist/progress.js')

/** The core codes of the table in docs/errors.md (between the generated markers). */
function documentedCodes(): string[] {
  const md = readFileSync(path.join(REPO, 'docs/errors.md'), 'utf8')
  const section = md.slice(md.indexOf('<!-- errors:start -->'), md.indexOf('<!-- errors:end -->'))
  return [...section.matchAll(/^\| `(ANCH_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!)
}

/** What a user sees of one CLI run: its exit code and everything it printed. */
interface Seen {
  exit: number | null
  text: string
}

const run = async (args: string[], env: Record<string, string> = {}): Promise<Seen> => {
  const r = await runCli(args, { env })
  return { exit: r.code, text: r.stdout + r.stderr }
}

const start = (ds: string, op: string, ...more: string[]): string[] => [
  'start',
  '--datastore',
  ds,
  '-u',
  'dev',
  '-i',
  'e',
  '-op',
  op,
  ...more,
]

/**
 * How each documented code is triggered: a CLI run as a user would start it (with the exit code it must end
 * with), or, where no run can reach it, the reason and a unit-level check.
 */
type Trigger =
  | { readonly exit: number; readonly run: (ds: string) => Promise<Seen> }
  | { readonly unit: string; readonly check: () => Promise<void> | void }

const TRIGGERS: Record<string, Trigger> = {
  ANCH_ERR_CONFIG: {
    exit: EXIT.USAGE,
    run: (ds) => run(start(ds, `${EDGES}:Flaky`, '--config-file', path.join(ds, 'missing.yaml'))),
  },
  ANCH_ERR_USAGE: { exit: EXIT.USAGE, run: (ds) => run(start(ds, 'NoDotNoColon')) },
  ANCH_ERR_NAME: {
    exit: EXIT.USAGE,
    run: (ds) => run(start(ds, `${EDGES}:Flaky`, '-c', JSON.stringify({ tbls: { '../../etc': {} } }))),
  },
  ANCH_ERR_PLUGIN_LOAD: { exit: EXIT.USAGE, run: (ds) => run(start(ds, path.join(ds, 'no-such-module.js:Op'))) },
  ANCH_ERR_CONNECTION_MISSING: { exit: EXIT.USAGE, run: (ds) => run(start(ds, `${FIXTURE_OPS}:NeedsWeb`)) },
  ANCH_ERR_CONNECTION_CLASS: {
    exit: EXIT.USAGE,
    run: (ds) => run(start(ds, `${EDGES}:NeedsMystery`), { ACHVY_CNXN__MYSTERY__URL: 'https://example.invalid' }),
  },
  ANCH_ERR_CONNECTION: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${EDGES}:NeedsDown`), { ACHVY_CNXN__DOWN__HOST: 'localhost' }),
  },
  ANCH_ERR_LOCKED: {
    exit: EXIT.LOCKED,
    run: async (ds) => {
      const ready = path.join(ds, 'ready')
      const first = spawnCli(start(ds, `${EDGES}:Flaky`), {
        env: { TABLES: 'slow', HANG_TABLES: 'slow', READY_FILE: ready },
      })
      running.add(first)
      await waitFor(() => existsSync(ready), 30_000, 'the first run to hold the lock')
      const second = await run(start(ds, `${EDGES}:Flaky`))
      first.kill('SIGTERM')
      await first.result
      return second
    },
  },
  ANCH_ERR_TIMEOUT: {
    exit: EXIT.TIMEOUT,
    run: (ds) =>
      run(start(ds, `${EDGES}:Flaky`, '-t', '1'), {
        TABLES: 'slow',
        HANG_TABLES: 'slow',
        READY_FILE: path.join(ds, 'ready'),
      }),
  },
  ANCH_ERR_TIMEOUT_KILLED: {
    exit: EXIT.TIMEOUT,
    run: (ds) => run(start(ds, `${SPIN}:Spinner`, '-t', '1', '--abort-grace', '0.5'), { SPIN_PHASE: 'table' }),
  },
  ANCH_ERR_RUN_DIED: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${EDGES}:Flaky`, '-t', '60'), { TABLES: 'boom', CRASH_TABLES: 'boom' }),
  },
  ANCH_ERR_STALLED: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${EDGES}:Flaky`), { TABLES: 'stuck', STALL_TABLES: 'stuck' }),
  },
  ANCH_ERR_ABORTED: {
    exit: EXIT.OK,
    run: async (ds) => {
      const ready = path.join(ds, 'ready')
      const child = spawnCli(start(ds, `${EDGES}:Flaky`), {
        env: { TABLES: 'slow', HANG_TABLES: 'slow', READY_FILE: ready },
      })
      running.add(child)
      await waitFor(() => existsSync(ready), 30_000, 'the table to start')
      child.kill('SIGTERM')
      const r = await child.result
      return { exit: r.code, text: r.stdout + r.stderr }
    },
  },
  ANCH_ERR_DATASTORE: {
    exit: EXIT.FAILED,
    run: async (ds) => {
      // The datastore root is a regular file: nothing can be written under it.
      const file = path.join(ds, 'not-a-folder')
      writeFileSync(file, 'x')
      return run(['start', '--datastore', file, '-u', 'dev', '-i', 'e', '-op', `${EDGES}:Flaky`])
    },
  },
  ANCH_ERR_DATASTORE_CORRUPT: {
    exit: EXIT.FAILED,
    run: async (ds) => {
      const first = await run(start(ds, `${EDGES}:Flaky`), { TABLES: 'good' })
      expect(first.exit, first.text).toBe(0)
      const dir = path.join(ds, 'dev', 'e', '$commits')
      writeFileSync(path.join(dir, commitRecords(dir).at(-1)!), '{ not json')
      return run(start(ds, `${EDGES}:Flaky`), { TABLES: 'good' })
    },
  },
  ANCH_ERR_DATA_FORMAT: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${EDGES}:Flaky`), { TABLES: 'odd', BAD_ROW_TABLES: 'odd' }),
  },
  ANCH_ERR_NO_SOURCE: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${FIXTURE_OPS}:TwoTables`, '-c', JSON.stringify({ tbls: { orphan: {} } }))),
  },
  ANCH_ERR_CONTEXT: {
    exit: EXIT.FAILED,
    run: (ds) => run(start(ds, `${PROGRESS}:CommitInSink`), { TOTAL: '10', PAGE: '5' }),
  },
  ANCH_ERR_TABLE: {
    unit: 'core never raises it: a failed table keeps the code of what it threw (err_code in the task log); the code stays for plugins (plugin-sql raises it when a dialect cannot rebuild a table)',
    check: () => undefined,
  },
  ANCH_ERR_CORE_COPIES: {
    unit: 'raised at import when a second copy of the package from another folder loads; no CLI run of one installation can reach it (core-copies.test.ts builds the second copy)',
    check: async () => {
      const { registerCoreCopy } = await import('../../src/core-copies.js')
      registerCoreCopy(path.join(REPO, 'packages/core'))
      expect(() => registerCoreCopy(path.join(REPO, 'elsewhere/core'))).toThrow(
        expect.objectContaining({ code: 'ANCH_ERR_CORE_COPIES' }),
      )
    },
  },
  ANCH_ERR_PHASE: {
    unit: 'core never raises it: a failed @onTask hook keeps the code of what it threw; the code stays for operator code that reports a phase of its own',
    check: () => undefined,
  },
}

describe('docs/errors.md and the codes users see', () => {
  it('every documented core code has a trigger here, and every trigger a documented code', () => {
    const documented = documentedCodes()
    expect(documented.length).toBeGreaterThan(15)
    expect(Object.keys(TRIGGERS).sort()).toEqual([...documented].sort())
  })

  it('context() outside a run is ANCH_ERR_CONTEXT (also reached from a CLI run below)', () => {
    expect(() => context()).toThrow(expect.objectContaining({ code: 'ANCH_ERR_CONTEXT' }))
  })

  for (const [code, trigger] of Object.entries(TRIGGERS)) {
    if ('unit' in trigger) {
      it(`${code}: unit level only (${trigger.unit})`, async () => {
        await trigger.check()
      })
      continue
    }
    it(`${code}: a CLI run shows it and exits ${trigger.exit}`, async () => {
      const seen = await trigger.run(tempDir())
      expect(seen.text).toContain(code)
      expect(seen.exit, seen.text).toBe(trigger.exit)
    }, 90_000)
  }
})

describe('exit codes of startup errors', () => {
  it('an invalid plugin setting found at startup is a configuration error: exit 2, no table runs', async () => {
    const ds = tempDir()
    const r = await run(start(ds, `${EDGES}:NeedsSetting`), { FIXTURE_LIMIT: '-1' })
    expect(r.text).toContain('ANCH_ERR_FIXTURE_CONFIG')
    expect(r.exit, r.text).toBe(EXIT.USAGE)
    expect(existsSync(path.join(ds, 'dev', 'e', 'data'))).toBe(false)
  }, 60_000)

  it('a missing driver keeps its own code (as ANCH_ERR_SQL_DRIVER does) and exits 2, not wrapped as ANCH_ERR_CONNECTION', async () => {
    const ds = tempDir()
    const r = await run(start(ds, `${EDGES}:NeedsDown`), { ACHVY_CNXN__DOWN__HOST: 'localhost', DRIVERLESS: '1' })
    expect(r.text).toContain('ANCH_ERR_FIXTURE_DRIVER')
    expect(r.text).not.toContain('ANCH_ERR_CONNECTION"')
    expect(r.exit, r.text).toBe(EXIT.USAGE)
  }, 60_000)
})
