import { AnchoviesError } from '../errors.js'
import type { JsonValue } from '../types.js'
import type { Datastore } from './datastore.js'

/** A data file made visible by a commit. */
export interface CommittedFile {
  readonly table: string
  readonly path: string
  readonly rows: number
  readonly bytes: number
}

/** One commit record: everything a batch made visible at once. */
export interface CommitRecord {
  readonly seq: number
  readonly anchovy_id: string
  readonly anchovy_user: string
  readonly session_id: string
  readonly batch_id: string | null
  readonly committed_at: string
  readonly files: readonly CommittedFile[]
  /** Checkpoint values set by the batch. */
  readonly checkpoints: Readonly<Record<string, JsonValue>>
  /** Checkpoint keys deleted by the batch. */
  readonly deleted_checkpoints: readonly string[]
  /** `$tables` records of the tables the batch touched. */
  readonly tables: readonly Record<string, unknown>[]
  /** The worker that committed (`<num>/<count>`), absent for an anchovy run without workers. */
  readonly worker?: string
  /**
   * SHA-256 (base64url) of every committed checkpoint's file text after this commit, by key: what verifies the
   * checkpoint files when they are read back. Absent in records written before it existed.
   */
  readonly checkpoint_digests?: Readonly<Record<string, string>>
}

const SEQ_DIGITS = 12
const NAME_RE = /^(\d{12})\.json$/
const DIGITS_RE = /^\d{1,15}$/

/** `<home>/$format.json`: written before an anchovy's first batch, so readers never mistake it for a Python-written one. */
export const FORMAT_MARKER = JSON.stringify({ format: 'anchovies-commit-log', version: 1 })

function corrupt(message: string, cause?: unknown): AnchoviesError {
  return new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', message, cause === undefined ? undefined : { cause })
}

/**
 * The ordered commit records of one anchovy (`<user>/<id>/$commits/<seq>.json`). A record is created exclusively,
 * so two writers can never both commit the same sequence number; the record is the single atomic step that makes
 * a batch's data files, checkpoints and table metadata visible together. Sequence numbers start at 1 and have no
 * gap: a missing one is reported, never skipped.
 */
export class CommitLog {
  private last: number | undefined

  constructor(
    private readonly datastore: Datastore,
    /** `<user>/<id>` */
    private readonly home: string,
  ) {}

  private path(seq: number): string {
    return `${this.home}/$commits/${String(seq).padStart(SEQ_DIGITS, '0')}.json`
  }

  private headPath(): string {
    return `${this.home}/$commits/HEAD`
  }

  /**
   * `$commits/HEAD`, a hint written after every commit: it may lag (a crash between the record and the hint) or be
   * damaged, so readers use it only as where to start looking. Anything but a positive integer counts as no hint.
   */
  private async head(): Promise<number | undefined> {
    const raw = await this.datastore.read(this.headPath())
    const text = raw?.toString('utf8').trim() ?? ''
    const n = DIGITS_RE.test(text) ? Number(text) : 0
    return n > 0 ? n : undefined
  }

  /**
   * Sequence numbers of every commit after `afterSeq`, ascending. With a HEAD hint this costs one read plus one
   * probe past it (HEAD may lag); without one, a listing that must be contiguous from 1. A position past the newest
   * record means commits were lost (a datastore restored from an older copy) and is reported.
   */
  async sequences(afterSeq = 0): Promise<number[]> {
    let end = await this.head()
    if (end === undefined) {
      end = await this.verifiedEnd()
    } else {
      while (await this.datastore.read(this.path(end + 1))) end++
    }
    if (afterSeq > end) {
      const listed = await this.verifiedEnd()
      if (afterSeq > listed) {
        throw corrupt(
          `${this.home}/$commits ends at commit ${listed}, but a reader's position is at commit ${afterSeq}: commit records were lost (restored from an older copy?); restore them, or reset the reader's position deliberately with anchovy checkpoint delete`,
        )
      }
      end = listed
    }
    const base = await this.base()
    if (afterSeq < base - 1) {
      // A reader that never read this anchovy starts with what retention kept; one that read before cannot skip.
      if (afterSeq > 0) {
        throw corrupt(
          `${this.home}/$commits starts at commit ${base} (older ones were removed by commit_retention_days), but a reader's position is at commit ${afterSeq}: the commits in between are gone; reset the reader's position deliberately with anchovy checkpoint delete (it then reads from commit ${base})`,
        )
      }
      afterSeq = base - 1
    }
    return Array.from({ length: Math.max(0, end - afterSeq) }, (_, i) => afterSeq + 1 + i)
  }

