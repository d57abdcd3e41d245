import { cpSync, readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DateTime } from '@anchovies/core'
import { mysqlDb, postgresDb, sqliteDb, type TestDb } from './databases.js'
import { PY_FIXTURE, run, tableTasks, tempDir } from './helpers.js'

type Row = Record<string, unknown>
interface Expected {
  tables: Record<
    string,
    {
      files: { rows: number }[]
      rows: Row[]
      scd_current?: { rows: { contact_id: string; row_index: number; upd_datetime: string }[] }
    }
  >
}
const EXPECTED = JSON.parse(readFileSync(`${PY_FIXTURE}/../EXPECTED.json`, 'utf8')) as Expected

/** The instant of a stored datetime, whatever text form the database returns. */
function instant(v: unknown): bigint {
  let s = String(v).replace(' ', 'T')
  if (/[+-]\d\d$/.test(s)) s += ':00'
  if (!/([+-]\d\d:\d\d|Z)$/.test(s)) s += '+00:00'
  return DateTime.parse(s).epochMicros
}
const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('hex') : String(v))

describe.each([
  ['postgres', () => postgresDb()],
  ['mysql', () => mysqlDb()],
  ['sqlite', () => sqliteDb()],
] as [string, () => Promise<TestDb & { prefix?: string }>][])(
  'the Python-written datastore uploaded into %s',
  (_name, open) => {
    let db: TestDb & { prefix?: string }
    const ds = tempDir()
    let schema: string
    let results: Record<string, unknown>

    beforeAll(async () => {
      db = await open()
      cpSync(PY_FIXTURE, `${ds.dir}/fixture`, { recursive: true })
      schema = `${db.prefix ?? ''}py`
      const r = await run({
        operator: 'sql.Uploader',
        id: 'py_up',
        user: 'fixture',
        datastore: ds.dir,
        upstream: ['py_sales'],
        env: { ACHVY_CNXN__DB__URL: db.url, ACHVY_CNXN__SCHEMAS__PY_SALES: schema },
      })
      expect(r.exitCode, JSON.stringify(r.results)).toBe(0)
      results = r.results
    })
    afterAll(async () => {
      await db?.close()
      ds.remove()
    })

    const target = (table: string): [string | null, string] =>
      db.name === 'sqlite' ? [null, `${schema}__fixture__${table}`] : [`${schema}__fixture`, table]

    it('keeps every contacts row and exactly the scd_current winners current', async () => {
      const exp = EXPECTED.tables.contacts!
      const rows = await db.rows(...target('contacts'))
      expect(rows).toHaveLength(49)
      const cur = rows.filter((r) => r._del === null)
      expect(cur).toHaveLength(35)
      const byId = new Map(cur.map((r) => [String(r.contact_id), r]))
      for (const w of exp.scd_current!.rows) {
        const got = byId.get(w.contact_id)!
        const want = exp.rows[w.row_index]!
        expect(instant(got.upd_datetime), w.contact_id).toBe(DateTime.parse(w.upd_datetime).epochMicros)
        for (const k of ['first_name', 'last_name', 'email', 'address'])
          expect(got[k], `${w.contact_id}.${k}`).toBe(want[k] ?? null)
        expect(Number(got.visits)).toBe(want.visits)
        expect(typeof got.prefs === 'string' ? JSON.parse(got.prefs) : got.prefs).toEqual(want.prefs)
      }
      const task = tableTasks(results).find((t) => t.tbl === 'py_sales.contacts')!
      expect(task.data).toMatchObject({ inserted: 49, superseded: 14, files_loaded: 3 })
    })

    it('replaces each sales order (set_by order_num) with its latest file', async () => {
      const exp = EXPECTED.tables.sales!
      const fileOf: number[] = exp.files.flatMap((f, i) => Array<number>(f.rows).fill(i))
      const latest = new Map<number, number>()
      exp.rows.forEach((r, i) =>
        latest.set(Number(r.order_num), Math.max(latest.get(Number(r.order_num)) ?? -1, fileOf[i]!)),
      )
      const wanted = exp.rows.filter((r, i) => latest.get(Number(r.order_num)) === fileOf[i])
      const rows = await db.rows(...target('sales'))
      expect(rows).toHaveLength(51)
      const cur = rows.filter((r) => r._del === null)
      expect(cur.map((r) => `${str(r.order_num)}/${str(r.line_num)}`).sort()).toEqual(
        wanted.map((r) => `${String(r.order_num)}/${String(r.line_num)}`).sort(),
      )
      // Values survive exactly: unicode and control characters, hex bytes, 53-bit ints, type-name-looking strings.
      const all = rows.map((r, i) => [r, exp.rows[i]!] as const)
      for (const [got, want] of all) {
        expect(got.sku).toBe(want.sku)
        expect(got.note ?? null).toBe(want.note ?? null)
        expect(got.payload === null ? null : str(got.payload).replace(/^\\x/, '')).toBe(want.payload ?? null)
        expect(str(got.big_id)).toBe(String(want.big_id))
        expect(instant(got.upd_datetime)).toBe(DateTime.parse(String(want.upd_datetime)).epochMicros)
        const meta = typeof got.meta === 'string' ? JSON.parse(got.meta) : got.meta
        expect(meta ?? null).toEqual(want.meta ?? null)
        // event_at mixes datetimes, dates and strings: the column widens to text holding each value's ISO text
        // (MySQL converts the datetimes it already stored with its own format).
        if (db.name !== 'mysql') expect(got.event_at ?? null).toBe(want.event_at ?? null)
      }
    })
  },
)
