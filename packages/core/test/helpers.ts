import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import pino from 'pino'
import { startAnchovy, type Operator, type RunResult } from '../src/index.js'

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
export const BIN = path.join(REPO, 'packages/core/dist/cli/bin.js')
export const FIXTURE_OPS = path.join(REPO, 'test/fixtures/dist/basic.js')

const made: string[] = []

/** A fresh temporary folder, removed after the test file. */
export function tempDir(prefix = 'anchovies-'): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix))
  made.push(d)
  return d
}

export function cleanupTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true })
}

/** Every file under `dir` (relative path → content). */
export function readTree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else out.set(path.relative(dir, p), readFileSync(p))
    }
  }
  walk(dir)
  return out
}

/** A logger that keeps every line in memory. */
export function memoryLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      cb()
    },
  })
  return { logger: pino({ level: 'debug' }, stream), lines }
}

/** Runs an operator class in-process like `anchovy start` would. */
export async function runOperator(
  operator: new () => Operator,
  opts: {
    datastore: string
    id?: string
    user?: string
    flags?: Record<string, unknown>
    env?: Record<string, string>
    config?: string
    cwd?: string
  },
): Promise<RunResult & { lines: string[] }> {
  const { logger, lines } = memoryLogger()
  const result = await startAnchovy(
    {
      flags: { id: opts.id ?? 'op', user: opts.user ?? 'test', datastore: opts.datastore, ...opts.flags },
      env: { ...(opts.env ?? {}) },
      configText: opts.config,
      cwd: opts.cwd ?? opts.datastore,
    },
    { logger, operator: { operator } },
  )
  return { ...result, lines }
}

/** Result of a CLI run. */
export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Starts the `anchovy` CLI as a child process. */
export function spawnCli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string } = {},
): ChildProcess & { result: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? tmpdir(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ACHVY_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const result = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  )
  return Object.assign(child, { result })
}

/** Runs the `anchovy` CLI to completion. */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<CliResult> {
  return spawnCli(args, opts).result
}

/** Waits until `check` returns true (polling). */
export async function waitFor(check: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The commit record files (`<seq>.json`) in a `$commits` folder, sorted. */
export function commitRecords(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /^\d{12}\.json$/.test(f))
        .sort()
    : []
}
