import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  Downloader,
  Uploader,
  batch,
  context,
  onTask,
  session,
  sink,
  source,
  type Row,
  type StreamContext,
} from '../../src/index.js'
import { cleanupTempDirs, commitRecords, readTree, runOperator, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

let events: string[] = []
beforeEach(() => {
  events = []
})

function taskLogs(root: string, user = 'test', id = 'op'): Record<string, unknown>[] {
  const dir = path.join(root, user, id, '$task_logs')
  return readdirSync(dir)
    .sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>)
}

class Phases extends Downloader {
  @onTask('startup') async s(): Promise<void> {
    events.push(`startup:${session().anchovyId}`)
  }
  @onTask('xopen') async o(): Promise<void> {
    events.push(`xopen:${batch().batchId}`)
  }
  @onTask('xclose') async c(): Promise<void> {
    events.push(
      `xclose:${batch()
        .tables.map((t) => t.name)
        .join('+')}`,
    )
  }
  @onTask('shutdown') async d(): Promise<void> {
    events.push('shutdown')
  }
  @onTask('error') async e(err: Error, where: { phase: string; table: string | null }): Promise<void> {
    events.push(`error:${where.phase}:${where.table}:${err.message}`)
  }
  @source('good') async *good(): AsyncGenerator<Row> {
    events.push(`source:good:${context().table?.name}`)
    yield { a: 1 }
  }
  @source('bad') async *bad(): AsyncGenerator<Row> {
    yield { a: 1 }
    throw new Error('boom')
  }
}

describe('task lifecycle', () => {
  it('fires startup, xopen, tables, error, xclose and shutdown in order and logs every task', async () => {
    const root = tempDir()
    const r = await runOperator(Phases, { datastore: root })
    expect(r.exitCode).toBe(1)
    expect(events[0]).toBe('startup:op')
    expect(events[1]).toBe('xopen:000')
    expect(events).toContain('source:good:good')
    expect(events).toContain('error:TABLE:bad:boom')
    expect(events.at(-2)).toMatch(/^xclose:/)
    expect(events.at(-1)).toBe('shutdown')
    expect(events.indexOf('error:TABLE:bad:boom')).toBeLessThan(events.length - 2)
    const logs = taskLogs(root)
    expect(logs.map((l) => l.task_type)).toEqual(
      expect.arrayContaining(['STARTUP', 'XOPEN', 'TABLE', 'ERROR', 'XCLOSE', 'SHUTDOWN']),
    )
    const bad = logs.find((l) => l.task_type === 'TABLE' && l.tbl === 'bad')!
    expect(bad.status).toBe('ERR')
    expect(bad.data).toMatchObject({ err_type: 'Error', err_msg: 'boom' })
    const good = logs.find((l) => l.task_type === 'TABLE' && l.tbl === 'good')!
    expect(good).toMatchObject({
      status: 'OK',
      anchovy_id: 'op',
      anchovy_user: 'test',
      operator: 'Phases',
      batch_id: '000',
    })
    expect(good.data).toMatchObject({ rows: 1 })
    for (const key of ['session_id', 'duration', 'timestamp']) expect(good).toHaveProperty(key)
    expect(r.results.status).toBe('ERR')
  })

  it('still commits the tables that succeeded when another fails', async () => {
    const root = tempDir()
    await runOperator(Phases, { datastore: root })
    const files = [...readTree(path.join(root, 'test/op/data')).keys()]
    expect(files).toHaveLength(1)
    expect(files[0]).toMatch(/^good\/[^/]+\.json\.gz$/)
    const commits = commitRecords(path.join(root, 'test/op/$commits'))
    expect(commits).toHaveLength(1)
    const rec = JSON.parse(readFileSync(path.join(root, 'test/op/$commits', commits[0]!), 'utf8')) as {
      files: { table: string }[]
    }
    expect(rec.files.map((f) => f.table)).toEqual(['good'])
  })

  it('runs error, xclose and shutdown when startup fails, and skips the batches', async () => {
    class BadStartup extends Phases {
      @onTask('startup') override async s(): Promise<void> {
        throw new Error('no api')
      }
    }
    const root = tempDir()
    const r = await runOperator(BadStartup, { datastore: root })
    expect(r.exitCode).toBe(1)
    expect(events).toEqual(['error:STARTUP:null:no api', 'shutdown'])
  })

  it('stops the batch at the first failure with --fail-fast', async () => {
    const root = tempDir()
    const r = await runOperator(Phases, { datastore: root, flags: { fail_fast: true, enabled: ['bad', 'good'] } })
    expect(r.exitCode).toBe(1)
    expect(events).not.toContain('source:good:good')
  })
})

