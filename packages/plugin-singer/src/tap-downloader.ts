import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Connection,
  Downloader,
  batch,
  chunksOf,
  connection,
  context,
  redact,
  sink,
  source,
  type ColumnType,
  type JsonValue,
  type Row,
  type Rows,
  type SettingSpec,
  type StreamContext,
  type Table,
  type TableWriter,
} from '@anchovies/core'
import { batchRecords } from './batch-files.js'
import { catalogStreams, isCatalog, selectStreams } from './catalog.js'
import { readJsonAttribute, registerConfigSecrets } from './config-files.js'
import { SingerError } from './errors.js'
import { SchemaViolation, UnsafeInteger, convertRecord, streamShape, type StreamShape } from './json-schema.js'
import { parseLossless, type SingerMessage } from './messages.js'
import { SingerProcess, commandWords } from './singer-process.js'
import { applySchema, newTable, ownTable, pick, tableName, type MutableTable } from './stream-tables.js'

export { tableName } from './stream-tables.js'

/** The table whose source runs the tap; every stream's table is fed from it. It holds no rows itself. */
export const TAP_TABLE = '_singer_tap'
/** The checkpoint holding the tap's state (the value of its last committed STATE message). */
export const STATE_KEY = 'singer.state'
/** The checkpoint holding the base catalog stored by `--discover`. */
export const CATALOG_KEY = 'singer.catalog'

/** Rows of one stream travel in chunks of at most this many rows. */
const CHUNK_ROWS = 1000

/** The table each chunk of rows belongs to (chunks hold the rows of one stream). */
const chunkTable = new WeakMap<Row[], string>()

/** The `tap` connection: `ACHVY_CNXN__TAP__COMMAND`, `…__CONFIG`, optional `…__CATALOG` and `…__CATALOG_FLAG`. */
export class TapConnection extends Connection {
  static override requiredAttributes = ['command']
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v)
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])

/** A -e/-d glob (`*`, `?`, `[…]`) as a regular expression over a whole name. */
function globRe(pattern: string): RegExp {
  let re = ''
  for (const c of pattern) re += c === '*' ? '.*' : c === '?' ? '.' : /[\\^$.|+(){}]/.test(c) ? `\\${c}` : c
  return new RegExp(`^${re}$`)
}

/** What the reader knows about one stream of the running tap. */
interface StreamState {
  readonly stream: string
  readonly table: Table | undefined
  shape: StreamShape
  /** Rows go to this writer (a stream first seen in this run), not through the stream's own table chain. */
  writer?: TableWriter
  activeVersion?: number
  rows: number
}

/**
 * Runs a Singer tap and stores every stream as a table. Each STATE message is a commit point: the rows the tap
 * emitted before it and the state itself (checkpoint `singer.state`) commit together, so a crash or timeout never
 * duplicates a row and loses at most the work since the last STATE. Rows after the last STATE commit only when
 * the tap exits 0.
 */
export class TapDownloader extends Downloader {
  static override settings: readonly SettingSpec[] = [
    {
      key: 'discover',
      env: ['ACHVY_SINGER_DISCOVER'],
      flags: '--discover',
      type: 'bool',
      default: false,
      description:
        "singer: run the tap's discovery (--discover) and store its catalog as the checkpoint singer.catalog instead of extracting",
    },
    {
      key: 'singer_max_line_bytes',
      env: ['ACHVY_SINGER_MAX_LINE_BYTES'],
      type: 'int',
      default: 128 * 1024 * 1024,
      min: 1024,
      description: 'singer: the longest message line a tap may write (characters)',
    },
  ]

  @connection('tap', TapConnection) tap!: TapConnection

  /** This batch's stream tables by table name (the objects the plan holds, updated on schema changes). */
  private streams = new Map<string, MutableTable>()
  /** config.yaml tables by name (their settings win over the tap's). */
  private configTables = new Map<string, Table>()

  private attr(name: string): string | undefined {
    const v = this.tap.attrs[name]
    return typeof v === 'string' && v !== '' ? v : undefined
  }

