import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { cleanupTempDirs, runCli } from '../helpers.js'
import { buildSchool, op, SECRET, type School } from './school-fixture.js'
import { get, serve, type Served } from './serve-helpers.js'

let school: School
let open: Served
let locked: Served
const TOKEN = 'school-token-0123456789'
/** A file outside the datastore that no route may ever read. */
const OUTSIDE = 'OUTSIDE-THE-DATASTORE-7f3a'

beforeAll(async () => {
  school = await buildSchool()
  writeFileSync(
    path.join(school.ds, '..', `${path.basename(school.ds)}-outside.json`),
    JSON.stringify({ format: 1, anchovy_id: 'x', anchovy_user: 'dev', marker: OUTSIDE }),
  )
  // A task log an older version wrote without redaction: the server still masks its own env's secrets.
  const logs = path.join(school.ds, 'dev/web/$task_logs')
  const first = readdirSync(logs).sort()[0]!
  writeFileSync(
    path.join(logs, first.replace(/\.json$/, '.9999.json')),
    JSON.stringify({
      anchovy_id: 'web',
      session_id: first.split('-')[0],
      status: 'ERR',
      started_at: '2025-01-01T00:00:00Z',
      data: { err_msg: `leaked ${SECRET}` },
    }),
  )
  mkdirSync(path.join(school.ds, '$school/dev'), { recursive: true })
  // an anchovy whose task logs go to the school-wide hive layout at the root
  const hive = await runCli(['start', ...op('TwoTables'), '--id', 'hive', '--task-store-cls', 'hive'], {
    env: school.env,
  })
  expect(hive.code, hive.stderr).toBe(0)
  ;[open, locked] = await Promise.all([serve(school.env), serve(school.env, ['--token', TOKEN])])
})

afterAll(async () => {
  await Promise.all([open?.stop(), locked?.stop(), school?.stop()])
  cleanupTempDirs()
})

interface Entry {
  id: string
  state: string
  last_run: { session_id: string; error: string | null } | null
  tables: { name: string }[]
}

async function json<T>(p: string, served = open, token?: string): Promise<T> {
  const r = await get(served.url, p, token)
  expect(r.status, `${p}: ${r.body}`).toBe(200)
  return JSON.parse(r.body) as T
}

describe('school serve: the API', () => {
  it('lists the anchovies with the states the runs left, and the graph of their upstreams', async () => {
    const { anchovies } = await json<{ anchovies: Entry[] }>('/api/anchovies')
    expect(Object.fromEntries(anchovies.map((a) => [a.id, a.state]))).toEqual({
      dl: 'ok',
      hive: 'ok',
      old: 'stale',
      relay: 'ok',
      tick: 'running',
      up: 'failed',
      web: 'failed',
    })
    const graph = await json<{ nodes: { id: string; level: number }[]; edges: { from: string; to: string }[] }>(
      '/api/graph',
    )
    expect(graph.edges).toEqual(
      expect.arrayContaining([
        { from: 'dev/dl', to: 'dev/up' },
        { from: 'dev/dl', to: 'dev/relay' },
      ]),
    )
    expect(graph.nodes.find((n) => n.id === 'up')!.level).toBe(1)
    const one = await json<Entry>('/api/anchovies/dev/up')
    expect(one.last_run!.error).toBe('table dl.sales: upload of sales failed on purpose')
  })

  it('serves runs, the task logs of a run, tables with columns and last rows, and checkpoints', async () => {
    const up = await json<Entry>('/api/anchovies/dev/up')
    const { runs } = await json<{ runs: { session_id: string; status: string; exit_code: number }[] }>(
      '/api/anchovies/dev/up/runs',
    )
    expect(runs[0]).toMatchObject({ session_id: up.last_run!.session_id, status: 'ERR', exit_code: 1 })
    const { tasks } = await json<{
      tasks: { task_type: string; tbl: string | null; status: string; data: { err_msg?: string } }[]
    }>(`/api/anchovies/dev/up/runs/${runs[0]!.session_id}/tasks`)
    expect(tasks.map((t) => t.task_type)).toEqual(['STARTUP', 'XOPEN', 'TABLE', 'TABLE', 'ERROR', 'XCLOSE', 'SHUTDOWN'])
    expect(tasks.find((t) => t.tbl === 'dl.sales')).toMatchObject({
      status: 'ERR',
      data: { err_msg: 'upload of sales failed on purpose' },
    })
    const { tables } = await json<{ tables: { name: string }[] }>('/api/anchovies/dev/dl/tables')
    expect(tables.map((t) => t.name)).toEqual(['contacts', 'sales'])
    const { rows } = await json<{ rows: { id: number }[] }>('/api/anchovies/dev/dl/tables/sales/rows?limit=2')
    expect(rows.map((r) => r.id)).toEqual([1, 2])
    const { checkpoints } = await json<{ checkpoints: { key: string; value: unknown }[] }>(
      '/api/anchovies/dev/dl/checkpoints',
    )
    expect(checkpoints).toEqual([
      { key: 'contacts.last', value: 3 },
      { key: 'sales.last', value: 3 },
    ])
  })

  it('reads the task logs of a run from the hive layout too (--task-store-cls hive)', async () => {
    const hive = await json<Entry>('/api/anchovies/dev/hive')
    const { tasks } = await json<{ tasks: { task_type: string; tbl: string | null; data: { rows?: number } }[] }>(
      `/api/anchovies/dev/hive/runs/${hive.last_run!.session_id}/tasks`,
    )
    expect(
      tasks
        .filter((t) => t.task_type === 'TABLE')
        .map((t) => [t.tbl, t.data.rows])
        .sort(),
    ).toEqual([
      ['contacts', 3],
      ['sales', 3],
    ])
    expect(readdirSync(path.join(school.ds, '$task_logs'))).toEqual(['anchovy_user=dev'])
  })

  it('exposes Prometheus metrics per anchovy', async () => {
    const r = await get(open.url, '/metrics')
    expect(r.status).toBe(200)
    expect(r.type).toMatch(/^text\/plain/)
    expect(r.body).toContain('anchovy_school_anchovies 7')
    expect(r.body).toMatch(/^anchovy_last_run_ok\{user="dev",id="up",operator="FileUploader"\} 0$/m)
    expect(r.body).toMatch(/^anchovy_last_run_ok\{user="dev",id="dl",operator="TwoTables"\} 1$/m)
    expect(r.body).toMatch(/^anchovy_running\{user="dev",id="tick",operator="Ticker"\} 1$/m)
    expect(r.body).toMatch(/^anchovy_stale\{user="dev",id="old",operator="TwoTables"\} 1$/m)
    expect(r.body).toMatch(/^anchovy_table_rows\{user="dev",id="dl",table="sales"\} 3$/m)
    expect(
      Number(/^anchovy_last_success_age_seconds\{user="dev",id="old",[^}]*\} (\S+)$/m.exec(r.body)![1]),
    ).toBeGreaterThan(86_400)
  })
})

