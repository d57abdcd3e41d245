import { source } from '../decorators/index.js'
import { AnchoviesError } from '../errors.js'
import type { Row, Table } from '../types.js'
import { Operator, type StreamContext, type UpstreamFile } from './operator.js'

/** The checkpoint key holding an uploader's position over an upstream table. */
export function positionKey(table: Table): string {
  return `$upstream.${table.namespace ?? ''}.${table.name}`
}

/** An uploader's position over one upstream table. */
export interface UpstreamPosition {
  /** Last commit sequence number read completely. */
  readonly seq: number
  /** For upstream datastores without commit records: the last data file read (by name). */
  readonly file?: string
}

/**
 * An operator that reads what upstream anchovies (`-U`) committed and pushes it into a target; plugins add the
 * sink. Every committed upstream file is read exactly once, in commit order, and checked against what its commit
 * record says; the position advances only when the table's sink succeeded and the batch commits.
 */
export class Uploader extends Operator {
  /** Reads, table by table, the upstream rows not yet uploaded (in chunks of rows: sinks may use `rows.chunks()`). */
  @source('*')
  async *defaultSource(ctx: StreamContext): AsyncGenerator<Row[]> {
    const files = await this.pendingFiles(ctx)
    ctx.task.data.files = files.length
    for (const file of files) yield* this.readUpstream(file, ctx.signal)
    const last = files.at(-1)
    if (last) this.advance(ctx, last)
  }

  /**
   * The rows of one upstream file; a file with commit record figures that does not hold exactly those rows and
   * bytes (cut short, truncated at a gzip member boundary, replaced) fails naming the file.
   */
  readUpstream(file: UpstreamFile, signal?: AbortSignal): AsyncGenerator<Row[]> {
    return this.runtime.dataBuffer.readChunks(
      file.path,
      signal,
      file.seq > 0 ? { rows: file.rows, bytes: file.bytes } : undefined,
    )
  }

  /** The committed upstream files of the task's table after its position, in commit order (bounded by `upload_batch_size`). */
  async pendingFiles(ctx: StreamContext): Promise<UpstreamFile[]> {
    const table = ctx.table
    const up = table.namespace
    if (!up) {
      throw new AnchoviesError(
        'ANCH_ERR_NO_SOURCE',
        `table ${table.name} has no upstream anchovy: start the uploader with -U <downloader id>`,
      )
    }
    const pos = this.position(ctx)
    const limit = Number(this.runtime.settings.upload_batch_size ?? 0)
    const log = this.runtime.commitLog(up)
    const out: UpstreamFile[] = []
    let bytes = 0
    const seqs = await log.sequences(pos.seq)
    if (seqs.length === 0 && pos.seq === 0 && !(await log.usesCommits())) {
      // A datastore written by the Python implementation: every data file is committed; order by name.
      for (const path of await this.runtime.dataBuffer.files(up, table.name)) {
        const name = path.slice(path.lastIndexOf('/') + 1)
        if (pos.file !== undefined && name <= pos.file) continue
        out.push({ anchovyId: up, seq: 0, id: `${up}/${path}`, table: table.name, path, rows: -1, bytes: 0 })
      }
      return out
    }
    const dir = `${this.runtime.user}/${up}/data/${table.name}/`
    for (const seq of seqs) {
      const rec = await log.read(seq)
      for (const f of rec.files) {
        if (f.table !== table.name) continue
        if (!f.path.startsWith(dir) || f.path.slice(dir.length).includes('/')) {
          throw new AnchoviesError(
            'ANCH_ERR_DATASTORE_CORRUPT',
            `commit ${seq} of ${up} names ${f.path}, which is not a data file of ${table.name} (${dir}…)`,
          )
        }
        out.push({ ...f, anchovyId: up, seq, id: `${up}/${f.path}` })
        bytes += f.bytes
      }
      if (limit > 0 && bytes >= limit) break
    }
    return out
  }

  /** The current position over the task's upstream table (as of this task). */
  position(ctx: StreamContext): UpstreamPosition {
    const v = ctx.stage.get(positionKey(ctx.table)) as UpstreamPosition | undefined
    return v && typeof v === 'object' && !Array.isArray(v) && Number.isInteger(v.seq) && v.seq >= 0 ? v : { seq: 0 }
  }

  /**
   * Moves the position to the end of `file` (the last file read). It is staged in the table task and committed
   * with the batch only if the whole table succeeded, so a failed sink leaves the position where it was.
   */
  advance(ctx: StreamContext, file: UpstreamFile): void {
    const pos: UpstreamPosition =
      file.seq === 0 ? { seq: 0, file: file.path.slice(file.path.lastIndexOf('/') + 1) } : { seq: file.seq }
    ctx.stage.set(positionKey(ctx.table), { ...pos })
    if (file.seq > 0) {
      // Registered with the upstream anchovy once committed: its commit retention keeps what readers have not read.
      const path = `${this.runtime.user}/${file.anchovyId}/$readers/${this.runtime.anchovyId}/${ctx.table.name}.json`
      ctx.stage.onCommit(() =>
        this.runtime.datastore.write(path, JSON.stringify({ seq: file.seq, at: new Date().toISOString() })),
      )
    }
  }
}
