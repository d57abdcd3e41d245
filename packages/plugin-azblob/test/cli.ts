import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { afterAll } from 'vitest'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

/** The anchovy CLI, the shared test operators and this package's fixtures. */
export const BIN = resolve(import.meta.dirname, '../../core/dist/cli/bin.js')
export const BASIC = resolve(import.meta.dirname, '../../../test/fixtures/dist/basic.js')
export const SLEEPY = resolve(import.meta.dirname, 'fixtures/sleepy.js')

/** What one CLI process did. */
export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A running CLI process. */
export interface CliProcess {
  readonly proc: ChildProcess
  readonly done: Promise<CliResult>
}

const machines: string[] = []
// Registered in the root suite of every test file that imports this module: its machines go when it ends.
afterAll(async () => {
  await Promise.all(machines.splice(0).map((d) => rm(d, { recursive: true, force: true })))
})

/** A fresh folder used as the process's HOME and working directory: machines share nothing but the storage. */
export async function machine(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'anchovies-machine-'))
  machines.push(dir)
  return dir
}

/** Starts `anchovy <args>` in `home` with a clean environment (no ACHVY_, AZURE_ variables from the test runner). */
export function spawnAnchovy(
  args: string[],
  home: string,
  env: Record<string, string> = {},
  host?: string,
): CliProcess {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ACHVY_|AZURE_|ANCHY_)/.test(k)))
  // `host`: run as if on another machine, with its own host name (a UTS namespace; needs root, as CI has)
  const [cmd, argv] = host
    ? ['unshare', ['--uts', 'sh', '-c', 'hostname "$0" && exec "$@"', host, process.execPath, BIN, ...args]]
    : [process.execPath, [BIN, ...args]]
  const proc = spawn(cmd, argv, { cwd: home, env: { ...base, HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<CliResult>((resolveDone) =>
    proc.on('close', (code, signal) => resolveDone({ code, signal, stdout, stderr })),
  )
  return { proc, done }
}

/** Runs `anchovy <args>` to completion. */
export function anchovy(args: string[], home: string, env: Record<string, string> = {}): Promise<CliResult> {
  return spawnAnchovy(args, home, env).done
}

/** Waits until `file` exists (a fixture touches it when it reaches a point of interest). */
export async function waitForFile(file: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The `id`s of the JSON lines a test sink wrote to `file` (none if it does not exist yet). */
export async function ids(file: string): Promise<number[]> {
  return (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { id: number }).id)
}
