import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { CommitLog, DateTime, FilesystemDatastore, LocalDate, readDataFile, type Row } from '@anchovies/core'
import { parseLossless } from '../../src/messages.js'

const here = nodePath.dirname(fileURLToPath(import.meta.url))
/** The repository root. */
export const REPO = nodePath.resolve(here, '../../../..')
/** The anchovy CLI (built core). */
export const BIN = nodePath.join(REPO, 'packages/core/dist/cli/bin.js')
/** This package's fixtures. */
export const FIXTURES = nodePath.resolve(here, '../fixtures')
/** The test tap and target. */
export const TAP = nodePath.join(FIXTURES, 'replay-tap.mjs')
export const TARGET = nodePath.join(FIXTURES, 'record-target.mjs')
/** PostgreSQL on loopback (trust auth). */
export const PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

/** The outcome of one CLI run. */
export interface CliRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** The results JSON printed on stdout (undefined when it is not JSON). */
  readonly results: Record<string, unknown> | undefined
}

/** Starts `anchovy <args>` in `cwd` with only `env` (plus PATH/HOME, user `tester`) in the environment. */
export function spawnCli(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  timeoutMs = 60_000,
): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ACHVY_USER: 'tester', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      let results: Record<string, unknown> | undefined
      try {
        results = JSON.parse(stdout) as Record<string, unknown>
      } catch {
        results = undefined
      }
      resolve({ code, signal, stdout, stderr, results })
    })
  })
  return { child, done }
}

/** Runs `anchovy <args>` to completion. */
export function runCli(args: string[], env: Record<string, string>, cwd: string, timeoutMs?: number): Promise<CliRun> {
  return spawnCli(args, env, cwd, timeoutMs).done
}

const made: string[] = []
/** A fresh temporary folder (removed by `cleanup`). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(nodePath.join(tmpdir(), `anchovies-${prefix}-`))
  made.push(d)
  return d
}
/** Removes every folder tempDir made. */
export function cleanup(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true })
}

/** Writes the test tap's config file and returns the env of a TapDownloader run over it. */
export function tapEnv(
  dir: string,
  datastore: string,
  config: Record<string, unknown>,
  extra: Record<string, string> = {},
): Record<string, string> {
  const file = nodePath.join(dir, `tap-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(config))
  return { ACHVY_DATASTORE: datastore, ACHVY_CNXN__TAP__COMMAND: TAP, ACHVY_CNXN__TAP__CONFIG: file, ...extra }
}

/** The TABLE task of `table` in the results, its `data` (err_code, err_msg, rows, …) also spread on top. */
export function tableTask(
  results: Record<string, unknown> | undefined,
  table: string,
): Record<string, unknown> | undefined {
  const batches = (results?.batches ?? []) as { done_tasks?: Record<string, unknown>[] }[]
  for (const b of batches)
    for (const t of b.done_tasks ?? [])
      if (t.task_type === 'TABLE' && t.tbl === table) return { ...t, ...(t.data as Record<string, unknown>) }
  return undefined
}

/** Every committed row of `table` of anchovy `id`, in commit order, without `_types`. */
export async function committedRows(datastore: string, id: string, table: string, user = 'tester'): Promise<Row[]> {
  const ds = new FilesystemDatastore(datastore)
  const log = new CommitLog(ds, `${user}/${id}`)
  const rows: Row[] = []
  for (const seq of await log.sequences()) {
    const rec = await log.read(seq)
    for (const f of rec.files.filter((x) => x.table === table))
      for await (const row of readDataFile(ds, f.path)) rows.push(row)
  }
  return rows
}

/** The number of commit records of anchovy `id`. */
export async function commitCount(datastore: string, id: string, user = 'tester'): Promise<number> {
  return (await new CommitLog(new FilesystemDatastore(datastore), `${user}/${id}`).sequences()).length
}

/** The committed checkpoint `key` of anchovy `id` (parsed JSON), or undefined. */
export function checkpoint(datastore: string, id: string, key: string, user = 'tester'): unknown {
  try {
    return JSON.parse(readFileSync(nodePath.join(datastore, user, id, '$checkpoints', key), 'utf8'))
  } catch {
    return undefined
  }
}

/** The messages of a fixture file (integers beyond ±2^53 kept exact). */
export function fixtureMessages(name: string): Record<string, unknown>[] {
  return readFileSync(nodePath.join(FIXTURES, name), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => parseLossless(l) as Record<string, unknown>)
}

/**
 * The records a fixture's streams should end up with, by stream, in order: every RECORD, except those of a
 * version older than the newest ACTIVATE_VERSION seen before them (superseded by the tap).
 */
export function expectedRecords(name: string): Map<string, Record<string, unknown>[]> {
  const out = new Map<string, Record<string, unknown>[]>()
  const active = new Map<string, number>()
  for (const m of fixtureMessages(name)) {
    const stream = m.stream as string
    if (m.type === 'ACTIVATE_VERSION') active.set(stream, Math.max(active.get(stream) ?? 0, m.version as number))
    if (m.type !== 'RECORD') continue
    if (typeof m.version === 'number' && m.version < (active.get(stream) ?? -Infinity)) continue
    out.set(stream, [...(out.get(stream) ?? []), m.record as Record<string, unknown>])
  }
  return out
}

/** A value in a form both sides of a comparison share: JSON text with bigints as digits and datetimes as ISO text. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, function (this: Record<string, unknown>, key: string, x: unknown) {
    const raw = key === '' ? x : this[key]
    if (typeof raw === 'bigint') return raw.toString()
    if (raw instanceof DateTime) return raw.iso
    if (raw instanceof LocalDate) return raw.toString()
    if (typeof raw === 'number' && Number.isInteger(raw)) return String(raw)
    if (x && typeof x === 'object' && !Array.isArray(x))
      return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)))
    return x
  })
}
