import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as nodePath from 'node:path'
import { fileURLToPath } from 'node:url'
import { CommitLog, FilesystemDatastore, readDataFile, type Row } from '@anchovies/core'

const here = nodePath.dirname(fileURLToPath(import.meta.url))
/** The repository root. */
export const REPO = nodePath.resolve(here, '../../../..')
/** The anchovy CLI (built core). */
export const BIN = nodePath.join(REPO, 'packages/core/dist/cli/bin.js')

/** The outcome of one CLI run. */
export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** The results JSON printed on stdout (undefined when it is not JSON). */
  readonly results: Record<string, unknown> | undefined
}

/** Runs `anchovy <args>` in `cwd` with only `env` (plus PATH/HOME) in the environment. */
export function runCli(args: string[], env: Record<string, string>, cwd: string, timeoutMs = 50_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        ACHVY_USER: 'tester',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      let results: Record<string, unknown> | undefined
      try {
        results = JSON.parse(stdout) as Record<string, unknown>
      } catch {
        results = undefined
      }
      resolve({ code, stdout, stderr, results })
    })
  })
}

/** A fresh temporary folder (removed by the returned cleanup). */
export function tempDir(prefix: string): string {
  return mkdtempSync(nodePath.join(tmpdir(), `anchovies-${prefix}-`))
}

/** Removes a folder tree. */
export function remove(path: string): void {
  rmSync(path, { recursive: true, force: true })
}

/** Every committed row of `table` of anchovy `id` (user `tester`), in commit order, without `_types`. */
export async function committedRows(datastore: string, id: string, table: string, user = 'tester'): Promise<Row[]> {
  const ds = new FilesystemDatastore(datastore)
  const log = new CommitLog(ds, `${user}/${id}`)
  const rows: Row[] = []
  for (const seq of await log.sequences()) {
    const rec = await log.read(seq)
    for (const f of rec.files.filter((x) => x.table === table)) {
      for await (const row of readDataFile(ds, f.path)) rows.push(row)
    }
  }
  return rows
}

/** The committed checkpoint `key` of anchovy `id` (parsed JSON), or undefined. */
export function checkpoint(datastore: string, id: string, key: string, user = 'tester'): unknown {
  try {
    return JSON.parse(readFileSync(nodePath.join(datastore, user, id, '$checkpoints', key), 'utf8'))
  } catch {
    return undefined
  }
}

/** Every file under `dir`, recursively (absolute paths). */
export function allFiles(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = nodePath.join(dir, name)
    if (statSync(p).isDirectory()) out.push(...allFiles(p))
    else out.push(p)
  }
  return out
}

/** The task-log data of the table task `table` in a run's results. */
export function tableTask(
  results: Record<string, unknown> | undefined,
  table: string,
): Record<string, unknown> | undefined {
  const batches = (results?.batches ?? []) as {
    done_tasks: { tbl: string | null; task_type: string; status: string; data: Record<string, unknown> }[]
  }[]
  for (const b of batches) {
    const t = b.done_tasks.find((x) => x.task_type === 'TABLE' && x.tbl === table)
    if (t) return { status: t.status, ...t.data }
  }
  return undefined
}