  /** The newest sequence number, cheaply (the HEAD hint, probed past): for polling readers. */
  async end(): Promise<number> {
    let end = (await this.head()) ?? (await this.verifiedEnd())
    while (await this.datastore.read(this.path(end + 1))) end++
    return end
  }

  /**
   * The first commit record kept (`$commits/BASE`, written by retention before it deletes older records; 1 when
   * absent). Anything but a positive integer is corrupt.
   */
  async base(): Promise<number> {
    const raw = await this.datastore.read(`${this.home}/$commits/BASE`)
    if (!raw) return 1
    const text = raw.toString('utf8').trim()
    if (!DIGITS_RE.test(text) || Number(text) < 1)
      throw corrupt(
        `${this.home}/$commits/BASE is corrupt: it must hold the first kept commit number (got ${JSON.stringify(text.slice(0, 40))})`,
      )
    return Number(text)
  }

  /**
   * Removes the commit records before `keepFrom` (never the newest): BASE is written first, so a crash half-way
   * leaves records that readers no longer look at and the next pass removes. Returns how many were removed.
   */
  async prune(keepFrom: number): Promise<number> {
    const end = await this.verifiedEnd()
    const base = await this.base()
    const upTo = Math.min(keepFrom, end)
    if (upTo <= base) return 0
    await this.datastore.write(`${this.home}/$commits/BASE`, String(upTo))
    let removed = 0
    for (const seq of await this.listSequences()) {
      if (seq >= upTo) break
      await this.datastore.delete(this.path(seq))
      removed++
    }
    return removed
  }

  /** The newest sequence number from a listing, checking that every record from BASE up to it is there. */
  private async verifiedEnd(): Promise<number> {
    const base = await this.base()
    const seqs = (await this.listSequences()).filter((n) => n >= base)
    for (let i = 0; i < seqs.length; i++) {
      if (seqs[i] !== base + i)
        throw corrupt(
          `commit record ${this.path(base + i)} is missing (records up to ${seqs.at(-1)} exist): restore it from a backup; anchovies never skips a commit`,
        )
    }
    return seqs.at(-1) ?? base - 1
  }

  private async listSequences(): Promise<number[]> {
    const entries = await this.datastore.list(`${this.home}/$commits`)
    const seqs: number[] = []
    for (const e of entries) {
      const m = NAME_RE.exec(e.path.slice(e.path.lastIndexOf('/') + 1))
      if (m) seqs.push(Number(m[1]))
    }
    return seqs.sort((a, b) => a - b)
  }

  /**
   * Whether this anchovy keeps commit records. Only one that has none, no format marker, no batch in flight and no
   * run lock was written by the Python implementation (whose data files are all committed); an anchovy of ours
   * whose first batch is running or died has a marker or a lock, and its files are not committed.
   */
  async usesCommits(): Promise<boolean> {
    if ((await this.listSequences()).length) return true
    if (await this.datastore.read(this.formatPath())) return true
    if (await this.datastore.read(`${this.home}/$inflight.json`)) return true
    return (await this.datastore.readLock(`${this.home}/$lock`)) !== undefined
  }

  /** Writes the format marker if it is missing (the writer does this under its lock before its first batch). */
  async markFormat(): Promise<void> {
    if (!(await this.datastore.read(this.formatPath()))) await this.datastore.write(this.formatPath(), FORMAT_MARKER)
  }

  private formatPath(): string {
    return `${this.home}/$format.json`
  }