  /** The catalog the tap runs with: the CATALOG file when given (a user's override), else the stored base catalog. */
  private async catalog(): Promise<unknown> {
    const file = this.attr('catalog')
    if (file) {
      const c = await readJsonAttribute(file, 'ACHVY_CNXN__TAP__CATALOG')
      if (!isCatalog(c))
        throw new SingerError(
          'ANCH_ERR_SINGER_CONFIG',
          `ACHVY_CNXN__TAP__CATALOG: ${file} is not a Singer catalog ({"streams": [...]})`,
        )
      return c
    }
    return context().checkpoint(CATALOG_KEY).get()
  }

  private async baseArgs(): Promise<string[]> {
    const words = commandWords(String(this.tap.attrs.command ?? ''), 'ACHVY_CNXN__TAP__COMMAND')
    const config = this.attr('config')
    if (config) {
      registerConfigSecrets(await readJsonAttribute(config, 'ACHVY_CNXN__TAP__CONFIG'))
      words.push('--config', config)
    }
    return words
  }

  /**
   * The streams of this anchovy: the tables of earlier runs, the catalog's streams and config.yaml's tables, plus
   * the tap table. With `--discover`, runs the tap's discovery instead and stores the catalog (nothing extracted).
   */
  override async discoverTbls(): Promise<Table[]> {
    const base = await super.discoverTbls()
    this.streams = new Map()
    this.configTables = new Map(base.filter((t) => t.name !== TAP_TABLE && !t.namespace).map((t) => [t.name, t]))
    if (this.runtime.settings.discover) {
      await this.discover()
      return []
    }
    for (const t of await this.runtime.tableStore.load())
      if (t.name !== TAP_TABLE) this.streams.set(t.name, ownTable(t))
    for (const s of catalogStreams(await this.catalog())) {
      const name = tableName(s.name)
      const table = this.streams.get(name) ?? newTable(name)
      try {
        applySchema(
          table,
          s.name,
          streamShape(s.schema),
          s.keyProperties,
          s.bookmarkProperties,
          this.configTables.get(name),
        )
      } catch (err) {
        if (!(err instanceof SchemaViolation)) throw err
        context().logger.warn(
          { stream: s.name },
          `catalog stream ${s.name}: ${err.message}; its table is known once the tap sends a usable SCHEMA`,
        )
        table.properties.singer_stream = s.name
      }
      this.streams.set(name, table)
    }
    for (const [name, t] of this.configTables) {
      const known = this.streams.get(name)
      this.streams.set(
        name,
        known
          ? ownTable({
              ...known,
              ...pick(t),
              columns: Object.assign(Object.create(null) as Record<string, ColumnType>, known.columns, t.columns),
              properties: Object.assign(Object.create(null) as Record<string, unknown>, known.properties, t.properties),
            })
          : ownTable(t),
      )
    }
    const tap = newTable(TAP_TABLE)
    tap.properties.singer_role = 'tap'
    return [tap, ...this.streams.values()]
  }

  /** Runs `<command> --config … --discover` and stages its catalog as the checkpoint singer.catalog. */
  private async discover(): Promise<void> {
    const ctx = context()
    const proc = new SingerProcess('tap --discover', [...(await this.baseArgs()), '--discover'], ctx.logger, {
      stdin: false,
    })
    const onAbort = (): void => void proc.kill()
    ctx.signal.addEventListener('abort', onAbort, { once: true })
    let text = ''
    try {
      for await (const lines of proc.lines(this.runtime.settings.singer_max_line_bytes as number))
        text += `${lines.join('\n')}\n`
    } finally {
      ctx.signal.removeEventListener('abort', onAbort)
    }
    const exit = await proc.exited
    const started = proc.startError(String(this.tap.attrs.command))
    if (started) throw started
    if (exit.code !== 0)
      throw new SingerError(
        'ANCH_ERR_SINGER_PROCESS',
        `tap --discover exited with ${exit.code ?? exit.signal}: see its log lines above`,
      )
    let catalog: unknown
    try {
      catalog = JSON.parse(text)
    } catch (err) {
      throw new SingerError(
        'ANCH_ERR_SINGER_PROTOCOL',
        `tap --discover: its output is not JSON (${(err as Error).message})`,
        { cause: err },
      )
    }
    if (!isCatalog(catalog))
      throw new SingerError(
        'ANCH_ERR_SINGER_PROTOCOL',
        'tap --discover: its output is not a Singer catalog ({"streams": [...]})',
      )
    ctx.checkpoint(CATALOG_KEY).set(catalog)
    ctx.logger.info(
      { streams: catalogStreams(catalog).map((s) => s.name) },
      'stored the catalog the tap discovered (checkpoint singer.catalog)',
    )
  }

