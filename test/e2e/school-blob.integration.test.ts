import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { Azurite } from '../../packages/plugin-azblob/test/azurite.js'
import { FIXTURE_OPS, cleanupTempDirs, runCli, spawnCli, tempDir } from '../../packages/core/test/helpers.js'
import { get, serve } from '../../packages/core/test/school/serve-helpers.js'

/** The school on Azure Blob (Azurite): the same ls, graph, plan runner and API as on the filesystem. */
let azurite: Azurite
let ds: string
let env: Record<string, string>
const SECRET = 'blob-Secret-Pa55word'
const op = (name: string): string[] => ['-op', `${FIXTURE_OPS}:${name}`]

beforeAll(async () => {
  azurite = await Azurite.start()
  ds = azurite.url('school', `s-${randomBytes(3).toString('hex')}`)
  const home = tempDir('anchovies-school-blob-')
  env = {
    ACHVY_DATASTORE: ds,
    ACHVY_USER: 'dev',
    OUT_FILE: path.join(home, 'out.jsonl'),
    ACHVY_CNXN__WEB__URL: `https://u:${SECRET}@api.example.com/`,
  }
  // the runs come from a plan: dl, then up (fails on sales) and relay in parallel, and web (fails)
  const plan = path.join(home, 'blob.yaml')
  writeFileSync(
    plan,
    [
      'steps:',
      `  - start -op ${FIXTURE_OPS}:TwoTables --id dl`,
      `  - { run: "start -op ${FIXTURE_OPS}:FileUploader --id up -U dl", env: { FAIL_UPLOAD: sales } }`,
      `  - start -op ${FIXTURE_OPS}:Relay --id relay -U dl`,
      `  - { run: "start -op ${FIXTURE_OPS}:NeedsWeb --id web", env: { FAIL_PAGES: "1" } }`,
    ].join('\n'),
  )
  const r = await runCli(['school', 'run', '--plan', plan, '--continue-on-error', '--json'], { env })
  expect(r.code, r.stderr).toBe(1)
  const res = JSON.parse(r.stdout) as { steps: { step: string; status: string }[] }
  expect(Object.fromEntries(res.steps.map((s) => [s.step, s.status]))).toEqual({
    dl: 'OK',
    up: 'ERR',
    relay: 'OK',
    web: 'ERR',
  })
}, 120_000)

afterAll(async () => {
  await azurite?.dispose()
  cleanupTempDirs()
})

describe('the school on a blob datastore (Azurite)', () => {
  it('lists, draws and serves what the runs did, with the running one marked and no secret anywhere', async () => {
    const ticker = spawnCli(['start', ...op('Ticker'), '--id', 'tick', '-S', '--interval', '0.2'], { env })
    try {
      let entries: { id: string; state: string; last_run: { error: string | null } | null }[] = []
      for (let i = 0; i < 120 && !entries.some((e) => e.id === 'tick' && e.state === 'running'); i++) {
        const r = await runCli(['school', 'ls', '--json'], { env })
        expect(r.code, r.stderr).toBe(0)
        entries = JSON.parse(r.stdout) as typeof entries
        if (!entries.some((e) => e.id === 'tick' && e.state === 'running'))
          await new Promise((res) => setTimeout(res, 250))
      }
      expect(Object.fromEntries(entries.map((e) => [e.id, e.state]))).toEqual({
        dl: 'ok',
        relay: 'ok',
        tick: 'running',
        up: 'failed',
        web: 'failed',
      })
      expect(entries.find((e) => e.id === 'up')!.last_run!.error).toBe(
        'table dl.sales: upload of sales failed on purpose',
      )
      const graph = await runCli(['school', 'graph', '-f', 'mermaid'], { env })
      expect(graph.stdout.match(/-->/g)).toHaveLength(2)
      const served = await serve(env)
      try {
        const list = await get(served.url, '/api/anchovies')
        expect(list.status).toBe(200)
        expect((JSON.parse(list.body) as { anchovies: unknown[] }).anchovies).toHaveLength(5)
        for (const p of [
          '/api/anchovies/dev/web',
          '/api/anchovies/dev/web/runs',
          '/metrics',
          '/api/plans',
          '/api/anchovies/dev/dl/tables/sales/rows',
        ]) {
          const r = await get(served.url, p)
          expect(r.status, p).toBe(200)
          expect(r.body).not.toContain(SECRET)
        }
        expect((await get(served.url, '/api/anchovies/dev/%2e%2e/runs')).status).toBe(400)
      } finally {
        await served.stop()
      }
    } finally {
      ticker.kill('SIGTERM')
      await ticker.result
    }
  })
})
