import type { Datastore, LockInfo } from '../datastore/datastore.js'
import { readDataFile } from '../datastore/data-file.js'
import { decodeCheckpoint } from '../datastore/stores.js'
import { redact } from '../logging/secrets.js'
import { mapLimit } from './map-limit.js'
import { parseSummary, SCHOOL_DIR, type AnchovySummary, type RunSummary } from './summary.js'

/** Anchovy ids and users: what validateName accepts (checked again on everything read or requested). */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,127}$/
/** Session ids as the runtime makes them (`20250101120000.ab12cd34`). */
const SESSION = /^[0-9]{14}\.[0-9a-f]{8}$/
/** Table names, possibly qualified with an upstream namespace. */
const TABLE = /^[A-Za-z0-9_][A-Za-z0-9_\-.]{0,255}$/

/** True when `v` is a safe user or anchovy id (never `..`, never a separator). */
export const isName = (v: unknown): v is string => typeof v === 'string' && NAME.test(v) && !v.includes('..')
/** True when `v` is a session id. */
export const isSession = (v: unknown): v is string => typeof v === 'string' && SESSION.test(v)
/** True when `v` is a table name. */
export const isTable = (v: unknown): v is string => typeof v === 'string' && TABLE.test(v) && !v.includes('..')

/** How many datastore reads the catalog runs at once (blob stores answer each in tens of milliseconds). */
const READ_CONCURRENCY = 64
/** The most of any datastore object the school reads into memory. */
const MAX_OBJECT_BYTES = 4 * 1024 * 1024
/** The most task logs one run's answer holds. */
const MAX_TASKS = 2000

/** Whether an anchovy is fine, failed, running, stale or has never finished a run. */
export type AnchovyState = 'ok' | 'failed' | 'running' | 'stale' | 'never'

/** Who holds an anchovy's run lock now. */
export interface Holder {
  readonly host: string
  readonly pid: number
  readonly since: string
  readonly heartbeat: string
}

/** One anchovy as `school ls` and `GET /api/anchovies` show it. */
export interface AnchovyEntry {
  readonly id: string
  readonly user: string
  readonly operator: string
  readonly upstream: readonly string[]
  readonly service: boolean
  readonly state: AnchovyState
  /** True when the last successful run ended longer ago than the stale limit (or there never was one). */
  readonly stale: boolean
  readonly tables: AnchovySummary['tables']
  readonly last_run: RunSummary | null
  readonly last_ok_at: string | null
  /** Seconds since the last run ended (null: never ended). */
  readonly age_s: number | null
  readonly lock: Holder | null
  readonly running: RunSummary | null
  readonly history: readonly RunSummary[]
}

/** Options of a listing. */
export interface ListOptions {
  /** Only this user's anchovies (default: every user). */
  readonly user?: string | undefined
  /** An anchovy whose last success is older than this is stale (default 24 h). */
  readonly staleAfterS?: number
  readonly now?: number
}

/** Default stale limit: a day without a successful run. */
export const DEFAULT_STALE_AFTER_S = 24 * 3600

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A lock file shape-checked (it is input like everything else). */
function holderOf(info: LockInfo | undefined, ttlS: number, now: number): Holder | null {
  if (!isObject(info)) return null
  const heartbeat = typeof info.heartbeat === 'string' ? Date.parse(info.heartbeat) : NaN
  if (!Number.isFinite(heartbeat) || now - heartbeat > ttlS * 1000) return null
  return {
    host: typeof info.host === 'string' ? info.host.slice(0, 255) : '',
    pid: typeof info.pid === 'number' ? info.pid : 0,
    since: typeof info.since === 'string' ? info.since.slice(0, 40) : '',
    heartbeat: String(info.heartbeat).slice(0, 40),
  }
}