  /** The tap table holds no rows of its own: its rows are the streams' (the tables fed by `route`). */
  @sink('*')
  override async defaultSink(rows: Rows, ctx: StreamContext): Promise<void> {
    if (ctx.table.name === TAP_TABLE && !ctx.output) {
      for await (const _ of chunksOf(rows)) void _
      return
    }
    await super.defaultSink(rows, ctx)
  }

  /** Each stream's table: the chunks of the tap's rows that belong to it. */
  @source('*')
  @sink(TAP_TABLE)
  async *route(rows: Rows, ctx: StreamContext): AsyncGenerator<Row[]> {
    const name = ctx.output!.name
    for await (const chunk of chunksOf(rows)) if (chunkTable.get(chunk) === name) yield chunk
  }

  /** Runs the tap and yields its records, committing at every STATE. */
  @source(TAP_TABLE)
  async *runTap(ctx: StreamContext): AsyncGenerator<Row[]> {
    const args = await this.baseArgs()
    const tmp = await mkdtemp(join(tmpdir(), 'anchovies-singer-'))
    try {
      const state = ctx.stage.get(STATE_KEY)
      if (state !== undefined) {
        await writeFile(join(tmp, 'state.json'), JSON.stringify(state))
        args.push('--state', join(tmp, 'state.json'))
      }
      const selected = new Set(batch().tables.map((t) => t.name))
      const catalog = await this.catalog()
      if (catalog !== undefined) {
        await writeFile(
          join(tmp, 'catalog.json'),
          JSON.stringify(selectStreams(catalog, (s) => selected.has(tableName(s)))),
        )
        const flag = this.attr('catalog_flag') ?? 'catalog'
        if (flag !== 'catalog' && flag !== 'properties')
          throw new SingerError(
            'ANCH_ERR_SINGER_CONFIG',
            `ACHVY_CNXN__TAP__CATALOG_FLAG: ${JSON.stringify(flag)} is neither catalog nor properties`,
          )
        args.push(`--${flag}`, join(tmp, 'catalog.json'))
      }
      const proc = new SingerProcess('tap', args, ctx.logger, { stdin: false })
      const onAbort = (): void => void proc.kill()
      ctx.signal.addEventListener('abort', onAbort, { once: true })
      try {
        yield* this.read(proc, ctx, selected)
      } finally {
        ctx.signal.removeEventListener('abort', onAbort)
        await proc.kill()
      }
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  }

  /** Whether -e/-d leave a stream first seen in this run selected. */
  private wanted(name: string): boolean {
    const { enabled, disabled } = this.runtime.settings as unknown as { enabled: string[]; disabled: string[] }
    const m = (patterns: string[]): boolean => patterns.some((p) => globRe(p).test(name))
    return (enabled.length === 0 || m(enabled)) && !m(disabled)
  }

  private async *read(proc: SingerProcess, ctx: StreamContext, selected: ReadonlySet<string>): AsyncGenerator<Row[]> {
    const streams = new Map<string, StreamState | null>()
    const data = ctx.task.data
    let line = 0
    let lastStream = ''
    let chunk: Row[] = []
    let chunkOf: StreamState | undefined
    let lastState: string | undefined
    let rowsSinceState = 0
    let stale = 0
    let states = 0
    const at = (stream?: string): string =>
      `${line === 0 ? 'tap stdout line 0 (it wrote nothing)' : `tap stdout line ${line}`}${stream !== undefined ? ` (stream ${JSON.stringify(stream)})` : ''}`
    const protocol = (message: string, stream?: string): SingerError =>
      new SingerError('ANCH_ERR_SINGER_PROTOCOL', `${at(stream)}: ${message}`)
    const take = (): Row[] => {
      const c = chunk
      chunk = []
      chunkTable.set(c, chunkOf!.table!.name)
      return c
    }

    const onSchema = async (msg: SingerMessage): Promise<void> => {
      const stream = msg.stream
      if (typeof stream !== 'string' || !stream) throw protocol('a SCHEMA message without a stream name')
      lastStream = stream
      let shape: StreamShape
      try {
        shape = streamShape(msg.schema)
      } catch (err) {
        if (err instanceof SchemaViolation) throw protocol(`SCHEMA refused: ${err.message}`, stream)
        throw err
      }
      const name = tableName(stream)
      const keys = strings(msg.key_properties)
      const bookmarks = strings(msg.bookmark_properties)
      const known = streams.get(stream)
      if (known === null) return // a stream this run skips
      if (known) {
        known.shape = shape
        const changed = applySchema(
          known.table as MutableTable,
          stream,
          shape,
          keys,
          bookmarks,
          this.configTables.get(name),
        )
        if (changed && known.writer) await this.runtime.tableStore.apply([this.runtime.tableStore.record(known.table!)])
        return
      }
      const planned = this.streams.get(name)
      if (planned) {
        if (!selected.has(name)) {
          streams.set(stream, null)
          return
        }
        applySchema(planned, stream, shape, keys, bookmarks, this.configTables.get(name))
        streams.set(stream, { stream, table: planned, shape, rows: 0 })
        return
      }
      if (!this.wanted(name)) {
        streams.set(stream, null)
        return
      }
      // A stream no catalog or earlier run named: its rows go straight into its own data files, and its table
      // record is written before any commit can name them (a record without data is harmless; data without one
      // would be invisible to uploaders).
      const table = newTable(name)
      applySchema(table, stream, shape, keys, bookmarks, this.configTables.get(name))
      await this.runtime.tableStore.apply([this.runtime.tableStore.record(table)])
      streams.set(stream, { stream, table, shape, writer: ctx.stage.writer(table), rows: 0 })
      ctx.logger.info(
        { stream, table: name },
        'a new stream: its table is recorded and its rows stored; later runs plan it as a table of its own',
      )
    }

    // Synchronous on the common path (no promise per record); a direct writer's back-pressure is left in `waiting`.
    let waiting: Promise<void> | undefined
    const onRecord = (
      st: StreamState,
      record: unknown,
      reparse: () => unknown,
      version: unknown,
    ): Row[] | undefined => {
      if (!isObject(record)) throw protocol('a RECORD whose record is not a JSON object', st.stream)
      if (st.activeVersion !== undefined && typeof version === 'number' && version < st.activeVersion) {
        stale++
        return undefined
      }
      let row = record
      try {
        convertRecord(row, st.shape)
      } catch (err) {
        if (err instanceof UnsafeInteger) {
          // An integer beyond ±2^53: parse the line again keeping it exact.
          row = reparse() as Record<string, unknown>
          try {
            convertRecord(row, st.shape)
          } catch (again) {
            if (again instanceof SchemaViolation) throw protocol(again.message, st.stream)
            throw again
          }
        } else if (err instanceof SchemaViolation) throw protocol(err.message, st.stream)
        else throw err
      }
      st.rows++
      rowsSinceState++
      if (st.writer) {
        waiting = st.writer.write(row)
        return undefined
      }
      let out: Row[] | undefined
      if (chunkOf !== st && chunk.length) out = take()
      chunkOf = st
      chunk.push(row)
      return out
    }

    for await (const lines of proc.lines(this.runtime.settings.singer_max_line_bytes as number)) {
      for (const text of lines) {
        line++
        if (text.length === 0 || text.trim() === '') continue
        let msg: SingerMessage
        try {
          msg = JSON.parse(text) as SingerMessage
        } catch (err) {
          throw protocol(
            `not a JSON message (${(err as Error).message}): ${JSON.stringify(redact(text.slice(0, 60)))}${text.length > 60 ? '…' : ''}`,
            lastStream || undefined,
          )
        }
        if (!isObject(msg)) throw protocol('not a JSON object message')
        const type = msg.type
        if (type === 'RECORD') {
          const stream = msg.stream
          if (typeof stream !== 'string') throw protocol('a RECORD message without a stream name')
          lastStream = stream
          const st = streams.get(stream)
          if (st === undefined) throw protocol("a RECORD arrives before its stream's SCHEMA", stream)
          if (st === null) continue
          const out = onRecord(st, msg.record, () => (parseLossless(text) as SingerMessage).record, msg.version)
          if (waiting) {
            await waiting
            waiting = undefined
          }
          if (out) yield out
          if (chunk.length >= CHUNK_ROWS) yield take()
        } else if (type === 'STATE') {
          if (!Object.hasOwn(msg, 'value')) throw protocol('a STATE message without a value')
          states++
          const value = JSON.stringify(msg.value)
          // The same state again with no rows since: nothing to commit.
          if (rowsSinceState === 0 && value === lastState) continue
          if (chunk.length) yield take()
          ctx.stage.set(STATE_KEY, msg.value as JsonValue)
          lastState = value
          rowsSinceState = 0
          await ctx.commit()
        } else if (type === 'SCHEMA') {
          if (chunk.length) yield take()
          await onSchema(msg)
        } else if (type === 'ACTIVATE_VERSION') {
          const stream = msg.stream
          if (typeof stream !== 'string' || typeof msg.version !== 'number')
            throw protocol('an ACTIVATE_VERSION message without a stream or numeric version')
          const st = streams.get(stream)
          if (st === undefined) throw protocol("an ACTIVATE_VERSION arrives before its stream's SCHEMA", stream)
          if (st) st.activeVersion = Math.max(st.activeVersion ?? msg.version, msg.version)
        } else if (type === 'BATCH') {
          const stream = msg.stream
          if (typeof stream !== 'string') throw protocol('a BATCH message without a stream name')
          const st = streams.get(stream)
          if (st === undefined) throw protocol("a BATCH arrives before its stream's SCHEMA", stream)
          if (st === null) continue
          for await (const [record, recordText] of batchRecords(msg, (m) => protocol(m, stream))) {
            const out = onRecord(st, record, () => parseLossless(recordText), undefined)
            if (waiting) {
              await waiting
              waiting = undefined
            }
            if (out) yield out
            if (chunk.length >= CHUNK_ROWS) yield take()
          }
        } else {
          throw protocol(`unknown message type ${JSON.stringify(typeof type === 'string' ? type.slice(0, 40) : type)}`)
        }
      }
    }
    if (chunk.length) yield take()
    const exit = await proc.exited
    const started = proc.startError(String(this.tap.attrs.command))
    if (started) throw started
    data.states = states
    if (stale) data.stale_version_records = stale
    data.streams = Object.fromEntries([...streams].filter(([, s]) => s).map(([k, s]) => [k, s!.rows]))
    if (ctx.signal.aborted) {
      throw new SingerError(
        'ANCH_ERR_SINGER_PROCESS',
        `tap: stopped (${(ctx.signal.reason as Error | undefined)?.message ?? 'aborted'}) and killed after ${at(lastStream || undefined)}; what it sent after its last STATE is not committed`,
        { cause: ctx.signal.reason },
      )
    }
    if (exit.code !== 0) {
      throw new SingerError(
        'ANCH_ERR_SINGER_PROCESS',
        `tap exited with ${exit.code !== null ? `code ${exit.code}` : `signal ${exit.signal}`} after ${at(lastStream || undefined)}: see its log lines; what it sent after its last STATE is not committed`,
      )
    }
    for (const st of streams.values()) if (st?.writer) await st.writer.close()
  }
}
