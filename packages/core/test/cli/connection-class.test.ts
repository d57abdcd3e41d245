import { afterAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import * as path from 'node:path'
import { REPO, cleanupTempDirs, runCli, tempDir } from '../helpers.js'

afterAll(cleanupTempDirs)

const EDGES = path.join(REPO, 'test/fixtures/dist/edges.js')

describe("@connection('id') whose class cannot be found", () => {
  it('stops at startup with ANCH_ERR_CONNECTION_CLASS naming the fix, before any table runs', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'm', '-op', `${EDGES}:NeedsMystery`], {
      env: { ACHVY_CNXN__MYSTERY__URL: 'https://example.invalid' },
    })
    expect(r.code, r.stderr).toBe(2)
    const results = JSON.parse(r.stdout) as {
      status: string
      startup_task: { status: string; data: { err_code: string; err_msg: string } }
      batches: unknown[]
    }
    expect(results.startup_task.data.err_code).toBe('ANCH_ERR_CONNECTION_CLASS')
    expect(results.startup_task.data.err_msg).toContain(
      "@connection('mystery') on NeedsMystery.mystery: no class provides connection 'mystery'",
    )
    expect(results.startup_task.data.err_msg).toContain(
      "fix: pass the class, @connection('id', MyConnection), or default-export definePlugin",
    )
    // The source never ran against a do-nothing connection: no batch, no data.
    expect(results.batches).toEqual([])
    expect(existsSync(path.join(ds, 'dev', 'm', 'data'))).toBe(false)
  }, 60_000)

  it('reports the missing class even when the connection is not configured either (the class is the first fix)', async () => {
    const ds = tempDir()
    const r = await runCli(['start', '--datastore', ds, '-u', 'dev', '-i', 'm', '-op', `${EDGES}:NeedsMystery`])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stdout).toContain('ANCH_ERR_CONNECTION_CLASS')
  }, 60_000)
})