/** Reads a whole object, refusing one larger than the limit. */
async function readBounded(ds: Datastore, path: string, size?: number): Promise<Buffer | undefined> {
  if (size !== undefined && size > MAX_OBJECT_BYTES) return undefined
  const raw = await ds.read(path)
  return raw && raw.length <= MAX_OBJECT_BYTES ? raw : undefined
}

/** The summary in `raw`, unless it is not one or names another anchovy than its path (then it is not trusted). */
function summaryFor(raw: Buffer | undefined, user: string, id: string): AnchovySummary | undefined {
  const s = parseSummary(raw)
  return s && s.anchovy_user === user && s.anchovy_id === id ? s : undefined
}

function parseJson(raw: Buffer | undefined): unknown {
  if (!raw) return undefined
  try {
    return JSON.parse(raw.toString('utf8'))
  } catch {
    return undefined
  }
}

/** Everything the school reads from a datastore: summaries, locks, run results, task logs, tables, checkpoints. */
export class Catalog {
  constructor(readonly datastore: Datastore) {}

  /** Every anchovy with a summary (`$school/<user>/<id>.json`), sorted by user and id. */
  async list(opts: ListOptions = {}): Promise<AnchovyEntry[]> {
    const now = opts.now ?? Date.now()
    const prefix = opts.user === undefined ? SCHOOL_DIR : `${SCHOOL_DIR}/${opts.user}`
    if (opts.user !== undefined && !isName(opts.user)) return []
    const found: { user: string; id: string; size: number; inline: Buffer | undefined }[] = []
    for (const e of await this.datastore.list(prefix)) {
      const parts = e.path.split('/')
      if (parts.length !== 3 || parts[0] !== SCHOOL_DIR || !parts[2]!.endsWith('.json')) continue
      const user = parts[1]!
      const id = parts[2]!.slice(0, -5)
      if (isName(user) && isName(id)) found.push({ user, id, size: e.size, inline: e.inline })
    }
    const entries = await mapLimit(found, READ_CONCURRENCY, (f) =>
      this.entry(f.user, f.id, now, opts.staleAfterS ?? DEFAULT_STALE_AFTER_S, f.size, f.inline),
    )
    return entries
      .filter((e): e is AnchovyEntry => e !== undefined)
      .sort((a, b) => (a.user === b.user ? a.id.localeCompare(b.id) : a.user.localeCompare(b.user)))
  }

  /** One anchovy, or undefined when it has no (valid) summary. */
  async get(user: string, id: string, opts: ListOptions = {}): Promise<AnchovyEntry | undefined> {
    if (!isName(user) || !isName(id)) return undefined
    return this.entry(user, id, opts.now ?? Date.now(), opts.staleAfterS ?? DEFAULT_STALE_AFTER_S)
  }

  private async entry(
    user: string,
    id: string,
    now: number,
    staleAfterS: number,
    size?: number,
    inline?: Buffer,
  ): Promise<AnchovyEntry | undefined> {
    // A copy carried by the listing (a blob store's metadata) is checked exactly as the file would be; when it is
    // missing or does not check out, the file itself is read (one request per anchovy instead of none).
    const s =
      summaryFor(inline, user, id) ??
      summaryFor(
        size !== undefined && size > MAX_OBJECT_BYTES
          ? undefined
          : await this.datastore.read(`${SCHOOL_DIR}/${user}/${id}.json`),
        user,
        id,
      )
    if (!s) return undefined
    // Every run marks itself running in the summary right after taking the lock and clears the mark at its end, so
    // only a marked anchovy can have a live holder: the lock is read for those only (half the requests on a blob
    // store). A run killed hard leaves the mark; its lock then shows whether the holder is still alive.
    const lock = s.running ? await this.datastore.readLock(`${user}/${id}/$lock`).catch(() => undefined) : undefined
    const holder =
      holderOf(lock, s.lock_ttl_s, now) ?? (s.running ? await this.workerHolder(user, id, s.lock_ttl_s, now) : null)
    const okAt = s.last_ok_at ? Date.parse(s.last_ok_at) : NaN
    const stale = !Number.isFinite(okAt) || now - okAt > staleAfterS * 1000
    const endedAt = s.last_run?.ended_at ? Date.parse(s.last_run.ended_at) : NaN
    const state: AnchovyState = holder
      ? 'running'
      : !s.last_run
        ? 'never'
        : s.last_run.status !== 'OK'
          ? 'failed'
          : stale
            ? 'stale'
            : 'ok'
    return {
      id,
      user,
      operator: s.operator,
      upstream: s.upstream,
      service: s.service,
      state,
      stale,
      tables: s.tables,
      last_run: s.last_run,
      last_ok_at: s.last_ok_at,
      age_s: Number.isFinite(endedAt) ? Math.max(0, Math.round((now - endedAt) / 1000)) : null,
      lock: holder,
      running: holder ? s.running : null,
      history: s.history,
    }
  }

