import {
  Connection,
  Uploader,
  connection,
  context,
  onTask,
  positionKey,
  qualifiedName,
  sink,
  source,
  type Rows,
  type Row,
  type StreamContext,
  type Table,
  type UpstreamFile,
} from '@anchovies/core'
import { SingerError } from './errors.js'
import { columnSchema } from './json-schema.js'
import { stringifyMessage } from './messages.js'
import { SingerProcess, commandWords } from './singer-process.js'
import { readJsonAttribute, registerConfigSecrets } from './config-files.js'

/** The `target` connection: `ACHVY_CNXN__TARGET__COMMAND`, `…__CONFIG`, optional `…__FLUSH_ON` (`state` or `exit`). */
export class TargetConnection extends Connection {
  static override requiredAttributes = ['command']
}

/** Bytes of message lines gathered before one write to the target's stdin (the bounded buffer). */
const WRITE_BYTES = 256 * 1024

/** The STATE value the uploader sends: `{"bookmarks": {"<upstream>.<table>": {"seq": N}}}`. */
interface TargetState {
  bookmarks: Record<string, { seq: number }>
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v)

/** A running target: lines go to its stdin with back-pressure; the states it echoes on stdout are collected. */
class Target {
  readonly proc: SingerProcess
  private buffer: string[] = []
  private bytes = 0
  /** Positions confirmed by the target (from the newest state it echoed), by `<upstream>.<table>`. */
  readonly confirmed = new Map<string, number>()
  lastEcho: unknown = undefined
  private readonly reading: Promise<void>
  readError: Error | undefined

  constructor(
    words: string[],
    private readonly logger = context().logger,
  ) {
    this.proc = new SingerProcess('target', words, this.logger, { stdin: true })
    this.reading = this.readStates().catch((err: unknown) => {
      this.readError = err as Error
    })
  }

  private async readStates(): Promise<void> {
    for await (const lines of this.proc.lines(64 * 1024 * 1024)) {
      for (const text of lines) {
        if (!text.trim()) continue
        let v: unknown
        try {
          v = JSON.parse(text)
        } catch {
          this.logger.info({ process: 'target' }, 'target stdout line that is not JSON (ignored)')
          continue
        }
        // Targets echo the state value itself; a few wrap it as a STATE message.
        const value = isObject(v) && v.type === 'STATE' && Object.hasOwn(v, 'value') ? v.value : v
        this.lastEcho = value
        const marks = isObject(value) && isObject(value.bookmarks) ? value.bookmarks : undefined
        if (!marks) continue
        for (const [k, m] of Object.entries(marks)) {
          if (isObject(m) && Number.isInteger(m.seq) && (m.seq as number) >= 0) this.confirmed.set(k, m.seq as number)
        }
      }
    }
  }

  /** Queues one message line; flushes when the buffer is full (awaiting the target's stdin). */
  async send(line: string, signal?: AbortSignal): Promise<void> {
    this.buffer.push(line)
    this.bytes += line.length + 1
    if (this.bytes >= WRITE_BYTES) await this.flush(signal)
  }

  async flush(signal?: AbortSignal): Promise<void> {
    if (!this.buffer.length) return
    if (signal?.aborted) throw signal.reason
    const text = `${this.buffer.join('\n')}\n`
    this.buffer = []
    this.bytes = 0
    const stdin = this.proc.child.stdin!
    if (stdin.destroyed || this.proc.child.exitCode !== null)
      throw new SingerError(
        'ANCH_ERR_SINGER_PROCESS',
        'target: its stdin is closed (it exited early): see its log lines',
      )
    if (!stdin.write(text)) {
      await new Promise<void>((resolve, reject) => {
        const off = (): void => {
          stdin.off('drain', done)
          stdin.off('close', closed)
          signal?.removeEventListener('abort', aborted)
        }
        const done = (): void => {
          off()
          resolve()
        }
        const closed = (): void => {
          off()
          reject(
            new SingerError(
              'ANCH_ERR_SINGER_PROCESS',
              'target: its stdin closed while data was being written (it exited early): see its log lines',
            ),
          )
        }
        // A target that stops reading holds the upload here; a timeout or signal ends the wait.
        const aborted = (): void => {
          off()
          reject(signal!.reason)
        }
        stdin.once('drain', done)
        stdin.once('close', closed)
        signal?.addEventListener('abort', aborted, { once: true })
      })
    }
  }

