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
}

const SEQ_DIGITS = 12
const NAME_RE = /^(\d{12})\.json$/

/**
 * The ordered commit records of one anchovy (`<user>/<id>/$commits/<seq>.json`). A record is created exclusively,
 * so two writers can never both commit the same sequence number; the record is the single atomic step that makes
 * a batch's data files, checkpoints and table metadata visible together.
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
   * The newest sequence number according to `$commits/HEAD`, a hint written after every commit (so it is never
   * ahead of the records, and at most one commit behind after a crash until the writer's next run repairs it).
   */
  private async head(): Promise<number | undefined> {
    const raw = await this.datastore.read(this.headPath())
    const n = raw ? Number(raw.toString('utf8')) : NaN
    return Number.isInteger(n) && n >= 0 ? n : undefined
  }

  /**
   * Sequence numbers of every commit after `afterSeq`, ascending. Sequence numbers are contiguous, so with a HEAD
   * hint this costs one read instead of a listing of every commit ever made.
   */
  async sequences(afterSeq = 0): Promise<number[]> {
    const head = await this.head()
    if (head !== undefined) return Array.from({ length: Math.max(0, head - afterSeq) }, (_, i) => afterSeq + 1 + i)
    return this.listSequences(afterSeq)
  }

  private async listSequences(afterSeq: number): Promise<number[]> {
    const entries = await this.datastore.list(`${this.home}/$commits`)
    const seqs: number[] = []
    for (const e of entries) {
      const m = NAME_RE.exec(e.path.slice(e.path.lastIndexOf('/') + 1))
      if (m) {
        const seq = Number(m[1])
        if (seq > afterSeq) seqs.push(seq)
      }
    }
    return seqs.sort((a, b) => a - b)
  }

  /** Whether this anchovy has any commit record (a datastore written by the Python implementation has none). */
  async exists(): Promise<boolean> {
    return (await this.sequences()).length > 0
  }

  /** Reads one commit record; a record that cannot be parsed stops the run with a clear error. */
  async read(seq: number): Promise<CommitRecord> {
    const path = this.path(seq)
    const raw = await this.datastore.read(path)
    if (!raw) throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `commit record ${path} is missing`)
    try {
      const rec = JSON.parse(raw.toString('utf8')) as CommitRecord
      if (rec.seq !== seq || !Array.isArray(rec.files)) throw new Error('unexpected content')
      return rec
    } catch (err) {
      throw new AnchoviesError('ANCH_ERR_DATASTORE_CORRUPT', `commit record ${path} is corrupt: ${(err as Error).message}`, { cause: err })
    }
  }

  /** The newest commit record, if any (from a listing: authoritative). */
  async latest(): Promise<CommitRecord | undefined> {
    const seqs = await this.listSequences(0)
    this.last = seqs.at(-1) ?? 0
    return seqs.length ? this.read(this.last) : undefined
  }

  /** Brings the HEAD hint up to date (the writer does this under the run lock when it starts). */
  async repairHead(): Promise<void> {
    if (this.last === undefined) await this.latest()
    if (this.last! > 0 && (await this.head()) !== this.last) await this.datastore.write(this.headPath(), String(this.last))
  }

  /** Writes the next commit record; fails if another writer committed in between (the lock was lost). */
  async append(record: Omit<CommitRecord, 'seq'>): Promise<CommitRecord> {
    if (this.last === undefined) await this.latest()
    const seq = this.last! + 1
    const full: CommitRecord = { seq, ...record }
    if (!(await this.datastore.createExclusive(this.path(seq), JSON.stringify(full)))) {
      throw new AnchoviesError('ANCH_ERR_LOCKED', `commit ${this.path(seq)} already exists: another run of this anchovy committed concurrently`)
    }
    this.last = seq
    // A hint only: if this write is lost, readers see the commit after the writer's next start repairs HEAD.
    await this.datastore.write(this.headPath(), String(seq)).catch(() => undefined)
    return full
  }
}
