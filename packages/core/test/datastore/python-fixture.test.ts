import { afterAll, describe, expect, it } from 'vitest'
import { cpSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import {
  DateTime,
  FilesystemDatastore,
  LocalDate,
  TableStore,
  CheckpointStore,
  Uploader,
  sink,
  type Row,
  type StreamContext,
} from '../../src/index.js'
import { REPO, cleanupTempDirs, runOperator, tempDir } from '../helpers.js'

const FIXTURE = path.join(REPO, 'test/fixtures/py-anchovies-datastore')
const EXPECTED = JSON.parse(readFileSync(path.join(FIXTURE, 'EXPECTED.json'), 'utf8')) as {
  checkpoints: Record<string, string>
  tables: Record<
    string,
    {
      tbl_json: Record<string, unknown>
      row_count: number
      rows: Record<string, unknown>[]
      row_types: Record<string, string>[]
    }
  >
}

afterAll(cleanupTempDirs)

/** Renders a restored value the way EXPECTED.json does. */
function render(v: unknown): unknown {
  if (v instanceof DateTime || v instanceof LocalDate) return String(v)
  if (Buffer.isBuffer(v)) return v.toString('hex')
  return v
}

const received = new Map<string, Row[]>()

class Collect extends Uploader {
  @sink('*')
  async collect(rows: AsyncIterable<Row>, ctx: StreamContext): Promise<void> {
    const list = received.get(ctx.table.name) ?? []
    for await (const r of rows) list.push(r)
    received.set(ctx.table.name, list)
  }
}

describe('a datastore written by the Python implementation', () => {
  it('is read by an uploader with every type restored as EXPECTED.json says, once', async () => {
    const root = tempDir()
    cpSync(path.join(FIXTURE, 'fixture'), path.join(root, 'fixture'), { recursive: true })
    const first = await runOperator(Collect, {
      datastore: root,
      id: 'up',
      user: 'fixture',
      flags: { upstream: ['py_sales'] },
    })
    expect(first.exitCode).toBe(0)
    for (const name of ['sales', 'contacts']) {
      const exp = EXPECTED.tables[name]!
      const rows = received.get(name)!
      expect(rows).toHaveLength(exp.row_count)
      rows.forEach((row, i) => {
        const rendered = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, render(v)]))
        expect(rendered).toEqual(exp.rows[i])
        for (const [col, code] of Object.entries(exp.row_types[i] ?? {})) {
          const cls = code === 'DT' ? DateTime : code === 'D' ? LocalDate : Buffer
          expect(row[col]).toBeInstanceOf(cls)
        }
      })
    }
    received.clear()
    const second = await runOperator(Collect, {
      datastore: root,
      id: 'up',
      user: 'fixture',
      flags: { upstream: ['py_sales'] },
    })
    expect(second.exitCode).toBe(0)
    expect([...received.values()].flat()).toHaveLength(0)
  })

  it('has its checkpoints and table metadata read', async () => {
    const ds = new FilesystemDatastore(path.join(FIXTURE, 'fixture'))
    const ctx = { datastore: ds, user: 'fixture', anchovyId: 'x', settings: {} }
    const root = new FilesystemDatastore(path.join(FIXTURE))
    const cps = await new CheckpointStore({ ...ctx, datastore: root, anchovyId: 'py_sales' }).load()
    expect(cps.get('contacts.last.upd_datetime')).toBe('2025-04-16T11:23:13+00:00')
    expect(String(cps.get('runs.count'))).toBe(EXPECTED.checkpoints['runs.count'])
    const tables = await new TableStore({ ...ctx, datastore: root, anchovyId: 'up' }).load('py_sales')
    const contacts = tables.find((t) => t.name === 'contacts')!
    expect(contacts.namespace).toBe('py_sales')
    expect(contacts.uniqueBy).toEqual(['contact_id'])
    expect(contacts.sortBy).toEqual([{ column: 'upd_datetime', descending: true }])
    const sales = tables.find((t) => t.name === 'sales')!
    expect(sales.setBy).toEqual(['order_num'])
    expect(sales.properties.description).toBe('order lines written by the py-anchovies fixture driver')
  })
})