  /** Ends the input and waits for the target to finish (a write that failed is reported, not thrown). */
  async finish(): Promise<{ code: number | null; signal: NodeJS.Signals | null; writeError?: unknown }> {
    let writeError: unknown
    try {
      await this.flush()
    } catch (err) {
      writeError = err
    } finally {
      this.proc.child.stdin?.end()
    }
    const exit = await this.proc.exited
    await this.reading
    return writeError === undefined ? exit : { ...exit, writeError }
  }
}

/**
 * Feeds the upstream tables to a Singer target as SCHEMA, RECORD and STATE messages. After each upstream commit
 * it sends a STATE carrying the position; a table's position advances only to what the target echoed back on
 * stdout (its way of saying "flushed"), or, for `FLUSH_ON=exit`, to everything sent when the target exits 0.
 */
export class TargetUploader extends Uploader {
  @connection('target', TargetConnection) targetConnection!: TargetConnection

  private target: Target | undefined
  private readonly state: TargetState = { bookmarks: Object.create(null) as Record<string, { seq: number }> }
  /** Upstream tables sent this batch, by state key. */
  private readonly sent = new Map<string, Table>()
  private startError: Error | undefined

  private attr(name: string): string | undefined {
    const v = this.targetConnection.attrs[name]
    return typeof v === 'string' && v !== '' ? v : undefined
  }

  private flushOn(): 'state' | 'exit' {
    const f = this.attr('flush_on') ?? 'state'
    if (f !== 'state' && f !== 'exit')
      throw new SingerError(
        'ANCH_ERR_SINGER_CONFIG',
        `ACHVY_CNXN__TARGET__FLUSH_ON: ${JSON.stringify(f)} is neither state nor exit`,
      )
    return f
  }

  /** The target process of this batch, started at its first table. */
  private async open(): Promise<Target> {
    if (this.startError) throw this.startError
    if (this.target) return this.target
    const command = String(this.targetConnection.attrs.command ?? '')
    const words = commandWords(command, 'ACHVY_CNXN__TARGET__COMMAND')
    const config = this.attr('config')
    if (config) {
      registerConfigSecrets(await readJsonAttribute(config, 'ACHVY_CNXN__TARGET__CONFIG'))
      words.push('--config', config)
    }
    this.flushOn()
    this.target = new Target(words)
    // A target that cannot start fails here (spawn errors arrive on the next turn).
    await new Promise((r) => setImmediate(r))
    const err = this.target.proc.startError(command)
    if (err) {
      this.startError = err
      throw err
    }
    return this.target
  }