  /** The first live holder of a worker lock (`$workers/<n>/$lock`, runs with `--workers N`). */
  private async workerHolder(user: string, id: string, ttlS: number, now: number): Promise<Holder | null> {
    const dir = `${user}/${id}/$workers/`
    const locks = (await this.datastore.list(dir).catch(() => []))
      .filter((e) => /^\d{1,6}\/\$lock$/.test(e.path.slice(dir.length)))
      .slice(0, 256)
    for (const e of locks) {
      const holder = holderOf(await this.datastore.readLock(e.path).catch(() => undefined), ttlS, now)
      if (holder) return holder
    }
    return null
  }

  /** The sessions of an anchovy's runs with their results (newest first, at most `limit`). */
  async runs(user: string, id: string, limit = 50): Promise<Record<string, unknown>[]> {
    if (!isName(user) || !isName(id)) return []
    const dir = `${user}/${id}/$results/sessions/`
    const sessions = (await this.datastore.list(dir))
      .map((e) => ({ sid: e.path.slice(dir.length, -5), e }))
      .filter((x) => x.e.path.endsWith('.json') && isSession(x.sid))
      .sort((a, b) => b.sid.localeCompare(a.sid))
      .slice(0, limit)
    const out = await mapLimit(sessions, READ_CONCURRENCY, async (x) => this.runResults(user, id, x.sid, x.e.size))
    return out.filter((r): r is Record<string, unknown> => r !== undefined)
  }

  /** One run's results document (`$results/sessions/<session>.json`), shape-checked and redacted. */
  async run(user: string, id: string, session: string): Promise<Record<string, unknown> | undefined> {
    if (!isName(user) || !isName(id) || !isSession(session)) return undefined
    return this.runResults(user, id, session)
  }

  private async runResults(
    user: string,
    id: string,
    session: string,
    size?: number,
  ): Promise<Record<string, unknown> | undefined> {
    const doc = parseJson(await readBounded(this.datastore, `${user}/${id}/$results/sessions/${session}.json`, size))
    if (!isObject(doc) || doc.anchovy_id !== id || doc.anchovy_user !== user) return undefined
    return sanitize(doc) as Record<string, unknown>
  }

  /** The task log records of one run, from the anchovy's own `$task_logs` or the hive layout at the root. */
  async tasks(user: string, id: string, session: string): Promise<Record<string, unknown>[]> {
    if (!isName(user) || !isName(id) || !isSession(session)) return []
    const own = `${user}/${id}/$task_logs/`
    const hive = `$task_logs/anchovy_user=${user}/anchovy_id=${id}/`
    const [a, b] = await Promise.all([this.datastore.list(own), this.datastore.list(hive)])
    const paths = [...a, ...b]
      .filter(
        (e) =>
          e.path.endsWith('.json') &&
          (e.path.split('/').pop() ?? '').startsWith(`${session}-`) &&
          e.size <= MAX_OBJECT_BYTES,
      )
      .slice(0, MAX_TASKS)
    const records = await mapLimit(paths, READ_CONCURRENCY, async (e) => parseJson(await this.datastore.read(e.path)))
    return records
      .filter((r): r is Record<string, unknown> => isObject(r) && r.session_id === session && r.anchovy_id === id)
      .map((r) => sanitize(r) as Record<string, unknown>)
      .sort((x, y) => String(x.started_at).localeCompare(String(y.started_at)))
  }