const received: Record<string, Row[]> = {}

class Streams extends Downloader {
  @source('base') async *base(): AsyncGenerator<Row> {
    for (let i = 0; i < 5; i++) yield { i }
  }
  @source('doubled') @sink('base') async *doubled(rows: AsyncIterable<Row>): AsyncGenerator<Row> {
    for await (const r of rows) yield { i: (r.i as number) * 2 }
  }
  @source('tripled') @sink('doubled') async *tripled(
    rows: AsyncIterable<Row>,
    ctx: StreamContext,
  ): AsyncGenerator<Row> {
    for await (const r of rows) yield { i: (r.i as number) * 3, from: ctx.table.name, to: ctx.output?.name }
  }
  @source('w_*') async *anyW(ctx: StreamContext): AsyncGenerator<Row> {
    yield { table: ctx.table.name }
  }
  @sink() async spy(rows: AsyncIterable<Row>, ctx: StreamContext): Promise<void> {
    const list = (received[ctx.table.name] ??= [])
    for await (const r of rows) list.push(r)
  }
}

describe('sources, sinks and transforms', () => {
  beforeEach(() => {
    for (const k of Object.keys(received)) delete received[k]
  })

  it('chains transforms and feeds every matching sink, including the default sink', async () => {
    const root = tempDir()
    const r = await runOperator(Streams, { datastore: root, config: 'tbls: {w_a: {}, w_b: {}}' })
    expect(r.exitCode).toBe(0)
    expect(received.base!.map((x) => x.i)).toEqual([0, 1, 2, 3, 4])
    expect(received.doubled!.map((x) => x.i)).toEqual([0, 2, 4, 6, 8])
    expect(received.tripled![1]).toEqual({ i: 6, from: 'doubled', to: 'tripled' })
    expect(received.w_a).toEqual([{ table: 'w_a' }])
    expect(received.w_b).toEqual([{ table: 'w_b' }])
    expect(readdirSync(path.join(root, 'test/op/data')).sort()).toEqual(['base', 'doubled', 'tripled', 'w_a', 'w_b'])
  })

  it('restricts tables with --enable/--disable, --disable winning, and runs only the inputs a transform needs', async () => {
    const root = tempDir()
    const r = await runOperator(Streams, {
      datastore: root,
      config: 'tbls: {w_a: {}, w_b: {}}',
      flags: { enabled: ['tripled', 'w_*'], disabled: ['w_b'] },
    })
    expect(r.exitCode).toBe(0)
    expect(Object.keys(received).sort()).toEqual(['tripled', 'w_a'])
    expect(readdirSync(path.join(root, 'test/op/data')).sort()).toEqual(['tripled', 'w_a'])
  })

  it('lets a subclass turn the default sink off by redefining it without @sink', async () => {
    class NoDefault extends Streams {
      override async defaultSink(): Promise<void> {
        throw new Error('must not run')
      }
    }
    const root = tempDir()
    const r = await runOperator(NoDefault, { datastore: root, flags: { enabled: ['base'] } })
    expect(r.exitCode).toBe(0)
    expect(received.base).toHaveLength(5)
    expect(() => readdirSync(path.join(root, 'test/op/data'))).toThrow()
  })

  it('fails a table that has no source, naming it, and runs the others', async () => {
    const root = tempDir()
    const r = await runOperator(Streams, {
      datastore: root,
      config: 'tbls: {orphan: {}}',
      flags: { enabled: ['orphan', 'base'] },
    })
    expect(r.exitCode).toBe(1)
    expect(received.base).toHaveLength(5)
    expect(JSON.stringify(r.results)).toMatch(/table orphan has no @source/)
  })

  it('runs tables concurrently up to --concurrency', async () => {
    let running = 0
    let peak = 0
    class Slow extends Downloader {
      @source() async *all(): AsyncGenerator<Row> {
        running++
        peak = Math.max(peak, running)
        await new Promise((r) => setTimeout(r, 100))
        running--
        yield { x: 1 }
      }
    }
    const root = tempDir()
    const config = 'tbls: {a: {}, b: {}, c: {}, d: {}}'
    await runOperator(Slow, { datastore: root, config })
    expect(peak).toBe(1)
    peak = 0
    await runOperator(Slow, { datastore: root, config, flags: { concurrency: 3 } })
    expect(peak).toBe(3)
  })
})