describe('school serve: security', () => {
  it('needs the bearer token when one is set (but /healthz and the page itself are public)', async () => {
    expect((await get(locked.url, '/api/anchovies')).status).toBe(401)
    expect((await get(locked.url, '/api/anchovies', 'wrong')).status).toBe(401)
    expect((await get(locked.url, '/api/anchovies', `${TOKEN}x`)).status).toBe(401)
    expect((await get(locked.url, '/metrics')).status).toBe(401)
    expect((await get(locked.url, '/api/anchovies/dev/dl/tables/sales/rows')).status).toBe(401)
    expect((await get(locked.url, '/api/anchovies', TOKEN)).status).toBe(200)
    expect((await get(locked.url, '/healthz')).status).toBe(200)
    const page = await get(locked.url, '/')
    expect(page.status).toBe(200)
    expect(page.body).not.toContain(TOKEN)
  })

  it('never lets a path leave the datastore: .., encoded, absolute and doubly encoded names get 400 or 404', async () => {
    const bad = [
      '..',
      '%2e%2e',
      '%2E%2E',
      '..%2f..',
      '%2e%2e%2f%2e%2e',
      '%252e%252e',
      '/etc',
      '%2fetc%2fpasswd',
      '.',
      '...',
      'a%00b',
      '%5c..%5c',
      'constructor',
      '__proto__',
    ]
    const attempts: string[] = []
    for (const b of bad) {
      attempts.push(
        `/api/anchovies/${b}/dl`,
        `/api/anchovies/dev/${b}`,
        `/api/anchovies/dev/${b}/runs`,
        `/api/anchovies/dev/dl/runs/${b}`,
        `/api/anchovies/dev/dl/runs/${b}/tasks`,
      )
      attempts.push(
        `/api/anchovies/dev/dl/tables/${b}/rows`,
        `/api/anchovies/${b}/${b}/checkpoints`,
        `/api/anchovies/dev/${b}/tables`,
        `/${b}`,
        `/${b}/${b}/etc/passwd`,
        `/api/${b}/anchovies`,
      )
    }
    attempts.push(
      '/../../../../etc/passwd',
      '/api/anchovies/dev/../../../etc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '//etc/passwd',
      '/app.js/../../package.json',
      '/style.css%2f..%2f..%2fpackage.json',
    )
    attempts.push(
      `/api/anchovies/dev/${path.basename(school.ds)}-outside`,
      `/api/anchovies/..%2f${path.basename(school.ds)}-outside/x`,
    )
    for (const a of attempts) {
      const r = await get(open.url, a)
      expect([400, 404], `${a} -> ${r.status} ${r.body.slice(0, 100)}`).toContain(r.status)
      expect(r.body).not.toContain(OUTSIDE)
      expect(r.body).not.toContain('root:')
    }
  })

  it('answers no secret from the environment of the runs or of the server, in any route or the page', async () => {
    const { anchovies } = await json<{ anchovies: Entry[] }>('/api/anchovies')
    const paths = ['/', '/app.js', '/style.css', '/api/anchovies', '/api/graph', '/metrics', '/api/plans']
    for (const a of anchovies) {
      const base = `/api/anchovies/dev/${a.id}`
      paths.push(base, `${base}/runs`, `${base}/tables`, `${base}/checkpoints`)
      if (a.last_run) paths.push(`${base}/runs/${a.last_run.session_id}`, `${base}/runs/${a.last_run.session_id}/tasks`)
      for (const t of a.tables) paths.push(`${base}/tables/${t.name}/rows`)
    }
    let sawMasked = false
    for (const p of paths) {
      const r = await get(open.url, p)
      expect(r.status, p).toBe(200)
      expect(r.body, p).not.toContain(SECRET)
      if (r.body.includes('leaked ***')) sawMasked = true
    }
    expect(sawMasked).toBe(true)
    const web = anchovies.find((a) => a.id === 'web')!
    expect(web.last_run!.error).toMatch(/cannot fetch https:\/\/admin:\*\*\*@api\.example\.com/)
  })
})