  /** The tables an anchovy recorded (`$tables/*.json`) with their columns. */
  async tables(user: string, id: string): Promise<Record<string, unknown>[]> {
    if (!isName(user) || !isName(id)) return []
    const dir = `${user}/${id}/$tables/`
    const files = (await this.datastore.list(dir)).filter(
      (e) => e.path.endsWith('.json') && isTable(e.path.slice(dir.length, -5)),
    )
    const out = await mapLimit(files, READ_CONCURRENCY, async (e) => {
      const rec = parseJson(await readBounded(this.datastore, e.path, e.size))
      if (!isObject(rec)) return undefined
      const table = sanitize(rec) as Record<string, unknown>
      table.name = e.path.slice(dir.length, -5)
      return table
    })
    return out.filter((t): t is Record<string, unknown> => t !== undefined)
  }

  /** The last rows of a table: from its newest data file, at most `limit`. */
  async lastRows(user: string, id: string, table: string, limit = 20): Promise<Record<string, unknown>[]> {
    if (!isName(user) || !isName(id) || !isTable(table)) return []
    const dir = `${user}/${id}/data/${table}/`
    const files = (await this.datastore.list(dir)).filter(
      (e) => e.path.endsWith('.json.gz') && !e.path.slice(dir.length).includes('/'),
    )
    const newest = files.sort((a, b) => b.path.localeCompare(a.path))[0]
    if (!newest) return []
    const rows: Record<string, unknown>[] = []
    const stop = new AbortController()
    try {
      for await (const row of readDataFile(this.datastore, newest.path, stop.signal)) {
        rows.push(sanitize(row) as Record<string, unknown>)
        if (rows.length > 10_000) rows.shift()
      }
    } catch {
      // a damaged file shows what could be read
    }
    return rows.slice(-limit)
  }

  /** An anchovy's committed checkpoints (values cut to 1,000 characters). */
  async checkpoints(user: string, id: string): Promise<{ key: string; value: unknown }[]> {
    if (!isName(user) || !isName(id)) return []
    const dir = `${user}/${id}/$checkpoints/`
    const files = (await this.datastore.list(dir)).filter(
      (e) => !e.path.slice(dir.length).includes('/') && e.size <= MAX_OBJECT_BYTES,
    )
    return mapLimit(files, READ_CONCURRENCY, async (e) => {
      const key = e.path.slice(dir.length)
      const raw = await this.datastore.read(e.path)
      let value: unknown
      try {
        value = raw ? decodeCheckpoint(raw, e.path) : null
      } catch {
        value = '(corrupt)'
      }
      const shown = JSON.stringify(sanitize(value)) ?? 'null'
      return {
        key: redact(key),
        value: shown.length > 1000 ? `${shown.slice(0, 999)}…` : (JSON.parse(shown) as unknown),
      }
    })
  }
}

/**
 * A copy of an untrusted JSON value that is safe to send: plain objects rebuilt without prototype keys, strings
 * redacted, depth and width bounded.
 */
export function sanitize(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return redact(v.length > 10_000 ? `${v.slice(0, 10_000)}…` : v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return v
  if (depth > 12) return null
  if (Array.isArray(v)) return v.slice(0, 5000).map((x) => sanitize(x, depth + 1))
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Date) return v.toISOString()
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `(${v.length} bytes)`
  if (typeof v === 'object') {
    const out = Object.create(null) as Record<string, unknown>
    let n = 0
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === '__proto__' || k === 'constructor' || k === 'prototype' || n++ > 1000) continue
      out[redact(k)] = sanitize(x, depth + 1)
    }
    return out
  }
  return null
}