  /** Reads one commit record; a record that is missing or cannot be parsed stops the run with a clear error. */
  async read(seq: number): Promise<CommitRecord> {
    const path = this.path(seq)
    const raw = await this.datastore.read(path)
    if (!raw)
      throw corrupt(`commit record ${path} is missing: restore it from a backup; anchovies never skips a commit`)
    let rec: CommitRecord
    try {
      rec = JSON.parse(raw.toString('utf8')) as CommitRecord
    } catch (err) {
      throw corrupt(`commit record ${path} is corrupt: ${(err as Error).message}`, err)
    }
    const problem = recordProblem(rec, seq)
    if (problem) throw corrupt(`commit record ${path} is corrupt: ${problem}`)
    return rec
  }

  /** The newest commit record, if any (from a listing, checked for gaps: authoritative). */
  async latest(): Promise<CommitRecord | undefined> {
    this.last = await this.verifiedEnd()
    return this.last ? this.read(this.last) : undefined
  }

  /** Brings the HEAD hint up to date (the writer does this under the run lock when it starts). */
  async repairHead(): Promise<void> {
    if (this.last === undefined) await this.latest()
    if (this.last! > 0 && (await this.head()) !== this.last)
      await this.datastore.write(this.headPath(), String(this.last))
  }

  /**
   * The records other writers appended after the newest one this log knows (workers of one anchovy share the log),
   * in order; afterwards this log knows the newest record.
   */
  async newer(): Promise<CommitRecord[]> {
    if (this.last === undefined) await this.latest()
    const out: CommitRecord[] = []
    while (await this.datastore.read(this.path(this.last! + 1))) {
      out.push(await this.read(this.last! + 1))
      this.last! += 1
    }
    return out
  }

  /** The newest sequence number this log knows (after latest(), newer() or append()). */
  get known(): number {
    return this.last ?? 0
  }

  /**
   * Writes the next commit record; undefined when another writer took that sequence number first (the caller
   * catches up with newer() and tries again). The record is the commit: never two with one number.
   */
  async append(record: Omit<CommitRecord, 'seq'>): Promise<CommitRecord | undefined> {
    if (this.last === undefined) await this.latest()
    const seq = this.last! + 1
    const full: CommitRecord = { seq, ...record }
    if (!(await this.datastore.createExclusive(this.path(seq), JSON.stringify(full)))) return undefined
    this.last = seq
    // A hint only: if this write is lost, readers probe past it.
    await this.datastore.write(this.headPath(), String(seq)).catch(() => undefined)
    return full
  }
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0

/** What is wrong with a parsed commit record, or undefined: everything a reader relies on is checked. */
function recordProblem(rec: unknown, seq: number): string | undefined {
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return 'not a JSON object'
  const r = rec as Record<string, unknown>
  if (r.seq !== seq) return `it says seq ${JSON.stringify(r.seq)}`
  if (!Array.isArray(r.files)) return 'files is not a list'
  for (const [i, f] of r.files.entries()) {
    const file = f as Record<string, unknown> | null
    if (
      !file ||
      typeof file !== 'object' ||
      typeof file.table !== 'string' ||
      typeof file.path !== 'string' ||
      !isCount(file.rows) ||
      !isCount(file.bytes)
    ) {
      return `files[${i}] is not {table, path, rows, bytes}`
    }
  }
  if (!r.checkpoints || typeof r.checkpoints !== 'object' || Array.isArray(r.checkpoints))
    return 'checkpoints is not a map'
  if (!Array.isArray(r.deleted_checkpoints) || !r.deleted_checkpoints.every((k) => typeof k === 'string'))
    return 'deleted_checkpoints is not a list of keys'
  if (!Array.isArray(r.tables)) return 'tables is not a list'
  const d = r.checkpoint_digests
  if (
    d !== undefined &&
    (!d || typeof d !== 'object' || Array.isArray(d) || !Object.values(d).every((v) => typeof v === 'string'))
  )
    return 'checkpoint_digests is not a map of digests'
  return undefined
}