describe('back-pressure', () => {
  it('slows a fast source down to a slow sink: the source stays within the queue size of the sink', async () => {
    let produced = 0
    let maxLead = 0
    class Fast extends Downloader {
      @source('t') async *t(): AsyncGenerator<Row> {
        for (let i = 0; i < 2000; i++) {
          produced++
          yield { i }
        }
      }
      @sink('t') async slow(rows: AsyncIterable<Row>): Promise<void> {
        let consumed = 0
        for await (const _ of rows) {
          consumed++
          maxLead = Math.max(maxLead, produced - consumed)
          if (consumed % 50 === 0) await new Promise((r) => setTimeout(r, 1))
        }
      }
    }
    const root = tempDir()
    const r = await runOperator(Fast, { datastore: root, flags: { stream_queue_size: 10 } })
    expect(r.exitCode).toBe(0)
    expect(produced).toBe(2000)
    expect(maxLead).toBeLessThanOrEqual(12)
  })
})

describe('context', () => {
  it('throws a clear error outside a run', () => {
    expect(() => context()).toThrow(/outside an anchovies run/)
  })

  it('commits checkpoints with the batch only when the table succeeds', async () => {
    class Cursor extends Downloader {
      @source('ok') async *ok(): AsyncGenerator<Row> {
        const c = context().checkpoint<number>('ok.cursor')
        c.set((c.get() ?? 0) + 1)
        yield { v: c.get() }
      }
      @source('fails') async *fails(): AsyncGenerator<Row> {
        context().checkpoint('fails.cursor').set('moved')
        yield { v: 1 }
        throw new Error('after the checkpoint')
      }
    }
    const root = tempDir()
    await runOperator(Cursor, { datastore: root })
    await runOperator(Cursor, { datastore: root })
    const dir = path.join(root, 'test/op/$checkpoints')
    expect(readdirSync(dir)).toEqual(['ok.cursor'])
    expect(readFileSync(path.join(dir, 'ok.cursor'), 'utf8')).toBe('2')
  })
})

describe('uploaders', () => {
  it('receive every committed upstream row once, in commit order, and nothing on the second run', async () => {
    class Dl extends Downloader {
      @source('t') async *t(): AsyncGenerator<Row> {
        const c = context().checkpoint<number>('n')
        const n = (c.get() ?? 0) + 1
        c.set(n)
        for (let i = 0; i < 3; i++) yield { run: n, i }
      }
    }
    const got: Row[] = []
    class Up extends Uploader {
      @sink() async s(rows: AsyncIterable<Row>): Promise<void> {
        for await (const r of rows) got.push(r)
      }
    }
    const root = tempDir()
    await runOperator(Dl, { datastore: root, id: 'dl' })
    await runOperator(Dl, { datastore: root, id: 'dl' })
    expect((await runOperator(Up, { datastore: root, id: 'up', flags: { upstream: ['dl'] } })).exitCode).toBe(0)
    expect(got.map((r) => `${r.run}.${r.i}`)).toEqual(['1.0', '1.1', '1.2', '2.0', '2.1', '2.2'])
    await runOperator(Up, { datastore: root, id: 'up', flags: { upstream: ['dl'] } })
    expect(got).toHaveLength(6)
    await runOperator(Dl, { datastore: root, id: 'dl' })
    await runOperator(Up, { datastore: root, id: 'up', flags: { upstream: ['dl'] } })
    expect(got.map((r) => r.run)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3])
  })
})
