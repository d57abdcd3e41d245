import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { openDatastore, readDataFile, type CommitRecord, type Datastore } from '@anchovies/core'
import { canonicalRow, hashOf, type ChangingSource, type TableName } from './source.js'

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(REPO, 'packages/core/dist/cli/bin.js')

/** A temporary folder and its removal. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** How one CLI process ended. */
export interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly pid: number
  readonly ms: number
  /** The signal the harness sent, and when (ms after spawn). */
  readonly sent?: { signal: NodeJS.Signals; at: number }
}

/** A running `anchovy` process. */
export interface Running {
  readonly child: ChildProcess
  readonly started: number
  readonly done: Promise<Outcome>
  /** Sends `signal` now, if the process still runs. */
  send(signal: NodeJS.Signals): void
}

const live = new Set<ChildProcess>()

/** Starts `anchovy <args>` with a clean environment plus `env`. */
export function spawnAnchovy(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  wrapper: string[] = [],
): Running {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ACHVY_|ANCHY_|AZURE_)/.test(k)))
  const cmd = wrapper.length ? wrapper[0]! : process.execPath
  const argv = wrapper.length ? [...wrapper.slice(1), process.execPath, BIN, ...args] : [BIN, ...args]
  const child = spawn(cmd, argv, {
    cwd,
    env: { ...base, ACHVY_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  const started = Date.now()
  let stdout = ''
  let stderr = ''
  let sent: Outcome['sent']
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<Outcome>((resolve) =>
    child.on('close', (code, signal) => {
      live.delete(child)
      resolve({
        code,
        signal,
        stdout,
        stderr,
        pid: child.pid ?? 0,
        ms: Date.now() - started,
        ...(sent ? { sent } : {}),
      })
    }),
  )
  return {
    child,
    started,
    done,
    send(signal) {
      if (child.exitCode !== null || child.signalCode !== null || sent) return
      sent = { signal, at: Date.now() - started }
      child.kill(signal)
    },
  }
}

/** SIGKILLs every process the harness started that still runs (after a failure). */
export function killAll(): void {
  for (const c of live) c.kill('SIGKILL')
  live.clear()
}

/** One short line about an outcome, for the replay log. */
export function outcomeText(o: Outcome): string {
  const end = o.signal ? `killed` : `exit ${o.code}`
  return `${o.sent ? `${o.sent.signal}@${o.sent.at}ms ` : ''}${end} (${o.ms}ms)`
}

/** A fresh PostgreSQL database on the local server, dropped by `drop()`. */
export interface PgDatabase {
  readonly name: string
  readonly url: string
  query<T extends Record<string, unknown> = Record<string, unknown>>(sql: string): Promise<T[]>
  drop(): Promise<void>
}

export const PG_HOST = process.env.PGHOST_TEST ?? '127.0.0.1'
export const PG_PORT = Number(process.env.PGPORT_TEST ?? 5432)

/** Creates a database `anch_<prefix>_<hex>` on a PostgreSQL server (the shared one by default). */
export async function createDatabase(prefix: string, port = PG_PORT): Promise<PgDatabase> {
  const name = `anch_${prefix}_${randomBytes(4).toString('hex')}`
  const admin = `postgres://postgres@${PG_HOST}:${port}/postgres`
  const a = new pg.Client({ connectionString: admin })
  await a.connect()
  await a.query(`CREATE DATABASE ${name}`)
  await a.end()
  const url = `postgres://postgres@${PG_HOST}:${port}/${name}`
  return {
    name,
    url,
    async query<T extends Record<string, unknown>>(sql: string): Promise<T[]> {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      try {
        return (await c.query(sql)).rows as T[]
      } finally {
        await c.end()
      }
    },
    async drop() {
      const d = new pg.Client({ connectionString: admin })
      await d.connect()
      try {
        await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await d.end()
      }
    },
  }
}

/** Every commit record of `<user>/<id>`, in sequence order. */
export async function commitRecords(ds: Datastore, home: string): Promise<CommitRecord[]> {
  const out: CommitRecord[] = []
  for (const e of await ds.list(`${home}/$commits`)) {
    if (!/\/\d{12}\.json$/.test(e.path)) continue
    out.push(JSON.parse((await ds.read(e.path))!.toString('utf8')) as CommitRecord)
  }
  return out.sort((a, b) => a.seq - b.seq)
}

/** The rows committed for each table, per commit (in commit order). */
export async function committedRows(location: string, home: string): Promise<Map<string, Record<string, unknown>[][]>> {
  const ds = await openDatastore(location)
  try {
    const out = new Map<string, Record<string, unknown>[][]>()
    for (const rec of await commitRecords(ds, home)) {
      const per = new Map<string, Record<string, unknown>[]>()
      for (const f of rec.files) {
        const list = per.get(f.table) ?? []
        for await (const row of readDataFile(ds, f.path)) list.push(row)
        per.set(f.table, list)
      }
      for (const [t, rows] of per) {
        const list = out.get(t)
        if (list) list.push(rows)
        else out.set(t, [rows])
      }
    }
    return out
  } finally {
    await ds.close()
  }
}

/** What the end-to-end checks found wrong (empty when everything converged). */
export async function checkPipeline(opts: {
  source: ChangingSource
  db: PgDatabase
  datastore: string
  user: string
  downloader: string
  uploader: string
}): Promise<string[]> {
  const problems: string[] = []
  const { source, db, user } = opts
  const schema = `${opts.downloader}__${user}`
  const upstream = await committedRows(opts.datastore, `${user}/${opts.downloader}`)
  const expected = source.expected()
  const latest = source.latest()
  for (const [table, want] of expected) {
    // 1. the target's current rows are exactly the latest version of every source file, row by row
    const current = await db.query(`SELECT * FROM "${schema}"."${table}" WHERE _del IS NULL`).catch((err: Error) => {
      problems.push(`${table}: cannot read the target: ${err.message}`)
      return []
    })
    const got = new Map<string, string>()
    for (const r of current) {
      const id = String(r.id)
      if (got.has(id)) problems.push(`${table}: id ${id} is current twice`)
      got.set(id, canonicalRow(r))
    }
    let shown = 0
    const show = (msg: string): void => {
      if (shown++ < 5) problems.push(`${table}: ${msg}`)
    }
    for (const [id, row] of want) {
      const g = got.get(id)
      if (g === undefined) show(`row ${id} is missing from the target`)
      else if (g !== row)
        show(`row ${id} differs:\n    want ${row.replace(/\u0001/g, ' | ')}\n    got  ${g.replace(/\u0001/g, ' | ')}`)
    }
    for (const id of got.keys()) if (!want.has(id)) show(`row ${id} is in the target but in no source file`)
    if (got.size !== want.size) problems.push(`${table}: ${got.size} current rows, expected ${want.size}`)

    // 2. the uploader loaded every committed upstream row exactly once, in commit order
    const commits = upstream.get(table) ?? []
    const upRows = commits.flat().map(canonicalRow)
    const history = (await db.query(`SELECT * FROM "${schema}"."${table}" ORDER BY _seq`).catch(() => [])).map(
      canonicalRow,
    )
    if (history.length !== upRows.length)
      problems.push(
        `${table}: the target holds ${history.length} rows in all, the downloader committed ${upRows.length}`,
      )
    else {
      const at = history.findIndex((h, i) => h !== upRows[i])
      if (at >= 0) problems.push(`${table}: target row _seq order #${at} differs from upstream row #${at}`)
    }

    // 3. the downloader committed every version of a file whole, at most once, never an older one after a newer one
    const seen = new Map<string, number>()
    for (const rows of commits) {
      const byStem = new Map<string, Record<string, unknown>[]>()
      for (const r of rows) {
        const stem = String(r.id).split('-')[0]!
        const list = byStem.get(stem)
        if (list) list.push(r)
        else byStem.set(stem, [r])
      }
      for (const [stem, list] of byStem) {
        const key = `${table}/${stem}`
        const rev = list.reduce((m, r) => Math.max(m, Number(r.rev)), -Infinity)
        const version = source.versions.get(key)?.get(rev)
        if (!version) problems.push(`${key}: committed rows of a version (rev ${rev}) that never existed`)
        else if (version.rows !== list.length || version.hash !== hashOf(list)) {
          problems.push(
            `${key}: version rev ${rev} committed with ${list.length} rows (of ${version.rows}) or other content: partial or mixed file`,
          )
        }
        const before = seen.get(key)
        if (before !== undefined && rev <= before)
          problems.push(`${key}: version rev ${rev} committed after rev ${before} (taken twice or went back)`)
        seen.set(key, rev)
      }
    }
    for (const [key, rev] of latest) {
      if (key.startsWith(`${table}/`) && seen.get(key) !== rev)
        problems.push(`${key}: latest version rev ${rev} was never committed (last: ${seen.get(key)})`)
    }
  }
  return problems
}

/** Writes the downloader's config file into `dir` and returns its path. */
export function writeConfig(dir: string, text: string): string {
  const file = path.join(dir, 'downloader.yaml')
  writeFileSync(file, text)
  return file
}

/** Positive integer from the environment, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name])
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback
}

export type { TableName }
