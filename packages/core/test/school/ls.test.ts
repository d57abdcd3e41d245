import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdirSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { cleanupTempDirs, runCli } from '../helpers.js'
import { buildSchool, SECRET, type School } from './school-fixture.js'

let school: School

beforeAll(async () => {
  school = await buildSchool()
})

afterAll(async () => {
  await school?.stop()
  cleanupTempDirs()
})

interface Entry {
  id: string
  user: string
  operator: string
  upstream: string[]
  state: string
  stale: boolean
  tables: { name: string; rows: number; status: string }[]
  last_run: { status: string; exit_code: number; error: string | null; host: string; rows: number } | null
  lock: { host: string; pid: number } | null
}

describe('anchovy school ls', () => {
  it('lists every anchovy with its operator, upstreams, tables, last run, lock holder and error', async () => {
    const r = await runCli(['school', 'ls', '--json'], { env: school.env })
    expect(r.code, r.stderr).toBe(0)
    const entries = JSON.parse(r.stdout) as Entry[]
    const by = new Map(entries.map((e) => [e.id, e]))
    expect([...by.keys()]).toEqual(['dl', 'old', 'relay', 'tick', 'up', 'web'])
    expect(by.get('dl')).toMatchObject({ operator: 'TwoTables', upstream: [], state: 'ok', stale: false, lock: null })
    expect(by.get('dl')!.tables).toEqual([
      { name: 'contacts', rows: 3, status: 'OK' },
      { name: 'sales', rows: 3, status: 'OK' },
    ])
    expect(by.get('dl')!.last_run).toMatchObject({ status: 'OK', exit_code: 0, error: null, rows: 6 })
    expect(by.get('up')).toMatchObject({ operator: 'FileUploader', upstream: ['dl'], state: 'failed' })
    expect(by.get('up')!.last_run).toMatchObject({
      status: 'ERR',
      exit_code: 1,
      error: 'table dl.sales: upload of sales failed on purpose',
    })
    expect(by.get('up')!.tables.find((t) => t.name === 'dl.sales')?.status).toBe('ERR')
    expect(by.get('relay')).toMatchObject({ upstream: ['dl'], state: 'ok' })
    expect(by.get('old')).toMatchObject({ state: 'stale', stale: true })
    expect(by.get('tick')!.state).toBe('running')
    expect(by.get('tick')!.lock).toMatchObject({ pid: expect.any(Number) as number })
    expect(by.get('web')!.state).toBe('failed')
    expect(by.get('web')!.last_run!.error).toContain('cannot fetch')
    expect(r.stdout).not.toContain(SECRET)
  })

  it('prints a table for people, marking the failed, stale and running ones', async () => {
    const r = await runCli(['school', 'ls'], { env: school.env })
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^ID\s+OPERATOR\s+UPSTREAM\s+STATE/)
    expect(lines.find((l) => l.startsWith('up '))).toMatch(/failed.*upload of sales failed on purpose/)
    expect(lines.find((l) => l.startsWith('old '))).toMatch(/stale/)
    expect(lines.find((l) => l.startsWith('tick '))).toMatch(/running/)
    expect(r.stdout).not.toContain(SECRET)
  })

  it('shows one user by default (-u), every user with --all-users, and ignores a summary that lies about its name', async () => {
    const other = await runCli(['school', 'ls', '--json', '-u', 'nobody'], { env: school.env })
    expect(JSON.parse(other.stdout)).toEqual([])
    // a summary whose content names another anchovy than its path, and files that are not summaries
    mkdirSync(path.join(school.ds, '$school/eve'), { recursive: true })
    writeFileSync(
      path.join(school.ds, '$school/eve/x.json'),
      JSON.stringify({ format: 1, anchovy_id: 'dl', anchovy_user: 'dev' }),
    )
    writeFileSync(
      path.join(school.ds, '$school/eve/y.json'),
      '{"format":1,"anchovy_id":"y","anchovy_user":"eve","upstream":["../../etc"],"__proto__":{"polluted":1}}',
    )
    writeFileSync(path.join(school.ds, '$school/eve/z.json'), 'not json')
    const all = await runCli(['school', 'ls', '--json', '--all-users'], { env: school.env })
    expect(all.code, all.stderr).toBe(0)
    const entries = JSON.parse(all.stdout) as Entry[]
    expect(entries.filter((e) => e.user === 'eve').map((e) => [e.id, e.upstream, e.state])).toEqual([
      ['y', [], 'never'],
    ])
    expect(entries.filter((e) => e.user === 'dev')).toHaveLength(6)
    const text = await runCli(['school', 'ls', '-a'], { env: school.env })
    expect(text.stdout.split('\n')[0]).toMatch(/^USER\s+ID/)
  })
})

describe('anchovy school graph', () => {
  it('draws the upstream relations as text, mermaid and dot with states marked', async () => {
    const text = await runCli(['school', 'graph'], { env: school.env })
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain('dl [ok]')
    expect(text.stdout).toMatch(/ {2}up \[FAILED(, stale)?\] <- dl/)
    expect(text.stdout).toMatch(/ {2}relay \[ok\] <- dl/)
    expect(text.stdout).toContain('old [STALE]')
    const mermaid = await runCli(['school', 'graph', '--format', 'mermaid'], { env: school.env })
    expect(mermaid.stdout.split('\n')[0]).toBe('flowchart LR')
    expect(mermaid.stdout.match(/-->/g)).toHaveLength(2)
    expect(mermaid.stdout).toMatch(/\["up \[FAILED[^"]*"\]:::failed/)
    const dot = await runCli(['school', 'graph', '-f', 'dot'], { env: school.env })
    expect(dot.stdout).toMatch(/^digraph school \{/)
    expect(dot.stdout.match(/->/g)).toHaveLength(2)
    const bad = await runCli(['school', 'graph', '-f', 'svg'], { env: school.env })
    expect(bad.code).toBe(2)
  })
})