  /** Sends the table's committed upstream rows not yet delivered, one upstream commit at a time, each followed by a STATE. */
  @source('*')
  override async *defaultSource(ctx: StreamContext): AsyncGenerator<Row[]> {
    const table = ctx.table
    if (table.properties.singer_role === 'tap') return // the tap table of a TapDownloader holds no rows
    const files = await this.pendingFiles(ctx)
    ctx.task.data.files = files.length
    if (!files.length) return
    const target = await this.open()
    const key = qualifiedName(table)
    const stream = typeof table.properties.singer_stream === 'string' ? table.properties.singer_stream : table.name
    const properties = Object.create(null) as Record<string, unknown>
    for (const [col, type] of Object.entries(table.columns)) properties[col] = columnSchema(type)
    const schema = {
      type: 'SCHEMA',
      stream,
      schema: { type: 'object', properties },
      key_properties: [...table.uniqueBy],
      ...(Array.isArray(table.properties.singer_bookmark_properties)
        ? { bookmark_properties: table.properties.singer_bookmark_properties }
        : {}),
    }
    await target.send(stringifyMessage(schema), ctx.signal)
    this.sent.set(key, table)
    let records = 0
    const prefix = `{"type":"RECORD","stream":${JSON.stringify(stream)},"record":`
    // The datastore keeps integers beyond ±2^53 as digit strings: an integer column sends them as JSON integers.
    const intColumns = Object.entries(table.columns)
      .filter(([, t]) => t === 'int')
      .map(([c]) => c)
    const bySeq = new Map<number, UpstreamFile[]>()
    for (const f of files) bySeq.set(f.seq, [...(bySeq.get(f.seq) ?? []), f])
    for (const [seq, group] of bySeq) {
      for (const file of group) {
        for await (const chunk of this.readUpstream(file, ctx.signal)) {
          for (const row of chunk) {
            for (const c of intColumns) {
              const v = row[c]
              if (typeof v === 'string' && /^-?\d{16,}$/.test(v)) row[c] = BigInt(v)
            }
            // Columns a later SCHEMA added are in the data even if an older table record lacks them: sent as they are.
            await target.send(prefix + stringifyMessage(row) + '}', ctx.signal)
            records++
          }
        }
      }
      // Python-written upstreams (seq 0) have no commit to name: their files are delivered, never positioned here.
      if (seq > 0) {
        this.state.bookmarks[key] = { seq }
        await target.send(stringifyMessage({ type: 'STATE', value: this.state }), ctx.signal)
      }
    }
    await target.flush(ctx.signal)
    ctx.task.data.records_sent = records
    ctx.task.data.sent_through_seq = files.at(-1)!.seq
  }

  /** The rows are delivered by the source itself; this sink only lets the table run. */
  @sink('*')
  async delivered(rows: Rows): Promise<void> {
    for await (const _ of rows) void _
  }

  /**
   * Ends the target's input, waits for it to exit, and moves each table's position to what the target confirmed:
   * the states it echoed, or (`FLUSH_ON=exit`) everything sent when it exited 0. Committed with the batch.
   */
  @onTask('xclose')
  async closeTarget(): Promise<void> {
    const target = this.target
    this.target = undefined
    if (!target) return
    const ctx = context()
    // A target still running at the timeout (or a signal) is killed; what it echoed before still counts.
    const onAbort = (): void => void target.proc.kill()
    if (ctx.signal.aborted) onAbort()
    else ctx.signal.addEventListener('abort', onAbort, { once: true })
    let exit: { code: number | null; signal: NodeJS.Signals | null; writeError?: unknown }
    try {
      exit = await target.finish()
    } finally {
      ctx.signal.removeEventListener('abort', onAbort)
    }
    const flushOn = this.flushOn()
    const ok = exit.code === 0 && !target.readError && exit.writeError === undefined
    const confirmed = new Map(target.confirmed)
    if (ok && flushOn === 'exit') for (const [k, m] of Object.entries(this.state.bookmarks)) confirmed.set(k, m.seq)
    for (const [key, table] of this.sent) {
      const seq = confirmed.get(key)
      const current = ctx.checkpoint<{ seq: number }>(positionKey(table)).get()
      if (seq !== undefined && seq > (current?.seq ?? 0)) ctx.checkpoint(positionKey(table)).set({ seq })
    }
    ctx.logger.info({ confirmed: Object.fromEntries(confirmed), exit_code: exit.code }, 'target finished')
    this.sent.clear()
    if (!ok) {
      throw new SingerError(
        'ANCH_ERR_SINGER_PROCESS',
        `target exited with ${exit.code !== null ? `code ${exit.code}` : `signal ${exit.signal}`}: positions moved only as far as the states it echoed; see its log lines`,
      )
    }
  }

  /** A run that stops before xclose ends the target it started. */
  @onTask('shutdown')
  async killTarget(): Promise<void> {
    const t = this.target
    this.target = undefined
    if (t) await t.proc.kill()
  }
}
